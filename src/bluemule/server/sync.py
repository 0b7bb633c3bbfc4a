"""``GET /api/relay/v1/sync``: the desired state of one relay's site, cheap to poll.

The answer lists the site's devices that do not run their desired release, each with a
manifest signed for it, its parts and (if it has one) its mobile secret sealed for the
asking relay. The ETag comes from revisions (:mod:`bluemule.server.revisions`), answers
and signed manifests are cached per process (:mod:`bluemule.server.sync_cache`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

from fastapi import Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bluemule.relay.sealed import seal_mobile_secret, sealing_key
from bluemule.server.app import ServerState
from bluemule.server.desired import (
    desired_releases,
    device_manifest,
    manifest_allows_downgrade,
    needs_update,
)
from bluemule.server.deviceos import needed_parts, sync_part
from bluemule.server.models import (
    Device,
    DeviceOsPart,
    FleetRevision,
    Relay,
    Release,
    ReleasePart,
    Site,
)
from bluemule.server.problems import UnauthorizedError
from bluemule.server.revisions import sync_etag
from bluemule.server.rollouts_api import withheld


def relay_token_digest(request: Request) -> str:
    """SHA-256 (hex) of the bearer token, as relays' tokens are stored."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <relay token>)")
    return hashlib.sha256(token.strip().encode()).hexdigest()


def setup_code(serial: str) -> str:
    """The setup code Device OS advertises: the serial number's last 6 characters, upper
    case (the emulator uses its device id's last 6 as its serial's)."""
    return serial[-6:].upper()


def site_devices(session: Session, relay: Relay) -> list[Device]:
    """The devices at the relay's site."""
    return list(session.scalars(select(Device).where(Device.site_id == relay.site_id)))


class SyncPart(BaseModel):
    """One part to send, in order; ``blob`` is fetched from ``/api/relay/v1/blobs/{blob}``."""

    index: int
    kind: Literal["asset", "application"]
    name: str
    blob: str
    size: int
    sha256: str


class SyncDeviceOsPart(BaseModel):
    """A Device OS module (bootloader or system part) from ``bluemule admin deviceos``."""

    index: int
    kind: Literal["bootloader", "system_part"]
    name: str
    blob: str
    size: int
    version: int


class SyncDevice(BaseModel):
    """What one device should install."""

    device_id: str
    platform_id: int
    setup_code: str | None = Field(
        default=None,
        description="the last 6 characters of the device's serial number (upper case): what "
        "it advertises in listening mode (Particle's manufacturer data); only when known",
    )
    release_id: int
    min_device_os: int = Field(description="the release's minimum Device OS (e.g. 6200)")
    allow_downgrade: bool
    manifest: str = Field(description="the signed manifest, base64")
    manifest_sha256: str
    parts: list[SyncPart]
    device_os_parts: list[SyncDeviceOsPart] = Field(
        default_factory=list,
        description="Device OS modules to install first over the control channel, in order: "
        "only for a device whose reported Device OS is below min_device_os (or unknown)",
    )
    mobile_secret_sealed: str | None = Field(
        default=None,
        description="the device's mobile secret sealed for this relay "
        "(bluemule.relay.sealed.open_mobile_secret); only when the device has one",
    )


class SyncOut(BaseModel):
    """The desired state of the site's devices that do not run their desired release."""

    site: str
    release_key: str = Field(
        description="the server's Ed25519 manifest key (raw, base64); relays pin it at first "
        "sync and check every manifest against it before using Device OS's control channel"
    )
    devices: list[SyncDevice]


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _part(p: ReleasePart) -> dict[str, Any]:
    return {
        "index": p.index,
        "kind": "asset" if p.kind == 1 else "application",
        "name": p.name,
        "blob": p.blob_sha256,
        "size": p.size,
        "sha256": p.blob_sha256,
    }


def _signed_manifest(state: ServerState, device: Device, release: Release) -> tuple[bytes, bool]:
    """The encoded manifest for ``device`` and ``release``, signed once per process."""
    downgrade = manifest_allows_downgrade(device, release)
    key = (device.id, release.id, release.app_sha256, downgrade)
    encoded = state.sync_cache.manifests.get(key)
    if encoded is None:
        encoded = device_manifest(state.signing_key, device, release).manifest.encode()
        state.sync_cache.manifests.put(key, encoded)
    return encoded, downgrade


def sync_body(session: Session, state: ServerState, relay: Relay) -> bytes:
    """The canonical JSON of :class:`SyncOut` for the relay's site (sorted keys, compact)."""
    devices = sorted(site_devices(session, relay), key=lambda d: d.id)
    desired = desired_releases(session, devices)
    gated = withheld(session, desired)  # staged rollouts (bluemule.server.rollouts_api)
    items: list[dict[str, Any]] = []
    parts: dict[int, list[dict[str, Any]]] = {}
    relay_key = sealing_key(bytes.fromhex(relay.token_sha256))
    os_parts = list(session.scalars(select(DeviceOsPart)))
    for device in devices:
        release = desired[device.id]
        if release is None or not needs_update(device, release) or device.id in gated:
            continue
        encoded, downgrade = _signed_manifest(state, device, release)
        if release.id not in parts:
            parts[release.id] = [_part(p) for p in release.parts]
        item: dict[str, Any] = {
            "device_id": device.id,
            "platform_id": device.platform_id,
            "release_id": release.id,
            "min_device_os": release.min_device_os,
            "allow_downgrade": downgrade,
            "manifest": base64.b64encode(encoded).decode(),
            "manifest_sha256": hashlib.sha256(encoded).hexdigest(),
            "parts": parts[release.id],
        }
        if needed := needed_parts(os_parts, device, release):
            item["device_os_parts"] = [sync_part(i, p) for i, p in enumerate(needed)]
        if device.serial is not None:
            item["setup_code"] = setup_code(device.serial)
        if device.mobile_secret is not None and device.site_id == relay.site_id:
            secret = state.secrets.open(device.mobile_secret, device.id).encode()
            item["mobile_secret_sealed"] = seal_mobile_secret(relay_key, device.id, secret)
        items.append(item)
    release_key = base64.b64encode(state.signing_key.public_key).decode()
    out = {"site": relay.site.name, "release_key": release_key, "devices": items}
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()


def sync_response(request: Request, state: ServerState) -> Response:
    """``GET /sync``: 304 when ``If-None-Match`` carries the current revision ETag, else the
    answer, from the per-process cache when it was built under the same ETag.

    The ETag comes from the site's and the fleet's revisions (:mod:`.revisions`), read
    before anything else in one autocommit statement that also authenticates the relay.
    """
    digest = relay_token_digest(request)
    with state.autocommit.connect() as connection:  # one round trip, no BEGIN/ROLLBACK
        found = connection.execute(
            select(Relay.id, Relay.site_id, Site.revision, FleetRevision.revision)
            .join(Site, Site.id == Relay.site_id)
            .join(FleetRevision, FleetRevision.id == 1)
            .where(Relay.token_sha256 == digest, Relay.revoked_at.is_(None))
        ).first()
    if found is None:
        raise UnauthorizedError("wrong relay token")
    relay_id, site_id, site_revision, fleet_revision = found
    etag = sync_etag(relay_id, site_id, site_revision, fleet_revision, state.signing_key_id)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    body = state.sync_cache.answer(relay_id, etag)
    if body is None:
        with state.sessions() as session:
            if state.engine.dialect.name == "postgresql":  # one snapshot for the whole answer
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            relay = session.get(Relay, relay_id)
            assert relay is not None
            body = sync_body(session, state, relay)
        state.sync_cache.store_answer(relay_id, etag, body)
    return Response(body, media_type="application/json", headers=headers)
