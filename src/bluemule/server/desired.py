"""Desired releases from the database: :mod:`bluemule.server.targeting` over stored rows,
and the per-device signed manifest a relay carries to a device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bluemule.protocol.constants import ManifestFlag, PartKind
from bluemule.protocol.manifest import (
    ANY_PRODUCT,
    AssetRequirement,
    Manifest,
    ManifestPart,
    SigningKey,
    sign_manifest,
)
from bluemule.server.models import Device, Release
from bluemule.server.targeting import TargetDevice, TargetRelease, desired_release


def target_device(device: Device) -> TargetDevice:
    """What targeting needs of a device row."""
    return TargetDevice(
        device_id=device.id,
        platform_id=device.platform_id,
        product_id=device.product_id,
        groups=frozenset(device.groups),
        development=device.development,
        locked_release=device.locked_release_id,
    )


def target_release(release: Release) -> TargetRelease:
    """What targeting needs of a release row."""
    return TargetRelease(
        release_id=release.id,
        platform_id=release.platform_id,
        product_id=release.product_id,
        version=release.version or 0,
        groups=frozenset(release.groups),
        product_default=release.product_default,
    )


def releases_for(session: Session, devices: Sequence[Device]) -> dict[int, Release]:
    """Every release of the devices' platforms, and the ones they are locked to, by id."""
    platforms = {d.platform_id for d in devices}
    locked = {d.locked_release_id for d in devices if d.locked_release_id is not None}
    if not platforms:
        return {}
    query = (
        select(Release)
        .where(Release.platform_id.in_(platforms) | Release.id.in_(locked))
        .options(selectinload(Release.parts))
    )
    return {r.id: r for r in session.scalars(query)}


def desired_releases(session: Session, devices: Sequence[Device]) -> dict[str, Release | None]:
    """The release each device should run (Particle's precedence), or None."""
    releases = releases_for(session, devices)
    targets = [target_release(r) for r in releases.values()]
    out: dict[str, Release | None] = {}
    for device in devices:
        wanted = desired_release(target_device(device), targets)
        release = releases.get(wanted) if wanted is not None else None
        if release is not None and release.platform_id != device.platform_id:
            release = None  # a lock to another platform's release can never install
        out[device.id] = release
    return out


def reported_app_sha256(device: Device) -> str | None:
    """The app SHA-256 the device last reported running."""
    value = device.state.get("app_sha256")
    return value.lower() if isinstance(value, str) else None


def reported_release_counter(device: Device) -> int | None:
    """The release counter the device last reported."""
    value = device.state.get("release_counter")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def needs_update(device: Device, release: Release) -> bool:
    """The device does not (as far as we know) run ``release``'s application."""
    return reported_app_sha256(device) != release.app_sha256.lower()


@dataclass(frozen=True)
class DeviceManifest:
    """The signed manifest for one device and release."""

    manifest: Manifest
    allow_downgrade: bool


def manifest_allows_downgrade(device: Device, release: Release) -> bool:
    """The device last reported a newer release counter than ``release``'s."""
    counter = reported_release_counter(device)
    return counter is not None and release.id < counter


def device_manifest(key: SigningKey, device: Device, release: Release) -> DeviceManifest:
    """Sign the manifest installing ``release`` on ``device`` from the stored parts.

    Ed25519 is deterministic, so the same device, release and reported counter always
    give the same bytes.
    """
    downgrade = manifest_allows_downgrade(device, release)
    parts = tuple(
        ManifestPart(
            kind=PartKind(p.kind),
            name=p.name,
            size=p.size,
            sha256=bytes.fromhex(p.blob_sha256),
            content_sha256=bytes.fromhex(p.content_sha256),
            original_size=p.original_size,
            flags=p.flags,
        )
        for p in release.parts
    )
    manifest = Manifest(
        device_id=bytes.fromhex(device.id),
        platform_id=release.platform_id,
        release_counter=release.id,
        parts=parts,
        app_assets=tuple(
            AssetRequirement(name, bytes.fromhex(sha)) for name, sha in release.app_assets
        ),
        product_id=ANY_PRODUCT if release.product_id is None else release.product_id,
        product_version=release.version or 0,
        min_device_os=release.min_device_os,
        flags=int(ManifestFlag.ALLOW_DOWNGRADE) if downgrade else 0,
    )
    return DeviceManifest(sign_manifest(manifest, key), downgrade)
