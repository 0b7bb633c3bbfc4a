"""A site with one device that should install a release with a large asset."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select

from bluemule.server.models import Report
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload

DEVICE = "e00fce680000000000000b0b"


@dataclass(frozen=True)
class Offered:
    """The release offered to :data:`DEVICE` and its largest blob."""

    release_id: int
    blob: str
    blob_bytes: bytes


def offer_release(api: Api, asset_size: int = 60_000) -> Offered:
    """Register :data:`DEVICE` at site north and publish a release to it."""
    add_device(api, DEVICE, groups=["beta"])
    asset = random.Random(asset_size).randbytes(asset_size)
    release_id = upload(api, "v2", 2, {"data.bin": asset})
    publish(api, release_id, groups=["beta"])
    parts = api.get(f"/api/admin/v1/releases/{release_id}").json()["parts"]
    blob = max(parts, key=lambda p: p["size"])["blob_sha256"]
    return Offered(release_id, blob, api.state.blobs.path(blob).read_bytes())


def reported_states(api: Api, device_id: str) -> list[str]:
    """The update states the server stored for a device, in the order the relay reported them."""
    with api.state.sessions() as session:
        query = select(Report.body).where(Report.device_id == device_id, Report.kind == "update")
        bodies = [cast(dict[str, Any], body) for body in session.scalars(query)]
    bodies.sort(key=lambda body: datetime.fromisoformat(str(body["at"])))
    return [str(body["update"]["state"]) for body in bodies]
