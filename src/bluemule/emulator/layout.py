"""Flash layouts of the emulated platforms (pure tables, no I/O).

Addresses, sizes and module bounds come from ``shared/reference/particle.md`` §3.6
(hal/src/*/ota_module_bounds.c, platform/MCU/*/inc/flash_mal.h) and §1.4 (module
indexes). Each platform is one :data:`LAYOUTS` entry; B-SoM and P2 reuse the Boron
and M-SoM tables with their own platform.

Only two areas hold real bytes in the emulator (files under ``flash/``): the OTA
region and the window the user part lives in. The system part, bootloader and radio
stack are represented by module records (function, index, version, dependencies),
the file systems by directories (see :mod:`bluemule.emulator.storage`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from bluemule.image import AssetLimits, ModuleFunction, Platform, platform_by_name

SECTOR_SIZE: Final = 4096
"""Erase unit of both the nRF52840 QSPI / internal flash and the RTL872x flash (§3.6)."""

OTA_CHUNK_SIZE: Final = 512
"""``HAL_OTA_ChunkSize()`` (§4.1): what ``Spark_Prepare_For_Firmware_Update`` reports."""


class FlashDevice(enum.IntEnum):
    """``flash_device_t``: where a DCT slot's source and destination live (§3.2)."""

    INTERNAL = 0
    SERIAL = 1
    """External QSPI flash (nRF52840). RTL872x has one flash, always INTERNAL here."""


@dataclass(frozen=True)
class Area:
    """A range of one flash device."""

    device: FlashDevice
    start: int
    length: int

    @property
    def end(self) -> int:
        """First address past the area."""
        return self.start + self.length

    def contains(self, device: int, address: int, length: int = 1) -> bool:
        """Whether ``[address, address + length)`` of ``device`` lies inside the area."""
        return (
            device == self.device
            and length >= 0
            and self.start <= address
            and address + length <= self.end
        )


@dataclass(frozen=True)
class Bounds:
    """``module_bounds_t``: where a module of (function, index) must lie (§1.4, §3.6)."""

    function: ModuleFunction
    index: int
    start: int
    length: int
    """Maximum size."""
    device: FlashDevice = FlashDevice.INTERNAL
    grows_left: bool = False
    """RTL872x user part: fixed end, start taken from the module (DYNAMIC_LOCATION)."""

    @property
    def end(self) -> int:
        """First address past the bounds."""
        return self.start + self.length

    def holds_end(self, module_end_address: int) -> bool:
        """``fetch_module``'s RANGE check: the module's end address lies within the bounds
        (inclusive at both ends, as ``in_range`` in hal/src/*/ota_module.cpp)."""
        return self.start <= module_end_address <= self.end


@dataclass(frozen=True)
class FlashLayout:
    """One platform's flash: areas, module bounds and what overlaps what."""

    platform: Platform
    ota: Area
    """The OTA region; its length is ``HAL_OTA_FlashLength()`` (§3.1, §3.6)."""
    ota_safe_length: int | None
    """Bytes at the start of the OTA region that do not overlap the asset storage
    (Boron/B-SoM: 606,208 = ``EXTERNAL_FLASH_OTA_SAFE_LENGTH``); None: no overlap."""
    asset_storage: Area
    main_fs: Area
    user_window: Area
    """The area holding every user-part bounds; backed by ``flash/user.bin``."""
    user_parts: tuple[Bounds, ...]
    """In boot precedence order: Boron checks the legacy 128 KB slot first (§3.6)."""
    system_part: Bounds
    bootloaders: tuple[Bounds, ...]
    radio_stack: Bounds | None = None

    @property
    def name(self) -> str:
        """device-constants platform name."""
        return self.platform.name

    @property
    def platform_id(self) -> int:
        """``PLATFORM_ID``."""
        return self.platform.id

    @property
    def assets(self) -> AssetLimits:
        """Asset storage accounting (device-constants ``assets``, §2.3)."""
        assert self.platform.assets is not None  # every emulated platform has asset storage
        return self.platform.assets

    @property
    def default_user_part(self) -> Bounds:
        """Where applications are built for today (Boron: index 2 at 0xB4000)."""
        return self.user_parts[-1]

    @property
    def all_bounds(self) -> tuple[Bounds, ...]:
        """Every module location ``find_module_bounds`` knows."""
        radio = (self.radio_stack,) if self.radio_stack else ()
        return (*self.user_parts, self.system_part, *self.bootloaders, *radio)

    def bounds_for(self, function: int, index: int) -> Bounds | None:
        """``find_module_bounds(function, index, mcu)`` for the default MCU."""
        return next(
            (b for b in self.all_bounds if b.function == function and b.index == index), None
        )


def _nrf52840_4mb(platform: Platform) -> FlashLayout:
    """Boron / B-SoM: nRF52840 1 MB internal + 4 MB QSPI (§3.6)."""
    internal, serial = FlashDevice.INTERNAL, FlashDevice.SERIAL
    return FlashLayout(
        platform=platform,
        ota=Area(serial, 0x24C000, 1_536_000),
        ota_safe_length=606_208,
        asset_storage=Area(serial, 0x2E0000, 0x120000),
        main_fs=Area(serial, 0x000000, 0x200000),
        user_window=Area(internal, 0xB4000, 0x40000),
        user_parts=(
            Bounds(ModuleFunction.USER_PART, 1, 0xD4000, 0x20000),
            Bounds(ModuleFunction.USER_PART, 2, 0xB4000, 0x40000),
        ),
        system_part=Bounds(ModuleFunction.SYSTEM_PART, 1, 0x28000, 0x8C000),
        bootloaders=(Bounds(ModuleFunction.BOOTLOADER, 0, 0xF4000, 0xC000),),
        radio_stack=Bounds(ModuleFunction.RADIO_STACK, 0, 0x1000, 0x26000),
    )


def _rtl872x_8mb(platform: Platform) -> FlashLayout:
    """M-SoM / P2: RTL872x 8 MB mapped at 0x08000000 (§3.6)."""
    internal = FlashDevice.INTERNAL
    return FlashLayout(
        platform=platform,
        ota=Area(internal, 0x08300000, 1_572_864),
        ota_safe_length=None,
        asset_storage=Area(internal, 0x081E0000, 0x120000),
        main_fs=Area(internal, 0x08600000, 0x200000),
        user_window=Area(internal, 0x08480000, 0x180000),
        user_parts=(Bounds(ModuleFunction.USER_PART, 1, 0x08480000, 0x180000, grows_left=True),),
        system_part=Bounds(ModuleFunction.SYSTEM_PART, 1, 0x08060000, 0x180000),
        bootloaders=(
            Bounds(ModuleFunction.BOOTLOADER, 0, 0x08004000, 0x10000),
            Bounds(ModuleFunction.BOOTLOADER, 1, 0x08000000, 0x2000),
            Bounds(ModuleFunction.BOOTLOADER, 2, 0x08014000, 0x4A000),
        ),
    )


def _platform(name: str) -> Platform:
    found = platform_by_name(name)
    assert found is not None, name
    return found


LAYOUTS: Final[dict[str, FlashLayout]] = {
    "boron": _nrf52840_4mb(_platform("boron")),
    "bsom": _nrf52840_4mb(_platform("bsom")),
    "msom": _rtl872x_8mb(_platform("msom")),
    "p2": _rtl872x_8mb(_platform("p2")),
}
"""Emulated platforms by device-constants name."""


def layout_for(name: str) -> FlashLayout | None:
    """The layout of a platform name or alias (``muon`` → M-SoM), or None if not emulated."""
    platform = platform_by_name(name)
    return LAYOUTS.get(platform.name) if platform is not None else None
