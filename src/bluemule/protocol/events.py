"""Events a device queues while offline, and what a relay reads of them (pure; see
``docs/protocol.md`` §11).

Three byte formats live here:

* the **record body** a relay reads in chunks with EVENTS_READ:
  ``captured_at u32, flags u8, name length u8, name, data`` (≤ 1,094 bytes);
* the **stored record**: ``sequence u32, body length u16, CRC-32 u32, body``, appended to
  segment files of at most :data:`EVENT_SEGMENT_SIZE` bytes;
* the queue's **meta** value: ``format u8 = 1, first u32, next u32, dropped u32,
  segment count u8, trash count u8, segment first sequences u32…, trash u32…``.

:class:`EventQueue` is the device side (what the C++ library does over LittleFS files,
here over any key-value store such as :class:`DeviceServices`). Every change is a
sequence of whole-value writes ordered so that a power loss between any two leaves a
consistent queue: a record is durable once the meta naming it is written; an ack takes
effect when the meta moving ``first`` is written, and the segments it emptied are then
deleted (or, after a power loss, at the next change).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Final, Protocol

from bluemule.protocol.constants import (
    EVENT_QUEUE_BYTES,
    EVENT_QUEUE_CAPACITY,
    EVENT_SEGMENT_SIZE,
    MAX_EVENT_DATA_SIZE,
    MAX_EVENT_NAME_SIZE,
    EventFlag,
)
from bluemule.protocol.errors import DecodeError, ProtocolError
from bluemule.protocol.messages import EventSummary

EVENT_NAME: Final = re.compile(rf"[A-Za-z0-9_\-/]{{1,{MAX_EVENT_NAME_SIZE}}}")
"""What the fleet server (and Particle's cloud) accept as an event name."""
RESERVED_PREFIXES: Final = ("particle", "spark")
UNKNOWN_TIME: Final = 0
"""``captured_at`` of an event published while the device's clock was not set."""
_BODY: Final = struct.Struct("<IBB")  # captured_at, flags, name length
_STORED: Final = struct.Struct("<IHI")  # sequence, body length, CRC-32 of the body
_META: Final = struct.Struct("<BIIIBB")  # format, first, next, dropped, segments, trash
_META_FORMAT: Final = 1
MAX_BODY_SIZE: Final = _BODY.size + MAX_EVENT_NAME_SIZE + MAX_EVENT_DATA_SIZE
KV_EVENTS: Final = "events"


def event_id(device_id: str, sequence: int) -> str:
    """The id the fleet server deduplicates on: ``<24 hex digits>:<sequence>``.

    Re-reading a record the device still holds (its ack was lost) yields the same id.
    """
    return f"{device_id.lower()}:{sequence}"


def sequence_of(event_id_: str, device_id: str) -> int | None:
    """The sequence in an id :func:`event_id` made for ``device_id``; None for other ids
    (events posted by other clients may use any unique id)."""
    prefix, sep, digits = event_id_.rpartition(":")
    if sep and prefix == device_id.lower() and digits.isdigit() and len(digits) <= 10:
        return int(digits)
    return None


def segment_key(first_sequence: int) -> str:
    """Key of the segment file whose first record has ``first_sequence``."""
    return f"{KV_EVENTS}.{first_sequence:08x}"


# ------------------------------------------------------------------------------ errors


class EventError(ProtocolError):
    """Root of the event queue's errors."""


class InvalidEventError(EventError, ValueError):
    """A name or data the fleet server would refuse (so it is never queued)."""


class EventQueueFullError(EventError):
    """The queue holds its capacity; the publish was refused and counted in ``dropped``."""

    def __init__(self, dropped: int) -> None:
        super().__init__(
            f"the event queue is full ({EVENT_QUEUE_CAPACITY} records or "
            f"{EVENT_QUEUE_BYTES} bytes); {dropped} publishes refused so far"
        )
        self.dropped = dropped


class UnknownEventError(EventError):
    """An ack beyond the last sequence the device assigned."""

    def __init__(self, sequence: int, last: int) -> None:
        super().__init__(f"no event {sequence}: the last sequence assigned is {last}")
        self.sequence = sequence
        self.last = last


# ------------------------------------------------------------------------------ record


@dataclass(frozen=True)
class EventRecord:
    """One queued event."""

    sequence: int
    name: str
    data: str | None
    captured_at: int = UNKNOWN_TIME
    """Unix seconds; 0 when the device's clock was not set."""

    def body(self) -> bytes:
        """The bytes a relay reads (``captured_at u32, flags u8, name length u8, name,
        data``)."""
        name = self.name.encode("ascii")
        flags = 0 if self.data is None else EventFlag.HAS_DATA
        data = b"" if self.data is None else self.data.encode("utf-8")
        return _BODY.pack(self.captured_at, flags, len(name)) + name + data


def check_event(name: str, data: str | None) -> None:
    """Refuse what the fleet server would refuse: name 1–64 of A–Z a–z 0–9 _ - / not
    starting with ``particle``/``spark``; data UTF-8 of at most 1,024 bytes."""
    if not EVENT_NAME.fullmatch(name):
        raise InvalidEventError(f"event name {name!r} is not 1–64 of A–Z a–z 0–9 _ - /")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise InvalidEventError(f"event name {name!r}: 'particle' and 'spark' are reserved")
    if data is not None:
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_EVENT_DATA_SIZE:
            raise InvalidEventError(f"event data is {size} bytes, at most {MAX_EVENT_DATA_SIZE}")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEventError("event data is not valid Unicode text") from None


def decode_body(sequence: int, body: bytes) -> EventRecord:
    """Decode a record body read from a device; a lying device gets a DecodeError."""
    if len(body) < _BODY.size or len(body) > MAX_BODY_SIZE:
        raise DecodeError(f"event record of {len(body)} bytes")
    captured_at, flags, n = _BODY.unpack_from(body)
    if flags & ~int(EventFlag.HAS_DATA):
        raise DecodeError(f"event record flags 0x{flags:02x}", offset=4)
    if len(body) < _BODY.size + n:
        raise DecodeError("event name truncated", offset=_BODY.size)
    try:
        name = body[_BODY.size : _BODY.size + n].decode("ascii")
        data = body[_BODY.size + n :].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("event name is not ASCII or data not UTF-8") from None
    if not flags & EventFlag.HAS_DATA and data:
        raise DecodeError("event record without HAS_DATA carries data")
    try:
        check_event(name, data)
    except InvalidEventError as exc:
        raise DecodeError(str(exc)) from None
    return EventRecord(sequence, name, data if flags & EventFlag.HAS_DATA else None, captured_at)


def encode_stored(sequence: int, body: bytes) -> bytes:
    """A record as stored in a segment."""
    return _STORED.pack(sequence, len(body), zlib.crc32(body)) + body


def decode_segment(value: bytes) -> list[tuple[int, bytes]]:
    """(sequence, body) of each intact record, in order; parsing stops at the first
    truncated or corrupt one (what follows it cannot be trusted)."""
    records: list[tuple[int, bytes]] = []
    pos = 0
    while pos + _STORED.size <= len(value):
        sequence, size, crc = _STORED.unpack_from(value, pos)
        body = value[pos + _STORED.size : pos + _STORED.size + size]
        if len(body) != size or zlib.crc32(body) != crc:
            break
        records.append((sequence, bytes(body)))
        pos += _STORED.size + size
    return records


# ------------------------------------------------------------------------------- queue


class KeyValueStore(Protocol):
    """Whole-value atomic storage (the device library's LittleFS files)."""

    def kv_get(self, key: str) -> bytes | None:
        """The value, or None."""
        ...

    def kv_put(self, key: str, value: bytes | None) -> None:
        """Replace atomically; None deletes."""


@dataclass
class _State:
    first: int = 1
    next: int = 1
    dropped: int = 0
    segments: tuple[int, ...] = ()
    trash: tuple[int, ...] = ()

    def encode(self) -> bytes:
        head = _META.pack(
            _META_FORMAT, self.first, self.next, self.dropped, len(self.segments), len(self.trash)
        )
        return head + struct.pack(f"<{len(self.segments) + len(self.trash)}I", *self.segments,
                                  *self.trash)  # fmt: skip


def _decode_state(raw: bytes | None) -> _State:
    if not raw:
        return _State()
    if len(raw) < _META.size:
        raise EventError("event queue meta is truncated")
    fmt, first, nxt, dropped, n_seg, n_trash = _META.unpack_from(raw)
    ids = raw[_META.size :]
    if fmt != _META_FORMAT or len(ids) != 4 * (n_seg + n_trash) or not 1 <= first <= nxt:
        raise EventError("event queue meta is damaged")
    values = struct.unpack(f"<{n_seg + n_trash}I", ids)
    return _State(first, nxt, dropped, values[:n_seg], values[n_seg:])


class EventQueue:
    """The device's durable event queue over a key-value store.

    Sequences start at 1 and never repeat (the next one is persisted with each record);
    at most ``capacity`` records and ``max_bytes`` stored bytes wait for a relay. A
    publish beyond that is refused (:class:`EventQueueFullError`) and counted: nothing
    queued is ever dropped silently.
    """

    def __init__(
        self,
        store: KeyValueStore,
        *,
        capacity: int = EVENT_QUEUE_CAPACITY,
        max_bytes: int = EVENT_QUEUE_BYTES,
    ) -> None:
        self._store = store
        self.capacity = capacity
        self.max_bytes = max_bytes

    def _load(self) -> tuple[_State, list[tuple[int, bytes]]]:
        state = _decode_state(self._store.kv_get(KV_EVENTS))
        records = [
            (seq, body)
            for key in state.segments
            for seq, body in decode_segment(self._store.kv_get(segment_key(key)) or b"")
            if state.first <= seq < state.next
        ]
        return state, records

    def _commit(self, state: _State, trash: tuple[int, ...] = ()) -> None:
        """Delete the last change's emptied segments, then write the meta (the commit)."""
        for key in state.trash:
            self._store.kv_put(segment_key(key), None)
        state.trash = trash
        self._store.kv_put(KV_EVENTS, state.encode())
        for key in trash:
            self._store.kv_put(segment_key(key), None)

    def records(self) -> list[EventRecord]:
        """Every queued record, oldest first."""
        return [decode_body(seq, body) for seq, body in self._load()[1]]

    def summary(self) -> EventSummary:
        """What STATUS reports."""
        state, records = self._load()
        return EventSummary(
            queued=len(records),
            first_sequence=records[0][0] if records else 0,
            last_sequence=state.next - 1,
            dropped=state.dropped,
        )

    def publish(self, name: str, data: str | None, captured_at: int = UNKNOWN_TIME) -> int:
        """Queue an event; returns its sequence once it is durable.

        Raises:
            InvalidEventError: the fleet server would refuse the name or data.
            EventQueueFullError: no room (the refusal is counted).
        """
        check_event(name, data)
        if not 0 <= captured_at <= 0xFFFFFFFF:
            raise InvalidEventError(f"capture time {captured_at} is not u32 unix seconds")
        state, records = self._load()
        seq = state.next
        stored = encode_stored(seq, EventRecord(seq, name, data, captured_at).body())
        used = sum(len(encode_stored(s, b)) for s, b in records)
        if len(records) >= self.capacity or used + len(stored) > self.max_bytes:
            state.dropped += 1
            self._commit(state)
            raise EventQueueFullError(state.dropped)
        last = state.segments[-1] if state.segments else None
        kept = b""
        if last is not None:
            old = decode_segment(self._store.kv_get(segment_key(last)) or b"")
            # keep what is still queued: acked records and a lost publish's orphan go
            kept = b"".join(encode_stored(s, b) for s, b in old if state.first <= s < seq)
        if last is not None and len(kept) + len(stored) <= EVENT_SEGMENT_SIZE:
            if self._store.kv_get(segment_key(seq)) is not None:
                self._store.kv_put(segment_key(seq), None)  # an orphan of a lost publish
            self._store.kv_put(segment_key(last), kept + stored)
        else:
            self._store.kv_put(segment_key(seq), stored)
            state.segments = (*state.segments, seq)
        state.next = seq + 1
        self._commit(state)
        return seq

    def read(self, from_sequence: int) -> tuple[int, bytes] | None:
        """(sequence, body) of the first queued record with sequence ≥ ``from_sequence``."""
        return next(((s, b) for s, b in self._load()[1] if s >= from_sequence), None)

    def ack(self, up_to: int) -> int:
        """Delete every record ≤ ``up_to`` (idempotent); returns how many stay queued.

        Raises:
            UnknownEventError: ``up_to`` is beyond the last sequence assigned.
        """
        state, records = self._load()
        if up_to >= state.next:
            raise UnknownEventError(up_to, state.next - 1)
        left = sum(1 for s, _ in records if s > up_to)
        if up_to < state.first:
            return left
        state.first = up_to + 1
        if state.first == state.next:
            emptied, state.segments = state.segments, ()
        else:
            # A segment is empty when the next one starts at or before the new first.
            starts = (*state.segments[1:], state.next)
            emptied = tuple(k for k, nxt in zip(state.segments, starts, strict=True)
                            if nxt <= state.first)  # fmt: skip
            state.segments = tuple(k for k in state.segments if k not in emptied)
        self._commit(state, emptied)
        return left
