"""Numbers of the Particle module format, named once.

Every value cites where Device OS defines it (``dynalib/inc/module_info.h`` unless
noted) and matches Particle's ``binary-version-reader`` (``lib/ModuleInfo.js``).
See ``docs/image-format.md`` for the byte layout these names describe.
"""

from __future__ import annotations

import enum
from typing import Final

PREFIX_SIZE: Final = 24
"""``module_info_t``: start, end, mcu target, flags, version, platform, function, index, 2 deps."""

MIN_SUFFIX_SIZE: Final = 36
"""``module_info_suffix_base_t``: reserved u16, sha256[32], size u16."""

SUFFIX_PRODUCT_SIZE: Final = 4
"""Raw ``product_id u16, product_version u16`` in front of the base suffix (Gen 3 layout)."""

MAX_SUFFIX_SIZE: Final = 0xFFFF
CRC_SIZE: Final = 4
SHA256_SIZE: Final = 32
SHA256_TAIL: Final = SHA256_SIZE + 2 + CRC_SIZE
"""The SHA-256 covers everything but its own 32 bytes, the suffix size field and the CRC."""

EXTENSION_HEADER_SIZE: Final = 4
COMPRESSED_HEADER_SIZE: Final = 8
"""``compressed_module_header``: size u16, method u8, window_bits u8, original_size u32."""

PREFIX_START_ALIGNMENT: Final = 8
"""binary-version-reader ``DEFAULT_START_ALIGNMENT``: left-growing modules start 8-aligned."""

PREFERRED_PREFIX_OFFSETS: Final = (0, 0x200, 0x184, 0xC0, 0x10C)
"""Where prefixes usually sit: start, nRF52840 vector table, STM32F2 vector table, older ones."""

MAX_PREFIX_OFFSET: Final = 8 * 1024
"""Prefixes further in than this are not looked for (as binary-version-reader)."""


class ModuleFunction(enum.IntEnum):
    """``module_function_t``: what a module is."""

    NONE = 0
    RESOURCE = 1
    BOOTLOADER = 2
    MONO_FIRMWARE = 3
    SYSTEM_PART = 4
    USER_PART = 5
    SETTINGS = 6
    NCP_FIRMWARE = 7
    RADIO_STACK = 8
    ASSET = 9

    @property
    def label(self) -> str:
        """Snake-case name used in JSON output (``user_part``, ``ncp`` …)."""
        return _FUNCTION_LABELS[self]


_FUNCTION_LABELS: Final = {
    ModuleFunction.NONE: "none",
    ModuleFunction.RESOURCE: "resource",
    ModuleFunction.BOOTLOADER: "bootloader",
    ModuleFunction.MONO_FIRMWARE: "mono_firmware",
    ModuleFunction.SYSTEM_PART: "system_part",
    ModuleFunction.USER_PART: "user_part",
    ModuleFunction.SETTINGS: "settings",
    ModuleFunction.NCP_FIRMWARE: "ncp",
    ModuleFunction.RADIO_STACK: "radio_stack",
    ModuleFunction.ASSET: "asset",
}


def function_label(value: int) -> str:
    """Name of a module function, or ``unknown_<n>`` for numbers Device OS does not define."""
    try:
        return ModuleFunction(value).label
    except ValueError:
        return f"unknown_{value}"


class ModuleFlag(enum.IntFlag):
    """``module_info_flags_t``."""

    DROP_MODULE_INFO = 0x01
    """Prefix, suffix and CRC are not copied to the destination (radio stack, assets)."""
    COMPRESSED = 0x02
    """Body is a raw-Deflate stream behind an 8-byte header; only the bootloader inflates."""
    COMBINED = 0x04
    """Another complete module follows in the same file."""
    ENCRYPTED = 0x08
    """RTL872x prebootloader images in the RSIP-encrypted region."""
    PREFIX_EXTENSIONS = 0x10
    """TLV extensions follow the 24-byte prefix, terminated by END."""


KNOWN_FLAGS: Final = int(
    ModuleFlag.DROP_MODULE_INFO
    | ModuleFlag.COMPRESSED
    | ModuleFlag.COMBINED
    | ModuleFlag.ENCRYPTED
    | ModuleFlag.PREFIX_EXTENSIONS
)


def flag_names(flags: int) -> list[str]:
    """Names of the set flags in bit order; unknown bits as ``0x..``."""
    names = [f.name for f in ModuleFlag if flags & f.value and f.name is not None]
    unknown = flags & ~KNOWN_FLAGS
    for bit in range(8):
        if unknown & (1 << bit):
            names.append(f"0x{1 << bit:02x}")
    return names


class ExtensionType(enum.IntEnum):
    """``module_info_extension_type_t``: TLV type codes (length includes the 4-byte header)."""

    END = 0x0000
    PRODUCT_DATA = 0x0001
    DYNAMIC_LOCATION = 0x0002
    DEPENDENCY = 0x0003
    HASH = 0x0010
    NAME = 0x0011
    ASSET_DEPENDENCY = 0x0012
    SECURITY_MODE = 0x0013
    ASSET_TYPE = 0x0014
    INVALID = 0xFFFF


class HashType(enum.IntEnum):
    """Hash algorithm in HASH and ASSET_DEPENDENCY extensions."""

    SHA256 = 0


class SecurityMode(enum.IntEnum):
    """SECURITY_MODE extension value (``services/src/security_mode.cpp``)."""

    NONE = 0
    PROTECTED = 1


class AssetType(enum.IntEnum):
    """ASSET_TYPE extension value (binary-version-reader only; Device OS support unconfirmed)."""

    DEFAULT = 0
    ENV_VARS_APP = 1
    ENV_VARS_SNAPSHOT = 2
