"""An event id re-posted after retention pruned its row is still a duplicate (tombstones),
and a sequence never stored is not, whatever its neighbours."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, inspect, select, update
from sqlalchemy.orm import Session

from bluemule.protocol.events import event_id
from bluemule.server import relay_api, retention
from bluemule.server.bulk import insert_new
from bluemule.server.db import MIGRATIONS
from bluemule.server.models import Event, EventTombstone, OutboxItem, Webhook
from bluemule.server.outbox import DeliveryWorker
from bluemule.server.retention import prune
from tests.server.conftest import Api
from tests.server.test_relay_api import NORTH, add_device, add_relay, relay_call
from tests.server.test_webhooks import Receiver, add_hook, receiver, worker

__all__ = ["receiver", "worker"]  # fixtures

DEVICE = NORTH[0]
OTHER = NORTH[1]


def _event(device_id: str, sequence: int | None, custom: str = "") -> dict[str, Any]:
    eid = custom or event_id(device_id, sequence or 0)
    return {"id": eid, "device_id": device_id, "name": "env/temp", "data": eid}


def _settle_outbox(api: Api) -> None:
    """The webhook delivered everything queued so far."""
    with api.state.sessions() as session:
        session.execute(update(OutboxItem).values(state="delivered"))
        session.commit()


def _tombstones(api: Api) -> list[tuple[str, int, int]]:
    stone = EventTombstone
    with api.state.sessions() as session:
        rows = session.execute(select(stone.device_id, stone.first_seq, stone.last_seq))
        return sorted((row[0], row[1], row[2]) for row in rows)


def _prune_all(api: Api) -> int:
    """One retention pass that finds everything settled old enough."""
    return prune(api.state.engine, 30, now=datetime.now(UTC) + timedelta(days=31)).events


@pytest.mark.parametrize("chunk", [retention.CHUNK, 2])
def test_reposted_ids_after_pruning_are_duplicates(
    api: Api, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", chunk)
    token = add_relay(api, "gw", "north")
    add_device(api, DEVICE)
    add_device(api, OTHER)
    with api.state.sessions() as session:
        session.add(
            Webhook(
                event="env", url="http://127.0.0.1:9/", created_at=datetime.now(UTC), headers={}
            )
        )
        session.commit()
    first = [_event(DEVICE, n) for n in (1, 2, 3)] + [_event(DEVICE, None, "custom-1")]
    posted = relay_call(api, token, "POST", "/events", json={"events": first})
    assert posted.json() == {"accepted": 4, "duplicates": 0}
    assert api.counts()["outbox"] == 4
    _settle_outbox(api)

    pruned = prune(api.state.engine, 30, now=datetime.now(UTC) + timedelta(days=31))
    assert (pruned.events, pruned.outbox) == (4, 4)
    assert _tombstones(api) == [(DEVICE, 1, 3)]

    again = relay_call(api, token, "POST", "/events", json={"events": first[:3]})
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert api.counts()["events"] == api.counts()["outbox"] == 0

    # a newer sequence, another device's same sequences, and (documented limitation) an id
    # that is not relay-made: all stored and queued
    fresh = [_event(DEVICE, 4), _event(OTHER, 1), _event(DEVICE, None, "custom-1")]
    mixed = relay_call(api, token, "POST", "/events", json={"events": [*first[:3], *fresh]})
    assert mixed.json() == {"accepted": 3, "duplicates": 3}
    with api.state.sessions() as session:
        assert set(session.scalars(select(Event.id))) == {e["id"] for e in fresh}
        assert set(session.scalars(select(OutboxItem.event_id))) == {e["id"] for e in fresh}


def test_a_pass_between_the_tombstone_read_and_the_insert(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention prunes the rows (and tombstones them) after ingest read the tombstones
    and before it inserts: the re-inserted rows are taken out again, unqueued."""
    token = add_relay(api, "gw", "north")
    add_device(api, DEVICE)
    with api.state.sessions() as session:
        session.add(Webhook(event="env", url="http://127.0.0.1:9/", created_at=datetime.now(UTC)))
        session.commit()
    events = [_event(DEVICE, n) for n in (1, 2)]
    assert relay_call(api, token, "POST", "/events", json={"events": events}).is_success
    _settle_outbox(api)
    passes: list[int] = []

    def prune_then_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> set[str]:
        later = datetime.now(UTC) + timedelta(days=31)
        passes.append(prune(api.state.engine, 30, now=later).events)
        return insert_new(session, table, rows)

    monkeypatch.setattr(relay_api, "insert_new", prune_then_insert)
    again = relay_call(api, token, "POST", "/events", json={"events": [*events, _event(DEVICE, 3)]})
    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert passes == [2]
    with api.state.sessions() as session:
        assert list(session.scalars(select(Event.id))) == [event_id(DEVICE, 3)]
        assert list(session.scalars(select(OutboxItem.event_id))) == [event_id(DEVICE, 3)]


def test_a_lower_sequence_after_higher_ones_were_pruned_is_delivered(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    """Relay B uploads sequences 11-20, retention prunes them; relay A, offline all along,
    then uploads 1-10 (and re-posts 15): 1-10 are stored and delivered, 15 is a duplicate."""
    relay_a = add_relay(api, "gw-a", "north")
    relay_b = add_relay(api, "gw-b", "north")
    add_device(api, DEVICE)
    add_hook(api, event="env", url=f"{receiver.url}/hook")
    later = [_event(DEVICE, n) for n in range(11, 21)]
    assert relay_call(api, relay_b, "POST", "/events", json={"events": later}).is_success
    assert worker.run_once() == 10
    assert _prune_all(api) == 10
    assert _tombstones(api) == [(DEVICE, 11, 20)]
    receiver.hits.clear()

    earlier = [_event(DEVICE, n) for n in range(1, 11)]
    posted = relay_call(api, relay_a, "POST", "/events", json={"events": [*earlier, later[4]]})
    assert posted.json() == {"accepted": 10, "duplicates": 1}
    assert worker.run_once() == 10
    assert sorted(hit.form()["data"] for hit in receiver.hits) == sorted(e["id"] for e in earlier)


def test_ranges_merge(api: Api) -> None:
    """Pruning 1-3 and then 4-6 leaves one range 1-6; an overlapping and a distant range
    merge or stay apart as they should (two devices changing in one pass); gaps stay open
    to ingest."""
    token = add_relay(api, "gw", "north")
    add_device(api, DEVICE)
    add_device(api, OTHER)

    def post_and_prune(*sequences: int) -> None:
        events = [_event(d, n) for d in (DEVICE, OTHER) for n in sequences]
        posted = relay_call(api, token, "POST", "/events", json={"events": events})
        assert posted.json() == {"accepted": len(events), "duplicates": 0}
        assert _prune_all(api) == len(events)

    def both(*ranges: tuple[int, int]) -> list[tuple[str, int, int]]:
        return sorted((d, first, last) for d in (DEVICE, OTHER) for first, last in ranges)

    post_and_prune(1, 2, 3)
    post_and_prune(4, 5, 6)
    assert _tombstones(api) == both((1, 6))
    post_and_prune(10, 12)
    assert _tombstones(api) == both((1, 6), (10, 10), (12, 12))
    post_and_prune(7, 9, 11)
    assert _tombstones(api) == both((1, 7), (9, 12))
    again = [_event(DEVICE, n) for n in range(1, 14)]
    posted = relay_call(api, token, "POST", "/events", json={"events": again})
    assert posted.json() == {"accepted": 2, "duplicates": 11}
    with api.state.sessions() as session:
        assert set(session.scalars(select(Event.id))) == {event_id(DEVICE, n) for n in (8, 13)}


@pytest.mark.parametrize(
    ("ranges", "merged"),
    [
        ([], []),
        ([(4, 6), (1, 3)], [(1, 6)]),
        ([(1, 5), (2, 3), (5, 9), (11, 11)], [(1, 9), (11, 11)]),
        ([(7, 7), (7, 7), (9, 9)], [(7, 7), (9, 9)]),
    ],
)
def test_merge_ranges(ranges: list[tuple[int, int]], merged: list[tuple[int, int]]) -> None:
    assert retention.merge_ranges(ranges) == merged


@pytest.mark.fuzz
@settings(max_examples=int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=30))
def test_merge_ranges_covers_exactly_the_union(starts_and_lengths: list[tuple[int, int]]) -> None:
    ranges = [(start, start + length) for start, length in starts_and_lengths]
    merged = retention.merge_ranges(ranges)
    covered = {n for first, last in merged for n in range(first, last + 1)}
    assert covered == {n for first, last in ranges for n in range(first, last + 1)}
    # in order, each range non-empty, with a gap of at least one between neighbours
    assert all(first <= last for first, last in merged)
    assert all(a[1] + 1 < b[0] for a, b in pairwise(merged))


def test_migration_creates_and_drops_the_tombstones(api: Api) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def tables() -> set[str]:
        with api.state.engine.connect() as connection:
            return set(inspect(connection).get_table_names())

    assert "event_tombstones" in tables()
    for target, present in (("0009_deviceos_parts", False), ("head", True)):
        with api.state.engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if target != "head" else command.upgrade)(config, target)
        assert ("event_tombstones" in tables()) == present
