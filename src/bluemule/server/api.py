"""The admin API: ``/api/admin/v1/`` relays, devices and releases."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool

from bluemule.image import platform_by_id, platform_by_name
from bluemule.server.app import DB, State, require_admin
from bluemule.server.db import as_utc
from bluemule.server.models import Device, Relay, Release, Site
from bluemule.server.problems import (
    ConflictError,
    InvalidContentError,
    NotFoundError,
    ProblemError,
)
from bluemule.server.releases import store_release

DEVICE_ID = r"^[0-9a-fA-F]{24}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class RelayIn(BaseModel):
    """A new relay."""

    name: str = Field(pattern=NAME)
    site: str = Field(pattern=NAME)


class RelayOut(BaseModel):
    """A relay (its token is shown only when it is created)."""

    id: int
    name: str
    site: str
    created_at: datetime
    revoked_at: datetime | None = None


class RelayCreated(RelayOut):
    """A new relay and its bearer token, shown this once."""

    token: str


class DeviceIn(BaseModel):
    """A new device."""

    id: str = Field(pattern=DEVICE_ID, description="Particle device ID (24 hex digits)")
    platform: str = Field(description="platform name (boron, msom, …) or numeric id")
    site: str = Field(pattern=NAME)
    product_id: int | None = Field(default=None, ge=0, le=0xFFFF)
    groups: list[Annotated[str, Field(pattern=NAME)]] = Field(default_factory=list)
    development: bool = False
    mobile_secret: str | None = Field(default=None, min_length=1, max_length=128)
    serial: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Za-z]{6,64}$",
        description="serial number from the label (its last 6 characters: the setup code)",
    )


class DeviceOut(BaseModel):
    """A device; the mobile secret itself is never returned."""

    id: str
    platform: str
    platform_id: int
    product_id: int | None
    site: str
    groups: list[str]
    development: bool
    locked_release_id: int | None
    has_mobile_secret: bool
    serial: str | None = None
    state: dict[str, Any]
    last_seen_at: datetime | None
    last_seen_relay: str | None = Field(description="the relay that saw the device last")
    last_rssi: int | None = Field(description="its signal strength then (dBm)")


class PartOut(BaseModel):
    """One part of a release, as a device receives it."""

    index: int
    kind: str
    name: str
    blob_sha256: str
    size: int
    original_size: int
    content_sha256: str
    flags: int
    compressed: bool


class ReleaseOut(BaseModel):
    """A release; ``id`` is its release counter."""

    id: int
    platform: str
    platform_id: int
    product_id: int | None
    version: int | None
    min_device_os: int
    app_sha256: str
    original_sha256: str
    original_name: str
    notes: str
    created_at: datetime
    groups: list[str] = Field(default_factory=list, description="groups it is released to")
    product_default: bool = False
    parts: list[PartOut]


def _platform_name(platform_id: int) -> str:
    platform = platform_by_id(platform_id)
    return platform.name if platform else str(platform_id)


def _site(session: Session, name: str) -> Site:
    site = session.scalar(select(Site).where(Site.name == name))
    if site is None:
        site = Site(name=name)
        session.add(site)
        session.flush()
    return site


def _relay_out(relay: Relay) -> RelayOut:
    return RelayOut(
        id=relay.id,
        name=relay.name,
        site=relay.site.name,
        created_at=as_utc(relay.created_at),
        revoked_at=relay.revoked_at and as_utc(relay.revoked_at),
    )


def _device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        platform=_platform_name(device.platform_id),
        platform_id=device.platform_id,
        product_id=device.product_id,
        site=device.site.name,
        groups=list(device.groups),
        development=device.development,
        locked_release_id=device.locked_release_id,
        has_mobile_secret=device.mobile_secret is not None,
        serial=device.serial,
        state=dict(device.state),
        last_seen_at=device.last_seen_at and as_utc(device.last_seen_at),
        last_seen_relay=device.last_seen_relay.name if device.last_seen_relay else None,
        last_rssi=device.last_rssi,
    )


def _release_out(release: Release) -> ReleaseOut:
    return ReleaseOut(
        id=release.id,
        platform=_platform_name(release.platform_id),
        platform_id=release.platform_id,
        product_id=release.product_id,
        version=release.version,
        min_device_os=release.min_device_os,
        app_sha256=release.app_sha256,
        original_sha256=release.original_sha256,
        original_name=release.original_name,
        notes=release.notes,
        created_at=as_utc(release.created_at),
        groups=list(release.groups),
        product_default=release.product_default,
        parts=[
            PartOut(
                index=p.index,
                kind="asset" if p.kind == 1 else "application",
                name=p.name,
                blob_sha256=p.blob_sha256,
                size=p.size,
                original_size=p.original_size,
                content_sha256=p.content_sha256,
                flags=p.flags,
                compressed=bool(p.flags & 1),
            )
            for p in release.parts
        ],
    )


def _commit(session: Session, conflict: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(conflict) from None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"upload is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"upload exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def admin_router() -> APIRouter:
    """The admin routes (bearer admin token)."""
    router = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(require_admin)])

    @router.post("/relays", status_code=201, tags=["relays"])
    def add_relay(body: RelayIn, session: DB) -> RelayCreated:
        """Register a relay; the response carries its token, which is not stored."""
        token = "bmr_" + secrets.token_urlsafe(32)
        relay = Relay(
            name=body.name,
            site=_site(session, body.site),
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            created_at=datetime.now(UTC),
        )
        session.add(relay)
        _commit(session, f"relay {body.name!r} exists")
        return RelayCreated(**_relay_out(relay).model_dump(), token=token)

    @router.get("/relays", tags=["relays"])
    def list_relays(session: DB) -> list[RelayOut]:
        """Every relay."""
        return [_relay_out(r) for r in session.scalars(select(Relay).order_by(Relay.name))]

    @router.post("/relays/{name}/revoke", tags=["relays"])
    def revoke_relay(name: str, session: DB) -> RelayOut:
        """Revoke a relay (a lost phone): its token stops working at once, in every server
        process. Idempotent; what it carried stays. A replacement needs a new name."""
        relay = session.scalar(select(Relay).where(Relay.name == name))
        if relay is None:
            raise NotFoundError(f"no relay {name!r}")
        if relay.revoked_at is None:
            relay.revoked_at = datetime.now(UTC)
            session.commit()
        return _relay_out(relay)

    @router.post("/devices", status_code=201, tags=["devices"])
    def add_device(body: DeviceIn, session: DB, state: State) -> DeviceOut:
        """Register a device."""
        platform = (
            platform_by_id(int(body.platform))
            if body.platform.isdigit()
            else platform_by_name(body.platform.lower())
        )
        if platform is None:
            raise InvalidContentError(f"unknown platform {body.platform!r}")
        device_id = body.id.lower()
        if session.get(Device, device_id) is not None:
            raise ConflictError(f"device {device_id} exists")
        device = Device(
            id=device_id,
            platform_id=platform.id,
            product_id=body.product_id,
            site=_site(session, body.site),
            groups=sorted(set(body.groups)),
            development=body.development,
            mobile_secret=(
                None
                if body.mobile_secret is None
                else state.secrets.seal(body.mobile_secret, device_id)
            ),
            serial=None if body.serial is None else body.serial.upper(),
            state={},
        )
        session.add(device)
        _commit(session, f"device {device_id} exists")
        return _device_out(device)

    @router.get("/devices", tags=["devices"])
    def list_devices(session: DB) -> list[DeviceOut]:
        """Every device (never with its mobile secret)."""
        return [
            _device_out(d)
            for d in session.scalars(
                select(Device).options(selectinload(Device.last_seen_relay)).order_by(Device.id)
            )
        ]

    @router.get("/devices/{device_id}", tags=["devices"])
    def show_device(device_id: str, session: DB) -> DeviceOut:
        """One device."""
        device = session.get(Device, device_id.lower())
        if device is None:
            raise NotFoundError(f"no device {device_id}")
        return _device_out(device)

    @router.post(
        "/releases",
        status_code=201,
        tags=["releases"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload_release(
        request: Request,
        state: State,
        session: DB,
        filename: Annotated[str, Query(min_length=1, max_length=255)] = "upload.bin",
        notes: Annotated[str, Query(max_length=10_000)] = "",
    ) -> ReleaseOut:
        """Upload a Particle bundle (zip) or an application ``.bin`` as the raw body."""
        data = await read_body(request, state.settings.max_upload_bytes)
        if not data:
            raise InvalidContentError("the upload is empty")
        release = await run_in_threadpool(
            store_release, session, state.blobs, data, filename, notes
        )
        return _release_out(release)

    @router.get("/releases", tags=["releases"])
    def list_releases(session: DB) -> list[ReleaseOut]:
        """Every release, newest first."""
        return [
            _release_out(r) for r in session.scalars(select(Release).order_by(Release.id.desc()))
        ]

    @router.get("/releases/{release_id}", tags=["releases"])
    def show_release(release_id: int, session: DB) -> ReleaseOut:
        """One release."""
        release = session.get(Release, release_id)
        if release is None:
            raise NotFoundError(f"no release {release_id}")
        return _release_out(release)

    return router
