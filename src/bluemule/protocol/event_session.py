"""The relay's side of draining a device's event queue, as a sans-IO state machine.

Like :class:`~bluemule.protocol.client_session.UpdateSession`, the driver performs the
actions asked for (:class:`Write`, :class:`Read`, :class:`WaitForNotification`, and
:class:`StoreEvents`) and feeds back what it reads or is notified of. The one rule:
**a record is acknowledged only after the driver reports it stored** (``on_stored``),
so a link lost at any point loses nothing; the device still holds every unacked
record and reading it again yields the same event id.

Sequence (``docs/protocol.md`` §11)::

    READ STATUS (no EVENTS capability or nothing queued: done)
    → EVENTS_READ(from, offset)… until a record is whole → … until ``batch`` records
      or the queue is empty → STORE → EVENTS_ACK(last) → … → done
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from bluemule.protocol.client_session import Read, WaitForNotification, Write
from bluemule.protocol.constants import (
    CONTROL_UUID,
    EVENT_QUEUE_CAPACITY,
    PROTOCOL_VERSION,
    RESPONSE_UUID,
    STATUS_UUID,
    Capability,
    Opcode,
)
from bluemule.protocol.errors import DecodeError
from bluemule.protocol.events import MAX_BODY_SIZE, EventRecord, decode_body
from bluemule.protocol.messages import Request, Response, decode_response, decode_status

_MAX_IDLE_POLLS: Final = 20
MAX_RECORDS_PER_DRAIN: Final = 10 * EVENT_QUEUE_CAPACITY
"""A device that keeps producing records (or lies) cannot hold a relay forever: the
rest waits for the next visit."""


@dataclass(frozen=True)
class StoreEvents:
    """Make ``records`` durable, then call :meth:`EventDrainSession.on_stored`."""

    device_id: str
    records: tuple[EventRecord, ...]


DrainAction = Write | Read | WaitForNotification | StoreEvents


class EventDrainSession:
    """Read, store and acknowledge every queued record of one device, oldest first."""

    def __init__(self, *, batch: int = 16, max_records: int = MAX_RECORDS_PER_DRAIN) -> None:
        if batch < 1 or max_records < 1:
            raise ValueError("batch and max_records must be at least 1")
        self.batch = batch
        self.max_records = max_records
        self.device_id = ""
        self.drained = 0
        """Records stored and acknowledged."""
        self.done = False
        self.error: str | None = None
        """Why the drain stopped early (a refusal or a malformed value); None otherwise."""
        self.supported = True
        """False when the device does not queue events (no EVENTS capability)."""
        self._actions: deque[DrainAction] = deque([Read(STATUS_UUID)])
        self._seq = 0
        self._pending: Opcode | None = None
        self._from = 1
        self._record = bytearray()
        self._record_seq = 0
        self._record_total = 0
        self._batch: list[EventRecord] = []
        self._storing = False
        self._exhausted = False
        self._idle_polls = 0

    # -------------------------------------------------------------- driver API

    def next_action(self) -> DrainAction | None:
        """The next thing to do, or None when done."""
        if self.done:
            return None
        return self._actions.popleft() if self._actions else WaitForNotification()

    def on_read(self, uuid: str, value: bytes) -> None:
        """The value a :class:`Read` returned."""
        self.on_notification(uuid, value)

    def on_notification(self, uuid: str, value: bytes) -> None:
        """A notification (or read value) of ``uuid``."""
        try:
            if uuid == STATUS_UUID:
                self._on_status(value)
            elif uuid == RESPONSE_UUID and value:
                self._on_response(decode_response(value))
        except DecodeError as exc:
            self._finish(f"device sent a malformed value: {exc}")

    def on_timeout(self) -> None:
        """Nothing arrived while waiting: poll RESPONSE."""
        self._idle_polls += 1
        if self._idle_polls > _MAX_IDLE_POLLS:
            self._finish("the device stopped answering")
        elif self._pending is not None:
            self._actions.append(Read(RESPONSE_UUID))

    def on_stored(self) -> None:
        """The records of the last :class:`StoreEvents` are durable: acknowledge them."""
        if not self._storing:
            raise RuntimeError("on_stored without a StoreEvents")
        self._storing = False
        self._request(Opcode.EVENTS_ACK, self._batch[-1].sequence)

    # ---------------------------------------------------------------- internals

    def _finish(self, error: str | None = None) -> None:
        self.done = True
        self.error = error
        self._actions.clear()

    def _request(self, opcode: Opcode, *args: int) -> None:
        self._seq = (self._seq + 1) & 0xFF
        self._pending = opcode
        self._actions.append(Write(CONTROL_UUID, Request(opcode, self._seq, args).encode(), True))

    def _on_status(self, value: bytes) -> None:
        if self.device_id:
            return  # only the first STATUS matters
        status = decode_status(value)
        self.device_id = status.device_id_hex
        if status.protocol_version != PROTOCOL_VERSION:
            self._finish("device speaks another protocol version")
        elif not status.capabilities & Capability.EVENTS or status.events is None:
            self.supported = False
            self._finish()
        elif status.events.queued == 0:
            self._finish()
        else:
            self._from = status.events.first_sequence
            self._request(Opcode.EVENTS_READ, self._from, 0)

    def _on_response(self, r: Response) -> None:
        if r.opcode != self._pending or r.seq != self._seq:
            return  # stale (a polled value of an earlier request)
        self._pending = None
        self._idle_polls = 0
        if not r.ok:
            self._finish(f"{r.opcode.name}: {r.status.name} ({r.detail})")
        elif r.opcode == Opcode.EVENTS_READ:
            self._on_chunk(r)
        else:
            self.drained += len(self._batch)
            self._batch.clear()
            (left,) = r.values
            if self._exhausted or left == 0 or self.drained >= self.max_records:
                self._finish()
            else:
                self._request(Opcode.EVENTS_READ, self._from, 0)

    def _on_chunk(self, r: Response) -> None:
        sequence, total, offset = r.values
        if sequence == 0:
            self._exhausted = True
            self._store_or_finish()
            return
        if offset == 0:
            self._record_seq, self._record_total = sequence, total
            self._record = bytearray()
        ours = sequence == self._record_seq and total == self._record_total
        if not ours or offset != len(self._record) or sequence < self._from:
            raise DecodeError(f"EVENTS_READ answered record {sequence} at {offset} out of order")
        if total > MAX_BODY_SIZE or (not r.chunk and offset < total):
            raise DecodeError(f"EVENTS_READ record {sequence} of {total} bytes makes no progress")
        self._record += r.chunk
        if len(self._record) < total:
            self._request(Opcode.EVENTS_READ, sequence, len(self._record))
            return
        self._batch.append(decode_body(sequence, bytes(self._record)))
        self._from = sequence + 1
        if len(self._batch) >= min(self.batch, self.max_records - self.drained):
            self._store_or_finish()
        else:
            self._request(Opcode.EVENTS_READ, self._from, 0)

    def _store_or_finish(self) -> None:
        if self._batch:
            self._storing = True
            self._actions.append(StoreEvents(self.device_id, tuple(self._batch)))
        else:
            self._finish()
