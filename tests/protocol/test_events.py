"""Event records and the device's event queue: golden bytes, truncations, queue rules,
crash consistency at every storage write, and the server's validation as the oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bluemule.protocol.constants import (
    EVENT_QUEUE_BYTES,
    EVENT_QUEUE_CAPACITY,
    EVENT_SEGMENT_SIZE,
    MAX_EVENT_DATA_SIZE,
    Capability,
)
from bluemule.protocol.errors import DecodeError
from bluemule.protocol.events import (
    KV_EVENTS,
    EventQueue,
    EventQueueFullError,
    EventRecord,
    InvalidEventError,
    UnknownEventError,
    check_event,
    decode_body,
    decode_segment,
    encode_stored,
    event_id,
)
from bluemule.protocol.messages import DeviceStatus, EventSummary, decode_status
from bluemule.server.relay_api import EventIn

GOLDEN: dict[str, Any] = json.loads((Path(__file__).parent / "golden" / "events.json").read_text())
DEVICE = "e00fce68a1b2c3d4e5f60718"


def record(r: dict[str, Any]) -> EventRecord:
    return EventRecord(r["sequence"], r["name"], r["data"], r["captured_at"])


# ------------------------------------------------------------------------- wire bytes


@pytest.mark.parametrize("r", GOLDEN["records"], ids=lambda r: r["name"])
def test_golden_record(r: dict[str, Any]) -> None:
    body, stored = bytes.fromhex(r["body"]), bytes.fromhex(r["stored"])
    assert record(r).body() == body
    assert decode_body(r["sequence"], body) == record(r)
    assert encode_stored(r["sequence"], body) == stored
    assert decode_segment(stored) == [(r["sequence"], body)]


@pytest.mark.parametrize("r", GOLDEN["records"], ids=lambda r: r["name"])
def test_truncated_records(r: dict[str, Any]) -> None:
    """A stored record cut anywhere is not read back; a body cut inside its header or
    name is refused, and cut in its data it is a shorter (still valid) text or refused."""
    body, stored = bytes.fromhex(r["body"]), bytes.fromhex(r["stored"])
    name_end = 6 + len(r["name"])
    for cut in range(len(stored)):
        assert decode_segment(stored[:cut]) == []
        if cut:
            assert decode_segment(stored[:cut] + stored) == []  # nothing after a torn one
    for cut in range(len(body)):
        if cut < name_end:
            with pytest.raises(DecodeError):
                decode_body(r["sequence"], body[:cut])
            continue
        try:
            shorter = decode_body(r["sequence"], body[:cut])
        except DecodeError:
            continue  # cut inside a multi-byte character
        assert shorter.data is not None
        assert (r["data"] or "").encode().startswith(shorter.data.encode())


def test_segment_of_several_records_stops_at_corruption() -> None:
    stored = [bytes.fromhex(r["stored"]) for r in GOLDEN["records"]]
    segment = b"".join(stored)
    assert [s for s, _ in decode_segment(segment)] == [1, 7, 300, 65536]
    flipped = bytearray(segment)
    flipped[len(stored[0]) + len(stored[1]) + 12] ^= 0x40  # inside the third body
    assert [s for s, _ in decode_segment(bytes(flipped))] == [1, 7]


def test_golden_status_with_event_fields() -> None:
    g = GOLDEN["status"]
    raw, old = bytes.fromhex(g["hex"]), bytes.fromhex(g["v1_0_hex"])
    status = decode_status(raw)
    assert len(raw) == 121
    assert status.events == EventSummary(**g["events"])
    assert status.capabilities & Capability.EVENTS
    assert status.encode() == raw
    v10 = decode_status(old)  # a v1.0 device: no event fields
    assert v10.events is None
    assert v10.encode() == old
    for cut in range(len(raw)):
        if cut == len(old):
            assert decode_status(raw[:cut]).events is None
            continue
        with pytest.raises(DecodeError):
            decode_status(raw[:cut])
    assert decode_status(raw + b"\x01\x02").events == status.events  # later fields ignored


def test_event_id_is_device_and_sequence() -> None:
    assert event_id(DEVICE.upper(), 42) == f"{DEVICE}:42"
    assert len(event_id(DEVICE, 0xFFFFFFFF)) <= 100  # the server's id limit


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70), st.one_of(st.none(), st.text(max_size=1100)))
def test_device_accepts_exactly_what_the_server_accepts(name: str, data: str | None) -> None:
    """An event the device queues must never be refused by the server (it would block
    the queue forever), and the device refuses nothing the server would take that fits
    Particle's 1,024-byte limit."""
    try:
        check_event(name, data)
    except InvalidEventError:
        server_ok = True
        try:
            EventIn(id="x:1", device_id=DEVICE, name=name, data=data)
        except (ValidationError, UnicodeEncodeError):
            server_ok = False
        fits = data is None or len(data.encode("utf-8", "surrogatepass")) <= MAX_EVENT_DATA_SIZE
        assert not (server_ok and fits and _valid_unicode(data))
    else:
        EventIn(id="x:1", device_id=DEVICE, name=name, data=data)


def _valid_unicode(text: str | None) -> bool:
    try:
        (text or "").encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------------------ queue


class DictStore:
    """A key-value store in a dict; ``fail_after`` puts raise (a power loss)."""

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.puts = 0
        self.fail_after: int | None = None

    def kv_get(self, key: str) -> bytes | None:
        return self.kv.get(key)

    def kv_put(self, key: str, value: bytes | None) -> None:
        if self.fail_after is not None and self.puts >= self.fail_after:
            raise PowerCutError
        self.puts += 1
        if value is None:
            self.kv.pop(key, None)
        else:
            self.kv[key] = value


class PowerCutError(Exception):
    pass


def test_publish_read_ack_and_restart() -> None:
    store = DictStore()
    q = EventQueue(store)
    assert [q.publish(f"e{i}", str(i), 1000 + i) for i in range(5)] == [1, 2, 3, 4, 5]
    q = EventQueue(store)  # a reboot: state comes from storage only
    assert q.read(0) == (1, EventRecord(1, "e0", "0", 1000).body())
    assert q.read(3) is not None
    assert q.read(6) is None
    assert q.ack(2) == 3
    assert q.ack(2) == 3  # idempotent
    assert q.ack(0) == 3
    assert [r.sequence for r in q.records()] == [3, 4, 5]
    with pytest.raises(UnknownEventError) as exc:
        q.ack(6)
    assert exc.value.last == 5
    assert q.ack(5) == 0
    assert q.summary() == EventSummary(0, 0, 5, 0)
    assert set(store.kv) == {KV_EVENTS}  # every segment deleted
    assert EventQueue(store).publish("after", None) == 6  # sequences never repeat


def test_capacity_in_records_refuses_and_counts() -> None:
    q = EventQueue(DictStore())
    for i in range(EVENT_QUEUE_CAPACITY):
        q.publish("n", str(i))
    for dropped in (1, 2):
        with pytest.raises(EventQueueFullError) as exc:
            q.publish("n", "one too many")
        assert exc.value.dropped == dropped
    assert q.summary() == EventSummary(EVENT_QUEUE_CAPACITY, 1, EVENT_QUEUE_CAPACITY, 2)
    q.ack(1)
    assert q.publish("n", "room again") == EVENT_QUEUE_CAPACITY + 1


def test_capacity_in_bytes_with_full_size_events() -> None:
    store = DictStore()
    q = EventQueue(store)
    big = "é" * (MAX_EVENT_DATA_SIZE // 2)
    stored = len(encode_stored(1, EventRecord(1, "big", big).body()))
    n = EVENT_QUEUE_BYTES // stored
    for _ in range(n):
        q.publish("big", big)
    with pytest.raises(EventQueueFullError):
        q.publish("big", big)
    assert len(q.records()) == n < EVENT_QUEUE_CAPACITY
    assert all(len(v) <= EVENT_SEGMENT_SIZE for k, v in store.kv.items() if k != KV_EVENTS)
    assert [r.data for r in q.records()] == [big] * n


def test_invalid_events_are_refused_before_storage() -> None:
    store = DictStore()
    q = EventQueue(store)
    for name, data in [("", "x"), ("a b", None), ("particle/x", None), ("x" * 65, None),
                       ("ok", "x" * 1025), ("ok", "\ud800")]:  # fmt: skip
        with pytest.raises(InvalidEventError):
            q.publish(name, data)
    with pytest.raises(InvalidEventError):
        q.publish("ok", None, -1)
    assert store.kv == {}


def test_partial_ack_keeps_the_segment_until_emptied() -> None:
    store = DictStore()
    q = EventQueue(store)
    for _ in range(10):
        q.publish("n", "x" * 900)  # 4 records per 4 KiB segment
    segments = sorted(k for k in store.kv if k != KV_EVENTS)
    assert len(segments) == 3
    q.ack(2)
    assert sorted(k for k in store.kv if k != KV_EVENTS) == segments
    q.ack(4)
    assert len([k for k in store.kv if k != KV_EVENTS]) == 2
    assert q.read(1) == (5, EventRecord(5, "n", "x" * 900).body())


def _operations(q: EventQueue) -> None:
    q.publish("a", "1")
    q.publish("b", "2" * 1000)
    q.publish("c", None)
    q.ack(1)
    for i in range(6):
        q.publish("d", str(i) * 900)
    q.ack(8)
    q.publish("e", "last")
    q.ack(10)


def test_a_power_cut_at_any_write_leaves_a_consistent_queue() -> None:
    """Cut the power before each storage write of a scripted history: what the queue
    holds afterwards is exactly the history up to the last completed operation (or the
    interrupted one, complete), and after one more operation no file is left behind."""
    reference = DictStore()
    _operations(EventQueue(reference))
    total = reference.puts
    for cut in range(total):
        store = DictStore()
        store.fail_after = cut
        with pytest.raises(PowerCutError):
            _operations(EventQueue(store))
        store.fail_after = None
        q = EventQueue(store)  # reboot
        summary = q.summary()
        records = q.records()
        assert [r.sequence for r in records] == list(
            range(summary.first_sequence or summary.last_sequence + 1, summary.last_sequence + 1)
        )
        assert len({r.sequence for r in records}) == len(records)
        nxt = q.publish("z", "after the cut")
        assert nxt == summary.last_sequence + 1
        q.ack(nxt)
        assert set(store.kv) == {KV_EVENTS}, f"files left behind after a cut at write {cut}"


def test_status_reports_the_queue_in_device_status() -> None:
    q = EventQueue(DictStore())
    q.publish("a", None)
    q.publish("b", None)
    q.ack(1)
    summary = q.summary()
    assert summary == EventSummary(1, 2, 2, 0)
    status = DeviceStatus(bytes(12), 13, 6200, 1, 0xFFFF, 0, bytes(32), 0, 244, 4096, 1024, 0,
                          events=summary)  # fmt: skip
    assert decode_status(status.encode()).events == summary


def test_golden_storage_layout() -> None:
    """The meta and segment files byte for byte (what the C++ library writes too)."""
    store = DictStore()
    q = EventQueue(store)
    q.publish("temp", "21.5", 1767225600)
    q.publish("door/open", None)
    q.ack(1)
    # format 1, first 2, next 3, dropped 0, 1 segment, 0 trash, segment key 1
    assert store.kv[KV_EVENTS].hex() == "01020000000300000000000000010001000000"
    first, second = (bytes.fromhex(r["stored"]) for r in GOLDEN["records"][:2])
    second = b"\x02" + second[1:]  # the golden second record has sequence 7
    assert store.kv["events.00000001"] == first + second  # acked records stay until rewritten
    q.publish("x", None)
    assert store.kv["events.00000001"].startswith(second)  # ...which drops them
