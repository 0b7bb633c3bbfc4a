"""``bluemule particle info|flash`` through the real console script, against the real
``bluemule emulator control-stream`` (tcp:) and an in-process emulated device (emu:)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.apps import make_app
from bluemule.emulator.setup import update_settings
from bluemule.image import parse_module, write_bundle
from tests.particle_ctrl.test_plan import FIXTURES, boron_system_part

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
SECRET = "K7QX2M9PLR4TW8N"  # noqa: S105 - a test device's secret
WRONG = "K7QX2M9PLR4TW8X"
ASSETS = {"cat.txt": b"meow " * 100, "dog.txt": b"woof " * 80}


def env(tmp_path: Path, secret: str | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "BLUEMULE_MOBILE_SECRET"}
    out["BLUEMULE_HOME"] = str(tmp_path / "home")
    if secret is not None:
        out["BLUEMULE_MOBILE_SECRET"] = secret
    return out


def bluemule(
    tmp_path: Path, *args: str | Path, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLUEMULE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env(tmp_path, secret),
    )


@contextmanager
def control_stream(tmp_path: Path) -> Iterator[str]:
    args = [BLUEMULE, "emulator", "control-stream", str(tmp_path / "dev"), "--stock"]
    args += ["--listen", "127.0.0.1:0", "--mobile-secret", SECRET]
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path)
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            yield "tcp:" + json.loads(line)["control_stream"]
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)


def files(tmp_path: Path) -> tuple[Path, Path]:
    system = tmp_path / "boron-system-part1@6.3.0.bin"
    system.write_bytes(boron_system_part(6300))
    app = make_app("boron", device_os=6300, library=False, assets=ASSETS, tag="cli")
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(write_bundle("app.bin", app, sorted(ASSETS.items())))
    return system, bundle


def test_particle_info_over_tcp(tmp_path: Path) -> None:
    with control_stream(tmp_path) as target:
        shown = bluemule(tmp_path, "particle", "info", target, "--json", secret=SECRET)
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        table = bluemule(tmp_path, "particle", "info", target, "--mobile-secret", SECRET)
    device = EmulatedDevice.open(tmp_path / "dev")
    assert doc["device_id"] == device.device_id
    assert doc["device_os"] == "6.2.0"
    assert {m["kind"] for m in doc["modules"]} >= {"system_part", "bootloader", "user_part"}
    assert SECRET not in shown.stdout + shown.stderr
    assert table.returncode == 0 and "device os  6.2.0" in table.stdout


def test_particle_flash_over_tcp(tmp_path: Path) -> None:
    system, bundle = files(tmp_path)
    with control_stream(tmp_path) as target:
        dry = bluemule(
            tmp_path, "particle", "flash", target, bundle, system, "--dry-run", secret=SECRET
        )
        done = bluemule(
            tmp_path, "particle", "flash", target, bundle, system, "--json", secret=SECRET
        )
        again = bluemule(tmp_path, "particle", "flash", target, bundle, "--json", secret=SECRET)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith("would send system_part boron-system-part1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [s["kind"] for s in doc["plan"]] == ["system_part", "user_part", "asset", "asset"]
    assert [s["outcome"] for s in doc["steps"]] == ["installed", "installed", "stored", "stored"]
    assert doc["device"]["device_os"] == "6.3.0"
    assert SECRET not in done.stdout + done.stderr
    redo = json.loads(again.stdout)
    assert redo["skipped_assets"] == sorted(ASSETS)
    assert [s["kind"] for s in redo["plan"]] == ["user_part"]
    shown = json.loads(bluemule(tmp_path, "emulator", "show", tmp_path / "dev", "--json").stdout)
    app = parse_module(make_app("boron", device_os=6300, library=False, assets=ASSETS, tag="cli"))
    assert shown["device_os_version"] == 6300
    assert shown["app"]["sha256"] == app.suffix.sha256.hex()
    assert {a["name"] for a in shown["assets"]} == set(ASSETS)
    assert shown["mode"] == "normal"


def test_particle_flash_refusals_and_bad_input(tmp_path: Path) -> None:
    system, bundle = files(tmp_path)
    argon = FIXTURES / "binaries/argon-tinker-620.bin"
    with control_stream(tmp_path) as target:
        wrong = bluemule(tmp_path, "particle", "flash", target, system, secret=WRONG)
        refused = bluemule(tmp_path, "particle", "flash", target, argon, "--json", secret=SECRET)
        refused_text = bluemule(tmp_path, "particle", "flash", target, argon, secret=SECRET)
        planned = bluemule(tmp_path, "particle", "flash", target, bundle, secret=SECRET)
        garbage = bluemule(
            tmp_path, "particle", "flash", target, FIXTURES / "binaries/unknown.bin", secret=SECRET
        )
    # a wrong secret: one line naming it, exit 2, no traceback, the secret never echoed
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        f"bluemule: error: {target}: wrong mobile secret (the device's key confirmation "
        "does not match)"
    ]
    assert WRONG not in wrong.stdout + wrong.stderr
    # the device refuses another platform's app at FINISH: exit 1, Device OS's error named
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "OTA_INVALID_PLATFORM"
    assert refused_text.returncode == 1
    assert "OTA_INVALID_PLATFORM (-1360)" in refused_text.stderr
    assert "Traceback" not in refused_text.stderr
    # refused before sending: the app needs Device OS 6.3.0 and no file brings it
    assert planned.returncode == 2
    assert "dependency_not_met" in planned.stderr and "system_part 1 >= 6300" in planned.stderr
    assert garbage.returncode == 2 and "unknown.bin: no Particle module prefix" in garbage.stderr
    assert EmulatedDevice.open(tmp_path / "dev").device_os_version == 6200


def test_particle_usage_errors(tmp_path: Path) -> None:
    no_secret = bluemule(tmp_path, "particle", "info", "tcp:127.0.0.1:9")
    assert no_secret.returncode == 2 and "BLUEMULE_MOBILE_SECRET" in no_secret.stderr
    short = bluemule(tmp_path, "particle", "info", "tcp:127.0.0.1:9", secret="short")  # noqa: S106
    assert short.returncode == 2 and "15 printable" in short.stderr and "short" not in short.stderr
    moniker = bluemule(tmp_path, "particle", "info", "tcp:nohost", secret=SECRET)
    assert moniker.returncode == 2 and "tcp:HOST:PORT" in moniker.stderr
    unreachable = bluemule(tmp_path, "particle", "info", "tcp:127.0.0.1:9", secret=SECRET)
    assert unreachable.returncode == 2 and "Traceback" not in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_particle_flash_emu_creates_a_stock_device(tmp_path: Path) -> None:
    system, bundle = files(tmp_path)
    target = f"emu:{tmp_path / 'emu'}"
    done = bluemule(
        tmp_path, "particle", "flash", target, system, bundle, "--stock", "--json", secret=SECRET
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["device"]["device_os"] == "6.3.0"
    info = bluemule(tmp_path, "particle", "info", target, "--json", secret=SECRET)
    assert json.loads(info.stdout)["device_os"] == "6.3.0"
    wrong = bluemule(tmp_path, "particle", "info", target, secret=WRONG)
    assert wrong.returncode == 2 and "wrong mobile secret" in wrong.stderr


def test_a_protected_device_is_reported_and_refused(tmp_path: Path) -> None:
    device = EmulatedDevice.create(tmp_path / "dev", "boron", stock=True)
    update_settings(device.state_dir, mobile_secret=SECRET, protected=True)
    app = tmp_path / "app.bin"
    app.write_bytes(make_app("boron", library=False, tag="p"))
    with control_stream(tmp_path) as target:
        info = bluemule(tmp_path, "particle", "info", target, "--json", secret=SECRET)
        refused = bluemule(tmp_path, "particle", "flash", target, app, "--json", secret=SECRET)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["protected"] is True
    assert refused.returncode == 1
    doc = json.loads(refused.stdout)
    assert doc["error"] == "protected_device" and "SYSTEM_ERROR_PROTECTED" in doc["message"]
