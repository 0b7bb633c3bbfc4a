"""Retention: prune what is older than ``--retention-days`` (default 30).

Pruned, oldest first and in chunks (so a first run on a big database never holds one huge
transaction):

* outbox rows that are settled (``delivered`` or ``dropped``) for events received before
  the cutoff, with their delivery-log entries;
* events received before the cutoff that no outbox row refers to any more; in the same
  transaction the sequences of the pruned relay-made ids
  (:func:`bluemule.protocol.events.sequence_of`) join the device's tombstones (inclusive
  ranges, merged with the adjacent and overlapping ones), so event ingest still knows a
  re-posted id is a duplicate (a device re-reads a record when a relay's ack was lost,
  maybe months later) while a sequence never stored is not;
* reports received before the cutoff.

Never pruned: outbox rows still to deliver (``pending``, ``failed`` awaiting a retry,
``delivering``), and the events they carry, whatever their age. Devices keep their last
reported state and their update rows (they are current state, not history).

Every server process runs :func:`prune` about hourly; on PostgreSQL an advisory lock
(held by the pass's one connection) lets one process prune at a time; the others skip
that round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, delete, exists, func, insert, select, tuple_
from sqlalchemy.orm import Session

from bluemule.protocol.events import sequence_of
from bluemule.server.models import DeliveryLog, Event, EventTombstone, OutboxItem, Report

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
CHUNK = 5_000
SETTLED = ("delivered", "dropped")
LOCK_KEY = 0x626C_6D72  # "blmr": the advisory lock of the pruning pass


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one pass."""

    outbox: int = 0
    delivery_log: int = 0
    events: int = 0
    reports: int = 0


def _chunks(session: Session, ids_query: Any, delete_for: Callable[[list[Any]], int]) -> int:
    """Delete ``CHUNK`` ids at a time until ``ids_query`` finds none; returns the total."""
    total = 0
    while True:
        ids = list(session.scalars(ids_query.limit(CHUNK)))
        if not ids:
            return total
        deleted = delete_for(ids)
        session.commit()
        total += deleted
        if len(ids) < CHUNK or not deleted:
            return total


def prune(engine: Engine, days: int, *, now: datetime | None = None) -> Pruned:
    """Delete what is older than ``days`` (see the module notes); returns the counts."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        if postgres:
            locked = connection.scalar(select(func.pg_try_advisory_lock(LOCK_KEY)))
            connection.commit()
            if not locked:
                return Pruned()
        try:
            with Session(bind=connection) as session:
                return _prune(session, cutoff)
        finally:
            if postgres:
                connection.rollback()
                connection.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
                connection.commit()


def _prune(session: Session, cutoff: datetime) -> Pruned:
    logs = 0

    def drop_outbox(ids: list[int]) -> int:
        nonlocal logs
        gone = delete(DeliveryLog).where(DeliveryLog.outbox_id.in_(ids))
        logs += session.execute(gone).rowcount  # type: ignore[attr-defined]
        rows = delete(OutboxItem).where(OutboxItem.id.in_(ids), OutboxItem.state.in_(SETTLED))
        return int(session.execute(rows).rowcount)  # type: ignore[attr-defined]

    settled = (
        select(OutboxItem.id)
        .join(Event, Event.id == OutboxItem.event_id)
        .where(OutboxItem.state.in_(SETTLED), Event.received_at < cutoff)
        .order_by(OutboxItem.id)
    )
    outbox = _chunks(session, settled, drop_outbox)
    unreferenced = ~exists().where(OutboxItem.event_id == Event.id)

    def drop_events(ids: list[str]) -> int:
        rows = delete(Event).where(Event.id.in_(ids), unreferenced)
        gone = session.execute(rows.returning(Event.id, Event.device_id)).all()
        _tombstone(session, gone)
        return len(gone)

    old_events = select(Event.id).where(Event.received_at < cutoff, unreferenced)
    events = _chunks(session, old_events.order_by(Event.id), drop_events)

    def drop_reports(ids: list[str]) -> int:
        rows = delete(Report).where(Report.id.in_(ids))
        return int(session.execute(rows).rowcount)  # type: ignore[attr-defined]

    old_reports = select(Report.id).where(Report.received_at < cutoff).order_by(Report.id)
    reports = _chunks(session, old_reports, drop_reports)
    return Pruned(outbox=outbox, delivery_log=logs, events=events, reports=reports)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` ranges merged where they overlap or touch, in order."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _tombstone(session: Session, pruned: Sequence[Row[str, str]]) -> None:
    """Add the sequences of the pruned relay-made ids to their devices' tombstones, merging
    them with the ranges already kept; rows whose range did not change stay untouched."""
    fresh: dict[str, list[tuple[int, int]]] = {}
    for event_id_, device_id in pruned:
        sequence = sequence_of(event_id_, device_id)
        if sequence is not None:
            fresh.setdefault(device_id, []).append((sequence, sequence))
    if not fresh:
        return
    stone = EventTombstone
    kept = select(stone.device_id, stone.first_seq, stone.last_seq)
    old = {(r[0], r[1], r[2]) for r in session.execute(kept.where(stone.device_id.in_(fresh)))}
    for device_id, first, last in old:
        fresh[device_id].append((first, last))
    new = {(d, f, last) for d in fresh for f, last in merge_ranges(fresh[d])}
    if gone := sorted(old - new):
        keys = tuple_(stone.device_id, stone.first_seq).in_([(d, f) for d, f, _ in gone])
        session.execute(delete(stone).where(keys))
    if added := sorted(new - old):
        rows = [{"device_id": d, "first_seq": f, "last_seq": last} for d, f, last in added]
        session.execute(insert(stone), rows)


async def prune_forever(engine: Engine, days: int, interval_seconds: float = 3600.0) -> None:
    """Prune at start and then every ``interval_seconds`` until cancelled."""
    while True:
        try:
            pruned = await asyncio.to_thread(prune, engine, days)
            if any(vars(pruned).values()):
                log.info("retention: pruned %s", pruned)
        except Exception:
            log.exception("retention pass failed")
        await asyncio.sleep(interval_seconds)
