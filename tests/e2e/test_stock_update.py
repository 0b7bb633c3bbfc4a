"""A stock Boron (no bluemule library) updated over Bumble's virtual link through Device OS's
own control channel: a Device OS system part first, then an application with assets; it
boots into it and ``bluemule emulator show`` agrees. A wrong mobile secret through the CLI
fails cleanly with a named error."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.apps import make_app
from bluemule.emulator.setup import load_settings, update_settings
from bluemule.image import parse_module, write_bundle
from bluemule.particle_ctrl.client import FlashEvent, FlashResult, StepDone, device_info, flash
from bluemule.particle_ctrl.plan import InputFile, make_plan
from bluemule.particle_ctrl.targets import open_control_target
from bluemule.transport.monikers import EmulatorTarget
from tests.particle_ctrl.test_plan import boron_system_part

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
SECRET = "PX7M3K9QW2LRT4N"  # noqa: S105 - the test device's mobile secret
ASSETS = {"font.bin": bytes(range(256)) * 40, "lut.csv": b"0,1,2,3\n" * 500}


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BLUEMULE_MOBILE_SECRET"}
    env["BLUEMULE_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [BLUEMULE, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_stock_boron_gets_device_os_then_an_app_with_assets(tmp_path: Path) -> None:
    state = tmp_path / "boron"
    device = EmulatedDevice.create(state, "boron", stock=True, device_os=6200)
    update_settings(state, mobile_secret=SECRET)
    assert not device.has_bluemule_library
    app = make_app("boron", device_os=6300, library=False, assets=ASSETS, tag="v2")
    system = boron_system_part(6300)
    files = [
        InputFile("app-bundle.zip", write_bundle("app.bin", app, sorted(ASSETS.items()))),
        InputFile("boron-system-part1@6.3.0.bin", system),
    ]
    events: list[FlashEvent] = []

    async def go() -> FlashResult:
        async with open_control_target(EmulatorTarget(state), SECRET.encode()) as where:
            assert where.platform_id == 13
            async with where.opener() as ch:
                before = await device_info(ch)
            assert before.device_os == "6.2.0"
            plan = make_plan(files, before.state(where.platform_id))
            assert [s.kind for s in plan.steps] == ["system_part", "user_part", "asset", "asset"]
            return await flash(plan, where.opener, events.append, come_back_timeout=30)

    result = asyncio.run(go())
    assert [s.outcome for s in result.steps] == ["installed", "installed", "stored", "stored"]
    assert result.resets == 4
    assert result.device is not None and result.device.device_os == "6.3.0"
    assert [e.result.name for e in events if isinstance(e, StepDone)][:2] == [
        "boron-system-part1@6.3.0.bin",
        "app-bundle.zip:app.bin",
    ]

    shown = run_cli(tmp_path, "emulator", "show", str(state), "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["device_os_version"] == 6300
    assert doc["mode"] == "normal"  # it boots into the app: Device OS and assets present
    assert doc["app"]["sha256"] == parse_module(app).suffix.sha256.hex()
    installed = {a["name"]: a["sha256"] for a in doc["assets"]}
    assert installed == {d.name: d.hash.hex() for d in parse_module(app).asset_dependencies}
    assert SECRET not in shown.stdout
    reopened = EmulatedDevice.open(state)
    running = reopened.running_app
    assert running is not None and running.data == app
    assert load_settings(state).mobile_secret == SECRET  # unchanged by the update


def test_a_wrong_secret_through_the_cli_is_a_named_error(tmp_path: Path) -> None:
    state = tmp_path / "boron"
    EmulatedDevice.create(state, "boron", stock=True)
    update_settings(state, mobile_secret=SECRET)
    wrong = "PX7M3K9QW2LRT4X"
    app = tmp_path / "app.bin"
    app.write_bytes(make_app("boron", library=False, tag="never"))
    before = EmulatedDevice.open(state).show()
    for command in (["info"], ["flash", str(app)]):
        result = run_cli(
            tmp_path,
            "particle",
            *command[:1],
            f"emu:{state}",
            *command[1:],
            "--mobile-secret",
            wrong,
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"bluemule: error: emu:{state}: wrong mobile secret (the device's key "
            "confirmation does not match)"
        ]
        assert "Traceback" not in result.stderr
        assert wrong not in result.stdout + result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert EmulatedDevice.open(state).show() == before
