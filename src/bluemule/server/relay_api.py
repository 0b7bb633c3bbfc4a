"""The relay API: ``/api/relay/v1/`` sync, blobs, reports and events for one site.

A relay authenticates with its bearer token (stored as a SHA-256) and sees only the
devices of its site. Reports and events are idempotent by id: rows are inserted with
``INSERT … ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so a repeated post, or the
same post reaching two server processes at once, stores each id once.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, Row, Table, and_, delete, false, select
from sqlalchemy.orm import Session

from bluemule.protocol.events import sequence_of
from bluemule.server.app import DB, ServerState, State
from bluemule.server.bulk import insert_new
from bluemule.server.db import as_utc
from bluemule.server.desired import (
    desired_releases,
)
from bluemule.server.deviceos import needed_parts
from bluemule.server.models import (
    Device,
    DeviceOsPart,
    DeviceUpdate,
    Event,
    EventTombstone,
    Relay,
    Release,
    Report,
)
from bluemule.server.problems import (
    InvalidContentError,
    NotFoundError,
    ProblemError,
    UnauthorizedError,
)
from bluemule.server.rollouts import UpdateState
from bluemule.server.rollouts_api import reevaluate_for_devices
from bluemule.server.sync import SyncOut, relay_token_digest, site_devices, sync_response

DEVICE_ID = r"^[0-9a-fA-F]{24}$"
HEX64 = r"^[0-9a-fA-F]{64}$"
EVENT_NAME = re.compile(r"^[A-Za-z0-9_\-/]{1,64}$")
RESERVED_EVENT_PREFIXES = ("particle", "spark")
MAX_EVENT_DATA = 16_384
MAX_BATCH = 1000
CHUNK = 64 * 1024

# --- authentication -------------------------------------------------------------------


def require_relay(request: Request, session: DB) -> Relay:
    """Bearer authentication with a relay's token; the relay is scoped to its site."""
    digest = relay_token_digest(request)
    relay = session.scalar(select(Relay).where(Relay.token_sha256 == digest))
    if relay is None or not hmac.compare_digest(relay.token_sha256, digest):
        raise UnauthorizedError("wrong relay token")
    if relay.revoked_at is not None:
        raise UnauthorizedError("wrong relay token")  # revoked: no different from unknown
    return relay


RelayAuth = Annotated[Relay, Depends(require_relay)]


class ForbiddenError(ProblemError):
    """Authenticated, but not allowed (another site's device)."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


# --- hook for event consumers (webhooks) -----------------------------------------------

EventsStoredHook = Callable[[Session, Sequence[str]], None]
_events_stored_hooks: list[EventsStoredHook] = []


def on_events_stored(hook: EventsStoredHook) -> EventsStoredHook:
    """Register ``hook(session, event_ids)``, called in the storing transaction."""
    if hook not in _events_stored_hooks:
        _events_stored_hooks.append(hook)
    return hook


def events_stored(session: Session, event_ids: Sequence[str]) -> None:
    """Newly stored events (never duplicates), before the transaction commits.

    Whatever a hook adds to ``session`` (an outbox row, say) commits with the events.
    """
    if not event_ids:
        return
    for hook in list(_events_stored_hooks):
        hook(session, event_ids)


# --- bodies ---------------------------------------------------------------------------


class DeviceStateIn(BaseModel):
    """What a device reports about itself (its STATUS, as the relay read it)."""

    device_os_version: int | None = Field(default=None, ge=0, le=0xFFFF)
    app_sha256: str | None = Field(default=None, pattern=HEX64)
    app_module_version: int | None = Field(default=None, ge=0, le=0xFFFF)
    product_version: int | None = Field(default=None, ge=0, le=0xFFFF)
    release_counter: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    mode: str | None = Field(default=None, max_length=32)
    assets: list[dict[str, Any]] | None = Field(default=None, max_length=64)


class UpdateIn(BaseModel):
    """How an update of one device stands."""

    release_id: int
    state: Literal["cached_on_relay", "transferring", "installed", "confirmed_running", "failed"]
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str | None = Field(default=None, max_length=1000)


class ReportIn(BaseModel):
    """A sighting or update report; ``id`` (relay-chosen, unique) makes it idempotent."""

    id: str = Field(min_length=1, max_length=100)
    device_id: str = Field(pattern=DEVICE_ID)
    kind: Literal["sighting", "update"]
    at: datetime
    rssi: int | None = Field(default=None, ge=-200, le=50)
    state: DeviceStateIn | None = None
    update: UpdateIn | None = None

    @model_validator(mode="after")
    def _update_present(self) -> ReportIn:
        if self.kind == "update" and self.update is None:
            raise ValueError("an update report needs 'update'")
        return self


class ReportsIn(BaseModel):
    """A batch of reports."""

    reports: list[ReportIn] = Field(max_length=MAX_BATCH)


class EventIn(BaseModel):
    """A device event; ``id`` is unique per device event (e.g. device id and sequence)."""

    id: str = Field(min_length=1, max_length=100)
    device_id: str = Field(pattern=DEVICE_ID)
    name: str
    data: str | None = None
    captured_at: datetime | None = Field(
        default=None, description="when the device published it, if its clock was valid"
    )
    relayed_at: datetime | None = Field(
        default=None, description="when the relay read it off the device (relay's clock)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not EVENT_NAME.match(name):
            raise ValueError("an event name is 1–64 of A–Z a–z 0–9 _ - /")
        if name.lower().startswith(RESERVED_EVENT_PREFIXES):
            raise ValueError("event names starting with 'particle' or 'spark' are reserved")
        return name

    @field_validator("data")
    @classmethod
    def _data(cls, data: str | None) -> str | None:
        if data is not None and len(data.encode("utf-8")) > MAX_EVENT_DATA:
            raise ValueError(f"event data exceeds {MAX_EVENT_DATA} bytes")
        return data


class EventsIn(BaseModel):
    """A batch of events."""

    events: list[EventIn] = Field(max_length=MAX_BATCH)


class Accepted(BaseModel):
    """How many items were new, and how many had been stored before."""

    accepted: int
    duplicates: int


# --- helpers --------------------------------------------------------------------------


def _locksite_devices(session: Session, relay: Relay, device_ids: set[str]) -> dict[str, Device]:
    """The devices, row-locked in id order; 403 if any is not at the relay's site."""
    ids = sorted(d.lower() for d in device_ids)
    if not ids:
        return {}
    query = select(Device).where(Device.id.in_(ids)).order_by(Device.id).with_for_update()
    devices = {d.id: d for d in session.scalars(query)}
    for device_id in ids:
        device = devices.get(device_id)
        if device is None or device.site_id != relay.site_id:
            raise ForbiddenError(f"device {device_id} is not at this relay's site")
    return devices


_Item = TypeVar("_Item", ReportIn, EventIn)


def _dedupe(items: Sequence[_Item]) -> list[_Item]:
    seen: set[str] = set()
    out: list[_Item] = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out


_Parsed = dict[str, tuple[str, int]]
"""Event id → (device id, sequence) of the relay-made ids in a batch."""


def _relay_made(events: Iterable[EventIn]) -> _Parsed:
    parsed: _Parsed = {}
    for event in events:
        device_id = event.device_id.lower()
        sequence = sequence_of(event.id, device_id)
        if sequence is not None:
            parsed[event.id] = (device_id, sequence)
    return parsed


def _may_hold(parsed: _Parsed) -> ColumnElement[bool]:
    """Tombstones that can hold one of the batch's sequences (the batch's span)."""
    sequences = [sequence for _, sequence in parsed.values()]
    if not sequences:
        return false()
    stone = EventTombstone
    return and_(stone.last_seq >= min(sequences), stone.first_seq <= max(sequences))


def _tombstoned(parsed: _Parsed, ranges: Iterable[Row[str, Any, Any]]) -> set[str]:
    """The ids whose sequence lies in one of their device's pruned ranges; ``ranges`` are
    rows of (device id, first, last), first and last None for a device without any."""
    by_device: dict[str, list[tuple[int, int]]] = {}
    for device_id, first, last in ranges:
        if first is not None:
            by_device.setdefault(device_id, []).append((first, last))
    return {
        id_
        for id_, (device_id, sequence) in parsed.items()
        if any(first <= sequence <= last for first, last in by_device.get(device_id, ()))
    }


def _pruned_meanwhile(session: Session, inserted: Iterable[EventIn]) -> set[str]:
    """Delete the just-inserted events that a retention pass pruned (and tombstoned)
    between the first tombstone read and the insert; returns their ids.

    Retention deletes rows and writes their tombstones in one transaction. The insert
    either met the row (a conflict, nothing inserted) or ran after that transaction
    committed (PostgreSQL waits for it on the conflicting key; SQLite has one writer), so
    this read, a later statement, sees the tombstones. No row locks: ingest stays lock-free.
    """
    parsed = _relay_made(inserted)
    if not parsed:
        return set()
    stone = EventTombstone
    devices = {device_id for device_id, _ in parsed.values()}
    query = select(stone.device_id, stone.first_seq, stone.last_seq).where(
        stone.device_id.in_(devices), _may_hold(parsed)
    )
    late = _tombstoned(parsed, session.execute(query))
    if late:
        session.execute(delete(Event).where(Event.id.in_(late)))
    return late


def _apply_report(session: Session, relay: Relay, device: Device, report: ReportIn) -> None:
    at = as_utc(report.at)
    last = device.last_seen_at and as_utc(device.last_seen_at)
    newest = last is None or at >= last
    if newest:
        device.last_seen_at = at
        device.last_seen_relay_id = relay.id
        if report.rssi is not None:
            device.last_rssi = report.rssi
        if report.state is not None:
            reported = report.state.model_dump(exclude_none=True)
            if "app_sha256" in reported:
                reported["app_sha256"] = str(reported["app_sha256"]).lower()
            device.state = {**device.state, **reported}
    if report.update is None:
        return
    update = report.update
    release = session.get(Release, update.release_id)
    if release is None:
        raise InvalidContentError(f"report {report.id}: no release {update.release_id}")
    state, reason = update.state, update.reason
    if state == UpdateState.CONFIRMED.value:
        running = (report.state and report.state.app_sha256) or device.state.get("app_sha256")
        if not isinstance(running, str) or running.lower() != release.app_sha256.lower():
            state = UpdateState.INSTALLED.value
            reason = "reported confirmed, but the device's app SHA-256 is not the release's"
    row = session.get(DeviceUpdate, device.id)
    if row is not None and as_utc(row.reported_at) > at:
        return
    if row is None:
        row = DeviceUpdate(device_id=device.id)
        session.add(row)
    row.release_id = release.id
    row.state = state
    row.progress = update.progress
    row.reason = reason
    row.reported_at = at
    row.updated_at = datetime.now(UTC)
    row.report_id = report.id


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single ``bytes=`` range; None to send everything.

    Raises ProblemError(416) when the range cannot be satisfied.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":
            suffix = int(last_text)
            if suffix <= 0:
                raise _unsatisfiable(size)
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> ProblemError:
    return ProblemError(
        416,
        f"the range is outside the blob's {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _read_file(path: Any, first: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(first)
        left = length
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


# --- routes ---------------------------------------------------------------------------


def blob_response(
    sha256: str, request: Request, relay: Relay, session: Session, state: ServerState
) -> StreamingResponse:
    """Stream a blob the relay's site needs, whole or one range of it."""
    sha256 = sha256.lower()
    devices = site_devices(session, relay)
    desired = desired_releases(session, devices)
    wanted = {
        part.blob_sha256
        for release in desired.values()
        if release is not None
        for part in release.parts
    }
    os_parts = list(session.scalars(select(DeviceOsPart)))
    for device in devices:
        if (release := desired[device.id]) is not None:
            wanted |= {p.blob_sha256 for p in needed_parts(os_parts, device, release)}
    path = state.blobs.path(sha256)
    if sha256 not in wanted or not path.is_file():
        raise NotFoundError(f"no blob {sha256} for this relay's site")
    size = path.stat().st_size
    headers = {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"}
    span = None
    range_header = request.headers.get("range")
    if range_header:
        if_range = request.headers.get("if-range")
        if if_range is None or if_range.strip() == f'"{sha256}"':
            span = _parse_range(range_header, size)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _read_file(path, 0, size), media_type="application/octet-stream", headers=headers
        )
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(
        _read_file(path, first, last - first + 1),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )


def relay_router() -> APIRouter:
    """The relay routes (bearer relay token)."""
    router = APIRouter(prefix="/api/relay/v1", tags=["relay"])

    @router.get(
        "/sync",
        response_model=SyncOut,
        responses={304: {"description": "Not modified (If-None-Match)"}},
    )
    def sync(request: Request, state: State) -> Response:
        """Manifests and part blobs for the site's devices that need an update.

        The ETag comes from the site's and the fleet's revisions (``revisions``), read
        before anything else: a matching ``If-None-Match`` costs one indexed query.
        """
        return sync_response(request, state)

    @router.get(
        "/blobs/{sha256}",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            206: {"description": "Partial content (Range)"},
            416: {"description": "Range not satisfiable"},
        },
    )
    def blob(
        sha256: str, request: Request, relay: RelayAuth, session: DB, state: State
    ) -> StreamingResponse:
        """A part's bytes; ``Range: bytes=a-b`` resumes an interrupted download."""
        return blob_response(sha256, request, relay, session, state)

    @router.post("/reports")
    def reports(body: ReportsIn, relay: RelayAuth, session: DB) -> Accepted:
        """Sightings and update reports; a repeated id is counted as a duplicate."""
        items = _dedupe(body.reports)
        devices = _locksite_devices(session, relay, {r.device_id for r in items})
        release_ids = {r.update.release_id for r in items if r.update is not None}
        known = set(session.scalars(select(Release.id).where(Release.id.in_(release_ids))))
        if missing := sorted(release_ids - known):
            raise InvalidContentError(f"no release {missing[0]}")
        now = datetime.now(UTC)
        rows = [
            {
                "id": r.id,
                "relay_id": relay.id,
                "device_id": r.device_id.lower(),
                "kind": r.kind,
                "body": r.model_dump(mode="json"),
                "received_at": now,
            }
            for r in items
        ]
        table = Report.__table__
        assert isinstance(table, Table)
        new = insert_new(session, table, rows)
        for report in sorted((r for r in items if r.id in new), key=lambda r: as_utc(r.at)):
            _apply_report(session, relay, devices[report.device_id.lower()], report)
        reevaluate_for_devices(session, {r.device_id.lower() for r in items if r.id in new})
        session.commit()
        return Accepted(accepted=len(new), duplicates=len(body.reports) - len(new))

    @router.post("/events")
    def events(body: EventsIn, relay: RelayAuth, session: DB) -> Accepted:
        """Device events; a repeated id is accepted, counted, and not stored again.

        So is a relay-made id whose sequence lies in one of the device's tombstones
        (retention pruned its row; see ``retention.py``).
        """
        items = _dedupe(body.events)
        ids = sorted({e.device_id.lower() for e in items})
        if ids:
            parsed = _relay_made(items)
            stone = EventTombstone
            query = (
                select(Device.id, stone.first_seq, stone.last_seq)
                .outerjoin(stone, and_(stone.device_id == Device.id, _may_hold(parsed)))
                .where(Device.id.in_(ids), Device.site_id == relay.site_id)
            )
            ranges = session.execute(query).all()
            here = {row.id for row in ranges}
            if outside := [d for d in ids if d not in here]:
                raise ForbiddenError(f"device {outside[0]} is not at this relay's site")
            pruned = _tombstoned(parsed, ranges)
            items = [e for e in items if e.id not in pruned]
        now = datetime.now(UTC)
        rows = [
            {
                "id": e.id,
                "device_id": e.device_id.lower(),
                "name": e.name,
                "data": e.data,
                "captured_at": e.captured_at and as_utc(e.captured_at),
                "received_at": now,
                "relay_id": relay.id,
                "relayed_at": e.relayed_at and as_utc(e.relayed_at),
            }
            for e in items
        ]
        table = Event.__table__
        assert isinstance(table, Table)
        new = insert_new(session, table, rows)
        new -= _pruned_meanwhile(session, [e for e in items if e.id in new])
        events_stored(session, [e.id for e in items if e.id in new])
        session.commit()
        return Accepted(accepted=len(new), duplicates=len(body.events) - len(new))

    return router
