"""Release uploads: validate a bundle or ``.bin`` and compute the parts devices will get.

The parts mirror :func:`bluemule.protocol.release.build_release`: each asset as an asset
module, then the application, each compressed when the platform's bootloader inflates
compressed modules; so a per-device manifest can later be built from stored parts alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bluemule.image import (
    ImageError,
    Module,
    ModuleFunction,
    check_bundle,
    compress_module,
    create_asset_module,
    looks_like_zip,
    parse_module,
    platform_by_id,
    read_bundle,
)
from bluemule.protocol.constants import PartFlag, PartKind
from bluemule.server.files import BlobStore
from bluemule.server.models import Blob, Release, ReleasePart
from bluemule.server.problems import InvalidContentError


@dataclass(frozen=True)
class Part:
    """One part as sent to a device."""

    kind: PartKind
    name: str
    data: bytes
    original_size: int
    content_sha256: str
    flags: int


@dataclass(frozen=True)
class CheckedRelease:
    """A validated upload and its parts (assets first, application last)."""

    app: Module
    platform_id: int
    min_device_os: int
    parts: tuple[Part, ...]


def _min_device_os(module: Module) -> int:
    deps = [
        d
        for d in (module.prefix.dependency, module.prefix.dependency2)
        if d.function == ModuleFunction.SYSTEM_PART
    ]
    return max((d.version for d in deps), default=0)


def _check_app(module: Module) -> int:
    """Check what a bundle check does not; returns the platform id."""
    if module.function != ModuleFunction.USER_PART:
        raise InvalidContentError("the application is not a user part module")
    if module.is_compressed:
        raise InvalidContentError("upload the uncompressed application")
    if not module.crc_ok:
        raise InvalidContentError("application CRC-32 does not match its content")
    if not module.sha256_ok:
        raise InvalidContentError("application SHA-256 does not match its content")
    platform = module.platform
    if platform is None or not platform.max_app_size:
        raise InvalidContentError(
            f"unsupported platform id {module.prefix.platform_id} for an application"
        )
    if len(module.data) > platform.max_app_size:
        raise InvalidContentError(
            f"application is {len(module.data)} bytes; {platform.display_name} allows "
            f"{platform.max_app_size}"
        )
    return platform.id


def check_upload(data: bytes, filename: str) -> CheckedRelease:
    """Validate a Particle bundle zip or an application ``.bin``."""
    try:
        if looks_like_zip(data):
            bundle = read_bundle(data)
            check = check_bundle(bundle)
            if not check.ok:
                raise InvalidContentError("invalid bundle: " + "; ".join(check.problems))
            app, app_name, assets = check.app, bundle.app_name, list(bundle.assets.items())
        else:
            app, app_name, assets = parse_module(data), filename, []
        platform_id = _check_app(app)
    except ImageError as exc:
        raise InvalidContentError(f"not a valid bundle or module: {exc}") from None
    platform = platform_by_id(platform_id)
    assert platform is not None
    compress = platform.supports_compressed_ota
    parts: list[Part] = []
    try:
        for name, raw in assets:
            plain = create_asset_module(raw, name, compress=False)
            sent = create_asset_module(raw, name) if compress else plain
            flags = int(PartFlag.COMPRESSED) if sent != plain else 0
            content = hashlib.sha256(raw).hexdigest()
            parts.append(Part(PartKind.ASSET, name, sent, len(plain), content, flags))
        sent_app = compress_module(app) if compress else app.data
    except ImageError as exc:
        raise InvalidContentError(f"cannot prepare the release parts: {exc}") from None
    flags = int(PartFlag.COMPRESSED) if sent_app != app.data else 0
    parts.append(
        Part(
            PartKind.APPLICATION,
            app_name[-64:],
            sent_app,
            len(app.data),
            app.suffix.sha256.hex(),
            flags,
        )
    )
    return CheckedRelease(app, platform_id, _min_device_os(app), tuple(parts))


def store_release(
    session: Session, blobs: BlobStore, data: bytes, filename: str, notes: str
) -> Release:
    """Validate and store an upload in one transaction; on any error nothing is kept."""
    checked = check_upload(data, filename)
    new_files: list[str] = []

    def put(content: bytes) -> str:
        digest, created = blobs.put(content)
        if created:
            new_files.append(digest)
        if session.get(Blob, digest) is None:
            session.add(Blob(sha256=digest, size=len(content)))
        return digest

    try:
        original = put(data)
        suffix = checked.app.suffix
        release = Release(
            platform_id=checked.platform_id,
            product_id=suffix.product_id,
            version=suffix.product_version,
            min_device_os=checked.min_device_os,
            app_sha256=suffix.sha256.hex(),
            original_sha256=original,
            original_name=filename[-255:],
            notes=notes,
            groups=[],
            product_default=False,
            created_at=datetime.now(UTC),
            app_assets=[[d.name, d.hash.hex()] for d in checked.app.asset_dependencies],
        )
        for index, part in enumerate(checked.parts):
            release.parts.append(
                ReleasePart(
                    index=index,
                    kind=int(part.kind),
                    name=part.name,
                    blob_sha256=put(part.data),
                    size=len(part.data),
                    original_size=part.original_size,
                    content_sha256=part.content_sha256,
                    flags=part.flags,
                )
            )
        session.add(release)
        session.commit()
    except BaseException:
        session.rollback()
        for digest in new_files:
            blobs.remove(digest)
        raise
    return release
