"""An event id re-posted after retention pruned its row is still a duplicate (the watermark)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Table, inspect, select, update
from sqlalchemy.orm import Session

from bluemule.protocol.events import event_id
from bluemule.server import relay_api, retention
from bluemule.server.bulk import insert_new
from bluemule.server.db import MIGRATIONS
from bluemule.server.models import Device, Event, OutboxItem, Webhook
from bluemule.server.retention import prune
from tests.server.conftest import Api
from tests.server.test_relay_api import NORTH, add_device, add_relay, relay_call

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


def _watermarks(api: Api) -> dict[str, int | None]:
    with api.state.sessions() as session:
        rows = session.execute(select(Device.id, Device.events_pruned_through))
        return {row.id: row.events_pruned_through for row in rows}


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
    assert _watermarks(api) == {DEVICE: 3, OTHER: None}

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


def test_a_pass_between_the_watermark_read_and_the_insert(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention prunes the rows (and raises the watermark) after ingest read the old
    watermark and before it inserts: the re-inserted rows are taken out again, unqueued."""
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


def test_watermark_never_lowers(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, DEVICE)
    events = [_event(DEVICE, n) for n in (7, 8)]
    assert relay_call(api, token, "POST", "/events", json={"events": events}).is_success
    with api.state.sessions() as session:
        session.execute(update(Device).values(events_pruned_through=100))
        session.commit()
    assert prune(api.state.engine, 30, now=datetime.now(UTC) + timedelta(days=31)).events == 2
    assert _watermarks(api) == {DEVICE: 100}
    later = relay_call(api, token, "POST", "/events", json={"events": [_event(DEVICE, 50)]})
    assert later.json() == {"accepted": 0, "duplicates": 1}


def test_migration_adds_and_drops_the_watermark(api: Api) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def columns() -> set[str]:
        with api.state.engine.connect() as connection:
            return {c["name"] for c in inspect(connection).get_columns("devices")}

    assert "events_pruned_through" in columns()
    for target, present in (("0009_deviceos_parts", False), ("head", True)):
        with api.state.engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if target != "head" else command.upgrade)(config, target)
        assert ("events_pruned_through" in columns()) == present
