"""``bluemule emulator control-stream`` as a real process, driven by the TCP byte stream
and the client session: handshakes with the right and the wrong secret, and a firmware
update whose reset ends the connection and boots the new app."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.errors import ChannelError, RequestError, WrongMobileSecretError
from bluemule.particle_ctrl.stream import open_channel, open_tcp_stream

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
PHRASE = "K7QX2M9PLR4TW8N"
T = m.RequestType


@contextmanager
def control_stream(tmp_path: Path, *extra: str) -> Iterator[tuple[str, int, subprocess.Popen[str]]]:
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}
    args = [BLUEMULE, "emulator", "control-stream", str(tmp_path / "dev")]
    args += ["--listen", "127.0.0.1:0", "--mobile-secret", PHRASE, *extra]
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            host, port = json.loads(line)["control_stream"].rsplit(":", 1)
            yield host, int(port), proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise


async def _request(host: str, port: int, secret: str, request_type: int) -> bytes:
    stream = await open_tcp_stream(host, port)
    async with open_channel(stream, secret.encode()) as channel:
        return await channel.request(request_type, timeout=20)


def test_wrong_secret_is_refused_and_the_server_survives(tmp_path: Path) -> None:
    with control_stream(tmp_path, "--stock") as (host, port, proc):
        with pytest.raises(WrongMobileSecretError):
            asyncio.run(_request(host, port, "WRONGWRONGWRONG", T.DEVICE_ID))
        reply = asyncio.run(_request(host, port, PHRASE, T.DEVICE_ID))
        device_id = m.GetDeviceIdReply.decode(reply).id
        again = asyncio.run(_request(host, port, PHRASE, T.SYSTEM_VERSION))
        assert m.GetSystemVersionReply.decode(again).version == "6.2.0"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert "channel refused: WrongMobileSecretError" in err and "Traceback" not in err
    assert PHRASE not in err
    assert EmulatedDevice.open(tmp_path / "dev").device_id == device_id


def test_firmware_update_over_tcp(tmp_path: Path) -> None:
    app = make_app("boron", library=False, product_version=9, tag="tcp", body_size=4000)

    async def update(host: str, port: int) -> list[int]:
        stream = await open_tcp_stream(host, port)
        async with open_channel(stream, PHRASE.encode()) as ch:
            with pytest.raises(RequestError) as refused:
                await ch.request(T.FINISH_FIRMWARE_UPDATE, timeout=20)
            start = m.StartFirmwareUpdateRequest(len(app)).encode()
            reply = await ch.request(T.START_FIRMWARE_UPDATE, start, timeout=60)
            chunk = m.StartFirmwareUpdateReply.decode(reply).chunk_size
            for offset in range(0, len(app), chunk):
                data = m.FirmwareUpdateDataRequest(app[offset : offset + chunk]).encode()
                await ch.request(T.FIRMWARE_UPDATE_DATA, data, timeout=20)
            await ch.request(T.FINISH_FIRMWARE_UPDATE, timeout=60)
            with pytest.raises(ChannelError):  # the device reset: the link is gone
                await ch.request(T.DEVICE_ID, timeout=20)
        return [refused.value.code, chunk]

    with control_stream(tmp_path, "--stock") as (host, port, _proc):
        code, chunk = asyncio.run(update(host, port))
        assert (code, chunk) == (-210, 1024)
        info = asyncio.run(_request(host, port, PHRASE, T.GET_MODULE_INFO))
    modules = m.GetModuleInfoReply.decode(info).modules
    [user] = [x for x in modules if x.type == m.ModuleType.USER_PART_MODULE]
    device = EmulatedDevice.open(tmp_path / "dev")
    assert device.installed_app is not None and device.installed_app.data == app
    assert device.mode == "normal" and user.hash == device.installed_app.suffix.sha256


def test_create_and_show_report_the_channel(tmp_path: Path) -> None:
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BLUEMULE, "emulator", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    emu = str(tmp_path / "dev")
    made = run("create", emu, "--stock", "--listening", "--protected", "--mobile-secret", PHRASE)
    assert made.returncode == 0, made.stderr
    shown = run("show", emu)
    assert "mobile secret set; listening, protected" in shown.stdout
    assert PHRASE not in shown.stdout + made.stdout + made.stderr
    control = json.loads(run("show", emu, "--json", "--show-secret").stdout)["control"]
    assert control["mobile_secret_value"] == PHRASE
    assert (control["listening"], control["protected"]) == (True, True)
    bad = run("create", str(tmp_path / "other"), "--mobile-secret", "too short")
    assert bad.returncode == 2 and bad.stderr.startswith("bluemule: error:")
    assert "too short" not in bad.stderr and not (tmp_path / "other").exists()
    listen = run("control-stream", emu, "--listen", "localhost")
    assert listen.returncode == 2 and "HOST:PORT" in listen.stderr
