"""The operator dashboard: server-rendered HTML under ``/dashboard/``.

No JavaScript and no build step: every page is a string built here, and every value that
came from a relay, a device or an operator goes through :func:`esc` (device ids, event
names and data, webhook URLs, release notes, reasons).

Authentication: ``/dashboard/login`` takes the admin token once and answers with an
``HttpOnly``, ``SameSite=Strict`` cookie holding a session — an expiry time and a random
nonce, signed with HMAC under a key derived from the admin token's SHA-256 (so rotating
the token ends every session; the token itself never reaches a page or a cookie). Each
form that changes something carries a CSRF token, an HMAC of the session nonce under a
second derived key, checked on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bluemule.server import rollouts, rollouts_api
from bluemule.server.app import DB, ServerState, State
from bluemule.server.models import (
    DeliveryLog,
    Device,
    DeviceUpdate,
    Event,
    OutboxItem,
    Relay,
    Release,
    Report,
    Rollout,
    Site,
    Webhook,
)
from bluemule.server.problems import ProblemError
from bluemule.server.rollouts import Status, UpdateState

COOKIE = "bluemule_dashboard"
SESSION_SECONDS = 12 * 3600
LIMIT = 200


def esc(value: object) -> str:
    """HTML-escape anything (quotes included, so it is safe in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


# --- sessions and CSRF ----------------------------------------------------------------


def _key(state: ServerState, purpose: str) -> bytes:
    return hmac.new(state.admin_token_sha256, f"dashboard {purpose}".encode(), "sha256").digest()


def _mac(state: ServerState, purpose: str, message: str) -> str:
    return hmac.new(_key(state, purpose), message.encode(), hashlib.sha256).hexdigest()


def new_session(state: ServerState, now: float | None = None) -> str:
    """A signed session cookie value: ``<expiry>.<nonce>.<mac>``."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    body = f"{expires}.{secrets.token_hex(16)}"
    return f"{body}.{_mac(state, 'session', body)}"


def session_nonce(state: ServerState, cookie: str | None, now: float | None = None) -> str | None:
    """The nonce of a valid, unexpired session cookie, else ``None``."""
    if not cookie:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expires, nonce, mac = parts
    if not hmac.compare_digest(mac, _mac(state, "session", f"{expires}.{nonce}")):
        return None
    if int(expires) < (time.time() if now is None else now):
        return None
    return nonce


def csrf_token(state: ServerState, nonce: str) -> str:
    """The form token of a session."""
    return _mac(state, "csrf", nonce)


class LoginRequiredError(Exception):
    """The request has no valid dashboard session."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def require_session(request: Request, state: State) -> str:
    """The session nonce, or a redirect to the login page."""
    nonce = session_nonce(state, request.cookies.get(COOKIE))
    if nonce is None:
        raise LoginRequiredError(request.url.path)
    return nonce


SessionNonce = Annotated[str, Depends(require_session)]


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (first value of each field)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > 16384:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


Fields = Annotated[dict[str, str], Depends(form_fields)]


class CsrfError(Exception):
    """A POST without the session's form token."""


def check_csrf(state: ServerState, nonce: str, token: str) -> None:
    """Raise :class:`CsrfError` unless ``token`` is the session's form token."""
    if not hmac.compare_digest(token.encode(), csrf_token(state, nonce).encode()):
        raise CsrfError


# --- rendering ------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#123;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#cde;text-decoration:none}header strong{margin-right:1em}
header form{margin-left:auto}
main{padding:1em 1.5em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;background:#fff;margin:.4em 0 1em}
th,td{border:1px solid #d0d5db;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:1.5em}
.status{font-weight:bold;padding:.1em .5em;border-radius:.3em}
.status-running{background:#d4f5dc}.status-paused{background:#ffe3b3}
.status-finished{background:#dde}.err{color:#a00}
button{font-size:1em;padding:.3em 1em}pre{margin:0;white-space:pre-wrap;word-break:break-all}
"""


def page(
    title: str, body: str, *, nonce: str | None = None, state: ServerState | None = None
) -> str:
    """A whole page; ``body`` must already be escaped."""
    nav = ""
    if nonce is not None and state is not None:
        links = "".join(
            f'<a href="{href}">{label}</a>'
            for href, label in (
                ("/dashboard/", "Fleet"),
                ("/dashboard/releases", "Releases"),
                ("/dashboard/rollouts", "Rollouts"),
                ("/dashboard/webhooks", "Webhooks"),
            )
        )
        nav = (
            f"{links}<form method=post action=/dashboard/logout>"
            f"{_csrf_field(state, nonce)}<button type=submit>Log out</button></form>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · bluemule</title><style>{STYLE}</style></head><body>"
        f"<header><strong>bluemule</strong>{nav}</header><main>{body}</main></body></html>"
    )


def _csrf_field(state: ServerState, nonce: str) -> str:
    return f'<input type=hidden name=csrf value="{esc(csrf_token(state, nonce))}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "none") -> str:
    """A table; cells must already be escaped."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f"<p><em>{esc(empty)}</em></p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def when(moment: datetime | None) -> str:
    """A time, escaped, in UTC."""
    if moment is None:
        return ""
    return esc(utc(moment).strftime("%Y-%m-%d %H:%M:%S") + "Z")


def utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def device_link(device_id: str) -> str:
    """A link to a device's timeline."""
    return f'<a href="/dashboard/devices/{esc(quote(device_id, safe=""))}">{esc(device_id)}</a>'


def html(text: str, status: int = 200) -> HTMLResponse:
    """An HTML response that must not be cached or framed."""
    return HTMLResponse(
        text,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'"
            ),
            "Referrer-Policy": "same-origin",
        },
    )


# --- pages ----------------------------------------------------------------------------


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
            return utc(datetime.fromisoformat(at))
        except ValueError:
            pass
    return utc(received_at)


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
                utc(event.captured_at or event.received_at),
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
                utc(log.at),
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


def _stage_label(stage: rollouts_api.StageOut) -> str:
    if stage.groups:
        return "groups " + ", ".join(stage.groups)
    return f"{stage.percent}% of the rest"


def _status(status: str) -> str:
    return f'<span class="status status-{esc(status)}">{esc(status)}</span>'


def rollouts_body(session: Session) -> str:
    """Every rollout, newest first, re-evaluated as ``GET /api/admin/v1/rollouts`` does."""
    found = list(
        session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(LIMIT).with_for_update())
    )
    docs = [rollouts_api.status_of(r, rollouts_api.reevaluate(session, r)) for r in found]
    session.commit()
    rows = [
        (
            f'<a href="/dashboard/rollouts/{r.id}">#{r.id}</a>',
            esc(r.release_id),
            _status(r.status),
            esc(f"{min(r.stage + 1, len(r.stages))} of {len(r.stages)}"),
            esc(len(r.devices)),
            esc(sum(s.counts.get(UpdateState.CONFIRMED.value, 0) for s in r.stages)),
            esc(sum(s.counts.get(UpdateState.FAILED.value, 0) for s in r.stages)),
            esc(r.reason),
            when(r.updated_at),
        )
        for r in docs
    ]
    return "<h1>Rollouts</h1>" + table(
        [
            "rollout",
            "release",
            "status",
            "stage",
            "devices",
            "confirmed",
            "failed",
            "reason",
            "updated",
        ],
        rows,
        "no rollouts",
    )


def rollout_body(session: Session, rollout_id: int, csrf_field: str) -> str | None:
    """One rollout: per-stage counts by update state, its devices, and Pause/Resume."""
    found = session.scalar(select(Rollout).where(Rollout.id == rollout_id).with_for_update())
    if found is None:
        return None
    r = rollouts_api.status_of(found, rollouts_api.reevaluate(session, found))
    session.commit()
    vocabulary = [s.value for s in UpdateState]
    stage_rows = [
        (
            esc(f"{s.index + 1}{' (open)' if s.open else ''}"),
            esc(_stage_label(s)),
            f'<span class="num">{s.total}</span>',
            *(f'<span class="num">{s.counts.get(v, 0)}</span>' for v in vocabulary),
        )
        for s in r.stages
    ]
    live = r.status in (Status.RUNNING, Status.PAUSED)

    def button(path: str, label: str, element_id: str) -> str:
        return (
            f"<form method=post action=/dashboard/rollouts/{r.id}/{path}>{csrf_field}"
            f"<button type=submit id={element_id}>{esc(label)}</button></form>"
        )

    device_rows = [
        (
            device_link(d.device_id),
            esc(d.stage + 1),
            esc(d.state),
            esc("" if d.progress is None else f"{d.progress:.0%}"),
            esc(d.reason),
            button(f"devices/{d.device_id}/retry", "Retry", f"retry-{d.device_id}")
            if live and d.state == UpdateState.FAILED
            else "",
        )
        for d in r.devices[:LIMIT]
    ]
    buttons = ""
    for status, verb in ((Status.RUNNING, "pause"), (Status.PAUSED, "resume")):
        if r.status == status:
            buttons = button(verb, verb.capitalize(), f"rollout-{verb}")
    if live and r.stage + 1 < len(r.stages):
        buttons += button("next", "Next stage", "rollout-next")
    if live:
        buttons += button("abort", "Abort", "rollout-abort")
    reason = f"<p>Reason: {esc(r.reason)}</p>" if r.reason else ""
    return (
        f"<h1>Rollout #{r.id} of release {esc(r.release_id)}</h1>"
        f"<p>Status: <span id=rollout-status>{_status(r.status)}</span>"
        f" · stage {min(r.stage + 1, len(r.stages))} of {len(r.stages)}"
        f" · success threshold {r.success_threshold:.0%}"
        f" · error threshold {r.error_threshold:.0%}</p>{reason}{buttons}<h2>Stages</h2>"
        + table(["stage", "selects", "total", *vocabulary], stage_rows)
        + "<h2>Devices</h2>"
        + table(["device", "stage", "state", "progress", "reason", ""], device_rows, "no devices")
    )


def pause_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/pause`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.pause(state))


def resume_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/resume`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.resume(state))


def next_rollout_stage(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/next`` does."""
    rollouts_api.change_state(session, rollout_id, rollouts.next_stage)


def abort_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/abort`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.abort(state))


# --- the router -----------------------------------------------------------------------


def _login_page(error: str = "", next_path: str = "/dashboard/", status: int = 200) -> HTMLResponse:
    message = f'<p class="err">{esc(error)}</p>' if error else ""
    return html(
        page(
            "Log in",
            f"<h1>Dashboard log in</h1>{message}"
            "<form method=post action=/dashboard/login>"
            f'<input type=hidden name=next value="{esc(next_path)}">'
            "<label>Admin token <input type=password name=token autocomplete=off "
            "autofocus required></label> <button type=submit>Log in</button></form>",
        ),
        status,
    )


def _safe_next(path: str) -> str:
    """Only redirect within the dashboard (no open redirects)."""
    if path.startswith("/dashboard/") and "//" not in path and "\\" not in path:
        return path
    return "/dashboard/"


RolloutAction = Callable[[Session, int], None]


def dashboard_router() -> APIRouter:
    """The ``/dashboard`` pages."""
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    def render(state: ServerState, nonce: str, title: str, body: str) -> HTMLResponse:
        return html(page(title, body, nonce=nonce, state=state))

    @router.get("/login")
    def login_form(next: str = "/dashboard/") -> HTMLResponse:
        return _login_page(next_path=_safe_next(next))

    @router.post("/login")
    def login(
        request: Request,
        state: State,
        fields: Fields,
    ) -> Response:
        token = fields.get("token", "")
        next = fields.get("next", "/dashboard/")
        digest = hashlib.sha256(token.strip().encode()).digest()
        if not token.strip() or not hmac.compare_digest(digest, state.admin_token_sha256):
            return _login_page("wrong admin token", _safe_next(next), status=401)
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            COOKIE,
            new_session(state),
            max_age=SESSION_SECONDS,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout(state: State, nonce: SessionNonce, fields: Fields) -> Response:
        check_csrf(state, nonce, fields.get("csrf", ""))
        response = RedirectResponse("/dashboard/login", status_code=303)
        response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
        return response

    @router.get("/")
    def overview(state: State, nonce: SessionNonce, session: DB) -> HTMLResponse:
        return render(state, nonce, "Fleet", overview_body(session))

    @router.get("/releases")
    def releases(state: State, nonce: SessionNonce, session: DB) -> HTMLResponse:
        return render(state, nonce, "Releases", releases_body(session))

    @router.get("/devices/{device_id}")
    def device(device_id: str, state: State, nonce: SessionNonce, session: DB) -> HTMLResponse:
        body = timeline_body(session, device_id)
        if body is None:
            return html(
                page("Not found", f"<h1>No device {esc(device_id)}</h1>", nonce=nonce, state=state),
                404,
            )
        return render(state, nonce, f"Device {device_id}", body)

    @router.get("/webhooks")
    def webhooks(state: State, nonce: SessionNonce, session: DB) -> HTMLResponse:
        return render(state, nonce, "Webhooks", webhooks_body(session))

    @router.get("/rollouts")
    def rollouts_page(state: State, nonce: SessionNonce, session: DB) -> HTMLResponse:
        return render(state, nonce, "Rollouts", rollouts_body(session))

    @router.get("/rollouts/{rollout_id}")
    def rollout_page(
        rollout_id: int, state: State, nonce: SessionNonce, session: DB
    ) -> HTMLResponse:
        body = rollout_body(session, rollout_id, _csrf_field(state, nonce))
        if body is None:
            return html(
                page("Not found", f"<h1>No rollout {rollout_id}</h1>", nonce=nonce, state=state),
                404,
            )
        return render(state, nonce, f"Rollout {rollout_id}", body)

    def action(name: str, act: RolloutAction) -> None:
        @router.post(f"/rollouts/{{rollout_id}}/{name}", name=f"dashboard_rollout_{name}")
        def post(
            rollout_id: int,
            state: State,
            nonce: SessionNonce,
            session: DB,
            fields: Fields,
        ) -> Response:
            check_csrf(state, nonce, fields.get("csrf", ""))
            if session.get(Rollout, rollout_id) is None:
                return html(page("Not found", f"<h1>No rollout {rollout_id}</h1>"), 404)
            act(session, rollout_id)
            return RedirectResponse(f"/dashboard/rollouts/{rollout_id}", status_code=303)

    action("pause", pause_rollout)
    action("resume", resume_rollout)
    action("next", next_rollout_stage)
    action("abort", abort_rollout)

    @router.post("/rollouts/{rollout_id}/devices/{device_id}/retry", name="dashboard_retry")
    def retry(
        rollout_id: int,
        device_id: str,
        *,
        state: State,
        nonce: SessionNonce,
        session: DB,
        fields: Fields,
    ) -> Response:
        check_csrf(state, nonce, fields.get("csrf", ""))
        try:
            rollouts_api.retry(session, rollout_id, device_id)
        except ProblemError as exc:
            session.rollback()
            return html(page("Cannot retry", f"<h1>{esc(exc.detail)}</h1>"), exc.status)
        return RedirectResponse(f"/dashboard/rollouts/{rollout_id}", status_code=303)

    return router


def install_dashboard(app: FastAPI) -> None:
    """Include the router and turn its errors into pages (login redirect, 403)."""
    app.include_router(dashboard_router())

    @app.exception_handler(LoginRequiredError)
    async def on_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequiredError)
        if request.method != "GET":
            return html(page("Log in", "<h1>Please log in again</h1>"), 401)
        target = quote(_safe_next(exc.path), safe="/")
        return RedirectResponse(f"/dashboard/login?next={target}", status_code=303)

    @app.exception_handler(CsrfError)
    async def on_csrf(request: Request, exc: Exception) -> Response:
        return html(page("Forbidden", "<h1>Missing or wrong form token</h1>"), 403)
