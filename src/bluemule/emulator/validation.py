"""Which modules in the OTA region Device OS accepts (pure: bytes in, verdicts out).

``fetchModules``, ``fetch_module`` and ``validateModules`` of hal/src/*/ota_flash_hal.cpp
and ota_module.cpp (``shared/reference/particle.md`` §1.2, §3.5), and the dependency
checks also used at boot (§3.4). System modules whose bytes the emulator does not keep
(system part, bootloader, radio stack) are :class:`InstalledModule` records.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bluemule.emulator.errors import DeviceOsError, SystemErrorCode
from bluemule.emulator.layout import FlashLayout
from bluemule.image import (
    Dependency,
    McuFamily,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
)

MAX_COMBINED_MODULE_COUNT: Final = 2
"""``fetchModules`` keeps at most two combined modules (§1.11)."""
_PREFIX_SIZE: Final = 24
_CRC_SIZE: Final = 4
_NRF_VECTOR_TABLE: Final = 0x200
_RTL_IMAGE_HEADER: Final = 0x20
_RTL_SIGNATURE: Final = bytes.fromhex("999996963fcc66fc")
_SRAM_MASK: Final = 0x2FFC0000
_SRAM_BASE: Final = 0x20000000
_MCU_DEFAULT: Final = 0
_MCU_ANY: Final = 0xFF
_COMPRESSIBLE: Final = frozenset(
    {ModuleFunction.USER_PART, ModuleFunction.SYSTEM_PART, ModuleFunction.ASSET}
)


@dataclass(frozen=True)
class InstalledModule:
    """A module Device OS reports as installed but the emulator keeps as a record only
    (system part, bootloader, radio stack): enough for real dependency checks (§1.2)."""

    function: int
    index: int
    version: int
    dependency: Dependency = field(default_factory=Dependency)
    dependency2: Dependency = field(default_factory=Dependency)

    @classmethod
    def of(cls, prefix: ModulePrefix) -> InstalledModule:
        """The record of a module's prefix."""
        return cls(
            prefix.function,
            prefix.index,
            prefix.module_version,
            prefix.dependency,
            prefix.dependency2,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form for the device config."""
        d1, d2 = self.dependency, self.dependency2
        return {
            "function": self.function,
            "index": self.index,
            "version": self.version,
            "dependency": [d1.function, d1.index, d1.version],
            "dependency2": [d2.function, d2.index, d2.version],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InstalledModule:
        """Inverse of :meth:`to_json`."""
        return cls(
            int(obj["function"]),
            int(obj["index"]),
            int(obj["version"]),
            Dependency(*(int(x) for x in obj["dependency"])),
            Dependency(*(int(x) for x in obj["dependency2"])),
        )


def dependency_met(dep: Dependency, installed: Sequence[InstalledModule]) -> bool:
    """A module (function, index) with at least ``dep.version`` is installed (§1.2)."""
    if dep.is_none:
        return True
    return any(
        m.function == dep.function and m.index == dep.index and m.version >= dep.version
        for m in installed
    )


def dependencies_valid(
    prefix: ModulePrefix,
    installed: Sequence[InstalledModule],
    *,
    user_optional: bool,
    full: bool,
) -> bool:
    """``validate_module_dependencies`` (hal/src/*/ota_flash_hal.cpp; §1.2, §3.5).

    Only dep1 and dep2 are checked, not transitively. With ``user_optional`` (the OTA
    path) a user part's dependencies and any dep2 on the bootloader are skipped; a dep1
    of NONE skips dep2 too. ``full`` adds the system-part check that every other
    installed system part depending on this one stays satisfied.
    """
    if prefix.dependency.is_none or (user_optional and prefix.function == ModuleFunction.USER_PART):
        valid = True
    else:
        valid = dependency_met(prefix.dependency, installed)
        dep2 = prefix.dependency2
        if not (dep2.is_none or (dep2.function == ModuleFunction.BOOTLOADER and user_optional)):
            valid = valid and dependency_met(dep2, installed)
    if valid and full and prefix.function == ModuleFunction.SYSTEM_PART:
        for other in installed:
            if other.function != ModuleFunction.SYSTEM_PART or (
                other.function == prefix.function and other.index == prefix.index
            ):
                continue
            for dep in (other.dependency, other.dependency2):
                if dep.function == prefix.function and dep.index == prefix.index:
                    valid = valid and prefix.module_version >= dep.version
    return valid


def module_info_offset(head: bytes, mcu: McuFamily) -> int:
    """``FLASH_ModuleInfo``: where the prefix is (§1.1): after the nRF52840 vector table
    when the first word looks like an SRAM stack pointer, after the Realtek image header
    when it starts with the RTL872x signature, else at 0."""
    first_word = int.from_bytes(head[:4].ljust(4, b"\0"), "little")
    if mcu == McuFamily.NRF52840 and first_word & _SRAM_MASK == _SRAM_BASE:
        return _NRF_VECTOR_TABLE
    if mcu == McuFamily.RTL872X and head[: len(_RTL_SIGNATURE)] == _RTL_SIGNATURE:
        return _RTL_IMAGE_HEADER
    return 0


@dataclass(frozen=True)
class FetchedModule:
    """A module found in the OTA region by ``fetchModules``."""

    offset: int
    """Where it starts in the OTA region."""
    prefix_offset: int
    prefix: ModulePrefix
    data: bytes = field(repr=False)
    """``module_length + 4`` bytes read from the region (CRC included)."""
    error: SystemErrorCode | None = None
    """``validityResultToSystemError`` of its checks, None when all passed (assets: None,
    they are checked when stored)."""

    @property
    def length(self) -> int:
        """Module length including the CRC (what a DCT slot records)."""
        return len(self.data)

    @property
    def flags(self) -> int:
        """Prefix flags."""
        return self.prefix.flags


def _read_prefix(region: bytes, offset: int, mcu: McuFamily) -> tuple[int, ModulePrefix] | None:
    head = region[offset : offset + _NRF_VECTOR_TABLE + _PREFIX_SIZE]
    at = module_info_offset(head, mcu)
    if len(head) < at + _PREFIX_SIZE:
        return None
    return at, ModulePrefix.unpack(head, at)


def _check_module(
    data: bytes, p: ModulePrefix, layout: FlashLayout, installed: Sequence[InstalledModule]
) -> SystemErrorCode | None:
    """``fetch_module``'s validity flags mapped by ``validityResultToSystemError``:
    integrity first, then dependencies, then platform (range failures never get here)."""
    crc_ok = zlib.crc32(data[:-_CRC_SIZE]) == int.from_bytes(data[-_CRC_SIZE:], "big")
    if not crc_ok:
        return SystemErrorCode.OTA_INTEGRITY_CHECK_FAILED
    if not dependencies_valid(p, installed, user_optional=True, full=True):
        return SystemErrorCode.OTA_DEPENDENCY_CHECK_FAILED
    if p.platform_id != layout.platform_id:
        return SystemErrorCode.OTA_INVALID_PLATFORM
    return None


def fetch_modules(
    region: bytes, layout: FlashLayout, installed: Sequence[InstalledModule]
) -> list[FetchedModule]:
    """``fetchModules``: walk the (combined) modules at the start of the OTA region.

    A module whose (function, index, MCU) has no bounds on this platform, or whose end
    address lies outside them, cannot be fetched (OTA_MODULE_NOT_FOUND, as the source
    does; §3.4 lists such a module as an invalid address); a COMBINED part longer than
    what is left of the region is OTA_INVALID_SIZE. Every part is walked, only the first
    two are kept. Pure.

    Raises:
        DeviceOsError: OTA_MODULE_NOT_FOUND or OTA_INVALID_SIZE.
    """
    mcu = layout.platform.mcu
    modules: list[FetchedModule] = []
    offset = 0
    while True:
        found = _read_prefix(region, offset, mcu)
        if found is None:
            raise DeviceOsError(SystemErrorCode.OTA_MODULE_NOT_FOUND, f"no module at {offset}")
        at, prefix = found
        length = (prefix.end_address - prefix.start_address + _CRC_SIZE) & 0xFFFFFFFF
        if length < at + _PREFIX_SIZE + _CRC_SIZE:  # end before start: nothing to fetch
            raise DeviceOsError(SystemErrorCode.OTA_MODULE_NOT_FOUND, f"empty module at {offset}")
        data = region[offset : offset + length]
        if prefix.function == ModuleFunction.ASSET:
            fetched = FetchedModule(offset, at, prefix, data)
        else:
            bounds = layout.bounds_for(prefix.function, prefix.index)
            if (
                bounds is None
                or prefix.mcu_target not in (_MCU_DEFAULT, _MCU_ANY)
                or not bounds.holds_end(prefix.end_address)
            ):
                raise DeviceOsError(
                    SystemErrorCode.OTA_MODULE_NOT_FOUND,
                    f"no bounds for function {prefix.function} index {prefix.index} "
                    f"ending at {prefix.end_address:#x}",
                )
            error = (
                SystemErrorCode.OTA_INTEGRITY_CHECK_FAILED  # runs past the region
                if len(data) < length
                else _check_module(data, prefix, layout, installed)
            )
            fetched = FetchedModule(offset, at, prefix, data, error)
        if len(modules) < MAX_COMBINED_MODULE_COUNT:
            modules.append(fetched)
        if not prefix.flags & ModuleFlag.COMBINED:
            return modules
        if length > len(region) - offset:
            raise DeviceOsError(SystemErrorCode.OTA_INVALID_SIZE, "combined part too long")
        offset += length


def validate_modules(modules: Sequence[FetchedModule]) -> None:
    """``validateModules`` (§3.5): each module's checks, then no vector table with DROP
    or COMPRESSED, compression only for user/system/asset, no NCP module (neither Boron
    nor M-SoM has an updatable NCP). Pure.

    Raises:
        DeviceOsError: the first failure's code.
    """
    for m in modules:
        if m.error is not None:
            raise DeviceOsError(m.error, f"module at OTA offset {m.offset}")
        drop = m.flags & ModuleFlag.DROP_MODULE_INFO
        compressed = m.flags & ModuleFlag.COMPRESSED
        if m.prefix_offset > 0 and (drop or compressed):
            raise DeviceOsError(SystemErrorCode.OTA_INVALID_FORMAT, "vector table with DROP/COMP")
        if compressed and m.prefix.function not in _COMPRESSIBLE:
            raise DeviceOsError(SystemErrorCode.OTA_UNSUPPORTED_MODULE, "compressed module type")
        if m.prefix.function == ModuleFunction.NCP_FIRMWARE:
            raise DeviceOsError(SystemErrorCode.OTA_UNSUPPORTED_MODULE, "NCP not updatable")
