"""Turn an application and its assets into the parts and manifest for one device.

Pure: image bytes in, a signed :class:`Manifest` and the exact bytes to send out.
Assets go first, the application last (Device OS stores assets at once and the app
must find them at boot). Parts are compressed modules when the device can inflate them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from bluemule.image import (
    Module,
    ModuleFunction,
    compress_module,
    create_asset_module,
    parse_module,
    platform_by_id,
)
from bluemule.protocol.constants import DEVICE_ID_SIZE, ManifestFlag, PartFlag, PartKind
from bluemule.protocol.errors import ManifestError
from bluemule.protocol.manifest import (
    ANY_PRODUCT,
    AssetRequirement,
    Manifest,
    ManifestPart,
    SigningKey,
    sign_manifest,
)


@dataclass(frozen=True)
class Release:
    """A signed manifest and, in the same order as its parts, the bytes of each part."""

    manifest: Manifest
    payloads: tuple[bytes, ...]

    @property
    def manifest_bytes(self) -> bytes:
        """The manifest as sent."""
        return self.manifest.encode()

    @property
    def total_bytes(self) -> int:
        """Bytes of all parts."""
        return sum(len(p) for p in self.payloads)


def parse_device_id(text: str) -> bytes:
    """Particle's 24-hex-digit device id as 12 bytes."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != DEVICE_ID_SIZE:
        raise ManifestError(f"device id {text!r} is not 24 hex digits")
    return raw


def _part(kind: PartKind, name: str, module: Module, sent: bytes, content: bytes) -> ManifestPart:
    flags = PartFlag.COMPRESSED if sent != module.data else 0
    return ManifestPart(
        kind, name, len(sent), hashlib.sha256(sent).digest(), content, len(module.data), int(flags)
    )


def build_release(
    *,
    key: SigningKey,
    device_id: bytes,
    app: bytes,
    assets: Sequence[tuple[str, bytes]] = (),
    release_counter: int,
    compress: bool = True,
    allow_downgrade: bool = False,
    min_device_os: int | None = None,
    app_name: str = "app.bin",
) -> Release:
    """Sign a manifest for ``device_id`` installing ``app`` and raw ``assets``.

    ``min_device_os`` defaults to the app's dependency on system part 1. The platform,
    product and asset requirements come from the app itself.
    """
    module = parse_module(app)
    if module.function != ModuleFunction.USER_PART:
        raise ManifestError("the application must be a user part module")
    if module.is_compressed:
        raise ManifestError("give the uncompressed application; parts are compressed here")
    platform = platform_by_id(module.prefix.platform_id)
    if platform is None:
        raise ManifestError(f"unknown platform id {module.prefix.platform_id}")
    compress = compress and platform.supports_compressed_ota
    parts: list[ManifestPart] = []
    payloads: list[bytes] = []
    for name, raw in assets:
        plain = create_asset_module(raw, name, compress=False)
        sent = create_asset_module(raw, name) if compress else plain
        parts.append(
            _part(PartKind.ASSET, name, parse_module(plain), sent, hashlib.sha256(raw).digest())
        )
        payloads.append(sent)
    sent_app = compress_module(module) if compress else module.data
    parts.append(_part(PartKind.APPLICATION, app_name, module, sent_app, module.suffix.sha256))
    payloads.append(sent_app)
    if min_device_os is None:
        deps = [
            d
            for d in (module.prefix.dependency, module.prefix.dependency2)
            if d.function == ModuleFunction.SYSTEM_PART
        ]
        min_device_os = max((d.version for d in deps), default=0)
    pid = module.suffix.product_id
    manifest = Manifest(
        device_id=device_id,
        platform_id=module.prefix.platform_id,
        release_counter=release_counter,
        parts=tuple(parts),
        app_assets=tuple(AssetRequirement(d.name, d.hash) for d in module.asset_dependencies),
        product_id=ANY_PRODUCT if pid is None else pid,
        product_version=module.suffix.product_version or 0,
        min_device_os=min_device_os,
        flags=int(ManifestFlag.ALLOW_DOWNGRADE) if allow_downgrade else 0,
    )
    return Release(sign_manifest(manifest, key), tuple(payloads))
