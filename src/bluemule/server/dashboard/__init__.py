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

Modules: :mod:`.session` (cookie sessions, CSRF tokens, request dependencies),
:mod:`.markup` (escaping, page frame, tables, HTML responses), :mod:`.fleet_pages` and
:mod:`.rollout_pages` (page bodies and rollout actions), :mod:`.routes` (the router and
its error pages; :func:`install_dashboard` is what the app factory calls).
"""

from __future__ import annotations

from bluemule.server.dashboard.markup import esc
from bluemule.server.dashboard.routes import dashboard_router, install_dashboard
from bluemule.server.dashboard.session import (
    COOKIE,
    SESSION_SECONDS,
    CsrfError,
    LoginRequiredError,
    check_csrf,
    csrf_token,
    new_session,
    session_nonce,
)

__all__ = [
    "COOKIE",
    "SESSION_SECONDS",
    "CsrfError",
    "LoginRequiredError",
    "check_csrf",
    "csrf_token",
    "dashboard_router",
    "esc",
    "install_dashboard",
    "new_session",
    "session_nonce",
]
