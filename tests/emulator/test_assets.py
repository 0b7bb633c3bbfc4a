"""Asset OTA on the device: immediate store, clean-up rule, capacity, safe mode, Boron
overlap (deviceos.py store_asset, storage.py, device.py boot)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, SystemErrorCode, make_app
from bluemule.image import create_asset_module
from tests.emulator.helpers import PLATFORMS, new_device, send, transfer


def asset(name: str, content: bytes) -> bytes:
    return create_asset_module(content, name)


def names(device: EmulatedDevice) -> list[str]:
    return sorted(device.installed_assets)


def noise(size: int, seed: int = 1) -> bytes:
    """Incompressible content, so the asset module is as large as the asset."""
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_asset_is_stored_at_finish_without_a_slot(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, assets={"keep": b"k"})
    result = send(device, asset("keep", b"k"))  # same name and content: replaced in place
    assert result.ok
    result = send(device, asset("extra", b"e" * 500))
    assert result.ok, result
    assert [(m.outcome, m.asset_name, m.slot) for m in result.modules] == [
        ("stored", "extra", None)
    ]
    assert device.pending_slots() == []
    assert names(device) == ["extra", "keep"]
    assert device.installed_assets["extra"].sha256 == hashlib.sha256(b"e" * 500).digest()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_first_store_of_a_boot_deletes_assets_the_running_app_does_not_need(
    tmp_path: Path, platform: str
) -> None:
    app = make_app(platform, assets={"keep": b"k"})
    device = new_device(tmp_path, platform, app=app, assets={"keep": b"k", "junk": b"j"})
    assert device.mode == "normal"
    assert names(device) == ["junk", "keep"]
    assert send(device, asset("new1", b"1")).ok
    assert names(device) == ["keep", "new1"]  # junk went, the required one stayed
    assert send(device, asset("new2", b"2")).ok
    assert names(device) == ["keep", "new1", "new2"]  # later stores delete nothing
    device.reset()
    assert names(device) == ["keep", "new1", "new2"]  # boot itself deletes nothing valid
    assert send(device, asset("new3", b"3")).ok
    assert names(device) == ["keep", "new3"]  # §4.2 (c): a reboot in between loses them


@pytest.mark.parametrize("platform", PLATFORMS)
def test_assets_then_app_in_one_boot(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, app=make_app(platform), assets={"old": b"o"})
    contents = {"a.bin": b"A" * 3000, "b.bin": noise(5000)}
    for name, content in contents.items():
        assert send(device, asset(name, content)).ok
    new = make_app(platform, tag="v2", assets=contents)
    assert send(device, new).ok
    device.reset()
    assert device.mode == "normal"
    assert names(device) == ["a.bin", "b.bin"]
    assert [d.name for d in device.required_assets] == ["a.bin", "b.bin"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_app_first_boots_safe_until_its_assets_arrive(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform)
    content = b"sprite" * 200
    assert send(device, make_app(platform, tag="v2", assets={"sprite": content})).ok
    device.reset()
    assert device.mode == "safe"
    assert device.installed_app is not None
    assert device.running_app is None
    assert send(device, asset("sprite", content)).ok
    assert device.mode == "safe"  # decided at boot
    device.reset()
    assert device.mode == "normal"


def test_same_name_different_content_is_missing(tmp_path: Path) -> None:
    app = make_app("boron", assets={"cfg": b"v2"})
    device = new_device(tmp_path, "boron", app=app, assets={"cfg": b"v1"})
    assert device.mode == "safe"
    assert send(device, asset("cfg", b"v2")).ok
    device.reset()
    assert device.mode == "normal"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_asset_that_does_not_fit_is_refused(tmp_path: Path, platform: str) -> None:
    big = noise(900_000)
    device = new_device(tmp_path, platform, assets={"big": big})
    storage = device.asset_storage
    assert storage.capacity == 4096 * 278
    assert storage.used() == storage.storage_size(len(device.installed_assets["big"].module.data))
    result = send(device, asset("second", noise(300_000, seed=2)))
    assert result.error == SystemErrorCode.FILESYSTEM_NOSPC
    assert names(device) == ["big"]
    assert send(device, asset("small", noise(100_000, seed=3))).ok
    assert names(device) == ["big", "small"]


def test_invalid_asset_module_is_refused(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    module = bytearray(asset("x", b"content"))
    module[30] ^= 0xFF
    # the CRC-32 is checked when the asset is stored, not at validation (fetch_module
    # returns at once for assets)
    transfer(device, bytes(module))
    assert device.finish_update(validate_only=True).ok
    result = device.finish_update()
    assert result.error == SystemErrorCode.BAD_DATA
    assert names(device) == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_boot_deletes_invalid_asset_files(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, assets={"a": b"alpha", "b": b"beta"})
    files = sorted((device.state_dir / "assets").iterdir())
    assert len(files) == 2
    damaged = bytearray(files[0].read_bytes())
    damaged[-1] ^= 0xFF
    files[0].write_bytes(bytes(damaged))
    assert len(device.installed_assets) == 1
    device.reset()
    assert len(list((device.state_dir / "assets").iterdir())) == 1
    assert device.mode == "safe"  # the app required both


def test_boron_ota_past_the_safe_length_clobbers_the_asset_storage(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", assets={"a": b"alpha"})
    device.prepare_update(606_208)  # up to the asset storage: harmless
    device.cancel_update()
    device.reset()
    assert names(device) == ["a"]
    assert device.mode == "normal"
    device.prepare_update(606_208 + 1)  # one more sector: the asset storage's first
    assert device.asset_storage.corrupt
    assert names(device) == []
    device.cancel_update()
    device.reset()
    assert not device.asset_storage.corrupt
    assert list((device.state_dir / "assets").iterdir()) == []
    assert device.mode == "safe"


def test_boron_chunk_written_past_the_safe_length_clobbers_too(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", assets={"a": b"alpha"})
    device.prepare_update(1000)
    device.save_chunk(700_000, b"\x00" * 16)  # inside the OTA region, beyond the prepare
    assert device.asset_storage.corrupt


def test_big_asset_overwrites_itself_on_boron_but_not_on_msom(tmp_path: Path) -> None:
    content = noise(650_000)
    module = asset("huge", content)
    assert len(module) > 606_208
    msom = new_device(tmp_path, "msom")
    assert send(msom, module).ok
    assert names(msom) == ["huge"]
    boron = new_device(tmp_path, "boron", app=make_app("boron"), assets={"a": b"alpha"})
    result = send(boron, module)
    assert result.error == SystemErrorCode.FILESYSTEM_CORRUPT  # "a" is unused: cannot delete
    boron.reset()
    assert names(boron) == []
    result = send(boron, module)  # nothing to clear now: storage formatted, file written
    assert result.ok
    assert names(boron) == []  # …but its source was overwritten while it was copied
    boron.reset()
    assert list((boron.state_dir / "assets").iterdir()) == []


def test_assets_persist_across_open(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    assert send(device, asset("p", b"persist")).ok
    again = EmulatedDevice.open(tmp_path / "msom")
    assert again.show()["assets"] == [
        {"name": "p", "sha256": hashlib.sha256(b"persist").hexdigest()}
    ]
    # the first store of this boot already happened: the reopened device remembers
    assert send(again, asset("q", b"q")).ok
    assert names(again) == ["p", "q"]
