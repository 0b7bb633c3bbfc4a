"""Drain a device's queued events over a connected link (``docs/protocol.md`` §11).

:func:`drain_events` drives an :class:`~bluemule.protocol.event_session.EventDrainSession`
on a :class:`~bluemule.transport.base.CentralLink`: it reads records in chunks, hands
each batch to ``store`` (which must make them durable before it returns) and only then
acknowledges them, so the device deletes nothing the relay does not hold. If the link
drops, nothing is lost: the device keeps unacked records and reading them again yields
the same :attr:`RelayedEvent.event_id`, which the fleet server deduplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bluemule.protocol.constants import RESPONSE_UUID
from bluemule.protocol.event_session import EventDrainSession, StoreEvents
from bluemule.protocol.events import UNKNOWN_TIME, EventRecord, event_id
from bluemule.relay.link_actions import Inbox, perform_link_action
from bluemule.transport.base import CentralLink, TransportError


@dataclass(frozen=True)
class RelayedEvent:
    """An event read from a device, ready for ``POST /api/relay/v1/events``."""

    device_id: str
    """24 lowercase hex digits."""
    sequence: int
    name: str
    data: str | None
    captured_at: datetime | None
    """When the device published it (UTC); None when its clock was not set."""
    event_id: str
    """``<device id>:<sequence>`` (:func:`bluemule.protocol.events.event_id`)."""

    @classmethod
    def from_record(cls, device_id: str, record: EventRecord) -> RelayedEvent:
        """The relay's form of a device record."""
        at = record.captured_at
        return cls(
            device_id=device_id,
            sequence=record.sequence,
            name=record.name,
            data=record.data,
            captured_at=None if at == UNKNOWN_TIME else datetime.fromtimestamp(at, UTC),
            event_id=event_id(device_id, record.sequence),
        )

    def to_json(self) -> dict[str, str | None]:
        """The fleet server's ``EventIn`` shape."""
        return {
            "id": self.event_id,
            "device_id": self.device_id,
            "name": self.name,
            "data": self.data,
            "captured_at": None if self.captured_at is None else self.captured_at.isoformat(),
        }


class EventDrainError(Exception):
    """The drain stopped early; ``drained`` events were stored and acknowledged before.

    Nothing unacknowledged is lost: drain again (after reconnecting) to continue.
    """

    def __init__(self, message: str, drained: int) -> None:
        super().__init__(message)
        self.drained = drained


class EventDrainInterruptedError(EventDrainError):
    """The link dropped (or timed out) during the drain."""


StoreCallback = Callable[[Sequence[RelayedEvent]], Awaitable[None]]


async def drain_events(
    link: CentralLink,
    store: StoreCallback,
    *,
    batch: int = 16,
    timeout: float = 5.0,
) -> int:
    """Read every queued event of the device on ``link``, oldest first; ``store`` each
    batch (durably), then acknowledge it. Returns how many events were drained (0 for a
    device without an event queue).

    Works with notifications or, if subscribing fails, by polling RESPONSE.
    ``timeout`` bounds each wait for a response before polling.

    Raises:
        EventDrainInterruptedError: the link dropped (events stored so far are acked or
            will be re-read; drain again after reconnecting).
        EventDrainError: the device refused a request or sent malformed records.
        Exception: whatever ``store`` raises propagates; its batch is not acknowledged.
    """
    session = EventDrainSession(batch=batch)
    inbox: Inbox = asyncio.Queue()
    try:
        await link.subscribe(RESPONSE_UUID, lambda value: inbox.put_nowait((RESPONSE_UUID, value)))
        wait = timeout
    except TransportError:
        if not link.connected:
            raise EventDrainInterruptedError("link lost before the drain", 0) from None
        wait = 0.0  # no notifications: poll
    try:
        while (action := session.next_action()) is not None:
            if isinstance(action, StoreEvents):
                await store([RelayedEvent.from_record(action.device_id, r) for r in action.records])
                session.on_stored()
            else:
                await perform_link_action(action, link, session, inbox, wait)
    except (TransportError, OSError, TimeoutError) as exc:
        raise EventDrainInterruptedError(
            f"link lost while draining events: {exc}", session.drained
        ) from exc
    if session.error is not None:
        raise EventDrainError(session.error, session.drained)
    return session.drained


__all__ = [
    "EventDrainError",
    "EventDrainInterruptedError",
    "RelayedEvent",
    "StoreCallback",
    "drain_events",
    "event_id",
]
