"""Power loss at every flash operation: the device always comes back with a complete
app, old or new, never half of one and never in safe mode (§3.3: the bootloader clears a
slot only after the copy, so an interrupted copy is redone at the next boot)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, PowerLoss, make_app
from bluemule.image import create_asset_module
from tests.emulator.helpers import PLATFORMS, new_device, send


def clone(device: EmulatedDevice, where: Path) -> EmulatedDevice:
    shutil.copytree(device.state_dir, where)
    return EmulatedDevice.open(where)


def app_of(device: EmulatedDevice) -> bytes:
    app = device.installed_app
    assert app is not None
    return app.data


def update(device: EmulatedDevice, image: bytes) -> None:
    """prepare → chunks → finish → reset."""
    result = send(device, image)
    assert result.ok, result
    device.reset()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_power_loss_at_every_operation_of_an_app_update(tmp_path: Path, platform: str) -> None:
    template = new_device(tmp_path, platform, app=make_app(platform, body_size=9000))
    old = app_of(template)
    new = make_app(platform, tag="v2", product_version=2, body_size=6000)

    dry = clone(template, tmp_path / "dry")
    update(dry, new)
    total = dry.flash.ops
    assert app_of(dry) == new
    assert total >= 20  # erases, 12 chunks, the slot, the copy, the slot again

    seen: Counter[str] = Counter()
    for k in range(total):
        device = clone(template, tmp_path / f"run{k}")
        device.flash.power_loss_at(k)
        with pytest.raises(PowerLoss) as info:
            update(device, new)
        assert info.value.op == k
        assert not device.powered
        device.power_on()
        assert device.mode == "normal", (k, info.value.description)
        running = app_of(device)
        assert running in (old, new), (k, info.value.description)
        assert device.pending_slots() == []
        seen["new" if running == new else "old"] += 1
        if running == old:
            update(device, new)  # starting over always works
            assert app_of(device) == new
        shutil.rmtree(device.state_dir)
    assert seen["old"] > 0
    assert seen["new"] > 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_power_loss_again_while_the_bootloader_redoes_the_copy(
    tmp_path: Path, platform: str
) -> None:
    device = new_device(tmp_path, platform)
    new = make_app(platform, tag="v2", body_size=6000)
    assert send(device, new).ok
    first = device.flash.ops + 1  # the slot stays; the copy is interrupted after one erase
    device.flash.power_loss_at(first)
    with pytest.raises(PowerLoss):
        device.reset()
    for attempt in range(3):  # and interrupted again while it is redone, each time later
        device.flash.power_loss_at(device.flash.ops + attempt + 1)
        with pytest.raises(PowerLoss):
            device.power_on()
    device.power_on()
    assert device.mode == "normal"
    assert app_of(device) == new


@pytest.mark.parametrize("platform", PLATFORMS)
def test_power_loss_at_every_operation_of_an_asset_store(tmp_path: Path, platform: str) -> None:
    app = make_app(platform, assets={"keep": b"keep"})
    template = new_device(
        tmp_path, platform, app=app, assets={"keep": b"keep", "junk1": b"1", "junk2": b"2"}
    )
    module = create_asset_module(b"fresh" * 2000, "fresh")
    dry = clone(template, tmp_path / "dry")
    assert send(dry, module).ok
    total = dry.flash.ops
    assert sorted(dry.installed_assets) == ["fresh", "keep"]
    for k in range(total):
        device = clone(template, tmp_path / f"run{k}")
        device.flash.power_loss_at(k)
        with pytest.raises(PowerLoss):
            send(device, module)
        device.power_on()
        assert device.mode == "normal"
        present = set(device.installed_assets)
        assert "keep" in present
        assert present <= {"keep", "junk1", "junk2", "fresh"}
        files = list((device.state_dir / "assets").iterdir())
        assert len(files) == len(present)  # nothing invalid is left behind
        shutil.rmtree(device.state_dir)
