"""Render a webhook request exactly as Particle's webhooks would (pure; no I/O).

Semantics from ``shared/reference/fleet-server-anchors.md`` §2.1: a case-sensitive
event-name prefix; a form-encoded POST by default with ``event``, ``data``, ``coreid``
and ``published_at`` (unless ``no_defaults``); JSON or a raw body instead; mustache
templates in the URL, headers, query, form/JSON values and body, with Particle's
variables plus the keys of event data that is itself JSON (dotted and indexed paths,
sections). Double braces HTML-escape, triple braces do not.

Relayed events: ``published_at`` is when the device published the event if it had a
valid clock then (``captured_at``); otherwise when the relay read it off the device over
BLE (``relayed_at``, the relay's clock); otherwise when the server received it from the
relay (``received_at``). The first is Particle's meaning; the others are the closest a
data mule can come to Particle's "when the cloud received it". Relay metadata goes in
extra default fields (``bluemule_relay``, ``bluemule_relayed_at``,
``bluemule_received_at``, ``bluemule_captured``, ``bluemule_sequence``), never instead of
Particle's.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import chevron  # type: ignore[import-untyped]

USER_AGENT: Final = "ParticleBot/1.1 (https://docs.particle.io/webhooks)"
Format = Literal["form", "json", "body"]
RELAY_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far a relay's clock may run ahead of the server's before ``relayed_at`` is ignored."""


@dataclass(frozen=True)
class WebhookSpec:
    """A webhook as configured (``bluemule admin webhook add``)."""

    event: str
    """Event-name prefix, case-sensitive, at least one character."""
    url: str
    request_type: str = "POST"
    format: Format = "form"
    template: str | dict[str, str] | None = None
    """form: field → template; json: a template string (JSON after rendering) or an object
    of field → template; body: the raw body template."""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    no_defaults: bool = False

    def __post_init__(self) -> None:
        if not self.event:
            raise ValueError("a webhook needs an event prefix of at least one character")

    def matches(self, event_name: str) -> bool:
        """Particle's rule: the event name starts with the prefix (case-sensitive)."""
        return event_name.startswith(self.event)


@dataclass(frozen=True)
class RelayedEvent:
    """An event a device published while offline, as the server received it."""

    event_id: str
    device_id: str
    name: str
    data: str | None
    received_at: datetime
    """When the server received it from the relay."""
    captured_at: datetime | None = None
    """When the device published it, if the device's clock was valid then."""
    relayed_at: datetime | None = None
    """When the relay read it off the device (the relay's clock), if the relay said."""
    product_id: int | None = None
    product_version: int | None = None
    relay: str = ""
    sequence: int | None = None

    @property
    def published_at(self) -> datetime:
        """Device capture time, else relay read time, else server receive time (module doc).

        A ``relayed_at`` after the server received the event (beyond ``RELAY_CLOCK_SKEW``)
        is a wrong relay clock, not a time the event was read: it is not used.
        """
        if self.captured_at is not None:
            return self.captured_at
        if self.relayed_at is not None and self.relayed_at <= self.received_at + RELAY_CLOCK_SKEW:
            return self.relayed_at
        return self.received_at

    def relay_fields(self) -> dict[str, str]:
        """bluemule's extra fields: relay name and times; empty strings when unknown."""
        fields = {
            "bluemule_relay": self.relay,
            "bluemule_relayed_at": particle_time(self.relayed_at) if self.relayed_at else "",
            "bluemule_received_at": particle_time(self.received_at),
            "bluemule_captured": "true" if self.captured_at else "false",
        }
        if self.sequence is not None:
            fields["bluemule_sequence"] = str(self.sequence)
        return fields


@dataclass(frozen=True)
class WebhookRequest:
    """What to send."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def particle_time(moment: datetime) -> str:
    """ISO 8601 with milliseconds and ``Z``, as Particle writes ``published_at``."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def context(event: RelayedEvent) -> dict[str, Any]:
    """Template variables of one event."""
    published = particle_time(event.published_at)
    whole = {
        "name": event.name,
        "data": event.data,
        "coreid": event.device_id,
        "published_at": published,
    }
    ctx: dict[str, Any] = {}
    if event.data:
        try:
            parsed = json.loads(event.data)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            ctx.update(parsed)  # data keys are variables; Particle's own names win below
    ctx.update(
        {
            "PARTICLE_DEVICE_ID": event.device_id,
            "PARTICLE_EVENT_NAME": event.name,
            "PARTICLE_EVENT_VALUE": event.data or "",
            "PARTICLE_PUBLISHED_AT": published,
            "PARTICLE_EVENT_ID": event.event_id,
            "PRODUCT_ID": "" if event.product_id is None else str(event.product_id),
            "PRODUCT_VERSION": "" if event.product_version is None else str(event.product_version),
            "PARTICLE_EVENT_JSON": json.dumps(whole),
            "PARTICLE_EVENT_BASE64": base64.b64encode((event.data or "").encode()).decode(),
            "SPARK_EVENT_VALUE": event.data or "",
            "SPARK_PUBLISHED_AT": published,
            "SPARK_CORE_ID": event.device_id,
            "SPARK_EVENT_NAME": event.name,
            **{k.upper(): v for k, v in event.relay_fields().items()},
        }
    )
    return ctx


def _render(template: str, ctx: dict[str, Any]) -> str:
    return str(chevron.render(template, ctx))


def default_fields(event: RelayedEvent) -> dict[str, str]:
    """The fields Particle adds, plus bluemule's relay metadata."""
    return {
        "event": event.name,
        "data": event.data or "",
        "coreid": event.device_id,
        "published_at": particle_time(event.published_at),
        **event.relay_fields(),
    }


def render_request(spec: WebhookSpec, event: RelayedEvent) -> WebhookRequest:
    """The HTTP request ``spec`` sends for ``event``."""
    ctx = context(event)
    defaults = {} if spec.no_defaults else default_fields(event)
    headers = {"User-Agent": USER_AGENT}
    headers.update({k: _render(v, ctx) for k, v in spec.headers.items()})
    query = {k: _render(v, ctx) for k, v in spec.query.items()}
    method = spec.request_type.upper()
    body = b""
    if method == "GET":
        query = {**defaults, **query}
    elif spec.format == "form":
        fields = dict(defaults)
        if isinstance(spec.template, dict):
            fields.update({k: _render(v, ctx) for k, v in spec.template.items()})
        body = urllib.parse.urlencode(fields).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif spec.format == "json":
        document: Any
        if isinstance(spec.template, str):
            document = json.loads(_render(spec.template, ctx))
        elif isinstance(spec.template, dict):
            document = {k: _render(v, ctx) for k, v in spec.template.items()}
        else:
            document = {}
        if isinstance(document, dict):
            document = {**defaults, **document}
        body = json.dumps(document).encode()
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json")
    else:
        body = _render(spec.template if isinstance(spec.template, str) else "", ctx).encode()
    url = _render(spec.url, ctx)
    if query:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
    return WebhookRequest(method, url, headers, body)
