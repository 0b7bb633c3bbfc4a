"""Sync revisions: what makes ``GET /api/relay/v1/sync`` cheap to poll.

A site's sync answer depends on its devices (targeting fields, reported state, update
rows), on the releases and their parts, and on the rollouts. Every flush that changes one
of those bumps a counter in the same transaction (a ``before_flush`` hook on the
server's sessions, so no code path can forget it):

* a device's targeting fields, reported state or mobile secret, or a device's update row
  (``device_updates``): the device's site (``sites.revision``; both sites when a device
  moves);
* a release, a release part or a rollout: the whole fleet (``fleet_revision``).

Sightings that only move ``last_seen_*`` change no answer and bump nothing. The sync
ETag is built from both counters (:func:`sync_etag`), read *before* the answer is built:
data written after the read can only make the answer newer than its tag, never older,
so a cached answer is never served for a revision it does not reflect. The counters live
in the database, so every server process on it agrees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from bluemule.server.models import (
    Device,
    DeviceOsPart,
    DeviceUpdate,
    FleetRevision,
    Release,
    ReleasePart,
    Rollout,
    Site,
)

DEVICE_FIELDS = (
    "platform_id",
    "product_id",
    "site_id",
    "groups",
    "development",
    "locked_release_id",
    "mobile_secret",
    "serial",
    "state",
)
"""Device columns a sync answer depends on (``last_seen_*`` and ``last_rssi`` are not)."""
UPDATE_FIELDS = ("release_id", "state", "device_id")
"""Update-row columns sync gating depends on (not progress or reason)."""
FLEET_TYPES = (Release, ReleasePart, Rollout, DeviceOsPart)
SYNC_FORMAT = 3
"""Bumped when the sync body's format changes, so old ETags stop matching after an upgrade."""


def _changed(obj: Any, fields: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _sites_of(obj: Any, name: str) -> set[int]:
    """The current and previous values of a foreign-key column."""
    history = inspect(obj).attrs[name].history
    values = {*history.added, *history.unchanged, *history.deleted}
    return {v for v in values if isinstance(v, int)}


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    sites: set[int] = set()
    devices: set[str] = set()
    fleet = False
    for obj in (*session.new, *session.dirty, *session.deleted):
        fresh = obj in session.new or obj in session.deleted
        if isinstance(obj, Device):
            if fresh or _changed(obj, DEVICE_FIELDS):
                site = obj.site_id if obj.site_id is not None else getattr(obj.site, "id", None)
                sites |= _sites_of(obj, "site_id") | ({site} if isinstance(site, int) else set())
        elif isinstance(obj, DeviceUpdate):
            if fresh or _changed(obj, UPDATE_FIELDS):
                devices.add(obj.device_id)
        elif isinstance(obj, FLEET_TYPES):
            fleet = True
    if not (sites or devices or fleet):
        return
    connection = session.connection()
    if devices:
        query = select(Device.site_id).where(Device.id.in_(sorted(devices)))
        sites |= set(connection.scalars(query))
    if sites:
        site_table = Site.__table__
        connection.execute(
            update(site_table)  # type: ignore[arg-type]
            .where(site_table.c.id.in_(sorted(sites)))
            .values(revision=site_table.c.revision + 1)
        )
    if fleet:
        bump_fleet(session)


def bump_fleet(session: Session) -> None:
    """Bump the fleet-wide revision (for changes the flush hook cannot see, e.g. bulk SQL)."""
    table = FleetRevision.__table__
    session.connection().execute(
        update(table).where(table.c.id == 1).values(revision=table.c.revision + 1)  # type: ignore[arg-type]
    )


def track_revisions(sessions: sessionmaker[Session]) -> None:
    """Install the bump-on-flush hook on a sessionmaker (idempotent)."""
    if not sa_event.contains(sessions, "before_flush", _before_flush):
        sa_event.listen(sessions, "before_flush", _before_flush)


def sync_etag(
    relay_id: int, site_id: int, site_revision: int, fleet_revision: int, key_id: str
) -> str:
    """The sync ETag: relay (answers carry secrets sealed for it), site, both counters,
    the signing key and the body format."""
    return f'"r{relay_id}.s{site_id}.{fleet_revision}.{site_revision}.{key_id}.f{SYNC_FORMAT}"'
