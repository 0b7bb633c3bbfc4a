"""``bluemule keys``, ``flash`` and ``emulator`` through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bluemule.emulator import make_app
from bluemule.image import write_bundle

BLUEMULE = str(Path(sys.executable).parent / "bluemule")


def run(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLUEMULE_HOME": str(home)}
    return subprocess.run(
        [BLUEMULE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_keys_generate_and_show(home: Path) -> None:
    created = run(home, "keys", "generate", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    path = Path(info["path"])
    assert path == home / "keys" / "release-signing.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(info["public_key"])) == 32
    shown = json.loads(run(home, "keys", "show", "--json").stdout)
    assert shown == info
    assert "PRIVATE" not in run(home, "keys", "show").stdout
    again = run(home, "keys", "generate")
    assert again.returncode == 2
    assert "exists" in again.stderr


def test_flash_emulated_device_then_show(home: Path, tmp_path: Path) -> None:
    assets = {"cal.bin": bytes(range(200)) * 10, "logo.raw": b"\x01" * 3000}
    app = make_app("msom", tag="release-2", assets=assets)
    bundle = tmp_path / "release.zip"
    bundle.write_bytes(write_bundle("app.bin", app, sorted(assets.items())))
    emu = tmp_path / "device"
    result = run(
        home,
        "flash",
        f"emu:{emu}",
        bundle,
        "--platform",
        "msom",
        "--device-id",
        "0a10aced202194944a0d7fe1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["result"] == "applied"
    assert report["device_id"] == "0a10aced202194944a0d7fe1"
    assert report["bytes_sent"] > 0
    assert report["seconds"] > 0
    shown = json.loads(run(home, "emulator", "show", emu, "--json").stdout)
    assert set(shown) == {
        "device_id",
        "platform_id",
        "device_os_version",
        "mode",
        "app",
        "assets",
        "control",
    }
    assert shown["control"]["mobile_secret"] is True  # present, never printed unless asked
    assert "mobile_secret_value" not in shown["control"]
    assert (shown["platform_id"], shown["mode"]) == (35, "normal")
    assert sorted(a["name"] for a in shown["assets"]) == sorted(assets)
    again = json.loads(run(home, "flash", f"emu:{emu}", bundle, "--json").stdout)
    assert again["result"] == "already_current"  # same firmware: the counter is adopted
    assert again["release_counter"] == 2
    other = tmp_path / "other.bin"
    other.write_bytes(make_app("msom", tag="release-1"))
    old = run(home, "flash", f"emu:{emu}", other, "--json", "--release-counter", "2")
    assert old.returncode == 1
    assert json.loads(old.stdout)["status"] == "OLD_RELEASE"


def test_emulator_create_and_bad_inputs(home: Path, tmp_path: Path) -> None:
    emu = tmp_path / "boron"
    created = run(home, "emulator", "create", emu, "--device-os", "6100", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["device_os_version"] == 6100
    assert run(home, "emulator", "create", emu).returncode == 2
    missing = run(home, "emulator", "show", tmp_path / "nothing")
    assert missing.returncode == 2
    assert missing.stderr.startswith("bluemule: error:")
    bad_target = run(home, "flash", "usb:0", tmp_path / "x.bin")
    assert bad_target.returncode == 2
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00" * 100)
    bad_file = run(home, "flash", f"emu:{emu}", garbage)
    assert bad_file.returncode == 2
    assert "Traceback" not in bad_file.stderr
