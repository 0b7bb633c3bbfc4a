"""The durable webhook outbox and its delivery worker.

Delivery is at-least-once: a row is claimed with a lease (``locked_by``/``locked_until``),
sent, then settled. Claiming is one atomic statement — on PostgreSQL
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id``, on SQLite the same
conditional UPDATE (SQLite serialises writers) — so several server processes on one database
never deliver the same row concurrently. A worker that dies mid-delivery leaves a lease that
expires; the row is then claimed again (the receiver dedupes on ``PARTICLE_EVENT_ID``).

Retry rules come from :mod:`bluemule.server.delivery_policy`: 20 s timeout, attempts at about
+30 s and +60 s, then dropped; a throttled host is skipped (the skip counts as an attempt).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bluemule.protocol.events import sequence_of
from bluemule.server.db import as_utc
from bluemule.server.delivery_policy import (
    TIMEOUT_SECONDS,
    HostThrottle,
    Outcome,
    is_success,
    next_attempt_delay,
)
from bluemule.server.models import DeliveryLog, Device, Event, OutboxItem, Relay, Webhook
from bluemule.server.webhook_format import RelayedEvent, WebhookRequest, render_request
from bluemule.server.webhooks import spec_of

log = logging.getLogger(__name__)

BATCH_SIZE = 10
LEASE_MARGIN = timedelta(seconds=60)


def default_worker_id() -> str:
    """Unique per process and worker: host, pid and a random suffix."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def relayed_event(
    event: Event, relay_name: str, product_id: int | None, device_state: dict[str, object] | None
) -> RelayedEvent:
    """The event as :mod:`bluemule.server.webhook_format` renders it.

    ``PRODUCT_VERSION`` is the product version the device last reported (its app's); the
    sequence comes from the id when the relay made it from the device's queue.
    """
    version = (device_state or {}).get("product_version")
    return RelayedEvent(
        event_id=event.id,
        device_id=event.device_id,
        name=event.name,
        data=event.data,
        received_at=as_utc(event.received_at),
        captured_at=as_utc(event.captured_at) if event.captured_at else None,
        relayed_at=as_utc(event.relayed_at) if event.relayed_at else None,
        product_id=product_id,
        product_version=version if isinstance(version, int) else None,
        relay=relay_name,
        sequence=sequence_of(event.id, event.device_id),
    )


class DeliveryWorker:
    """Claims due outbox rows and delivers them; one per server process (or per test)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        worker_id: str | None = None,
        client: httpx.Client | None = None,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.worker_id = worker_id or default_worker_id()
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self.batch_size = batch_size
        self.clock = clock
        self.throttles: dict[str, HostThrottle] = {}
        self.stopping = threading.Event()
        """Set to stop after the delivery in progress (claimed rows are released)."""
        self.lease = timedelta(seconds=timeout * batch_size) + LEASE_MARGIN

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    # claiming -------------------------------------------------------------------------

    def claim(self, now: datetime) -> list[int]:
        """Atomically lease up to ``batch_size`` due rows to this worker."""
        due = and_(
            OutboxItem.next_attempt_at <= now,
            or_(
                OutboxItem.state.in_(("pending", "failed")),
                and_(OutboxItem.state == "delivering", OutboxItem.locked_until < now),
            ),
        )
        candidates = (
            select(OutboxItem.id)
            .where(due)
            .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
            .limit(self.batch_size)
        )
        lease = {
            "state": "delivering",
            "locked_by": self.worker_id,
            "locked_until": now + self.lease,
        }
        with self.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Lock the batch first (skipping rows another worker is claiming), then lease
                # it. A LIMIT … SKIP LOCKED subquery inside the UPDATE may be re-run per row.
                ids = list(session.scalars(candidates.with_for_update(skip_locked=True)))
                if not ids:
                    return []
                target = OutboxItem.id.in_(ids)
            else:  # SQLite: one conditional UPDATE; writers are serialised
                target = OutboxItem.id.in_(candidates.scalar_subquery())
            statement = (
                update(OutboxItem)
                .where(target, due)
                .values(**lease)
                .returning(OutboxItem.id)
                .execution_options(synchronize_session=False)
            )
            return sorted(session.scalars(statement).all())

    # one delivery ---------------------------------------------------------------------

    def _load(self, item_id: int) -> tuple[OutboxItem, Webhook, RelayedEvent] | None:
        with self.sessions() as session:
            row = session.execute(
                select(OutboxItem, Webhook, Event, Relay.name, Device.product_id, Device.state)
                .join(Webhook, Webhook.id == OutboxItem.webhook_id)
                .join(Event, Event.id == OutboxItem.event_id)
                .outerjoin(Relay, Relay.id == Event.relay_id)
                .outerjoin(Device, Device.id == Event.device_id)
                .where(OutboxItem.id == item_id)
            ).first()
            if row is None:
                return None
            item, hook, event, relay_name, product_id, state = row
            return item, hook, relayed_event(event, relay_name or "", product_id, state)

    def _send(self, request: WebhookRequest) -> tuple[int | None, str | None]:
        try:
            response = self.client.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body or None,
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            return None, f"timeout after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return response.status_code, None if is_success(response.status_code) else (
            response.text[:200] or None
        )

    def deliver(self, item_id: int, now: datetime) -> Outcome | None:
        """Attempt one claimed row and settle it; None if it was not ours to deliver."""
        loaded = self._load(item_id)
        if loaded is None:
            return None
        item, hook, event = loaded
        if item.locked_by != self.worker_id:
            return None
        if hook.deleted_at is not None:
            self._settle(item_id, state="dropped", attempts=item.attempts, next_at=None)
            return None
        attempt = item.attempts + 1
        status: int | None = None
        error: str | None = None
        duration_ms: int | None = None
        try:
            request = render_request(spec_of(hook), event)
        except Exception as exc:  # a template the data of this event breaks
            outcome, error = Outcome.FAILED, f"cannot render the request: {exc}"[:500]
        else:
            host = (urllib.parse.urlsplit(request.url).hostname or "").lower()
            throttle = self.throttles.setdefault(host, HostThrottle())
            clock = now.timestamp()
            if throttle.throttled(clock):
                outcome, error = Outcome.SKIPPED, f"{host} throttled: too many errors"
            else:
                started = time.monotonic()
                status, error = self._send(request)
                duration_ms = round((time.monotonic() - started) * 1000)
                throttle.record(is_success(status), clock)
                outcome = Outcome.DELIVERED if is_success(status) else Outcome.FAILED
        if outcome is Outcome.DELIVERED:
            state, next_at = "delivered", None
        else:
            delay = next_attempt_delay(attempt)
            state = "dropped" if delay is None else "failed"
            next_at = None if delay is None else now + timedelta(seconds=delay)
        entry = DeliveryLog(
            outbox_id=item_id,
            attempt=attempt,
            at=now,
            outcome=outcome.value,
            status_code=status,
            error=error,
            duration_ms=duration_ms,
        )
        self._settle(item_id, state=state, attempts=attempt, next_at=next_at, entry=entry)
        return outcome

    def _settle(
        self,
        item_id: int,
        *,
        state: str,
        attempts: int,
        next_at: datetime | None,
        entry: DeliveryLog | None = None,
    ) -> None:
        values: dict[str, object] = {
            "state": state,
            "attempts": attempts,
            "locked_by": None,
            "locked_until": None,
        }
        if next_at is not None:
            values["next_attempt_at"] = next_at
        with self.sessions.begin() as session:
            result = session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.locked_by == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("outbox row %s: lease lost before the attempt was recorded", item_id)
            if entry is not None:
                session.add(entry)

    # loops ------------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and attempt every due row (one batch); returns how many were attempted."""
        moment = as_utc(now) if now is not None else self.clock()
        done = 0
        claimed = self.claim(moment)
        for index, item_id in enumerate(claimed):
            if self.stopping.is_set():
                self.release(claimed[index:])
                break
            if self.deliver(item_id, moment) is not None:
                done += 1
        return done

    def release(self, item_ids: list[int]) -> None:
        """Give claimed, unattempted rows back (due again at once)."""
        with self.sessions.begin() as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(item_ids), OutboxItem.locked_by == self.worker_id)
                .values(
                    state=case((OutboxItem.attempts > 0, "failed"), else_="pending"),
                    locked_by=None,
                    locked_until=None,
                )
                .execution_options(synchronize_session=False)
            )

    async def run_forever(self, poll_interval: float = 1.0) -> None:
        """Deliver until cancelled; batches back to back while work is due."""
        while True:
            try:
                attempted = await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("webhook delivery pass failed")
                attempted = 0
            if not attempted:
                await asyncio.sleep(poll_interval)
