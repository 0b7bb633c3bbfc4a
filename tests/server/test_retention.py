"""Retention: old delivered webhooks, logs, events and reports go; undelivered ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bluemule.server import retention
from bluemule.server.models import DeliveryLog, Event, OutboxItem, Relay, Report, Webhook
from bluemule.server.retention import Pruned, prune
from tests.server.conftest import Api

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)
DEVICE = "e00fce681234567890abcdef"
STATES = ("delivered", "dropped", "pending", "failed", "delivering")


def seed(api: Api) -> None:
    """For each outbox state an old and a recent event (each with a log entry), an old and a
    recent event no webhook wanted, and an old and a recent report."""
    assert api.post("/api/admin/v1/relays", json={"name": "r1", "site": "s"}).is_success
    with api.state.sessions() as session:
        relay = session.scalar(select(Relay))
        assert relay is not None
        hook = Webhook(event="t", url="http://127.0.0.1:9/", created_at=OLD, headers={}, query={})
        session.add(hook)
        session.flush()
        for age, at in (("old", OLD), ("new", RECENT)):
            for state in (*STATES, "none"):
                event = Event(
                    id=f"{age}-{state}",
                    device_id=DEVICE,
                    name="t",
                    data="1",
                    received_at=at,
                    relay_id=relay.id,
                )
                session.add(event)
                session.flush()
                if state == "none":
                    continue
                item = OutboxItem(
                    event_id=event.id,
                    webhook_id=hook.id,
                    state=state,
                    attempts=1,
                    next_attempt_at=at,
                )
                session.add(item)
                session.flush()
                session.add(
                    DeliveryLog(outbox_id=item.id, attempt=1, at=at, outcome="failed", error="x")
                )
            session.add(
                Report(
                    id=f"{age}-report",
                    relay_id=relay.id,
                    device_id=DEVICE,
                    kind="sighting",
                    body={},
                    received_at=at,
                )
            )
        session.commit()


def remaining(api: Api) -> dict[str, set[str]]:
    with api.state.sessions() as session:
        return {
            "events": set(session.scalars(select(Event.id))),
            "outbox": set(session.scalars(select(OutboxItem.event_id))),
            "logged": set(
                session.scalars(
                    select(OutboxItem.event_id).join(
                        DeliveryLog, DeliveryLog.outbox_id == OutboxItem.id
                    )
                )
            ),
            "reports": set(session.scalars(select(Report.id))),
        }


@pytest.mark.parametrize("chunk", [retention.CHUNK, 2])
def test_prune_keeps_what_is_undelivered(
    api: Api, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", chunk)
    seed(api)
    pruned = prune(api.state.engine, 30, now=NOW)
    assert pruned == Pruned(outbox=2, delivery_log=2, events=3, reports=1)
    left = remaining(api)
    undelivered = {f"old-{s}" for s in ("pending", "failed", "delivering")}
    recent = {f"new-{s}" for s in (*STATES, "none")}
    assert left["events"] == undelivered | recent
    assert left["outbox"] == left["logged"] == undelivered | (recent - {"new-none"})
    assert left["reports"] == {"new-report"}
    assert prune(api.state.engine, 30, now=NOW) == Pruned()  # nothing more
    # a year later everything settled goes; the undelivered rows and their events stay
    later = prune(api.state.engine, 30, now=NOW + timedelta(days=365))
    assert later == Pruned(outbox=2, delivery_log=2, events=3, reports=1)
    left = remaining(api)
    assert (
        left["events"]
        == left["outbox"]
        == undelivered | {f"new-{s}" for s in ("pending", "failed", "delivering")}
    )


def test_one_process_prunes_at_a_time(api: Api) -> None:
    if api.state.engine.dialect.name != "postgresql":
        pytest.skip("the pruning lock is PostgreSQL's advisory lock")
    seed(api)
    with api.state.engine.connect() as other:
        assert other.scalar(select(func.pg_try_advisory_lock(retention.LOCK_KEY)))
        other.commit()
        assert prune(api.state.engine, 30, now=NOW) == Pruned()  # skipped this round
        other.execute(select(func.pg_advisory_unlock(retention.LOCK_KEY)))
        other.commit()
    assert prune(api.state.engine, 30, now=NOW).outbox == 2
