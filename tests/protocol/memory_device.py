"""A small in-memory device for sans-IO tests of the protocol sessions.

It keeps Device OS's update contract (prepare erases, chunks land at offsets, finish
validates with bluemule.image, assets are stored at once, the app waits for a reset)
without the emulator's flash model, so protocol tests stay fast and byte-exact.
End-to-end tests use the real emulator over Bumble instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bluemule.image import (
    ImageError,
    Module,
    ModuleFunction,
    parse_module,
    platform_by_id,
    unwrap_asset_module,
)
from bluemule.protocol.device_services import DeviceLimits, DeviceOsError, RunningApp


@dataclass
class MemoryDevice:
    """Implements DeviceServices in memory; counts erases and writes."""

    device_id: bytes
    platform_id: int
    app: bytes
    trusted_keys: tuple[bytes, ...]
    device_os_version: int = 6200
    assets: dict[str, bytes] = field(default_factory=dict)  # name -> asset module bytes
    kv: dict[str, bytes] = field(default_factory=dict)
    ota: bytearray | None = None
    staged_app: bytes | None = None
    erases: int = 0
    writes: int = 0
    safe_mode: bool = False
    fail_save_at: set[int] = field(default_factory=set)

    @property
    def limits(self) -> DeviceLimits:
        platform = platform_by_id(self.platform_id)
        assert platform is not None
        assert platform.max_app_size is not None
        ota = platform.ota_region_size or 1_536_000
        safe = 606_208 if platform.name in {"boron", "bsom", "argon"} else ota
        return DeviceLimits(
            ota, safe, platform.max_app_size, platform.assets, platform.supports_compressed_ota
        )

    def running_app(self) -> RunningApp | None:
        m = parse_module(self.app)
        return RunningApp(
            m.prefix.module_version,
            m.suffix.product_id if m.suffix.product_id is not None else 0xFFFF,
            m.suffix.product_version or 0,
            m.suffix.sha256,
            tuple((d.name, d.hash) for d in m.asset_dependencies),
        )

    def installed_assets(self) -> dict[str, tuple[bytes, int]]:
        out = {}
        for name, data in self.assets.items():
            content = unwrap_asset_module(parse_module(data))
            out[name] = (content.sha256, -(-len(data) // 4088) * 4096)
        return out

    def prepare_update(self, size: int) -> None:
        self.erases += 1
        self.ota = bytearray(b"\xff" * size)
        self.staged_app = None

    def save_chunk(self, offset: int, data: bytes) -> None:
        assert self.ota is not None
        self.writes += 1
        if self.writes in self.fail_save_at:
            raise DeviceOsError(-100, "FLASH_ERROR")
        self.ota[offset : offset + len(data)] = data

    def finish_update(self, *, validate_only: bool) -> None:
        assert self.ota is not None
        try:
            module: Module = parse_module(bytes(self.ota))
        except ImageError:
            raise DeviceOsError(-1000, "OTA_INVALID_FORMAT") from None
        if not module.crc_ok:
            raise DeviceOsError(-1001, "OTA_INTEGRITY_CHECK_FAILED")
        if validate_only:
            return
        if module.function == ModuleFunction.ASSET:
            name = unwrap_asset_module(module).name
            self.assets[name] = module.data
        else:
            self.staged_app = module.data
        self.ota = None

    def cancel_update(self) -> None:
        self.ota = None

    def kv_get(self, key: str) -> bytes | None:
        return self.kv.get(key)

    def kv_put(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.kv.pop(key, None)
        else:
            self.kv[key] = value

    def reset(self) -> None:
        """Bootloader copy of a staged app (decompressing), then the boot checks."""
        from bluemule.image import decompress_module  # noqa: PLC0415

        if self.staged_app is not None:
            m = parse_module(self.staged_app)
            self.app = decompress_module(m) if m.is_compressed else m.data
            self.staged_app = None
        running = parse_module(self.app)
        have = {n: s for n, (s, _) in self.installed_assets().items()}
        self.safe_mode = any(have.get(d.name) != d.hash for d in running.asset_dependencies)

    def state_digest(self) -> str:
        """Everything installed (not the OTA scratch area), to compare before/after."""
        h = hashlib.sha256(self.app)
        for name in sorted(self.assets):
            h.update(name.encode() + self.assets[name])
        h.update(repr(sorted(self.kv.items())).encode())
        return h.hexdigest()
