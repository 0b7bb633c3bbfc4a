"""The relay's EventDrainSession against the device's DeviceSession, values handed
across directly: chunking at every MTU, polling, lost links, and ack-after-store."""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field

import pytest

from bluemule.protocol.client_session import Read, WaitForNotification, Write
from bluemule.protocol.constants import (
    CONTROL_UUID,
    RESPONSE_UUID,
    STATUS_UUID,
    Capability,
    Opcode,
    Status,
)
from bluemule.protocol.device_events import answer_event_request, max_chunk
from bluemule.protocol.device_session import DeviceSession, Notify
from bluemule.protocol.event_session import EventDrainSession, StoreEvents
from bluemule.protocol.events import EventQueue, EventRecord
from bluemule.protocol.messages import Request, decode_response
from tests.protocol.test_sessions import boron

UNICODE = "naïve ☃ 🐝 " * 60  # 1,020 bytes of UTF-8 with 2-, 3- and 4-byte characters


class LinkLostError(Exception):
    pass


@dataclass
class Relay:
    """What the relay stored, and what the device still held at each store."""

    stored: list[EventRecord] = field(default_factory=list)
    held_at_store: list[list[int]] = field(default_factory=list)
    requests: int = 0


def drain(
    session: DeviceSession,
    relay: Relay,
    *,
    batch: int = 16,
    notifications: bool = True,
    lose_link_after_writes: int | None = None,
    max_records: int = 1000,
) -> EventDrainSession:
    """Run one drain on one connection; LinkLostError when the link drops."""
    client = EventDrainSession(batch=batch, max_records=max_records)
    inbox: deque[bytes] = deque()
    writes = 0
    while (action := client.next_action()) is not None:
        match action:
            case Write(uuid=uuid, value=value):
                assert uuid == CONTROL_UUID
                if writes == lose_link_after_writes:
                    raise LinkLostError
                writes += 1
                relay.requests += 1
                for out in session.handle_control(value):
                    if notifications and isinstance(out, Notify):
                        inbox.append(out.value)
            case Read(uuid=uuid):
                client.on_read(uuid, session.read(uuid))
            case WaitForNotification():
                if inbox:
                    client.on_notification(RESPONSE_UUID, inbox.popleft())
                else:
                    client.on_timeout()
            case StoreEvents(records=records):
                relay.held_at_store.append([r.sequence for r in session.events.records()])
                relay.stored.extend(records)
                client.on_stored()
    return client


def published(session: DeviceSession, count: int) -> list[EventRecord]:
    records = []
    for i in range(count):
        data = UNICODE if i % 5 == 0 else (None if i % 7 == 3 else f"reading {i}")
        seq = session.events.publish(f"sensor/{i % 3}", data, 1_767_225_600 + i)
        records.append(EventRecord(seq, f"sensor/{i % 3}", data, 1_767_225_600 + i))
    return records


@pytest.mark.parametrize("mtu", [23, 185, 247])
@pytest.mark.parametrize("notifications", [True, False])
def test_drain_everything_in_order(mtu: int, notifications: bool) -> None:
    session = DeviceSession(boron())
    session.on_connect(mtu)
    sent = published(session, 23)
    relay = Relay()
    client = drain(session, relay, batch=5, notifications=notifications)
    assert client.error is None
    assert client.drained == 23
    assert relay.stored == sent
    assert session.events.records() == []
    # Each batch was stored while the device still held all of it: acks follow stores.
    for held, start in zip(relay.held_at_store, range(0, 23, 5), strict=True):
        assert held[0] == sent[start].sequence
    assert drain(session, Relay()).drained == 0


def test_chunks_fit_the_mtu() -> None:
    queue = EventQueue(boron())
    queue.publish("big", "x" * 1024)
    for mtu in (23, 100, 247, 517):
        r = answer_event_request(queue, Request(Opcode.EVENTS_READ, 1, (1, 0)), mtu)
        assert len(r.encode()) <= min(mtu, 247) - 3
        assert len(r.chunk) == max_chunk(mtu)
    size = 6 + len("big") + 1024
    tail = answer_event_request(queue, Request(Opcode.EVENTS_READ, 2, (1, size)), 247)
    assert tail.ok and tail.chunk == b"" and tail.values == (1, size, size)
    beyond = answer_event_request(queue, Request(Opcode.EVENTS_READ, 3, (1, size + 1)), 247)
    assert beyond.status == Status.BAD_REQUEST and beyond.detail == size
    # Asking at an offset of a record that is gone reads the next one from its start.
    other = answer_event_request(queue, Request(Opcode.EVENTS_READ, 4, (0, 50)), 247)
    assert other.values[0] == 1 and other.values[2] == 0


def test_a_lost_link_loses_nothing_and_duplicates_only_unacked() -> None:
    """Drop the link before each request in turn, reconnect (same boot) and drain again:
    every event arrives, in order; only a batch stored but not yet acked arrives twice."""
    writes = _requests_of_a_clean_drain()
    for cut in range(writes):
        session = DeviceSession(boron())
        session.on_connect(247)
        sent = published(session, 12)
        relay = Relay()
        with pytest.raises(LinkLostError):
            drain(session, relay, batch=4, lose_link_after_writes=cut)
        first_pass = list(relay.stored)
        client = drain(session, relay, batch=4)
        assert client.error is None
        unique = {r.sequence: r for r in relay.stored}
        assert sorted(unique.values(), key=lambda r: r.sequence) == sent
        again = [r.sequence for r in relay.stored[len(first_pass) :]]
        assert len(set(again) & {r.sequence for r in first_pass}) <= 4
        assert session.events.records() == []


def _requests_of_a_clean_drain() -> int:
    session = DeviceSession(boron())
    session.on_connect(247)
    published(session, 12)
    relay = Relay()
    drain(session, relay, batch=4)
    return relay.requests


def test_events_interleave_with_nothing_else_and_survive_a_reboot() -> None:
    device = boron()
    session = DeviceSession(device)
    session.on_connect(247)
    sent = published(session, 3)
    rebooted = DeviceSession(device)  # the queue lives in storage, not in the session
    rebooted.on_connect(247)
    relay = Relay()
    assert drain(rebooted, relay).drained == 3
    assert relay.stored == sent


def test_one_drain_reads_at_most_max_records() -> None:
    session = DeviceSession(boron())
    session.on_connect(247)
    sent = published(session, 7)
    relay = Relay()
    client = drain(session, relay, batch=2, max_records=5)
    assert (client.drained, client.error) == (5, None)
    assert relay.stored == sent[:5]
    assert [r.sequence for r in session.events.records()] == [6, 7]


def test_unknown_ack_is_refused_and_the_drain_reports_it() -> None:
    session = DeviceSession(boron())
    session.on_connect(247)
    session.events.publish("a", None)
    raw = session.handle_control(Request(Opcode.EVENTS_ACK, 9, (2,)).encode())
    assert isinstance(raw[0], Notify)
    r = decode_response(raw[0].value)
    assert (r.status, r.detail) == (Status.UNKNOWN_EVENT, 1)
    ok = decode_response(session.read(RESPONSE_UUID))
    assert ok.seq == 9
    assert len(session.events.records()) == 1


def test_a_device_without_events_is_skipped() -> None:
    """A v1.0 device: 107-byte STATUS, no EVENTS capability: nothing is requested."""
    session = DeviceSession(boron())
    client = EventDrainSession()
    assert client.next_action() == Read(STATUS_UUID)
    status = session.status()
    old = dataclasses.replace(status, events=None, capabilities=Capability.NOTIFICATIONS)
    assert len(old.encode()) == 107
    client.on_read(STATUS_UUID, old.encode())
    assert client.done and not client.supported and client.error is None
    assert client.next_action() is None
