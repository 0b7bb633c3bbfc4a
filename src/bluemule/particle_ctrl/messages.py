"""Control-request payloads of Device OS (package ``particle.ctrl``), both directions (pure).

Field numbers as in device-os-protobuf ``control/config.proto`` and
``control/storage.proto``; the module and asset records of requests 90/91 are
``particle.cloud.FirmwareModule`` / ``FirmwareModuleAsset`` of ``cloud/describe.proto``,
which Device OS ≥ 5.6.0 fills with the same encoder as its cloud describe
(system/src/system_info_encoding.cpp). ``GetModuleInfoReply`` keeps the pre-5.6 list as
field 1 (``modules_deprecated``, particle-usb's ``modulesDeprecated``) and the new list as
field 2 (``modules``): inferred from particle-usb and Device OS, the newer storage.proto
itself was not at hand. ``shared/reference/particle.md`` §3.7.

Every message has ``encode() -> bytes`` and ``decode(bytes)`` (a client encodes requests
and decodes replies, the emulated device the reverse). Decoding raises
:class:`~bluemule.particle_ctrl.errors.MessageError`; unknown fields are ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, Self, TypeVar

from bluemule.particle_ctrl.errors import MessageError
from bluemule.particle_ctrl.protobuf import Fields, Writer

_T = TypeVar("_T")

DEFAULT_CHUNK_SIZE: Final = 1024
"""What Device OS answers to START_FIRMWARE_UPDATE (``TODO: Determine depending on free RAM``)."""


class RequestType(enum.IntEnum):
    """``CTRL_REQUEST_*`` numbers (system/inc/system_control.h; the ``type_id`` options)."""

    APP_CUSTOM = 10
    DEVICE_ID = 20
    SERIAL_NUMBER = 21
    SYSTEM_VERSION = 30
    NCP_FIRMWARE_VERSION = 31
    GET_SYSTEM_CAPABILITIES = 32
    RESET = 40
    START_LISTENING = 70
    STOP_LISTENING = 71
    GET_DEVICE_MODE = 72
    SET_STARTUP_MODE = 75
    GET_MODULE_INFO = 90
    GET_ASSET_INFO = 91
    START_FIRMWARE_UPDATE = 250
    FINISH_FIRMWARE_UPDATE = 251
    CANCEL_FIRMWARE_UPDATE = 252
    FIRMWARE_UPDATE_DATA = 253


class DeviceMode(enum.IntEnum):
    """``DeviceMode`` (config.proto)."""

    NORMAL_MODE = 0
    LISTENING_MODE = 1


class SystemCapabilityFlag(enum.IntFlag):
    """``SystemCapabilityFlag`` (config.proto)."""

    COMPRESSED_OTA = 0x01


class FileFormat(enum.IntEnum):
    """``FileFormat`` of START_FIRMWARE_UPDATE; Device OS accepts only BIN."""

    BIN = 0
    MINIZ = 1


class ModuleType(enum.IntEnum):
    """``particle.cloud.FirmwareModuleType``: equal to ``module_function_t``."""

    INVALID_MODULE = 0
    RESOURCE_MODULE = 1
    BOOTLOADER_MODULE = 2
    MONO_FIRMWARE_MODULE = 3
    SYSTEM_PART_MODULE = 4
    USER_PART_MODULE = 5
    SETTINGS_MODULE = 6
    NCP_FIRMWARE_MODULE = 7
    RADIO_STACK_MODULE = 8
    ASSET_MODULE = 9


class LegacyModuleType(enum.IntEnum):
    """``particle.ctrl.FirmwareModuleType`` of the pre-5.6 ``modules_deprecated`` list."""

    INVALID_FIRMWARE_MODULE = 0
    BOOTLOADER = 1
    SYSTEM_PART = 2
    USER_PART = 3
    MONO_FIRMWARE = 4
    NCP_FIRMWARE = 5
    RADIO_STACK = 6


class ModuleValidity(enum.IntFlag):
    """``particle.cloud.FirmwareModuleValidityFlag`` (= ``MODULE_VALIDATION_*``)."""

    INTEGRITY = 0x02
    DEPENDENCIES = 0x04
    RANGE = 0x08
    PLATFORM = 0x10


class LegacyValidity(enum.IntFlag):
    """``particle.ctrl.FirmwareModuleValidityFlag`` (failures, pre-5.6)."""

    INTEGRITY_CHECK_FAILED = 0x01
    DEPENDENCY_CHECK_FAILED = 0x02


class ModuleStore(enum.IntEnum):
    """``particle.cloud.FirmwareModuleStore``."""

    MAIN_MODULE_STORE = 0
    FACTORY_MODULE_STORE = 1
    BACKUP_MODULE_STORE = 2
    SCRATCHPAD_MODULE_STORE = 3


class Message(Protocol):
    """What every payload class offers."""

    def encode(self) -> bytes:
        """Wire bytes."""
        ...


def _parse(data: bytes, what: str) -> Fields:
    return Fields.parse(data, what)


def _decode_all(decode: Callable[[bytes], _T], items: list[bytes], what: str) -> tuple[_T, ...]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(decode(item))
        except MessageError as exc:
            raise MessageError(f"{what}[{i}]: {exc}") from None
    return tuple(out)


# ---------------------------------------------------------------- empty messages


@dataclass(frozen=True)
class Empty:
    """A message without fields (most requests, and the replies of 40, 70, 71, 75, 251–253).
    Decoding still checks the wire format and ignores unknown fields."""

    def encode(self) -> bytes:
        """Always ``b""``."""
        return b""

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Check ``data`` is a well-formed message."""
        _parse(data, cls.__name__)
        return cls()


# ------------------------------------------------------------------- config.proto


@dataclass(frozen=True)
class GetDeviceIdReply:
    """Reply to 20: the 24-hex-digit device id."""

    id: str

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().string(1, self.id).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).string(1))


@dataclass(frozen=True)
class GetSystemVersionReply:
    """Reply to 30: Device OS version in SemVer form."""

    version: str

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().string(1, self.version).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).string(1))


@dataclass(frozen=True)
class GetSystemCapabilitiesReply:
    """Reply to 32: :class:`SystemCapabilityFlag` bits (``fixed32``)."""

    flags: int

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().fixed32(1, self.flags).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).fixed32(1))


@dataclass(frozen=True)
class GetDeviceModeReply:
    """Reply to 72."""

    mode: int

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().uint(1, self.mode).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).uint32(1))


@dataclass(frozen=True)
class SetStartupModeRequest:
    """Request 75: the mode to enter when the device boots into a requested safe mode."""

    mode: int

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().uint(1, self.mode).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).uint32(1))


# ------------------------------------------------------------------ storage.proto


@dataclass(frozen=True)
class StartFirmwareUpdateRequest:
    """Request 250."""

    size: int
    format: int = FileFormat.BIN

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().uint(1, self.size).uint(2, self.format).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(f.uint32(1), f.uint32(2))


@dataclass(frozen=True)
class StartFirmwareUpdateReply:
    """Reply to 250: the largest chunk the device wants (Device OS: 1024)."""

    chunk_size: int

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().uint(1, self.chunk_size).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).uint32(1))


@dataclass(frozen=True)
class FirmwareUpdateDataRequest:
    """Request 253: the next bytes of the file (written strictly in sequence)."""

    data: bytes

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().blob(1, self.data).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).blob(1))


@dataclass(frozen=True)
class FinishFirmwareUpdateRequest:
    """Request 251."""

    validate_only: bool = False

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().boolean(1, self.validate_only).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        return cls(_parse(data, cls.__name__).boolean(1))


@dataclass(frozen=True)
class ModuleDependency:
    """``FirmwareModuleDependency`` (and the legacy ``GetModuleInfoReply.Dependency``)."""

    type: int
    index: int
    version: int

    def encode(self) -> bytes:
        """Wire bytes."""
        return Writer().uint(1, self.type).uint(2, self.index).uint(3, self.version).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(f.uint32(1), f.uint32(2), f.uint32(3))


@dataclass(frozen=True)
class AssetInfo:
    """``particle.cloud.FirmwareModuleAsset``: an asset present or required."""

    name: str
    hash: bytes
    """SHA-256 of the raw asset."""
    size: int = 0
    storage_size: int = 0
    """Bytes it takes in the asset storage (compression and metadata included)."""

    def encode(self) -> bytes:
        """Wire bytes."""
        w = Writer().blob(1, self.hash).string(2, self.name)
        return w.uint(3, self.size).uint(4, self.storage_size).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(f.string(2), f.blob(1), f.uint32(3), f.uint32(4))


@dataclass(frozen=True)
class FirmwareModule:
    """``particle.cloud.FirmwareModule``: one module as Device OS ≥ 5.6.0 reports it.
    (Field 12, ``security``, is skipped when decoding and not written.)"""

    type: int
    """:class:`ModuleType` (= module function)."""
    index: int
    version: int
    store: int = ModuleStore.MAIN_MODULE_STORE
    max_size: int = 0
    checked_flags: int = 0
    """:class:`ModuleValidity` checks performed."""
    passed_flags: int = 0
    """:class:`ModuleValidity` checks passed."""
    hash: bytes | None = None
    """SHA-256 of the module (from its suffix), when reported."""
    dependencies: tuple[ModuleDependency, ...] = ()
    asset_dependencies: tuple[AssetInfo, ...] = ()
    size: int = 0
    """Module size including the CRC (0 when Device OS has no bytes for it)."""

    @property
    def failed_flags(self) -> int:
        """Checks performed that did not pass (particle-usb's ``failedFlags``)."""
        return self.checked_flags & ~self.passed_flags

    def encode(self) -> bytes:
        """Wire bytes."""
        w = Writer().uint(1, self.type).uint(2, self.index).uint(3, self.version)
        w.uint(4, self.store).uint(5, self.max_size)
        w.fixed32(6, self.checked_flags).fixed32(7, self.passed_flags)
        w.blob(8, self.hash, optional=True)
        for dep in self.dependencies:
            w.message(9, dep.encode())
        for asset in self.asset_dependencies:
            w.message(10, asset.encode())
        return w.uint(11, self.size).finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(
            type=f.uint32(1),
            index=f.uint32(2),
            version=f.uint32(3),
            store=f.uint32(4),
            max_size=f.uint32(5),
            checked_flags=f.fixed32(6),
            passed_flags=f.fixed32(7),
            hash=f.optional_blob(8),
            dependencies=_decode_all(ModuleDependency.decode, f.messages(9), "dependencies"),
            asset_dependencies=_decode_all(AssetInfo.decode, f.messages(10), "asset_dependencies"),
            size=f.uint32(11),
        )


@dataclass(frozen=True)
class LegacyModule:
    """``GetModuleInfoReply.Module``: the pre-5.6 record (``modules_deprecated``)."""

    type: int
    """:class:`LegacyModuleType`."""
    index: int
    version: int
    size: int = 0
    validity: int = 0
    """:class:`LegacyValidity` failures."""
    dependencies: tuple[ModuleDependency, ...] = ()

    def encode(self) -> bytes:
        """Wire bytes."""
        w = Writer().uint(1, self.type).uint(2, self.index).uint(3, self.version)
        w.uint(4, self.size).uint(5, self.validity)
        for dep in self.dependencies:
            w.message(6, dep.encode())
        return w.finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        deps = _decode_all(ModuleDependency.decode, f.messages(6), "dependencies")
        return cls(f.uint32(1), f.uint32(2), f.uint32(3), f.uint32(4), f.uint32(5), deps)


@dataclass(frozen=True)
class GetModuleInfoReply:
    """Reply to 90: the installed modules."""

    modules: tuple[FirmwareModule, ...] = ()
    legacy_modules: tuple[LegacyModule, ...] = ()
    """What Device OS < 5.6.0 sends instead."""

    def encode(self) -> bytes:
        """Wire bytes."""
        w = Writer()
        for old in self.legacy_modules:
            w.message(1, old.encode())
        for module in self.modules:
            w.message(2, module.encode())
        return w.finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(
            _decode_all(FirmwareModule.decode, f.messages(2), "modules"),
            _decode_all(LegacyModule.decode, f.messages(1), "modules_deprecated"),
        )


@dataclass(frozen=True)
class GetAssetInfoReply:
    """Reply to 91: valid assets in storage, and the running app's ASSET_DEPENDENCY list."""

    available: tuple[AssetInfo, ...] = ()
    required: tuple[AssetInfo, ...] = ()

    def encode(self) -> bytes:
        """Wire bytes."""
        w = Writer()
        for asset in self.available:
            w.message(1, asset.encode())
        for asset in self.required:
            w.message(2, asset.encode())
        return w.finish()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse."""
        f = _parse(data, cls.__name__)
        return cls(
            _decode_all(AssetInfo.decode, f.messages(1), "available"),
            _decode_all(AssetInfo.decode, f.messages(2), "required"),
        )


# ------------------------------------------------------------------------ registry


class _Decodable(Protocol):
    @classmethod
    def decode(cls, data: bytes) -> Message: ...


@dataclass(frozen=True)
class RequestKind:
    """The payload classes of one request type."""

    request: type[_Decodable]
    reply: type[_Decodable]


KINDS: Final[dict[RequestType, RequestKind]] = {
    RequestType.DEVICE_ID: RequestKind(Empty, GetDeviceIdReply),
    RequestType.SYSTEM_VERSION: RequestKind(Empty, GetSystemVersionReply),
    RequestType.GET_SYSTEM_CAPABILITIES: RequestKind(Empty, GetSystemCapabilitiesReply),
    RequestType.RESET: RequestKind(Empty, Empty),
    RequestType.START_LISTENING: RequestKind(Empty, Empty),
    RequestType.STOP_LISTENING: RequestKind(Empty, Empty),
    RequestType.GET_DEVICE_MODE: RequestKind(Empty, GetDeviceModeReply),
    RequestType.SET_STARTUP_MODE: RequestKind(SetStartupModeRequest, Empty),
    RequestType.GET_MODULE_INFO: RequestKind(Empty, GetModuleInfoReply),
    RequestType.GET_ASSET_INFO: RequestKind(Empty, GetAssetInfoReply),
    RequestType.START_FIRMWARE_UPDATE: RequestKind(
        StartFirmwareUpdateRequest, StartFirmwareUpdateReply
    ),
    RequestType.FINISH_FIRMWARE_UPDATE: RequestKind(FinishFirmwareUpdateRequest, Empty),
    RequestType.CANCEL_FIRMWARE_UPDATE: RequestKind(Empty, Empty),
    RequestType.FIRMWARE_UPDATE_DATA: RequestKind(FirmwareUpdateDataRequest, Empty),
}
"""Request and reply classes of every request type this package speaks."""


def _kind(request_type: int) -> RequestKind:
    try:
        return KINDS[RequestType(request_type)]
    except (ValueError, KeyError):
        raise MessageError(f"request type {request_type} has no known payload") from None


def decode_request(request_type: int, payload: bytes) -> Message:
    """The request payload of ``request_type`` (device side).

    Raises:
        MessageError: malformed, or a type without a known payload.
    """
    return _kind(request_type).request.decode(payload)


def decode_reply(request_type: int, payload: bytes) -> Message:
    """The reply payload to ``request_type`` (client side).

    Raises:
        MessageError: malformed, or a type without a known payload.
    """
    return _kind(request_type).reply.decode(payload)
