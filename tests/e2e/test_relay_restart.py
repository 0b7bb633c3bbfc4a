"""The relay process killed mid-transfer and started again: the transfer resumes from the
device's offset and completes; nothing the relay owed the server is lost or duplicated.

Real processes: ``bluemule emulator run`` (the device) and ``bluemule relay run`` (twice),
on Bumble controllers linked over HCI/TCP (``tests.support.hci``); the server runs on
127.0.0.1 in this process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.services import set_trusted_keys
from bluemule.server.models import DeviceUpdate, Event
from tests.relay.helpers import reported_states
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.support.hci import linked_controllers
from tests.support.live_server import LiveServer

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
DEVICE = "e00fce680000000000000a0a"
BIG = random.Random(5).randbytes(300_000)  # incompressible: the transfer takes a while


def relay_config(path: Path, url: str, token: str, cache: Path, hci: str) -> Path:
    path.write_text(
        f'server_url = "{url}"\ntoken = "{token}"\ncache_dir = "{cache}"\n'
        f'transport = "bumble:{hci}"\nprogress_interval = 0.2\nscan_seconds = 1.0\n'
        "retry_base = 0.0\nsync_interval = 600.0\n"
    )
    path.chmod(0o600)  # it holds the token
    return path


def wait_for_progress(relay: subprocess.Popen[str], fraction: float, token: str) -> dict[str, Any]:
    """Read the relay's JSON log lines until a transfer passed ``fraction``."""
    assert relay.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = relay.stderr.readline()
        assert line, f"the relay exited: {relay.poll()}"
        record: dict[str, Any] = json.loads(line)
        assert token not in line
        if record["event"] == "transfer" and record["acked"] >= fraction * record["total"]:
            return record
    raise AssertionError("no transfer progress")


def test_relay_killed_mid_transfer_resumes(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}
    env.pop("BLUEMULE_RELAY_TOKEN", None)
    add_device(api, DEVICE, groups=["beta"])
    release_id = upload(api, "big", 4, {"big.bin": BIG})
    publish(api, release_id, groups=["beta"])
    device = EmulatedDevice.create(tmp_path / "dev", "boron", device_id=DEVICE)
    set_trusted_keys(device, [api.state.signing_key.public_key])
    for n in range(3):
        device.publish("reading", f"r{n}")  # drained (and acknowledged) by the first relay
    cache = tmp_path / "relay"
    with linked_controllers(3) as hci:
        emulator = subprocess.Popen(
            [BLUEMULE, "emulator", "run", str(tmp_path / "dev"), "--transport", hci.monikers[0]],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert emulator.stdout is not None
            assert json.loads(emulator.stdout.readline())["serving"] == DEVICE
            first_config = relay_config(
                tmp_path / "relay1.toml", server.url, token, cache, hci.monikers[1]
            )
            first = subprocess.Popen(
                [BLUEMULE, "relay", "run", "--config", str(first_config), "--json"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            try:
                killed_at = wait_for_progress(first, 0.3, token)
            finally:
                first.send_signal(signal.SIGKILL)
                first.communicate(timeout=10)
            hci.drop_connections(1)  # the device notices the link is gone
            with sqlite3.connect(cache / "journal.sqlite3") as db:
                owed = dict(db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"))
            # sighting, cached_on_relay, transferring…, and the 3 events: durable, unsent
            assert owed["report"] >= 3 and owed["event"] == 3
            second_config = relay_config(
                tmp_path / "relay2.toml", server.url, token, cache, hci.monikers[2]
            )
            second = subprocess.run(
                [BLUEMULE, "relay", "run", "--config", str(second_config), "--once", "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert second.returncode == 0, second.stderr
            assert token not in second.stderr and token not in second.stdout
        finally:
            emulator.terminate()
            emulator.communicate(timeout=10)
    summary = json.loads(second.stdout)
    (visit,) = summary["devices"]
    assert visit["update"] == "applied", visit
    total = killed_at["total"]
    # resumed from the device's offset: only what it lacked (plus at most a window) was sent
    assert visit["bytes_sent"] <= total - killed_at["acked"] + 8192, (visit, killed_at)
    assert summary["pending"] == {"report": 0, "event": 0}
    assert summary["uploaded_reports"] >= owed["report"]
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, DEVICE)
        assert row is not None and row.state == "confirmed_running"
        events = session.execute(
            select(Event.id, Event.data).where(Event.device_id == DEVICE).order_by(Event.id)
        ).all()
    kinds = reported_states(api, DEVICE)
    assert kinds.count("cached_on_relay") == 1 and kinds.count("confirmed_running") == 1
    assert [tuple(e) for e in events] == [(f"{DEVICE}:{n}", f"r{n - 1}") for n in (1, 2, 3)]
    assert summary["uploaded_events"] == 3 and visit["events"] == 0  # none left on the device
    shown = EmulatedDevice.open(tmp_path / "dev").show()
    assert [a["name"] for a in shown["assets"]] == ["big.bin"]
