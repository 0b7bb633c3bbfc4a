"""``bluemule emulator publish`` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice
from bluemule.protocol.constants import EVENT_QUEUE_CAPACITY
from tests.cli.test_flash_cli import run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_emulator_publish(home: Path, tmp_path: Path) -> None:
    emu = tmp_path / "boron"
    assert run(home, "emulator", "create", emu).returncode == 0
    queued = run(home, "emulator", "publish", emu, "temp/out", "21.5 °C", "--json",
                 "--at", "2026-11-24T07:00:00+00:00")  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    event = json.loads(queued.stdout)
    device = EmulatedDevice.open(emu)
    assert event == {
        "sequence": 1,
        "event_id": f"{device.device_id}:1",
        "captured_at": 1795503600,
        "queued": 1,
    }
    plain = run(home, "emulator", "publish", emu, "door", "", "--no-clock")
    assert plain.returncode == 0 and f"{device.device_id}:2" in plain.stdout
    shown = device.queued_events()["events"]
    assert [(e["name"], e["data"], e["captured_at"]) for e in shown] == [
        ("temp/out", "21.5 °C", 1795503600),
        ("door", "", None),
    ]
    for bad in (["spark/x", "1"], ["ok", "x" * 1025], ["has space", "1"]):
        refused = run(home, "emulator", "publish", emu, *bad)
        assert refused.returncode == 2
        assert refused.stderr.startswith("bluemule: error:") and "Traceback" not in refused.stderr
    for i in range(EVENT_QUEUE_CAPACITY - 2):
        device.publish("fill", str(i))
    full = run(home, "emulator", "publish", emu, "one", "more")
    assert full.returncode == 1
    assert "full" in full.stderr and full.stderr.count("\n") == 1
    assert device.queued_events()["dropped"] == 1
    assert run(home, "emulator", "publish", tmp_path / "none", "a", "b").returncode == 2
