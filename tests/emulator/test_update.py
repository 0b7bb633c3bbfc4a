"""The Device OS update API and the bootloader apply (deviceos.py, bootloader.py, dct.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bluemule.emulator import (
    DeviceOsError,
    EmulatedDevice,
    SlotFlag,
    SystemErrorCode,
    make_app,
)
from bluemule.image import (
    Dependency,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    build_module,
    combine_modules,
    compress_module,
    create_asset_module,
    parse_module,
)
from tests.emulator.helpers import PLATFORMS, new_device, send, transfer

Code = SystemErrorCode


def installed(device: EmulatedDevice) -> bytes:
    app = device.installed_app
    assert app is not None
    return app.data


@pytest.mark.parametrize("platform", PLATFORMS)
def test_app_update_applies_at_reset(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform)
    old = installed(device)
    new = make_app(platform, tag="v2", product_version=2)
    session = device.prepare_update(len(new))
    assert session.size == len(new)
    assert session.file_address == device.layout.ota.start
    assert session.chunk_size == 512
    assert device.update_in_progress
    for offset in range(0, len(new), 512):
        device.save_chunk(offset, new[offset : offset + 512])
    result = device.finish_update()
    assert result.ok, result
    assert result.reset_pending
    assert [(m.function, m.outcome, m.slot) for m in result.modules] == [
        (ModuleFunction.USER_PART, "staged", 1)
    ]
    assert not device.update_in_progress
    assert device.reset_pending
    [(index, slot)] = device.pending_slots()
    assert index == 1
    assert slot.length == len(new)
    assert slot.destination_address == parse_module(new).prefix.start_address
    assert slot.source_address == device.layout.ota.start
    assert slot.flags & SlotFlag.VERIFY_CRC
    assert installed(device) == old  # nothing changes before the reset
    device.reset()
    assert installed(device) == new
    assert device.mode == "normal"
    assert device.show()["app"]["product_version"] == 2
    assert device.pending_slots() == []
    assert not device.reset_pending


@pytest.mark.parametrize("platform", PLATFORMS)
def test_smaller_app_replaces_a_bigger_one_completely(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform, app=make_app(platform, body_size=20_000))
    new = make_app(platform, tag="small", body_size=500)
    assert send(device, new).ok
    device.reset()
    assert installed(device) == new


def test_validate_only_keeps_the_update_open(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    new = make_app("boron", tag="v2")
    transfer(device, new)
    check = device.finish_update(validate_only=True)
    assert check.ok
    assert check.validate_only
    assert not check.reset_pending
    assert [m.outcome for m in check.modules] == ["validated"]
    assert device.update_in_progress
    assert device.pending_slots() == []
    assert device.finish_update().ok
    assert len(device.pending_slots()) == 1


def test_chunks_may_arrive_out_of_order(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    new = make_app("msom", tag="v2", body_size=5000)
    device.prepare_update(len(new))
    offsets = list(range(0, len(new), 1024))
    for offset in reversed(offsets):
        device.save_chunk(offset, new[offset : offset + 1024])
    assert device.finish_update().ok
    device.reset()
    assert installed(device) == new


def test_prepare_refuses_bad_sizes_and_a_second_update(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    for size in (0, -1, device.layout.ota.length + 1):
        with pytest.raises(DeviceOsError) as info:
            device.prepare_update(size)
        assert info.value.code == Code.OTA_INVALID_SIZE
        assert info.value.code.system_name == "SYSTEM_ERROR_OTA_INVALID_SIZE"
        assert int(info.value.code) == -1351
    device.prepare_update(device.layout.ota.length)
    with pytest.raises(DeviceOsError) as info:
        device.prepare_update(100)
    assert info.value.code == Code.INVALID_STATE
    device.cancel_update()
    assert not device.update_in_progress
    device.cancel_update()  # nothing open: no error


def test_prepare_erases_what_it_announces(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    ops = device.flash.ops
    device.prepare_update(10_000)  # 3 sectors, no staged slot to clear
    assert device.flash.ops == ops + 3


def test_calls_without_an_update(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    with pytest.raises(DeviceOsError) as info:
        device.save_chunk(0, b"x")
    assert info.value.code == Code.INVALID_STATE
    with pytest.raises(DeviceOsError) as info:
        device.finish_update()
    assert info.value.code == Code.INVALID_STATE


def test_chunk_outside_the_ota_region_fails_and_ends_the_update(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    device.prepare_update(1000)
    device.save_chunk(2000, b"past the prepared size but inside the region is allowed")
    with pytest.raises(DeviceOsError) as info:
        device.save_chunk(device.layout.ota.length - 2, b"abcd")
    assert info.value.code == Code.FLASH_IO
    assert not device.update_in_progress


def test_new_prepare_discards_a_staged_module(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    old = installed(device)
    assert send(device, make_app("boron", tag="v2")).ok
    assert len(device.pending_slots()) == 1
    device.prepare_update(100)
    assert device.pending_slots() == []
    device.cancel_update()
    device.reset()
    assert installed(device) == old


@pytest.mark.parametrize("platform", PLATFORMS)
def test_corrupt_module_is_refused_at_finish(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform)
    old = installed(device)
    bad = bytearray(make_app(platform, tag="v2"))
    bad[len(bad) // 2] ^= 0x01
    result = send(device, bytes(bad))
    assert result.error == Code.OTA_INTEGRITY_CHECK_FAILED
    assert result.reset_pending  # the Spark_* path resets even then (§3.4)
    with pytest.raises(DeviceOsError):
        result.raise_for_error()
    assert device.pending_slots() == []
    assert not device.update_in_progress
    device.reset()
    assert installed(device) == old


@pytest.mark.parametrize("platform", PLATFORMS)
def test_bootloader_leaves_the_destination_untouched_when_the_source_is_bad(
    tmp_path: Path, platform: str
) -> None:
    device = new_device(tmp_path, platform)
    old = installed(device)
    new = make_app(platform, tag="v2")
    assert send(device, new).ok
    device.flash.program("ota", len(new) // 2, b"\x00")  # the OTA copy rots after staging
    ops = device.flash.ops
    device.reset()
    assert device.flash.ops == ops + 1  # only the slot is cleared
    assert installed(device) == old
    assert device.mode == "normal"
    assert device.pending_slots() == []


def test_wrong_platform_is_refused(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    result = send(device, make_app("bsom"))  # same bounds, platform 23
    assert result.error == Code.OTA_INVALID_PLATFORM


def test_something_that_is_not_a_module_is_not_found(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    result = send(device, b"\x42" * 3000)
    assert result.error == Code.OTA_MODULE_NOT_FOUND
    # an app built for the other MCU family ends outside every bounds of this one
    result = send(device, make_app("boron"))
    assert result.error == Code.OTA_MODULE_NOT_FOUND


NO_DEPS = (Dependency(), Dependency())


def _system_part(
    platform_id: int,
    version: int,
    *,
    flags: int = 0,
    deps: tuple[Dependency, Dependency] = NO_DEPS,
) -> bytes:
    head = struct.pack("<II", 0x2003F000, 0x30291) + bytes(0x200 - 8)  # nRF vector table
    prefix = ModulePrefix(
        start_address=0x30000,
        end_address=0,
        function=ModuleFunction.SYSTEM_PART,
        index=1,
        platform_id=platform_id,
        module_version=version,
        flags=flags,
        dependency=deps[0],
        dependency2=deps[1],
    )
    return build_module(prefix=prefix, body=b"system" * 100, product=(0xFFFF, 0xFFFF), head=head)


def test_module_formats_device_os_refuses(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    dropped = _system_part(13, 6300, flags=ModuleFlag.DROP_MODULE_INFO)
    assert send(device, dropped).error == Code.OTA_INVALID_FORMAT
    bootloader = build_module(
        prefix=ModulePrefix(
            start_address=0xF4000,
            end_address=0,
            function=ModuleFunction.BOOTLOADER,
            platform_id=13,
            module_version=3000,
            flags=ModuleFlag.COMPRESSED,
        ),
        body=b"not really deflated",
    )
    assert send(device, bootloader).error == Code.OTA_UNSUPPORTED_MODULE


@pytest.mark.parametrize("platform", PLATFORMS)
def test_compressed_app_is_inflated_by_the_bootloader(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path, platform)
    new = make_app(platform, tag="v2", body_size=30_000)
    packed = compress_module(parse_module(new))
    assert len(packed) < len(new)
    result = send(device, packed)
    assert result.ok
    [(_, slot)] = device.pending_slots()
    assert slot.flags & SlotFlag.COMPRESSED
    assert slot.length == len(packed)
    device.reset()
    assert installed(device) == new
    assert device.mode == "normal"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_app_needing_newer_device_os_is_accepted_then_boots_safe(
    tmp_path: Path, platform: str
) -> None:
    device = new_device(tmp_path, platform, device_os=6200)
    result = send(device, make_app(platform, device_os=6300))
    assert result.ok  # user-part dependencies are optional at OTA time (§1.2)
    device.reset()
    assert device.mode == "safe"
    assert device.running_app is None
    assert not device.has_bluemule_library
    assert device.installed_app is not None


def test_system_part_update_is_checked_and_recorded(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", device_os=6200)
    assert send(device, make_app("boron", device_os=6300)).ok
    device.reset()
    assert device.mode == "safe"
    too_new = _system_part(
        13, 6300, deps=(Dependency(ModuleFunction.BOOTLOADER, 0, 9999), Dependency())
    )
    assert send(device, too_new).error == Code.OTA_DEPENDENCY_CHECK_FAILED
    system = _system_part(
        13,
        6300,
        deps=(
            Dependency(ModuleFunction.RADIO_STACK, 0, 182),
            Dependency(ModuleFunction.BOOTLOADER, 0, 9999),  # dep2 on the bootloader: optional
        ),
    )
    result = send(device, system)
    assert result.ok, result
    assert device.device_os_version == 6200
    device.reset()
    assert device.device_os_version == 6300
    assert device.mode == "normal"
    assert EmulatedDevice.open(device.state_dir).device_os_version == 6300


def test_combined_asset_and_app(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    content = b"level data" * 30
    app = make_app("msom", tag="v2", assets={"level.dat": content})
    combined = combine_modules([create_asset_module(content, "level.dat"), app])
    result = send(device, combined)
    assert result.ok, result
    assert [(m.outcome, m.asset_name) for m in result.modules] == [
        ("stored", "level.dat"),
        ("staged", None),
    ]
    assert result.modules[1].offset == result.modules[0].length
    assert "level.dat" in device.installed_assets
    device.reset()
    assert device.mode == "normal"
    assert installed(device) == app


def test_self_contradicting_prefixes_are_not_found(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    prefix = ModulePrefix(
        start_address=0xB4000,
        end_address=0xB4000 - 4,  # ends before it starts
        function=ModuleFunction.USER_PART,
        index=2,
        platform_id=13,
        flags=ModuleFlag.COMBINED,
    )
    result = send(device, prefix.pack() + bytes(100))
    assert result.error == Code.OTA_MODULE_NOT_FOUND


def test_module_longer_than_what_was_sent_fails_its_crc(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    new = make_app("msom", tag="v2")
    transfer(device, new[: len(new) // 2])
    result = device.finish_update(validate_only=True)
    assert result.error == Code.OTA_INTEGRITY_CHECK_FAILED
    device.cancel_update()


def test_three_combined_modules_only_two_are_applied(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    parts = [create_asset_module(bytes([i]) * 10, f"a{i}") for i in range(3)]
    result = send(device, combine_modules(parts, max_parts=3))
    assert result.ok, result
    assert [m.asset_name for m in result.modules] == ["a0", "a1"]  # MAX_COMBINED_MODULE_COUNT
    assert sorted(device.installed_assets) == ["a0", "a1"]
