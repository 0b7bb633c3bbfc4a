"""HTML building blocks of the dashboard: escaping, the page frame, tables, times, responses.

Every value that came from a relay, a device or an operator goes through :func:`esc`;
the other helpers take cells and bodies that are already escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from urllib.parse import quote

from fastapi.responses import HTMLResponse

from bluemule.server.app import ServerState
from bluemule.server.dashboard.session import csrf_token
from bluemule.server.db import as_utc

LIMIT = 200
"""Most rows a dashboard table shows."""


def esc(value: object) -> str:
    """HTML-escape anything (quotes included, so it is safe in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


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
            f"{csrf_field(state, nonce)}<button type=submit>Log out</button></form>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · bluemule</title><style>{STYLE}</style></head><body>"
        f"<header><strong>bluemule</strong>{nav}</header><main>{body}</main></body></html>"
    )


def csrf_field(state: ServerState, nonce: str) -> str:
    """A hidden form field carrying the session's CSRF token."""
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
    return esc(as_utc(moment).strftime("%Y-%m-%d %H:%M:%S") + "Z")


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
