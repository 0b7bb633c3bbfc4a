"""Power loss at every flash operation of a small update, through the whole protocol.

The device role and the emulator's Device OS run together (sans-IO pair, no radio, so
the loop is fast); each run is cut at flash operation i, the device is powered on
again, and it must run the complete old or the complete new app, never in safe mode,
with every asset its app requires. Then the same update is retried and must succeed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bluemule.emulator import EmulatedDevice, PowerLoss, make_app
from bluemule.emulator.services import EmulatorServices
from bluemule.image import parse_module
from bluemule.protocol.client_session import Outcome, UpdateSession
from bluemule.protocol.release import Release, build_release, parse_device_id
from tests.e2e.harness import DEVICE_IDS, KEY, new_device
from tests.protocol.pair import run_pair


class Services(EmulatorServices):
    def reset(self) -> None:
        self.device.reset()


def update(device: EmulatedDevice, release: Release) -> Outcome:
    result, _ = run_pair(UpdateSession(release), Services(device))
    return result.outcome


def check_consistent(device: EmulatedDevice, old_sha: str, new_sha: str) -> str:
    shown = device.show()
    assert device.mode == "normal", shown
    sha = shown["app"]["sha256"]
    assert sha in {old_sha, new_sha}, shown
    have = {a["name"]: a["sha256"] for a in shown["assets"]}
    app = device.running_app
    assert app is not None
    for dep in app.asset_dependencies:
        assert have.get(dep.name) == dep.hash.hex(), (dep.name, shown)
    return "new" if sha == new_sha else "old"


def test_power_loss_at_every_flash_operation(tmp_path: Path) -> None:
    old_assets = {"old.txt": b"old asset " * 30}
    template = tmp_path / "template"
    device = new_device(template, "boron", assets=old_assets)
    old_sha = device.show()["app"]["sha256"]
    new_assets = {"new.txt": b"new asset " * 40, "more.bin": bytes(range(256)) * 8}
    app = make_app("boron", tag="v2", assets=new_assets, body_size=6000)
    new_sha = parse_module(app).suffix.sha256.hex()
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS["boron"]),
        app=app,
        assets=sorted(new_assets.items()),
        release_counter=1,
    )

    probe = tmp_path / "probe"
    shutil.copytree(template, probe)
    clean = EmulatedDevice.open(probe)
    start = clean.flash.ops
    assert update(clean, release) == Outcome.APPLIED
    total = clean.flash.ops - start
    assert total > 20  # erases, chunks, asset stores, slot, bootloader copy, state writes

    seen = {"old": 0, "new": 0}
    for i in range(total):
        run_dir = tmp_path / f"cut{i}"
        shutil.copytree(template, run_dir)
        dev = EmulatedDevice.open(run_dir)
        dev.flash.power_loss_at(dev.flash.ops + i)
        try:
            update(dev, release)
        except PowerLoss:
            pass
        else:
            raise AssertionError(f"operation {i} of {total} was never reached")
        dev.power_on()
        seen[check_consistent(dev, old_sha, new_sha)] += 1
        if dev.show()["app"]["sha256"] == old_sha:
            assert update(dev, release) == Outcome.APPLIED, f"retry after cut {i}"
            assert check_consistent(dev, old_sha, new_sha) == "new"
        shutil.rmtree(run_dir)
    assert seen["old"] > 0
    assert seen["new"] > 0


def test_slow_flash_still_completes(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    slept: list[float] = []
    device.flash.slow(0.05, sleep=slept.append)  # every flash operation takes 50 ms
    app = make_app("boron", tag="slow")
    release = build_release(
        key=KEY, device_id=parse_device_id(DEVICE_IDS["boron"]), app=app, release_counter=1
    )
    assert update(device, release) == Outcome.APPLIED
    assert len(slept) > 10
    assert all(s == 0.05 for s in slept)
    assert device.show()["app"]["sha256"] == parse_module(app).suffix.sha256.hex()
