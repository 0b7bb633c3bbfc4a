"""The bluemule library's view of an emulated device (``DeviceServices`` over it).

On hardware the C++ library implements the same interface over ``Spark_*`` calls and a
LittleFS file; here it is a thin adapter, so the protocol's device role runs unchanged
on the emulator.
"""

from __future__ import annotations

from typing import Final

from bluemule.emulator.device import EmulatedDevice
from bluemule.emulator.errors import DeviceOsError as EmulatedDeviceOsError
from bluemule.protocol.constants import ED25519_PUBLIC_KEY_SIZE
from bluemule.protocol.device_services import DeviceLimits, DeviceOsError, RunningApp

KV_TRUSTED_KEYS: Final = "trusted_keys"
_NO_PRODUCT: Final = 0xFFFF


def set_trusted_keys(device: EmulatedDevice, keys: list[bytes]) -> None:
    """Store the raw Ed25519 public keys the device's library accepts manifests from."""
    if any(len(k) != ED25519_PUBLIC_KEY_SIZE for k in keys):
        raise ValueError("trusted keys are raw 32-byte Ed25519 public keys")
    device.kv_put(KV_TRUSTED_KEYS, b"".join(keys))


class EmulatorServices:
    """:class:`~bluemule.protocol.device_services.DeviceServices` for an emulated device."""

    def __init__(self, device: EmulatedDevice) -> None:
        self.device = device

    @property
    def device_id(self) -> bytes:
        return bytes.fromhex(self.device.device_id)

    @property
    def platform_id(self) -> int:
        return self.device.platform_id

    @property
    def device_os_version(self) -> int:
        return self.device.device_os_version

    @property
    def safe_mode(self) -> bool:
        return self.device.mode == "safe"

    @property
    def limits(self) -> DeviceLimits:
        layout, platform = self.device.layout, self.device.platform
        ota = layout.ota.length
        return DeviceLimits(
            ota_region_size=ota,
            ota_safe_size=layout.ota_safe_length or ota,
            max_app_size=platform.max_app_size or ota,
            assets=platform.assets,
            compressed_modules=platform.supports_compressed_ota,
        )

    @property
    def trusted_keys(self) -> tuple[bytes, ...]:
        raw = self.device.kv_get(KV_TRUSTED_KEYS) or b""
        n = ED25519_PUBLIC_KEY_SIZE
        return tuple(raw[i : i + n] for i in range(0, len(raw) - n + 1, n))

    def running_app(self) -> RunningApp | None:
        app = self.device.running_app
        if app is None:
            return None
        s = app.suffix
        return RunningApp(
            module_version=app.prefix.module_version,
            product_id=_NO_PRODUCT if s.product_id is None else s.product_id,
            product_version=s.product_version or 0,
            sha256=s.sha256,
            required_assets=tuple((d.name, d.hash) for d in app.asset_dependencies),
        )

    def installed_assets(self) -> dict[str, tuple[bytes, int]]:
        storage = self.device.asset_storage
        return {
            name: (asset.sha256, storage.storage_size(len(asset.module.data)))
            for name, asset in self.device.installed_assets.items()
        }

    def prepare_update(self, size: int) -> None:
        try:
            self.device.prepare_update(size)
        except EmulatedDeviceOsError as exc:
            raise DeviceOsError(int(exc.code), exc.code.name) from None

    def save_chunk(self, offset: int, data: bytes) -> None:
        try:
            self.device.save_chunk(offset, data)
        except EmulatedDeviceOsError as exc:
            raise DeviceOsError(int(exc.code), exc.code.name) from None

    def finish_update(self, *, validate_only: bool) -> None:
        result = self.device.finish_update(validate_only=validate_only)
        if result.error is not None:
            raise DeviceOsError(int(result.error), result.error.name)

    def cancel_update(self) -> None:
        if self.device.update_in_progress:
            self.device.cancel_update()

    def kv_get(self, key: str) -> bytes | None:
        return self.device.kv_get(key)

    def kv_put(self, key: str, value: bytes | None) -> None:
        self.device.kv_put(key, value)
