"""``device.json`` and what goes into it when a device is manufactured.

:class:`DeviceConfig` is the persisted identity (device id, platform) plus the records of
the system modules whose bytes are not emulated; the checks here vet what
:meth:`~bluemule.emulator.device.EmulatedDevice.create` is given before anything is
written. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from bluemule.emulator.errors import UsageError
from bluemule.emulator.layout import FlashLayout
from bluemule.emulator.validation import InstalledModule
from bluemule.image import ImageError, Module, ModuleFunction, decompress_module, parse_module

FORMAT: Final = "bluemule-emulator/1"
CONFIG_FILE: Final = "device.json"
DEFAULT_DEVICE_OS: Final = 6200
DEFAULT_BOOTLOADER_VERSION: Final = 2400
"""Module version of the 5.6.0 bootloaders in the fixtures (the 6.2.0 one is not at hand)."""
DEFAULT_RADIO_STACK_VERSION: Final = 182
"""Module version of SoftDevice S140 in ``argon-softdevice-6.1.1.bin`` (nRF52840 only)."""
_DEVICE_ID: Final = re.compile(r"[0-9a-f]{24}")


@dataclass(frozen=True)
class DeviceConfig:
    """``device.json``: what does not change when firmware is updated, plus the records
    of the system modules whose bytes are not emulated."""

    device_id: str
    platform: str
    modules: tuple[InstalledModule, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": FORMAT,
            "device_id": self.device_id,
            "platform": self.platform,
            "modules": [m.to_json() for m in self.modules],
        }

    @classmethod
    def from_json(cls, obj: Any) -> DeviceConfig:
        """Inverse of :meth:`to_json`."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} config")
        return cls(
            str(obj["device_id"]),
            str(obj["platform"]),
            tuple(InstalledModule.from_json(m) for m in obj["modules"]),
        )

    def with_module(self, record: InstalledModule) -> DeviceConfig:
        """The config with ``record`` replacing the module of the same function and index."""
        others = [
            m for m in self.modules if (m.function, m.index) != (record.function, record.index)
        ]
        return dataclasses.replace(self, modules=(*others, record))


def check_device_id(device_id: str | None) -> str:
    """``device_id`` normalised (lowercase), or a random one when it is ``None``."""
    if device_id is None:
        return secrets.token_hex(12)
    normal = device_id.strip().lower()
    if not _DEVICE_ID.fullmatch(normal):
        raise UsageError(f"device id {device_id!r} is not 24 hex digits")
    return normal


def check_app(app: bytes, layout: FlashLayout) -> Module:
    """The application to install at manufacturing (inflated if compressed)."""
    try:
        module = parse_module(app)
        if module.is_compressed:
            module = parse_module(decompress_module(module))
    except ImageError as exc:
        raise UsageError(f"app is not a usable module: {exc}") from None
    p = module.prefix
    bounds = layout.bounds_for(p.function, p.index)
    if p.function != ModuleFunction.USER_PART or bounds is None:
        raise UsageError("app is not a user part this platform has a place for")
    if p.platform_id != layout.platform_id:
        raise UsageError(f"app is for platform {p.platform_id}, not {layout.platform_id}")
    if not module.crc_ok:
        raise UsageError("app CRC-32 does not match")
    if not (bounds.start <= p.start_address and p.start_address + len(module.data) <= bounds.end):
        raise UsageError(f"app at {p.start_address:#x} does not fit its bounds")
    return module


def system_modules(
    layout: FlashLayout, device_os: int, bootloader_version: int
) -> tuple[InstalledModule, ...]:
    """The records of the system modules a new device has (not emulated byte for byte)."""
    modules = [
        InstalledModule(ModuleFunction.SYSTEM_PART, 1, device_os),
        InstalledModule(ModuleFunction.BOOTLOADER, 0, bootloader_version),
    ]
    if layout.radio_stack is not None:
        modules.append(InstalledModule(ModuleFunction.RADIO_STACK, 0, DEFAULT_RADIO_STACK_VERSION))
    return tuple(modules)
