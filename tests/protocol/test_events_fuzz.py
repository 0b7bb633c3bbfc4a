"""Fuzz the event formats, the queue and the relay's drain session.

The CI pass is short (``BLUEMULE_FUZZ_EXAMPLES`` examples per test, 400 by default);
run longer with ``BLUEMULE_FUZZ_EXAMPLES=5000 .venv/bin/pytest -m fuzz
tests/protocol/test_events_fuzz.py``.
"""

from __future__ import annotations

import os
import struct
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.protocol.client_session import Read, WaitForNotification, Write
from bluemule.protocol.constants import RESPONSE_UUID, STATUS_UUID, Opcode, Status
from bluemule.protocol.device_session import DeviceSession
from bluemule.protocol.errors import DecodeError
from bluemule.protocol.event_session import EventDrainSession, StoreEvents
from bluemule.protocol.events import (
    EventQueue,
    EventQueueFullError,
    EventRecord,
    UnknownEventError,
    decode_body,
    decode_segment,
    encode_stored,
)
from bluemule.protocol.messages import Request, Response, decode_request
from tests.protocol.test_events import DictStore, PowerCutError
from tests.protocol.test_sessions import boron

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = st.text("abcXYZ019_-/", min_size=1, max_size=64).filter(
    lambda n: not n.lower().startswith(("particle", "spark"))
)


@FUZZ
@given(st.binary(max_size=1200), st.integers(1, 2**32 - 1))
def test_decode_body(body: bytes, sequence: int) -> None:
    try:
        record = decode_body(sequence, body)
    except DecodeError:
        return
    assert record.body() == body


@FUZZ
@given(st.binary(max_size=2000))
def test_decode_segment(value: bytes) -> None:
    for seq, body in decode_segment(value):
        assert encode_stored(seq, body) in value


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("publish"), NAMES, st.one_of(st.none(), st.text(max_size=300))),
            st.tuples(st.just("ack"), st.integers(0, 40), st.none()),
        ),
        max_size=40,
    ),
    st.one_of(st.none(), st.integers(0, 80)),
)
def test_queue_matches_a_model_through_a_power_cut(
    ops: list[tuple[str, object, str | None]], cut: int | None
) -> None:
    """The queue after any history and one power cut holds exactly the model's records,
    where the interrupted operation either happened or did not."""
    store = DictStore()
    store.fail_after = cut
    queue = EventQueue(store, capacity=12)
    model: list[EventRecord] = []
    last = 0
    interrupted: tuple[str, object, str | None] | None = None
    for op in ops:
        try:
            if op[0] == "publish":
                assert isinstance(op[1], str)
                try:
                    seq = queue.publish(op[1], op[2])
                except EventQueueFullError:
                    assert len(model) == 12
                    continue
                assert seq == last + 1
                last = seq
                model.append(EventRecord(seq, op[1], op[2]))
            else:
                assert isinstance(op[1], int)
                try:
                    queue.ack(op[1])
                except UnknownEventError:
                    assert op[1] > last
                    continue
                model = [r for r in model if r.sequence > op[1]]
        except PowerCutError:
            interrupted = op
            break
    store.fail_after = None
    got = EventQueue(store).records()
    if interrupted is None or got == model:
        assert got == model
    elif interrupted[0] == "publish":
        assert got[:-1] == model and got[-1].sequence == last + 1
    else:
        assert isinstance(interrupted[1], int)
        assert got == [r for r in model if r.sequence > interrupted[1]]


_CHUNK = struct.Struct("<IHHB")


def _responses(seq: int, opcode: Opcode) -> st.SearchStrategy[bytes]:
    """What a lying device might answer: well-formed chunks with wrong numbers, other
    statuses, or noise."""
    header = bytes((opcode, seq))
    chunk = st.builds(
        lambda s, t, o, c: header + b"\x00" + _CHUNK.pack(s, t, o, len(c)) + c,
        st.integers(0, 5),
        st.integers(0, 1200),
        st.integers(0, 1200),
        st.binary(max_size=40),
    )
    statuses = st.sampled_from(list(Status)).map(
        lambda s: (
            Response(opcode, seq, s, (3,) if s == Status.OK else (), detail=1).encode()
            if opcode == Opcode.EVENTS_ACK or s != Status.OK
            else header + b"\x00"
        )
    )
    return st.one_of(chunk, statuses, st.binary(max_size=30))


@FUZZ
@given(st.data())
def test_drain_session_against_a_lying_device(data: st.DataObject) -> None:
    """Whatever the device answers, the session ends (done, maybe with an error) without
    raising, and never acknowledges a sequence it has not handed over for storage."""
    status = boron()
    session = EventDrainSession(batch=data.draw(st.integers(1, 4)))
    stored: list[int] = []
    pending: bytes | None = None
    for _ in range(200):
        action = session.next_action()
        if action is None:
            break
        match action:
            case Read(uuid=uuid) if uuid == STATUS_UUID:
                device = DeviceSession(status)
                device.events.publish("a", None)
                session.on_read(uuid, device.status().encode())
            case Read() | WaitForNotification():
                if pending is not None and data.draw(st.booleans()):
                    session.on_notification(RESPONSE_UUID, pending)
                else:
                    session.on_timeout()
            case Write(value=value):
                request = decode_request(value)
                if request.opcode == Opcode.EVENTS_ACK:
                    assert stored and request.args[0] == stored[-1]
                pending = data.draw(_responses(request.seq, request.opcode))
            case StoreEvents(records=records):
                stored.extend(r.sequence for r in records)
                assert stored == sorted(set(stored))
                session.on_stored()
    assert session.done or session.next_action() is not None


def test_requests_round_trip() -> None:
    for args in ((1, 0), (2**32 - 1, 0xFFFF)):
        r = Request(Opcode.EVENTS_READ, 1, args)
        assert decode_request(r.encode()) == r
