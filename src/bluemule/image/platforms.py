"""Particle platforms: IDs, names, MCU family and the limits that matter for updates.

IDs and names follow npm ``@particle/device-constants`` 4.2.1 (``src/constants.json``).
Sizes come from ``shared/reference/particle.md`` §2.3 and §3.6:

* max application size: device-constants ``firmwareModules[type=userPart].maxSize``;
* OTA region size: ``HAL_OTA_FlashLength`` (nRF52840 4 MB QSPI layout: 1,536,000 B;
  RTL872x: 1,572,864 B). For the 8 MB nRF52840 boards (Tracker, B5-SoM, E-SoM-X)
  it is not confirmed and left ``None``;
* asset storage: device-constants ``assets`` (blocks of 4096 B, 10 reserved, 8 B of
  overhead per block).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final


class McuFamily(enum.StrEnum):
    """The MCU family decides flash layout and where module extensions go."""

    STM32F1 = "stm32f1xx"
    STM32F2 = "stm32f2xx"
    NRF52840 = "nrf52840"
    RTL872X = "rtl872x"
    OTHER = "other"


@dataclass(frozen=True)
class AssetLimits:
    """Asset storage of a platform (a LittleFS instance of its own)."""

    block_size: int
    total_blocks: int
    reserved_blocks: int
    per_block_overhead: int
    max_single_asset_size: int
    """Largest asset *module* (as stored, usually compressed) the platform accepts."""

    @property
    def total_size(self) -> int:
        """Usable bytes: blocks not reserved, times the block size."""
        return self.block_size * (self.total_blocks - self.reserved_blocks)

    def storage_size(self, module_size: int) -> int:
        """Bytes of storage an asset module of ``module_size`` bytes takes."""
        return (
            math.ceil(module_size / (self.block_size - self.per_block_overhead)) * self.block_size
        )


@dataclass(frozen=True)
class Platform:
    """One Particle platform."""

    id: int
    name: str
    """device-constants short name, as particle-cli spells it (``boron``, ``msom``)."""
    display_name: str
    generation: int
    mcu: McuFamily
    max_app_size: int | None = None
    ota_region_size: int | None = None
    app_grows_left: bool = False
    """RTL872x user parts have a fixed end address; extensions go in the prefix."""
    assets: AssetLimits | None = None

    @property
    def supports_compressed_ota(self) -> bool:
        """``HAL_PLATFORM_COMPRESSED_OTA``: the bootloader inflates compressed modules."""
        return self.mcu in (McuFamily.NRF52840, McuFamily.RTL872X)


_NRF_OTA: Final = 1_536_000
_RTL_OTA: Final = 1_572_864
_GEN3_APP: Final = 262_144
_RTL_APP: Final = 1_572_864
_ASSETS_4MB: Final = AssetLimits(4096, 288, 10, 8, 606_208)
_ASSETS_8MB: Final = AssetLimits(4096, 512, 10, 8, 1_572_864)
_ASSETS_RTL: Final = AssetLimits(4096, 288, 10, 8, 1_179_648)

_NRF: Final = McuFamily.NRF52840
_RTL: Final = McuFamily.RTL872X

PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform(0, "core", "Core", 1, McuFamily.STM32F1),
    Platform(3, "gcc", "GCC", -1, McuFamily.OTHER),
    Platform(6, "photon", "Photon", 2, McuFamily.STM32F2, 131_072),
    Platform(8, "p1", "P1", 2, McuFamily.STM32F2, 131_072),
    Platform(10, "electron", "Electron", 2, McuFamily.STM32F2, 131_072),
    Platform(11, "esp32", "ESP32", -1, McuFamily.OTHER),
    Platform(12, "argon", "Argon", 3, _NRF, _GEN3_APP, _NRF_OTA, assets=_ASSETS_4MB),
    Platform(13, "boron", "Boron", 3, _NRF, _GEN3_APP, _NRF_OTA, assets=_ASSETS_4MB),
    Platform(14, "xenon", "Xenon", 3, _NRF, 131_072, _NRF_OTA),
    Platform(15, "esomx", "E-SoM-X", 3, _NRF, _GEN3_APP, None, assets=_ASSETS_8MB),
    Platform(22, "asom", "A-SoM", 3, _NRF, 131_072, _NRF_OTA),
    Platform(23, "bsom", "B-SoM", 3, _NRF, _GEN3_APP, _NRF_OTA, assets=_ASSETS_4MB),
    Platform(24, "xsom", "X-SoM", 3, _NRF, 131_072, _NRF_OTA),
    Platform(25, "b5som", "B5-SoM", 3, _NRF, _GEN3_APP, None, assets=_ASSETS_8MB),
    Platform(
        26, "tracker", "Asset Tracker / Monitor One", 3, _NRF, _GEN3_APP, None, assets=_ASSETS_8MB
    ),
    Platform(28, "trackerm", "Tracker-M", 3, _RTL, _RTL_APP, _RTL_OTA, True, _ASSETS_RTL),
    Platform(31, "raspi", "Raspberry Pi", -1, McuFamily.OTHER),
    Platform(32, "p2", "Photon 2 / P2", 4, _RTL, _RTL_APP, _RTL_OTA, True, _ASSETS_RTL),
    Platform(35, "msom", "M-SoM", 4, _RTL, _RTL_APP, _RTL_OTA, True, _ASSETS_RTL),
    Platform(37, "electron2", "Electron 2", 3, _NRF, _GEN3_APP, None, assets=_ASSETS_8MB),
    Platform(38, "sulu", "Sulu", 4, _RTL, _RTL_APP, _RTL_OTA, True, _ASSETS_RTL),
    Platform(42, "tachyon", "Tachyon", -1, McuFamily.OTHER),
    Platform(43, "linux", "Linux", -1, McuFamily.OTHER),
    Platform(82, "oak", "Oak", -1, McuFamily.OTHER),
    Platform(88, "duo", "Duo", -1, McuFamily.STM32F2),
    Platform(103, "bluz", "Bluz", -1, McuFamily.STM32F2),
)

_BY_ID: Final = {p.id: p for p in PLATFORMS}
_ALIASES: Final = {"muon": "msom", "photon2": "p2", "b-som": "bsom", "m-som": "msom"}
_BY_NAME: Final = {p.name: p for p in PLATFORMS}

DEVICE_PLATFORM_IDS: Final = frozenset(p.id for p in PLATFORMS if p.generation > 0)
"""IDs of real device platforms, as binary-version-reader counts a prefix's platform as known."""


def platform_by_id(platform_id: int) -> Platform | None:
    """The platform with this ID, or ``None`` if Particle defines none."""
    return _BY_ID.get(platform_id)


def platform_by_name(name: str) -> Platform | None:
    """Look a platform up by device-constants name or a common alias (``muon`` → M-SoM)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return _BY_NAME.get(key)
