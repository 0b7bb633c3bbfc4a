"""Admin targeting: release a release to groups or as the product default, lock devices.

Every change reports the devices whose desired release it moves (``targeting.impacted``);
with ``dry_run`` nothing is changed.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from bluemule.server.api import NAME, DeviceOut, ReleaseOut, _device_out, _release_out
from bluemule.server.app import DB, require_admin
from bluemule.server.desired import target_device, target_release
from bluemule.server.models import Device, Release
from bluemule.server.problems import InvalidContentError, NotFoundError
from bluemule.server.targeting import desired_release, impacted


class PublishIn(BaseModel):
    """Who a release is released to; omitted fields stay as they are."""

    groups: list[Annotated[str, Field(pattern=NAME)]] | None = Field(
        default=None, description="the device groups it is released to (replaces the list)"
    )
    product_default: bool | None = Field(
        default=None, description="make it (or stop it being) the product default"
    )
    dry_run: bool = Field(default=False, description="only report the impact")


class Impact(BaseModel):
    """Devices whose desired release the change moves."""

    count: int
    device_ids: list[str]


class PublishOut(BaseModel):
    """The release (as it is, or would be, after the change) and the change's impact."""

    release: ReleaseOut
    dry_run: bool
    impacted: Impact


class LockIn(BaseModel):
    """The release a device is locked to."""

    release_id: int


class LockOut(BaseModel):
    """A device after locking or unlocking, and its desired release then."""

    device: DeviceOut
    desired_release_id: int | None


def _device(session: DB, device_id: str) -> Device:
    device = session.get(Device, device_id.lower())
    if device is None:
        raise NotFoundError(f"no device {device_id}")
    return device


def _desired_id(session: DB, device: Device) -> int | None:
    releases = session.scalars(select(Release).where(Release.platform_id == device.platform_id))
    return desired_release(target_device(device), [target_release(r) for r in releases])


def targeting_router() -> APIRouter:
    """Admin routes that change which release devices should run."""
    router = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(require_admin)])

    @router.post("/releases/{release_id}/publish", tags=["releases"])
    def publish(release_id: int, body: PublishIn, session: DB) -> PublishOut:
        """Release to groups and/or mark as product default; reports the devices moved."""
        release = session.get(Release, release_id)
        if release is None:
            raise NotFoundError(f"no release {release_id}")
        siblings = list(
            session.scalars(
                select(Release).where(
                    Release.platform_id == release.platform_id,
                    Release.product_id.is_(None)
                    if release.product_id is None
                    else Release.product_id == release.product_id,
                )
            )
        )
        devices = list(
            session.scalars(
                select(Device).where(
                    Device.platform_id == release.platform_id,
                    Device.product_id.is_(None)
                    if release.product_id is None
                    else Device.product_id == release.product_id,
                )
            )
        )
        groups = release.groups if body.groups is None else sorted(set(body.groups))
        before = [target_release(r) for r in siblings]
        after = [
            dataclasses.replace(
                target,
                groups=frozenset(groups),
                product_default=target.product_default
                if body.product_default is None
                else body.product_default,
            )
            if target.release_id == release.id
            else dataclasses.replace(target, product_default=False)
            if body.product_default
            else target
            for target in before
        ]
        moved = impacted([target_device(d) for d in devices], before, after)
        if not body.dry_run:
            release.groups = groups
            if body.product_default is not None:
                release.product_default = body.product_default
            if body.product_default:
                for other in siblings:
                    if other.id != release.id:
                        other.product_default = False
            session.commit()
            shown = _release_out(release)
        else:
            shown = _release_out(release).model_copy(
                update={
                    "groups": groups,
                    "product_default": release.product_default
                    if body.product_default is None
                    else body.product_default,
                }
            )
            session.rollback()
        return PublishOut(
            release=shown,
            dry_run=body.dry_run,
            impacted=Impact(count=len(moved), device_ids=sorted(moved)),
        )

    @router.put("/devices/{device_id}/lock", tags=["devices"])
    def lock(device_id: str, body: LockIn, session: DB) -> LockOut:
        """Lock a device to a release of its platform and product."""
        device = _device(session, device_id)
        release = session.get(Release, body.release_id)
        if release is None:
            raise NotFoundError(f"no release {body.release_id}")
        if (release.platform_id, release.product_id) != (device.platform_id, device.product_id):
            raise InvalidContentError(
                f"release {release.id} is for platform {release.platform_id} product "
                f"{release.product_id}; device {device.id} is platform {device.platform_id} "
                f"product {device.product_id}"
            )
        device.locked_release_id = release.id
        session.commit()
        return LockOut(device=_device_out(device), desired_release_id=_desired_id(session, device))

    @router.delete("/devices/{device_id}/lock", tags=["devices"])
    def unlock(device_id: str, session: DB) -> LockOut:
        """Unlock a device: it follows its groups and the product default again."""
        device = _device(session, device_id)
        device.locked_release_id = None
        session.commit()
        return LockOut(device=_device_out(device), desired_release_id=_desired_id(session, device))

    return router
