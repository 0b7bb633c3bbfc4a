"""Device OS modules for stock devices: upload, list, and what a device below its release's
minimum Device OS needs (``/api/admin/v1/deviceos``; sync's ``device_os_parts``).

A relay can install Device OS only over Device OS's own control channel (bluemule's
protocol carries applications and assets). The server keeps system parts and bootloaders
per platform and version, validated with :mod:`bluemule.image` (a module of a known
platform, a system part or bootloader, CRC-32 intact), each stored once as a blob.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bluemule.image import ImageError, ModuleFunction, parse_module, platform_by_id
from bluemule.server.app import DB, State, require_admin
from bluemule.server.files import BlobStore
from bluemule.server.models import Blob, Device, DeviceOsPart, Release
from bluemule.server.problems import ConflictError, InvalidContentError

DEVICE_OS_FUNCTIONS = (ModuleFunction.BOOTLOADER, ModuleFunction.SYSTEM_PART)


class DeviceOsPartOut(BaseModel):
    """One stored Device OS module."""

    id: int
    platform: str
    platform_id: int
    kind: str
    index: int
    version: int
    bootloader_version: int | None
    name: str
    blob_sha256: str
    size: int
    created_at: datetime


def part_out(part: DeviceOsPart) -> DeviceOsPartOut:
    """The API form of a row."""
    platform = platform_by_id(part.platform_id)
    return DeviceOsPartOut(
        id=part.id,
        platform=platform.name if platform else str(part.platform_id),
        platform_id=part.platform_id,
        kind=ModuleFunction(part.function).label,
        index=part.index,
        version=part.version,
        bootloader_version=part.bootloader_version,
        name=part.name,
        blob_sha256=part.blob_sha256,
        size=part.size,
        created_at=part.created_at.replace(tzinfo=part.created_at.tzinfo or UTC),
    )


def store_deviceos_part(
    session: Session, blobs: BlobStore, data: bytes, filename: str
) -> DeviceOsPart:
    """Validate and store one module; nothing is kept on any error.

    Raises:
        InvalidContentError: not a module, not Device OS, unknown platform, bad CRC.
        ConflictError: that platform's module slot already has this version.
    """
    try:
        module = parse_module(data)
    except ImageError as exc:
        raise InvalidContentError(f"{filename}: {exc}") from None
    if module.function not in DEVICE_OS_FUNCTIONS:
        label = ModuleFunction(module.function).label
        raise InvalidContentError(f"{filename}: a {label} is not a system part or bootloader")
    if platform_by_id(module.prefix.platform_id) is None:
        raise InvalidContentError(f"{filename}: unknown platform {module.prefix.platform_id}")
    if not module.crc_ok:
        raise InvalidContentError(f"{filename}: CRC-32 does not match the module's content")
    deps = (module.prefix.dependency, module.prefix.dependency2)
    bootloader = next((d.version for d in deps if d.function == ModuleFunction.BOOTLOADER), None)
    digest, created = blobs.put(data)
    try:
        if session.get(Blob, digest) is None:
            session.add(Blob(sha256=digest, size=len(data)))
        part = DeviceOsPart(
            platform_id=module.prefix.platform_id,
            function=int(module.function),
            index=module.prefix.index,
            version=module.prefix.module_version,
            bootloader_version=bootloader,
            name=filename[-255:],
            blob_sha256=digest,
            size=len(data),
            created_at=datetime.now(UTC),
        )
        session.add(part)
        session.commit()
    except IntegrityError:
        session.rollback()
        if created:
            blobs.remove(digest)
        kind = ModuleFunction(module.function).label
        raise ConflictError(
            f"{filename}: {kind} {module.prefix.index} version {module.prefix.module_version} "
            "of this platform is already stored"
        ) from None
    except BaseException:
        session.rollback()
        if created:
            blobs.remove(digest)
        raise
    return part


def needed_parts(
    parts: Sequence[DeviceOsPart], device: Device, release: Release
) -> list[DeviceOsPart]:
    """The Device OS modules ``device`` needs before ``release``, in install order.

    Nothing when the device reported a Device OS at or above the release's minimum.
    Otherwise, per system part index of the platform, the lowest stored version at or
    above the minimum, plus the lowest bootloader each of those depends on; a device that
    never reported gets them too (the relay skips what the device already has).
    """
    reported = device.state.get("device_os_version")
    if isinstance(reported, int) and reported >= release.min_device_os:
        return []
    mine = [p for p in parts if p.platform_id == device.platform_id]
    systems: dict[int, DeviceOsPart] = {}
    for p in sorted(mine, key=lambda p: p.version):
        is_system = p.function == ModuleFunction.SYSTEM_PART
        if is_system and p.version >= release.min_device_os and p.index not in systems:
            systems[p.index] = p
    if not systems:
        return []
    needs = max((p.bootloader_version or 0) for p in systems.values())
    loaders = sorted(
        (p for p in mine if p.function == ModuleFunction.BOOTLOADER and p.version >= needs),
        key=lambda p: p.version,
    )
    return ([loaders[0]] if needs and loaders else []) + [systems[i] for i in sorted(systems)]


def sync_part(order: int, part: DeviceOsPart) -> dict[str, Any]:
    """The sync form of a needed module."""
    return {
        "index": order,
        "kind": ModuleFunction(part.function).label,
        "name": part.name,
        "blob": part.blob_sha256,
        "size": part.size,
        "version": part.version,
    }


def deviceos_router() -> APIRouter:
    """``/api/admin/v1/deviceos`` (admin token, like the rest of the admin API)."""
    from bluemule.server.api import read_body  # noqa: PLC0415

    router = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(require_admin)])

    @router.post("/deviceos", status_code=201, tags=["deviceos"])
    async def upload_deviceos(
        request: Request,
        state: State,
        session: DB,
        filename: Annotated[str, Query(min_length=1, max_length=255)] = "deviceos.bin",
    ) -> DeviceOsPartOut:
        """Upload one system part or bootloader module as the raw body."""
        data = await read_body(request, state.settings.max_upload_bytes)
        if not data:
            raise InvalidContentError("the upload is empty")
        part = await run_in_threadpool(store_deviceos_part, session, state.blobs, data, filename)
        return part_out(part)

    @router.get("/deviceos", tags=["deviceos"])
    def list_deviceos(session: DB) -> list[DeviceOsPartOut]:
        """Every stored Device OS module, by platform, kind, index and version."""
        query = select(DeviceOsPart).order_by(
            DeviceOsPart.platform_id, DeviceOsPart.function, DeviceOsPart.index,
            DeviceOsPart.version,
        )  # fmt: skip
        return [part_out(p) for p in session.scalars(query)]

    return router
