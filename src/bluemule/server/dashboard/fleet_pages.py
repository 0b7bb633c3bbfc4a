"""Read-only dashboard page bodies: fleet overview, releases, a device's timeline, webhooks."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bluemule.server.dashboard.markup import LIMIT, device_link, esc, table, when
from bluemule.server.db import as_utc
from bluemule.server.models import (
    DeliveryLog,
    Device,
    DeviceUpdate,
    Event,
    OutboxItem,
    Relay,
    Release,
    Report,
    Site,
    Webhook,
)


def _version_of(device: Device) -> str:
    st = device.state or {}
    version = st.get("product_version")
    counter = st.get("release_counter")
    if version is None and counter is None:
        return "unknown"
    parts = []
    if version is not None:
        parts.append(f"v{version}")
    if counter is not None:
        parts.append(f"release {counter}")
    return ", ".join(parts)


def _counts_table(title: str, counter: Counter[str]) -> str:
    rows = [(esc(k), f'<span class="num">{n}</span>') for k, n in sorted(counter.items())]
    counts = table([title.rsplit(maxsplit=1)[-1], "devices"], rows)
    return f"<section><h2>{esc(title)}</h2>{counts}</section>"


def overview_body(session: Session) -> str:
    """Devices by update state, by site and by version, and the device list."""
    devices = session.execute(
        select(Device, Site.name).join(Site, Device.site_id == Site.id).order_by(Device.id)
    ).all()
    updates = {u.device_id: u for u in session.scalars(select(DeviceUpdate))}
    by_state: Counter[str] = Counter()
    by_site: Counter[str] = Counter()
    by_version: Counter[str] = Counter()
    rows: list[tuple[str, ...]] = []
    for device, site in devices:
        update = updates.get(device.id)
        by_state[update.state if update else "no update"] += 1
        by_site[site] += 1
        by_version[_version_of(device)] += 1
        if len(rows) < LIMIT:
            rows.append(
                (
                    device_link(device.id),
                    esc(site),
                    esc(", ".join(device.groups or [])),
                    esc(_version_of(device)),
                    esc(f"{update.state} (release {update.release_id})" if update else ""),
                    when(device.last_seen_at),
                )
            )
    grid = "".join(
        _counts_table(t, c)
        for t, c in (
            ("Devices by update state", by_state),
            ("Devices by site", by_site),
            ("Devices by version", by_version),
        )
    )
    return (
        f"<h1>Fleet</h1><p>{len(devices)} devices</p><div class=grid>{grid}</div>"
        "<h2>Devices</h2>"
        + table(["device", "site", "groups", "version", "update", "last seen"], rows, "no devices")
    )


def releases_body(session: Session) -> str:
    """Every release, newest first, with how many devices stand where with it."""
    states: dict[int, Counter[str]] = {}
    for release_id, st, n in session.execute(
        select(DeviceUpdate.release_id, DeviceUpdate.state, func.count()).group_by(
            DeviceUpdate.release_id, DeviceUpdate.state
        )
    ):
        states.setdefault(release_id, Counter())[st] = n
    rows = [
        (
            esc(r.id),
            esc(r.platform_id),
            esc(r.product_id),
            esc(r.version),
            esc(r.original_name),
            esc(", ".join(r.groups or [])),
            "yes" if r.product_default else "",
            esc(", ".join(f"{k}: {v}" for k, v in sorted(states.get(r.id, Counter()).items()))),
            esc(r.notes),
            when(r.created_at),
        )
        for r in session.scalars(select(Release).order_by(Release.id.desc()).limit(LIMIT))
    ]
    return "<h1>Releases</h1>" + table(
        [
            "release",
            "platform",
            "product",
            "version",
            "file",
            "groups",
            "default",
            "devices",
            "notes",
            "created",
        ],
        rows,
        "no releases",
    )


def _report_time(at: object, received_at: datetime) -> datetime:
    """When the relay saw it (the report's ``at``), else when the server got it."""
    if isinstance(at, str):
        try:
            return as_utc(datetime.fromisoformat(at))
        except ValueError:
            pass
    return as_utc(received_at)


def timeline_body(session: Session, device_id: str) -> str | None:
    """Reports, events and webhook deliveries of one device, newest first."""
    device = session.get(Device, device_id)
    if device is None:
        return None
    relays: dict[int, str] = dict(session.execute(select(Relay.id, Relay.name)).all())
    items: list[tuple[datetime, str, str, str]] = []
    for report in session.scalars(
        select(Report)
        .where(Report.device_id == device_id)
        .order_by(Report.received_at.desc())
        .limit(LIMIT)
    ):
        body = report.body or {}
        at = body.get("at")
        detail = ""
        update = body.get("update")
        if isinstance(update, dict):
            detail = f"release {update.get('release_id')}: {update.get('state')}"
            if update.get("reason"):
                detail += f" ({update.get('reason')})"
        elif body.get("rssi") is not None:
            detail = f"rssi {body.get('rssi')}"
        items.append(
            (
                _report_time(at, report.received_at),
                f"report: {esc(report.kind)}",
                esc(detail) + f"<br><small>reported at {esc(at)}</small>",
                esc(relays.get(report.relay_id, report.relay_id)),
            )
        )
    for event in session.scalars(
        select(Event)
        .where(Event.device_id == device_id)
        .order_by(Event.received_at.desc())
        .limit(LIMIT)
    ):
        items.append(
            (
                as_utc(event.captured_at or event.received_at),
                f"event: {esc(event.name)}",
                f"<pre>{esc(event.data)}</pre>",
                esc(relays.get(event.relay_id, event.relay_id)),
            )
        )
    deliveries = session.execute(
        select(DeliveryLog, Webhook.url, Event.name)
        .join(OutboxItem, DeliveryLog.outbox_id == OutboxItem.id)
        .join(Webhook, OutboxItem.webhook_id == Webhook.id)
        .join(Event, OutboxItem.event_id == Event.id)
        .where(Event.device_id == device_id)
        .order_by(DeliveryLog.at.desc())
        .limit(LIMIT)
    ).all()
    for log, url, name in deliveries:
        items.append(
            (
                as_utc(log.at),
                f"delivery: {esc(log.outcome)}",
                f"{esc(name)} → {esc(url)} · HTTP {esc(log.status_code or '—')}"
                + (f' <span class="err">{esc(log.error)}</span>' if log.error else ""),
                f"attempt {esc(log.attempt)}",
            )
        )
    items.sort(key=lambda item: item[0], reverse=True)
    rows = [(when(at), kind, detail, source) for at, kind, detail, source in items[:LIMIT]]
    current = session.get(DeviceUpdate, device_id)
    site = session.get(Site, device.site_id)
    facts = table(
        ["site", "groups", "version", "update", "last seen", "state"],
        [
            (
                esc(site.name if site else ""),
                esc(", ".join(device.groups or [])),
                esc(_version_of(device)),
                esc(f"{current.state} (release {current.release_id})" if current else ""),
                when(device.last_seen_at),
                f"<pre>{esc(device.state)}</pre>",
            )
        ],
    )
    return f"<h1>Device {esc(device_id)}</h1>{facts}<h2>Timeline</h2>" + table(
        ["time", "what", "detail", "via"], rows, "nothing yet"
    )


def webhooks_body(session: Session) -> str:
    """Webhooks and the latest delivery attempts."""
    hooks = [
        (
            esc(h.id),
            esc(h.event),
            esc(h.request_type),
            esc(h.url),
            when(h.deleted_at) if h.deleted_at else "active",
        )
        for h in session.scalars(select(Webhook).order_by(Webhook.id))
    ]
    log = [
        (
            when(entry.at),
            esc(hook_id),
            esc(url),
            device_link(device_id),
            esc(name),
            esc(entry.attempt),
            esc(entry.outcome),
            esc(entry.status_code if entry.status_code is not None else "—"),
            esc(entry.duration_ms),
            f'<span class="err">{esc(entry.error)}</span>' if entry.error else "",
        )
        for entry, hook_id, url, device_id, name in session.execute(
            select(DeliveryLog, Webhook.id, Webhook.url, Event.device_id, Event.name)
            .join(OutboxItem, DeliveryLog.outbox_id == OutboxItem.id)
            .join(Webhook, OutboxItem.webhook_id == Webhook.id)
            .join(Event, OutboxItem.event_id == Event.id)
            .order_by(DeliveryLog.at.desc(), DeliveryLog.id.desc())
            .limit(LIMIT)
        ).all()
    ]
    pending: Counter[str] = Counter()
    for outbox_state, n in session.execute(
        select(OutboxItem.state, func.count()).group_by(OutboxItem.state)
    ):
        pending[outbox_state] = n
    outbox = esc(", ".join(f"{k}: {v}" for k, v in sorted(pending.items())) or "empty")
    hooks_table = table(["id", "event prefix", "method", "url", "state"], hooks, "no webhooks")
    return (
        f"<h1>Webhooks</h1>{hooks_table}"
        f"<h2>Outbox</h2><p>{outbox}</p><h2>Delivery log</h2>"
        + table(
            [
                "time",
                "webhook",
                "url",
                "device",
                "event",
                "attempt",
                "outcome",
                "status",
                "ms",
                "error",
            ],
            log,
            "no deliveries yet",
        )
    )
