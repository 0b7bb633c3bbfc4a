"""The ``/dashboard`` router: login/logout, the pages, the rollout actions, error pages."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from bluemule.server import rollouts_api
from bluemule.server.app import DB, ServerState, State
from bluemule.server.dashboard.fleet_pages import (
    overview_body,
    releases_body,
    timeline_body,
    webhooks_body,
)
from bluemule.server.dashboard.markup import csrf_field, esc, html, page
from bluemule.server.dashboard.rollout_pages import (
    abort_rollout,
    next_rollout_stage,
    pause_rollout,
    resume_rollout,
    rollout_body,
    rollouts_body,
)
from bluemule.server.dashboard.session import (
    COOKIE,
    SESSION_SECONDS,
    CsrfError,
    Fields,
    LoginRequiredError,
    SessionNonce,
    check_csrf,
    new_session,
)
from bluemule.server.models import Rollout
from bluemule.server.problems import ProblemError


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

    def render(
        state: ServerState, nonce: str, title: str, body: str | None, missing: str = ""
    ) -> HTMLResponse:
        """The page, or a 404 page headed ``missing`` (escaped) when ``body`` is ``None``."""
        if body is None:
            return html(page("Not found", f"<h1>{missing}</h1>", nonce=nonce, state=state), 404)
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
        return render(state, nonce, f"Device {device_id}", body, f"No device {esc(device_id)}")

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
        body = rollout_body(session, rollout_id, csrf_field(state, nonce))
        return render(state, nonce, f"Rollout {rollout_id}", body, f"No rollout {rollout_id}")

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
