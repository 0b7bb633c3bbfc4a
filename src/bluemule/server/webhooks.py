"""Webhooks: configuration (admin API), matching events to webhooks, and the delivery log API.

A webhook fires for every stored event whose name starts with its prefix (case-sensitive,
Particle's rule). :func:`enqueue_for_events` puts one outbox row per (event, webhook) in the
caller's transaction; :mod:`bluemule.server.outbox` delivers them.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import chevron.tokenizer  # type: ignore[import-untyped]
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ARRAY, String, and_, any_, bindparam, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bluemule.server.app import DB, require_admin
from bluemule.server.db import as_utc
from bluemule.server.models import Base, DeliveryLog, Event, OutboxItem, Webhook
from bluemule.server.problems import InvalidContentError, NotFoundError
from bluemule.server.relay_api import on_events_stored
from bluemule.server.webhook_format import RelayedEvent, WebhookSpec, render_request

EVENT_PREFIX = re.compile(r"^[\x21-\x7e]{1,64}$")
"""Printable ASCII without spaces, 1-64 characters (Particle's event-name limits)."""
KEY = ["event_id", "webhook_id"]
_TAG = re.compile(r"\{\{\{.*?\}\}\}|\{\{.*?\}\}", re.DOTALL)


class WebhookIn(BaseModel):
    """A new webhook (Particle's keys, snake_case)."""

    event: str = Field(description="event-name prefix, case-sensitive")
    url: str = Field(max_length=2000, description="http(s) URL; may contain mustache variables")
    request_type: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    format: Literal["form", "json", "body"] = "form"
    template: str | dict[str, str] | None = Field(
        default=None,
        description="form: field → template; json: a template string or field → template; "
        "body: the raw body template",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    no_defaults: bool = False


class WebhookOut(WebhookIn):
    """A webhook as stored."""

    id: int
    created_at: datetime


class DeliveryOut(BaseModel):
    """One delivery attempt, with the delivery's current state."""

    id: int
    outbox_id: int
    webhook_id: int
    event_id: str
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int | None
    state: str


def spec_of(hook: Webhook) -> WebhookSpec:
    """The rendering spec of a stored webhook."""
    template = hook.template
    if not (template is None or isinstance(template, str | dict)):
        template = None
    return WebhookSpec(
        event=hook.event,
        url=hook.url,
        request_type=hook.request_type,
        format=hook.format,  # type: ignore[arg-type]
        template=template,
        headers=dict(hook.headers or {}),
        query=dict(hook.query or {}),
        no_defaults=hook.no_defaults,
    )


def _check_template(what: str, template: str) -> None:
    try:
        list(chevron.tokenizer.tokenize(template))
    except chevron.tokenizer.ChevronError as exc:
        detail = " ".join(str(exc).split())
        raise InvalidContentError(f"{what}: bad mustache template: {detail}") from None


_SAMPLE = RelayedEvent(
    event_id="e00fce681234567890abcdef:1",
    device_id="e00fce681234567890abcdef",
    name="sample",
    data='{"a": "1"}',
    received_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def validate(body: WebhookIn) -> WebhookSpec:
    """The spec of ``body``, or :class:`InvalidContentError` (nothing is stored then)."""
    if not EVENT_PREFIX.match(body.event):
        raise InvalidContentError(
            "event: the prefix must be 1-64 printable ASCII characters without spaces"
        )
    _check_template("url", body.url)
    parts = urllib.parse.urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "{{" in parts.netloc:
        raise InvalidContentError("url: must be an http:// or https:// URL with a literal host")
    for name, mapping in (("headers", body.headers), ("query", body.query)):
        for key, value in mapping.items():
            if not key or any(c in key for c in " :\r\n\t") or any(c in value for c in "\r\n"):
                raise InvalidContentError(f"{name}: bad name or value {key!r}")
            _check_template(f"{name}.{key}", value)
    _check_body_template(body)
    spec = WebhookSpec(
        event=body.event,
        url=body.url,
        request_type=body.request_type,
        format=body.format,
        template=body.template,
        headers=body.headers,
        query=body.query,
        no_defaults=body.no_defaults,
    )
    try:
        render_request(spec, _SAMPLE)
    except Exception as exc:  # a template that cannot render: refuse it now
        if body.format == "json" and isinstance(body.template, str):
            return spec  # may depend on the data of real events
        raise InvalidContentError(f"template: cannot render: {exc}") from None
    return spec


def _check_body_template(body: WebhookIn) -> None:
    template = body.template
    if body.format == "form" and isinstance(template, str):
        raise InvalidContentError("template: a form template is an object of field → template")
    if body.format == "body" and not isinstance(template, str):
        raise InvalidContentError("template: a body webhook needs a body template (a string)")
    if isinstance(template, dict):
        for key, value in template.items():
            _check_template(f"template.{key}", value)
    elif isinstance(template, str):
        _check_template("template", template)
        if body.format == "json" and "{{#" not in template and "{{^" not in template:
            try:
                json.loads(_TAG.sub("0", template))
            except ValueError:
                raise InvalidContentError(
                    "template: a JSON template must be JSON once its variables are filled in"
                ) from None


def _id_in(column: Any, ids: list[str], dialect: str) -> Any:
    """``column = ANY(:ids)`` on PostgreSQL (one SQL text for every count), else ``IN``."""
    if dialect == "postgresql":
        return column == any_(bindparam("event_ids", ids, type_=ARRAY(String)))
    return column.in_(ids)


def enqueue_for_events(
    session: Session, event_ids: Iterable[str], *, now: datetime | None = None
) -> int:
    """Queue each event for each matching webhook, in the caller's transaction.

    One ``INSERT INTO outbox … SELECT`` per 500 events joins the events with the live
    webhooks whose prefix starts their name (case-sensitive ``substr`` comparison, so no
    ``LIKE`` wildcards). Idempotent: a (event, webhook) pair is queued once
    (``ON CONFLICT DO NOTHING``), so calling it again for an event already stored is
    harmless. Returns the rows inserted.
    """
    ids = sorted(set(event_ids))
    if not ids:
        return 0
    moment = as_utc(now or datetime.now(UTC))
    dialect = session.get_bind().dialect.name
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Base.metadata.tables[OutboxItem.__tablename__]
    inserted = 0
    for start in range(0, len(ids), 500):
        matches = (
            select(
                Event.id,
                Webhook.id,
                literal("pending"),
                literal(0),
                literal(moment, type_=table.c.next_attempt_at.type),
            )
            .join(
                Webhook,
                and_(
                    Webhook.deleted_at.is_(None),
                    func.substr(Event.name, 1, func.length(Webhook.event)) == Webhook.event,
                ),
            )
            .where(_id_in(Event.id, ids[start : start + 500], dialect))
            .order_by(Event.id, Webhook.id)
        )
        columns = ["event_id", "webhook_id", "state", "attempts", "next_attempt_at"]
        statement = (
            make_insert(table)
            .from_select(columns, matches)
            .on_conflict_do_nothing(index_elements=KEY)
        )
        inserted += len(session.execute(statement.returning(table.c.id)).all())
    return inserted


def _enqueue_stored(session: Session, event_ids: Sequence[str]) -> None:
    enqueue_for_events(session, event_ids)


on_events_stored(_enqueue_stored)
"""Relay event ingestion queues webhook deliveries in the transaction that stores events."""


def _out(hook: Webhook) -> WebhookOut:
    spec = spec_of(hook)
    return WebhookOut(
        id=hook.id,
        event=spec.event,
        url=spec.url,
        request_type=spec.request_type,  # type: ignore[arg-type]
        format=spec.format,
        template=spec.template,
        headers=spec.headers,
        query=spec.query,
        no_defaults=spec.no_defaults,
        created_at=as_utc(hook.created_at),
    )


def _live(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.deleted_at is not None:
        raise NotFoundError(f"no webhook {webhook_id}")
    return hook


def webhooks_router() -> APIRouter:
    """``/api/admin/v1/webhooks`` and ``/api/admin/v1/deliveries``."""
    router = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(require_admin)])

    @router.post("/webhooks", status_code=201, tags=["webhooks"])
    def add_webhook(body: WebhookIn, session: DB) -> WebhookOut:
        """Add a webhook; it fires for events stored from now on."""
        spec = validate(body)
        hook = Webhook(
            event=spec.event,
            url=spec.url,
            request_type=spec.request_type,
            format=spec.format,
            template=spec.template,
            headers=spec.headers,
            query=spec.query,
            no_defaults=spec.no_defaults,
            created_at=datetime.now(UTC),
        )
        session.add(hook)
        session.commit()
        return _out(hook)

    @router.get("/webhooks", tags=["webhooks"])
    def list_webhooks(session: DB) -> list[WebhookOut]:
        """Every webhook, oldest first."""
        hooks = session.scalars(
            select(Webhook).where(Webhook.deleted_at.is_(None)).order_by(Webhook.id)
        )
        return [_out(h) for h in hooks]

    @router.get("/webhooks/{webhook_id}", tags=["webhooks"])
    def show_webhook(webhook_id: int, session: DB) -> WebhookOut:
        """One webhook."""
        return _out(_live(session, webhook_id))

    @router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
    def remove_webhook(webhook_id: int, session: DB) -> None:
        """Remove a webhook; its queued deliveries are dropped, its log is kept."""
        hook = _live(session, webhook_id)
        hook.deleted_at = datetime.now(UTC)
        session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.webhook_id == webhook_id,
                OutboxItem.state.in_(("pending", "failed")),
            )
            .values(state="dropped")
        )
        session.commit()

    @router.get("/deliveries", tags=["webhooks"])
    def list_deliveries(
        session: DB,
        webhook: Annotated[int | None, Query(description="only this webhook")] = None,
        event: Annotated[str | None, Query(description="only this event id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryOut]:
        """The delivery log, newest attempt first."""
        query = select(DeliveryLog, OutboxItem).join(
            OutboxItem, OutboxItem.id == DeliveryLog.outbox_id
        )
        if webhook is not None:
            query = query.where(OutboxItem.webhook_id == webhook)
        if event is not None:
            query = query.where(OutboxItem.event_id == event)
        query = query.order_by(DeliveryLog.id.desc()).limit(limit)
        return [
            DeliveryOut(
                id=log.id,
                outbox_id=item.id,
                webhook_id=item.webhook_id,
                event_id=item.event_id,
                attempt=log.attempt,
                at=as_utc(log.at),
                outcome=log.outcome,
                status_code=log.status_code,
                error=log.error,
                duration_ms=log.duration_ms,
                state=item.state,
            )
            for log, item in session.execute(query)
        ]

    return router
