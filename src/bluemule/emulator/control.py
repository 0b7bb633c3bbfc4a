"""Device OS's control-request handlers, as a stock device answers them (pure of I/O).

:class:`DeviceOsControl` takes a request (type, payload) as the control channel delivers
it and returns a :class:`ControlResult`: the ``system_error_t`` result, the reply payload
and what Device OS does *after* the reply has been sent (apply a finished update, reset).
The transport (GATT or the TCP byte stream) sends the reply first and then calls
:meth:`DeviceOsControl.after_reply`, as Device OS's completion handlers run after the
reply (``shared/reference/particle.md`` §3.7, system/src/control/storage.cpp):

* 250 cancels any transfer, refuses a format other than BIN (NOT_SUPPORTED), prepares
  (erases) ``size`` bytes and answers chunk size 1024;
* 253 writes strictly in sequence; ``0 < len ≤ bytes left`` (else OUT_OF_RANGE); any
  error cancels the transfer;
* 251 needs every byte (else INVALID_STATE) and validates first; ``validate_only`` then
  cancels, otherwise the reply goes out and the update is applied afterwards, leaving the
  reset Device OS schedules — done at once unless the app disabled resets;
* 252 cancels; 40 resets after the reply; 70/71/72 listening mode; 75 the startup flag;
  90 the modules in flash (the pre-5.6 list before Device OS 5.6.0); 91 the assets.

A malformed payload is BAD_DATA, an unknown type NOT_SUPPORTED, and on a protected device
everything except 10, 20, 76 and 77 is PROTECTED (§1.12).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bluemule.emulator.bootloader import user_part_valid
from bluemule.emulator.device import EmulatedDevice
from bluemule.emulator.errors import DeviceOsError, SystemErrorCode
from bluemule.emulator.setup import load_settings, update_settings
from bluemule.emulator.validation import InstalledModule
from bluemule.image import Dependency, ImageError, Module, ModuleFunction, unwrap_asset_module
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.errors import MessageError

Code = SystemErrorCode
RequestType = m.RequestType

PROTECTED_ALLOWED: Final = frozenset({10, 20, 76, 77})
"""What a protected device still answers over USB and BLE (the Wi-Fi ones are not modelled)."""
NEW_MODULE_INFO_VERSION: Final = 5600
"""Device OS 5.6.0 reports modules as ``particle.cloud.FirmwareModule`` (field 2)."""
ALL_CHECKS: Final = (
    m.ModuleValidity.INTEGRITY
    | m.ModuleValidity.DEPENDENCIES
    | m.ModuleValidity.RANGE
    | m.ModuleValidity.PLATFORM
)
_LEGACY_TYPES: Final = {
    ModuleFunction.BOOTLOADER: m.LegacyModuleType.BOOTLOADER,
    ModuleFunction.SYSTEM_PART: m.LegacyModuleType.SYSTEM_PART,
    ModuleFunction.USER_PART: m.LegacyModuleType.USER_PART,
    ModuleFunction.MONO_FIRMWARE: m.LegacyModuleType.MONO_FIRMWARE,
    ModuleFunction.NCP_FIRMWARE: m.LegacyModuleType.NCP_FIRMWARE,
    ModuleFunction.RADIO_STACK: m.LegacyModuleType.RADIO_STACK,
}


class AfterReply(enum.Enum):
    """What Device OS does once the reply is out."""

    APPLY_UPDATE = "apply_update"
    """Finish the validated update (stage it or store the asset), then the pending reset."""
    RESET = "reset"


@dataclass(frozen=True)
class ControlResult:
    """The answer to one request."""

    result: int
    """0 or a negative ``system_error_t``."""
    payload: bytes = b""
    after_reply: AfterReply | None = None


@dataclass
class _Transfer:
    """``g_update``: the open transfer of this handler."""

    offset: int
    bytes_left: int


def semver(version: int) -> str:
    """The emulator's Device OS version string for a module version (6200 → ``6.2.0``)."""
    return f"{version // 1000}.{version // 100 % 10}.{version % 100}"


class DeviceOsControl:
    """The system's control-request handlers for one emulated device.

    One instance per running device: the open transfer (``g_update``) lives here and is
    lost at every reset, as Device OS's RAM is.
    """

    def __init__(self, device: EmulatedDevice) -> None:
        self.device = device
        self._transfer: _Transfer | None = None
        self.resets = 0
        """Resets this handler performed (40, or after an applied update)."""

    @property
    def transfer_open(self) -> bool:
        """A START_FIRMWARE_UPDATE is open on this handler."""
        return self._transfer is not None

    def handle(self, request_type: int, payload: bytes) -> ControlResult:
        """Answer one request (never raises for anything the client sends)."""
        if load_settings(self.device.state_dir).protected and (
            request_type not in PROTECTED_ALLOWED
        ):
            return ControlResult(Code.PROTECTED)
        handler = _HANDLERS.get(request_type)
        if handler is None:
            return ControlResult(Code.NOT_SUPPORTED)
        try:
            return handler(self, payload)
        except MessageError:
            if request_type in _CANCELS_ON_BAD_DATA:
                self._cancel()
            return ControlResult(Code.BAD_DATA)

    def after_reply(self, action: AfterReply) -> bool:
        """Run ``action`` once its reply has been sent; True if the device reset."""
        if action is AfterReply.APPLY_UPDATE:
            if self._transfer is None:
                return False
            self._transfer = None
            self.device.finish_update(validate_only=False)
            if load_settings(self.device.state_dir).resets_disabled:
                return False
        self.reset()
        return True

    def reset(self) -> None:
        """``System.reset()``: the device boots, this handler's RAM state is gone."""
        self._transfer = None
        self.device.reset()
        self.resets += 1

    # -------------------------------------------------------------- update requests

    def _cancel(self) -> None:
        """``cancelFirmwareUpdate``: ``Spark_Finish_Firmware_Update(ERROR)`` if open."""
        if self._transfer is not None:
            self._transfer = None
            if self.device.update_in_progress:
                self.device.cancel_update()

    def _start(self, payload: bytes) -> ControlResult:
        request = m.StartFirmwareUpdateRequest.decode(payload)
        self._cancel()
        if self.device.update_in_progress:  # a transfer another path opened
            self.device.cancel_update()
        if request.format != m.FileFormat.BIN:
            return ControlResult(Code.NOT_SUPPORTED)
        try:
            self.device.prepare_update(request.size)
        except DeviceOsError as exc:
            return ControlResult(exc.code)
        self._transfer = _Transfer(0, request.size)
        return ControlResult(0, m.StartFirmwareUpdateReply(m.DEFAULT_CHUNK_SIZE).encode())

    def _data(self, payload: bytes) -> ControlResult:
        request = m.FirmwareUpdateDataRequest.decode(payload)
        transfer = self._transfer
        if transfer is None:
            return ControlResult(Code.INVALID_STATE)
        size = len(request.data)
        if size == 0 or size > transfer.bytes_left:
            self._cancel()
            return ControlResult(Code.OUT_OF_RANGE)
        try:
            self.device.save_chunk(transfer.offset, request.data)
        except DeviceOsError as exc:
            self._cancel()
            return ControlResult(exc.code)
        transfer.offset += size
        transfer.bytes_left -= size
        return ControlResult(0)

    def _finish(self, payload: bytes) -> ControlResult:
        request = m.FinishFirmwareUpdateRequest.decode(payload)
        if self._transfer is None or self._transfer.bytes_left > 0:
            self._cancel()
            return ControlResult(Code.INVALID_STATE)
        try:
            checked = self.device.finish_update(validate_only=True)
        except DeviceOsError as exc:
            self._cancel()
            return ControlResult(exc.code)
        if checked.error is not None:
            self._cancel()
            return ControlResult(checked.error)
        if request.validate_only:
            self._cancel()
            return ControlResult(0)
        return ControlResult(0, after_reply=AfterReply.APPLY_UPDATE)

    def _cancel_request(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        self._cancel()
        return ControlResult(0)

    # ------------------------------------------------------------ system requests

    def _device_id(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        return ControlResult(0, m.GetDeviceIdReply(self.device.device_id).encode())

    def _system_version(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        version = semver(self.device.device_os_version)
        return ControlResult(0, m.GetSystemVersionReply(version).encode())

    def _capabilities(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        flags = m.SystemCapabilityFlag(0)
        if self.device.platform.supports_compressed_ota:
            flags |= m.SystemCapabilityFlag.COMPRESSED_OTA
        return ControlResult(0, m.GetSystemCapabilitiesReply(int(flags)).encode())

    def _reset(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        return ControlResult(0, after_reply=AfterReply.RESET)

    def _start_listening(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        self.device.set_listening(True)
        return ControlResult(0)

    def _stop_listening(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        self.device.set_listening(False)
        return ControlResult(0)

    def _device_mode(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        mode = m.DeviceMode.LISTENING_MODE if self.device.listening else m.DeviceMode.NORMAL_MODE
        return ControlResult(0, m.GetDeviceModeReply(mode).encode())

    def _startup_mode(self, payload: bytes) -> ControlResult:
        request = m.SetStartupModeRequest.decode(payload)
        if request.mode not in tuple(m.DeviceMode):
            return ControlResult(Code.INVALID_ARGUMENT)
        listen = request.mode == m.DeviceMode.LISTENING_MODE
        update_settings(self.device.state_dir, startup_listen=listen)
        return ControlResult(0)

    def _module_info(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        modules = [self._record(r) for r in self.device.installed_modules]
        app = self.device.installed_app
        if app is not None:
            modules.append(self._user_part(app))
        if self.device.device_os_version >= NEW_MODULE_INFO_VERSION:
            return ControlResult(0, m.GetModuleInfoReply(tuple(modules)).encode())
        legacy = tuple(_legacy(module) for module in modules)
        return ControlResult(0, m.GetModuleInfoReply((), legacy).encode())

    def _record(self, record: InstalledModule) -> m.FirmwareModule:
        bounds = self.device.layout.bounds_for(record.function, record.index)
        return m.FirmwareModule(
            type=record.function,
            index=record.index,
            version=record.version,
            max_size=0 if bounds is None else bounds.length,
            checked_flags=int(ALL_CHECKS),
            passed_flags=int(ALL_CHECKS),
            dependencies=_dependencies(record.dependency, record.dependency2),
        )

    def _user_part(self, app: Module) -> m.FirmwareModule:
        p = app.prefix
        bounds = self.device.layout.bounds_for(p.function, p.index)
        passed = ALL_CHECKS & ~m.ModuleValidity.DEPENDENCIES
        if user_part_valid(app, list(self.device.installed_modules)):
            passed |= m.ModuleValidity.DEPENDENCIES
        assets = tuple(m.AssetInfo(d.name, d.hash) for d in self.device.required_assets)
        return m.FirmwareModule(
            type=p.function,
            index=p.index,
            version=p.module_version,
            max_size=0 if bounds is None else bounds.length,
            checked_flags=int(ALL_CHECKS),
            passed_flags=int(passed),
            hash=app.suffix.sha256,
            dependencies=_dependencies(p.dependency, p.dependency2),
            asset_dependencies=assets,
            size=len(app.data),
        )

    def _asset_info(self, payload: bytes) -> ControlResult:
        m.Empty.decode(payload)
        storage = self.device.asset_storage
        available = []
        for asset in self.device.stored_assets():
            try:
                size = len(unwrap_asset_module(asset.module).data)
            except ImageError:
                size = len(asset.module.data)
            storage_size = storage.storage_size(len(asset.module.data))
            available.append(m.AssetInfo(asset.name, asset.declared_sha256, size, storage_size))
        required = tuple(m.AssetInfo(d.name, d.hash) for d in self.device.required_assets)
        return ControlResult(0, m.GetAssetInfoReply(tuple(available), required).encode())


def _dependencies(*deps: Dependency) -> tuple[m.ModuleDependency, ...]:
    return tuple(m.ModuleDependency(d.function, d.index, d.version) for d in deps if d.function)


def _legacy(module: m.FirmwareModule) -> m.LegacyModule:
    failed = 0
    if module.failed_flags & m.ModuleValidity.INTEGRITY:
        failed |= m.LegacyValidity.INTEGRITY_CHECK_FAILED
    if module.failed_flags & m.ModuleValidity.DEPENDENCIES:
        failed |= m.LegacyValidity.DEPENDENCY_CHECK_FAILED
    legacy_type = _LEGACY_TYPES.get(ModuleFunction(module.type), m.LegacyModuleType(0))
    deps = tuple(
        m.ModuleDependency(_LEGACY_TYPES.get(ModuleFunction(d.type), 0), d.index, d.version)
        for d in module.dependencies
    )
    return m.LegacyModule(legacy_type, module.index, module.version, module.size, failed, deps)


_HANDLERS: Final[dict[int, Callable[[DeviceOsControl, bytes], ControlResult]]] = {
    RequestType.DEVICE_ID: DeviceOsControl._device_id,
    RequestType.SYSTEM_VERSION: DeviceOsControl._system_version,
    RequestType.GET_SYSTEM_CAPABILITIES: DeviceOsControl._capabilities,
    RequestType.RESET: DeviceOsControl._reset,
    RequestType.START_LISTENING: DeviceOsControl._start_listening,
    RequestType.STOP_LISTENING: DeviceOsControl._stop_listening,
    RequestType.GET_DEVICE_MODE: DeviceOsControl._device_mode,
    RequestType.SET_STARTUP_MODE: DeviceOsControl._startup_mode,
    RequestType.GET_MODULE_INFO: DeviceOsControl._module_info,
    RequestType.GET_ASSET_INFO: DeviceOsControl._asset_info,
    RequestType.START_FIRMWARE_UPDATE: DeviceOsControl._start,
    RequestType.FIRMWARE_UPDATE_DATA: DeviceOsControl._data,
    RequestType.FINISH_FIRMWARE_UPDATE: DeviceOsControl._finish,
    RequestType.CANCEL_FIRMWARE_UPDATE: DeviceOsControl._cancel_request,
}
_CANCELS_ON_BAD_DATA: Final = frozenset(
    {RequestType.FIRMWARE_UPDATE_DATA, RequestType.FINISH_FIRMWARE_UPDATE}
)
