"""What the device role needs from the device: Device OS's update API, identity, storage.

On hardware the C++ library implements this over ``Spark_*`` functions, ``System``
calls and a LittleFS file; in Python the emulator does (``bluemule.emulator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bluemule.image import AssetLimits


@dataclass(frozen=True)
class RunningApp:
    """The application the device runs (absent on a device in safe mode with no valid app)."""

    module_version: int
    product_id: int
    product_version: int
    sha256: bytes
    """The SHA-256 stored in the module's suffix (what Device OS reports as the app hash)."""
    required_assets: tuple[tuple[str, bytes], ...]
    """(name, SHA-256 of raw content) of its ASSET_DEPENDENCY extensions."""


@dataclass(frozen=True)
class DeviceLimits:
    """Sizes the device enforces before it erases anything."""

    ota_region_size: int
    ota_safe_size: int
    """Bytes of the OTA region a file may use without touching other data (Boron: the asset
    storage overlaps the OTA tail past 606,208 B)."""
    max_app_size: int
    assets: AssetLimits | None
    compressed_modules: bool


class DeviceOsError(Exception):
    """Device OS refused an update call; ``code`` is its ``system_error_t`` value (negative)."""

    def __init__(self, code: int, name: str) -> None:
        super().__init__(name)
        self.code = code
        self.name = name


class DeviceServices(Protocol):
    """The device the session runs on."""

    @property
    def device_id(self) -> bytes:
        """12 bytes."""
        ...

    @property
    def platform_id(self) -> int:
        """Particle platform id."""
        ...

    @property
    def device_os_version(self) -> int:
        """System part 1 module version (e.g. 6200)."""
        ...

    @property
    def safe_mode(self) -> bool:
        """Running in safe mode (app not running)."""
        ...

    @property
    def limits(self) -> DeviceLimits:
        """Size limits and capabilities."""
        ...

    @property
    def trusted_keys(self) -> tuple[bytes, ...]:
        """Raw Ed25519 public keys whose manifests the device accepts."""
        ...

    def running_app(self) -> RunningApp | None:
        """The installed application, if valid."""
        ...

    def installed_assets(self) -> dict[str, tuple[bytes, int]]:
        """Asset name → (SHA-256 of raw content, bytes of storage used)."""
        ...

    def prepare_update(self, size: int) -> None:
        """``Spark_Prepare_For_Firmware_Update``: erases ``size`` bytes of the OTA region."""

    def save_chunk(self, offset: int, data: bytes) -> None:
        """``Spark_Save_Firmware_Chunk``."""

    def finish_update(self, *, validate_only: bool) -> None:
        """``Spark_Finish_Firmware_Update`` without resetting (resets are deferred)."""

    def cancel_update(self) -> None:
        """Abandon the open update."""

    def kv_get(self, key: str) -> bytes | None:
        """The library's persistent value for ``key``."""
        ...

    def kv_put(self, key: str, value: bytes | None) -> None:
        """Store (or delete, with None) a persistent value atomically."""
