"""Creating, reopening and inspecting emulated devices; key-value store; power (device.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bluemule.emulator import (
    LIBRARY_MARKER,
    EmulatedDevice,
    PoweredOff,
    PowerLoss,
    StateDirError,
    UsageError,
    make_app,
)
from bluemule.image import ModuleFunction, compress_module, create_asset_module, parse_module
from tests.emulator.helpers import DEVICE_ID, PLATFORMS, new_device
from tests.image.fixtures import binary

SHOW_KEYS = {"device_id", "platform_id", "device_os_version", "mode", "app", "assets"}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_create_generates_a_running_app_with_the_library(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, assets={"cat.txt": b"meow" * 100})
    shown = device.show()
    assert set(shown) == SHOW_KEYS
    assert shown["device_id"] == DEVICE_ID
    assert shown["platform_id"] == device.platform.id == {"boron": 13, "msom": 35}[platform]
    assert shown["device_os_version"] == device.device_os_version == 6200
    assert shown["mode"] == device.mode == "normal"
    app = device.running_app
    assert app is not None
    assert app.crc_ok
    assert app.prefix.function == ModuleFunction.USER_PART
    assert app.prefix.dependency.version == 6200
    assert app.prefix.start_address == device.layout.default_user_part.start or (
        app.prefix.end_address + 4 == device.layout.default_user_part.end
    )
    assert shown["app"] == {
        "module_version": 6,
        "product_id": device.platform_id,
        "product_version": 1,
        "sha256": app.suffix.sha256.hex(),
    }
    assert [d.name for d in app.asset_dependencies] == ["cat.txt"]
    raw_hash = hashlib.sha256(b"meow" * 100).hexdigest()
    assert shown["assets"] == [{"name": "cat.txt", "sha256": raw_hash}]
    stored = device.installed_assets["cat.txt"]
    assert stored.sha256.hex() == raw_hash
    assert stored.module.is_compressed
    assert device.has_bluemule_library
    assert LIBRARY_MARKER in app.data
    assert json.loads(json.dumps(shown)) == shown


@pytest.mark.parametrize("platform", PLATFORMS)
def test_stock_app_has_no_library(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, stock=True)
    assert device.mode == "normal"
    assert not device.has_bluemule_library


def test_given_app_is_installed_at_its_own_address(tmp_path: Path) -> None:
    blank = binary("boron_blank.bin")  # legacy 128 KB slot at 0xD4000, needs 1.2.13
    device = new_device(tmp_path, "boron", app=blank)
    assert device.mode == "normal"
    assert device.installed_app is not None
    assert device.installed_app.data == blank
    assert not device.has_bluemule_library
    assert device.show()["app"]["product_id"] == 0xFFFF


def test_real_msom_tinker_needs_a_newer_device_os(tmp_path: Path) -> None:
    tinker = binary("tinker-6.3.4-msom.bin")  # depends on system part >= 6305
    old = EmulatedDevice.create(tmp_path / "old", "msom", app=tinker, device_os=6200)
    assert old.mode == "safe"
    assert old.running_app is None
    assert old.installed_app is not None
    assert old.show()["app"] is not None
    new = EmulatedDevice.create(tmp_path / "new", "muon", app=tinker, device_os=6305)
    assert new.mode == "normal"
    assert new.platform.name == "msom"


def test_reopen_sees_the_same_device(tmp_path: Path) -> None:
    for platform in PLATFORMS:
        device = new_device(tmp_path, platform, assets={"a": b"1", "b": b"2"})
        device.kv_put("session", b"\x01\x02")
        again = EmulatedDevice.open(tmp_path / platform)
        assert again.show() == device.show()
        assert again.kv_get("session") == b"\x01\x02"
        assert again.installed_app is not None
        assert device.installed_app is not None
        assert again.installed_app.data == device.installed_app.data


def test_an_open_update_survives_reopening_but_not_a_reset(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    image = make_app("boron", tag="v2")
    device.prepare_update(len(image))
    device.save_chunk(0, image[:1000])
    again = EmulatedDevice.open(tmp_path / "boron")
    assert again.update_in_progress
    again.save_chunk(1000, image[1000:])
    assert again.finish_update().ok
    assert device.reset_pending  # the first object sees what the second did
    device.reset()
    assert not again.reset_pending
    assert again.show()["app"]["sha256"] == parse_module(image).suffix.sha256.hex()


def test_create_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "a", "argon")
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "b", "boron", device_id="xyz")
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "c", "boron", device_os=70000)
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "d", "boron", app=make_app("msom"))
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "e", "boron", app=b"not a module" * 10)
    with pytest.raises(UsageError):
        EmulatedDevice.create(tmp_path / "f", "boron", assets={"a/b": b"x"})
    big = {f"blob{i}": hashlib.shake_256(bytes([i])).digest(400_000) for i in range(3)}
    with pytest.raises(UsageError, match="storage"):
        EmulatedDevice.create(tmp_path / "g", "boron", assets=big)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "x").write_text("something")
    with pytest.raises(StateDirError):
        EmulatedDevice.create(tmp_path / "h", "boron")
    with pytest.raises(StateDirError):
        EmulatedDevice.open(tmp_path / "h")
    with pytest.raises(StateDirError):
        EmulatedDevice.open(tmp_path / "missing")


def test_device_id_is_normalised_or_random(tmp_path: Path) -> None:
    upper = EmulatedDevice.create(tmp_path / "a", "boron", device_id=DEVICE_ID.upper())
    assert upper.device_id == DEVICE_ID
    one = EmulatedDevice.create(tmp_path / "b", "boron")
    two = EmulatedDevice.create(tmp_path / "c", "boron")
    assert len(one.device_id) == 24
    assert one.device_id != two.device_id


def test_compressed_app_is_installed_inflated(tmp_path: Path) -> None:
    app = make_app("msom", tag="z")
    device = new_device(tmp_path, "msom", app=compress_module(parse_module(app)))
    assert device.installed_app is not None
    assert device.installed_app.data == app


@pytest.mark.parametrize("platform", ["bsom", "p2"])
def test_sibling_platforms_work_too(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, assets={"x": b"y"})
    assert device.mode == "normal"
    assert device.platform_id == {"bsom": 23, "p2": 32}[platform]


def test_key_value_store(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    assert device.kv_get("state") is None
    ops = device.flash.ops
    device.kv_put("state", b"one")
    assert device.flash.ops == ops + 1
    device.kv_put("state", b"two")
    assert device.kv_get("state") == b"two"
    device.kv_put("state", None)
    assert device.kv_get("state") is None
    assert device.flash.ops == ops + 3
    device.kv_put("state", None)  # nothing to delete: no operation
    assert device.flash.ops == ops + 3
    for bad in ("", ".hidden", "a/b", "x" * 65, "sp ace"):
        with pytest.raises(UsageError):
            device.kv_put(bad, b"v")


def test_kv_put_is_atomic_under_power_loss(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    device.kv_put("k", b"old")
    device.flash.power_loss_at(device.flash.ops)
    with pytest.raises(PowerLoss):
        device.kv_put("k", b"new")
    with pytest.raises(PoweredOff):
        device.kv_get("k")
    device.power_on()
    assert device.kv_get("k") == b"old"


def test_power_states(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    with pytest.raises(UsageError):
        device.power_on()
    device.power_off()
    assert not device.powered
    for call in (device.show, device.reset, lambda: device.prepare_update(10)):
        with pytest.raises(PoweredOff):
            call()
    again = EmulatedDevice.open(tmp_path / "boron")
    assert not again.powered
    again.power_on()
    assert device.powered
    assert device.mode == "normal"


def test_asset_module_given_as_raw_bytes_is_wrapped(tmp_path: Path) -> None:
    raw = b"\x00\x01" * 50
    device = new_device(tmp_path, "boron", assets={"data.bin": raw})
    stored = device.installed_assets["data.bin"]
    assert stored.module.data == create_asset_module(raw, "data.bin")


def test_another_process_continues_the_same_device(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    new = make_app("boron", tag="v2", product_version=7)
    device.prepare_update(len(new))
    device.save_chunk(0, new)
    assert device.finish_update().ok
    script = (
        "import json, sys\n"
        "from bluemule.emulator import EmulatedDevice\n"
        "d = EmulatedDevice.open(sys.argv[1])\n"
        "assert d.reset_pending and len(d.pending_slots()) == 1\n"
        "d.reset()\n"
        "print(json.dumps(d.show()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(device.state_dir)],
        capture_output=True,
        check=True,
        text=True,
    )
    shown = json.loads(out.stdout)
    assert shown["app"]["product_version"] == 7
    assert device.show() == shown
