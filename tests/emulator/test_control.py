"""Device OS's control-request handlers on the emulated device (no channel: the pure
handler, as the GATT and TCP transports drive it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, SystemErrorCode, UsageError, make_app
from bluemule.emulator.control import AfterReply, ControlResult, DeviceOsControl
from bluemule.emulator.setup import (
    MOBILE_SECRET_LENGTH,
    load_settings,
    update_settings,
)
from bluemule.image import compress_module, create_asset_module, parse_module
from bluemule.particle_ctrl import messages as m
from tests.emulator.helpers import PLATFORMS, new_device

T = m.RequestType
CAT = b"meow\n" * 40


def call(
    ctl: DeviceOsControl, request_type: int, message: m.Message | None = None
) -> ControlResult:
    return ctl.handle(request_type, b"" if message is None else message.encode())


def start(ctl: DeviceOsControl, size: int) -> ControlResult:
    return call(ctl, T.START_FIRMWARE_UPDATE, m.StartFirmwareUpdateRequest(size))


def upload(ctl: DeviceOsControl, image: bytes) -> ControlResult:
    """START, DATA × n in chunk-size pieces, FINISH; the FINISH result."""
    started = start(ctl, len(image))
    assert started.result == 0
    chunk = m.StartFirmwareUpdateReply.decode(started.payload).chunk_size
    assert chunk == 1024
    for offset in range(0, len(image), chunk):
        piece = m.FirmwareUpdateDataRequest(image[offset : offset + chunk])
        assert call(ctl, T.FIRMWARE_UPDATE_DATA, piece).result == 0
    return call(ctl, T.FINISH_FIRMWARE_UPDATE, m.FinishFirmwareUpdateRequest())


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
def test_full_update_stages_and_boots_the_new_app(
    tmp_path: Path, platform: str, compressed: bool
) -> None:
    device = new_device(tmp_path, platform, stock=True)
    ctl = DeviceOsControl(device)
    app = make_app(platform, library=False, product_version=2, tag="v2", body_size=5000)
    image = compress_module(parse_module(app)) if compressed else app
    finished = upload(ctl, image)
    assert finished == ControlResult(0, b"", AfterReply.APPLY_UPDATE)
    assert device.installed_app is not None
    assert device.installed_app.suffix.product_version == 1  # nothing applied before the reply
    assert ctl.after_reply(AfterReply.APPLY_UPDATE) is True
    assert ctl.resets == 1 and not ctl.transfer_open
    assert device.mode == "normal" and not device.reset_pending
    assert device.installed_app.suffix.product_version == 2
    assert device.installed_app.data == app


def test_validate_only_checks_and_cancels(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    app = make_app("boron", library=False, product_version=3)
    assert start(ctl, len(app)).result == 0
    assert call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(app)).result == 0
    result = call(ctl, T.FINISH_FIRMWARE_UPDATE, m.FinishFirmwareUpdateRequest(True))
    assert result == ControlResult(0)
    assert not ctl.transfer_open and not device.update_in_progress
    assert device.pending_slots() == []


def test_chunks_out_of_order_fail_validation_and_cancel(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    app = make_app("boron", library=False, product_version=4, body_size=3000)
    assert start(ctl, len(app)).result == 0
    for piece in (app[1024:2048], app[:1024], app[2048:]):  # the device writes in sequence
        assert call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(piece)).result == 0
    finished = call(ctl, T.FINISH_FIRMWARE_UPDATE, m.FinishFirmwareUpdateRequest())
    assert finished.result < 0 and finished.after_reply is None
    assert not device.update_in_progress and device.pending_slots() == []
    assert device.installed_app is not None and device.installed_app.suffix.product_version == 1


def test_oversized_and_empty_data_are_out_of_range_and_cancel(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    assert start(ctl, 10).result == 0
    big = call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b"x" * 11))
    assert big.result == SystemErrorCode.OUT_OF_RANGE
    assert not ctl.transfer_open and not device.update_in_progress
    after = call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b"x"))
    assert after.result == SystemErrorCode.INVALID_STATE
    assert start(ctl, 10).result == 0
    empty = call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b""))
    assert empty.result == SystemErrorCode.OUT_OF_RANGE and not ctl.transfer_open


def test_finish_with_bytes_left_is_invalid_state_and_cancels(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    assert start(ctl, 100).result == 0
    assert call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b"x" * 99)).result == 0
    finished = call(ctl, T.FINISH_FIRMWARE_UPDATE, m.FinishFirmwareUpdateRequest())
    assert finished.result == SystemErrorCode.INVALID_STATE
    assert not device.update_in_progress
    assert call(ctl, T.FINISH_FIRMWARE_UPDATE).result == SystemErrorCode.INVALID_STATE


def test_start_refuses_bad_sizes_formats_and_payloads(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    assert start(ctl, 0).result == SystemErrorCode.OTA_INVALID_SIZE
    assert start(ctl, device.layout.ota.length + 1).result == SystemErrorCode.OTA_INVALID_SIZE
    miniz = m.StartFirmwareUpdateRequest(100, m.FileFormat.MINIZ)
    assert call(ctl, T.START_FIRMWARE_UPDATE, miniz).result == SystemErrorCode.NOT_SUPPORTED
    assert ctl.handle(T.START_FIRMWARE_UPDATE, b"\x0a\x05ab").result == SystemErrorCode.BAD_DATA
    assert not device.update_in_progress


def test_start_cancels_the_current_transfer_and_cancel_request(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    assert start(ctl, 100).result == 0
    assert call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b"x" * 50)).result == 0
    assert start(ctl, 20).result == 0  # a new transfer from offset 0
    assert call(ctl, T.FIRMWARE_UPDATE_DATA, m.FirmwareUpdateDataRequest(b"x" * 21)).result < 0
    assert start(ctl, 20).result == 0
    assert call(ctl, T.CANCEL_FIRMWARE_UPDATE).result == 0
    assert not ctl.transfer_open and not device.update_in_progress


def test_asset_install_through_the_channel(tmp_path: Path) -> None:
    app = make_app("boron", library=False, assets={"cat.txt": CAT})
    device = EmulatedDevice.create(tmp_path / "d", "boron", app=app)
    ctl = DeviceOsControl(device)
    assert device.mode == "safe"  # the required asset is missing
    before = m.GetAssetInfoReply.decode(call(ctl, T.GET_ASSET_INFO).payload)
    assert before.available == ()
    assert [(a.name, a.hash) for a in before.required] == [
        (d.name, d.hash) for d in device.required_assets
    ]
    module = create_asset_module(CAT, "cat.txt")
    assert upload(ctl, module).after_reply is AfterReply.APPLY_UPDATE
    assert ctl.after_reply(AfterReply.APPLY_UPDATE)
    assert device.mode == "normal"
    after = m.GetAssetInfoReply.decode(call(ctl, T.GET_ASSET_INFO).payload)
    [cat] = after.available
    assert (cat.name, cat.hash) == (before.required[0].name, before.required[0].hash)
    assert cat.size == len(CAT)
    assert cat.storage_size == device.asset_storage.storage_size(len(module))


def test_resets_disabled_leaves_the_reset_pending_until_request_40(tmp_path: Path) -> None:
    app = make_app("boron", library=False, assets={"cat.txt": CAT}, product_version=5)
    device = new_device(tmp_path, "boron", stock=True)
    update_settings(device.state_dir, resets_disabled=True)
    ctl = DeviceOsControl(device)
    assert upload(ctl, create_asset_module(CAT, "cat.txt")).result == 0
    assert ctl.after_reply(AfterReply.APPLY_UPDATE) is False
    assert device.reset_pending and "cat.txt" in device.installed_assets
    assert upload(ctl, app).result == 0  # the next transfer starts at once
    assert ctl.after_reply(AfterReply.APPLY_UPDATE) is False
    assert call(ctl, T.RESET) == ControlResult(0, b"", AfterReply.RESET)
    assert ctl.after_reply(AfterReply.RESET)
    assert device.mode == "normal" and device.installed_app is not None
    assert device.installed_app.suffix.product_version == 5


def test_module_info_matches_flash(tmp_path: Path) -> None:
    app = make_app("msom", library=False, assets={"cat.txt": CAT})
    device = EmulatedDevice.create(tmp_path / "d", "msom", app=app, assets={"cat.txt": CAT})
    reply = m.GetModuleInfoReply.decode(call(DeviceOsControl(device), T.GET_MODULE_INFO).payload)
    assert reply.legacy_modules == ()
    by_type = {(x.type, x.index): x for x in reply.modules}
    installed = device.installed_app
    assert installed is not None
    p = installed.prefix
    user = by_type[(m.ModuleType.USER_PART_MODULE, p.index)]
    assert (user.version, user.hash, user.size) == (
        p.module_version,
        installed.suffix.sha256,
        len(installed.data),
    )
    assert user.failed_flags == 0
    assert user.dependencies == (m.ModuleDependency(4, 1, 6200),)
    assert [(a.name, a.hash) for a in user.asset_dependencies] == [
        (d.name, d.hash) for d in device.required_assets
    ]
    system = by_type[(m.ModuleType.SYSTEM_PART_MODULE, 1)]
    assert system.version == device.device_os_version == 6200
    assert {(r.function, r.index) for r in device.installed_modules} < set(by_type)


def test_module_info_before_5_6_uses_the_legacy_list(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True, device_os=5500)
    reply = m.GetModuleInfoReply.decode(call(DeviceOsControl(device), T.GET_MODULE_INFO).payload)
    assert reply.modules == ()
    types = {x.type for x in reply.legacy_modules}
    assert {m.LegacyModuleType.BOOTLOADER, m.LegacyModuleType.SYSTEM_PART} <= types
    assert m.LegacyModuleType.USER_PART in types
    assert all(x.validity == 0 for x in reply.legacy_modules)


def test_system_requests(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    ctl = DeviceOsControl(device)
    assert m.GetDeviceIdReply.decode(call(ctl, T.DEVICE_ID).payload).id == device.device_id
    version = m.GetSystemVersionReply.decode(call(ctl, T.SYSTEM_VERSION).payload)
    assert version.version == "6.2.0"
    caps = m.GetSystemCapabilitiesReply.decode(call(ctl, T.GET_SYSTEM_CAPABILITIES).payload)
    assert caps.flags == m.SystemCapabilityFlag.COMPRESSED_OTA
    mode = m.GetDeviceModeReply.decode
    assert mode(call(ctl, T.GET_DEVICE_MODE).payload).mode == m.DeviceMode.NORMAL_MODE
    assert call(ctl, T.START_LISTENING).result == 0
    assert mode(call(ctl, T.GET_DEVICE_MODE).payload).mode == m.DeviceMode.LISTENING_MODE
    assert call(ctl, T.STOP_LISTENING).result == 0 and not device.listening
    listen = m.SetStartupModeRequest(m.DeviceMode.LISTENING_MODE)
    assert call(ctl, T.SET_STARTUP_MODE, listen).result == 0
    assert load_settings(device.state_dir).startup_listen
    bad_mode = m.SetStartupModeRequest(7)
    assert call(ctl, T.SET_STARTUP_MODE, bad_mode).result == SystemErrorCode.INVALID_ARGUMENT
    assert ctl.handle(999, b"").result == SystemErrorCode.NOT_SUPPORTED
    assert ctl.handle(T.APP_CUSTOM, b"hi").result == SystemErrorCode.NOT_SUPPORTED
    assert ctl.handle(T.GET_MODULE_INFO, b"\xff").result == SystemErrorCode.BAD_DATA


def test_protected_device_refuses_all_but_the_allowed_requests(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True, protected=True)
    ctl = DeviceOsControl(device)
    for request_type in (30, 40, 70, 90, 91, 250, 251, 252, 253, 999):
        assert ctl.handle(request_type, b"").result == SystemErrorCode.PROTECTED
    assert call(ctl, T.DEVICE_ID).result == 0
    assert ctl.handle(T.APP_CUSTOM, b"").result == SystemErrorCode.NOT_SUPPORTED
    assert not device.update_in_progress


def test_listening_mode_is_lost_at_reset(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    device.set_listening(True)
    assert EmulatedDevice.open(device.state_dir).listening  # another process sees it
    device.reset()
    assert not device.listening


def test_mobile_secret_is_generated_kept_and_checked(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    settings = load_settings(device.state_dir)
    assert len(settings.mobile_secret) == MOBILE_SECRET_LENGTH
    assert settings.mobile_secret.isprintable()
    assert settings.mobile_secret not in repr(settings)
    assert load_settings(device.state_dir) == settings
    assert (device.state_dir / "control.json").stat().st_mode & 0o077 == 0
    phrase = "ABCDEFGHIJKLMNO"
    chosen = EmulatedDevice.create(tmp_path / "b", "boron", mobile_secret=phrase)
    assert load_settings(chosen.state_dir).mobile_secret == phrase
    for bad in ("short", "ABCDEFGHIJKLMN ", "ABCDEFGHIJKLMNOP"):
        with pytest.raises(UsageError, match="15 printable") as info:
            EmulatedDevice.create(tmp_path / "c", "boron", mobile_secret=bad)
        assert bad not in str(info.value)
