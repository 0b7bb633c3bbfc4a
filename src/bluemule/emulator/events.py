"""The emulated device's event queue: what the app publishes while it has no cloud.

The queue is the protocol's :class:`~bluemule.protocol.events.EventQueue` over the
device's key-value store (LittleFS files under ``lfs/bluemule/events*``), so each
change is a few atomic flash operations and survives resets, power loss (injected with
:meth:`~bluemule.emulator.flash.Flash.power_loss_at`) and other processes, exactly like
the library's other state. Relays drain it over BLE (EVENTS_READ / EVENTS_ACK).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bluemule.protocol.events import (
    UNKNOWN_TIME,
    EventQueue,
    EventRecord,
    KeyValueStore,
    event_id,
)


@dataclass(frozen=True)
class PublishedEvent:
    """A queued event: its sequence and the id the fleet server will know it by."""

    sequence: int
    event_id: str
    captured_at: int
    """Unix seconds (0: unknown)."""
    queued: int
    """Records now waiting for a relay."""


def capture_time(captured_at: datetime | None, *, clock_set: bool = True) -> int:
    """u32 unix seconds for a record: ``captured_at``, else now, or 0 without a clock."""
    if not clock_set:
        return UNKNOWN_TIME
    return int(captured_at.timestamp() if captured_at is not None else time.time())


def publish_event(
    store: KeyValueStore,
    device_id: str,
    name: str,
    data: str | None,
    captured_at: datetime | None = None,
    *,
    clock_set: bool = True,
) -> PublishedEvent:
    """Queue an event durably (``Particle.publish`` while offline).

    Raises:
        InvalidEventError: a name or data the fleet server would refuse.
        EventQueueFullError: the queue is full; the refusal is counted.
        PowerLoss: an armed flash fault tore the publish (it is then not queued).
    """
    queue = EventQueue(store)
    at = capture_time(captured_at, clock_set=clock_set)
    sequence = queue.publish(name, data, at)
    return PublishedEvent(sequence, event_id(device_id, sequence), at, queue.summary().queued)


def events_json(store: KeyValueStore, device_id: str) -> dict[str, Any]:
    """The queue as JSON: counters and every queued record."""
    queue = EventQueue(store)
    s = queue.summary()
    return {
        "queued": s.queued,
        "first_sequence": s.first_sequence,
        "last_sequence": s.last_sequence,
        "dropped": s.dropped,
        "events": [_record_json(device_id, r) for r in queue.records()],
    }


def _record_json(device_id: str, r: EventRecord) -> dict[str, Any]:
    return {
        "id": event_id(device_id, r.sequence),
        "sequence": r.sequence,
        "name": r.name,
        "data": r.data,
        "captured_at": r.captured_at or None,
    }
