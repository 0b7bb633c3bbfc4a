"""Dashboard sessions and CSRF: signed cookies and form tokens, both keyed by the admin token.

The session cookie is ``<expiry>.<nonce>.<mac>``, an HMAC under a key derived from the
admin token's SHA-256 (rotating the token ends every session; the token itself never
reaches a page or a cookie). Form tokens are an HMAC of the session nonce under a second
derived key. Also the FastAPI dependencies that read both from a request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from bluemule.server.app import ServerState, State

COOKIE = "bluemule_dashboard"
SESSION_SECONDS = 12 * 3600


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
