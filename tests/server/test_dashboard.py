"""The dashboard in-process: pages, escaping, login and CSRF, pause/resume (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bluemule.server import dashboard
from bluemule.server.models import DeliveryLog, OutboxItem, Rollout, Webhook
from tests.server.conftest import Api
from tests.server.test_relay_api import NORTH, SOUTH, add_device, add_relay, publish, upload

HOSTILE = "<script>alert('x')</script>"
HOOK_URL = 'https://hooks.example/in?a=1&b="><img src=x onerror=alert(1)>'


def seed(api: Api) -> dict[str, Any]:
    """A relay, four devices, a release published to group beta, a rollout, events with
    hostile data, reports, a webhook with a hostile URL and two delivery attempts."""
    relay = add_relay(api, "phone-1", "north")
    add_relay(api, "phone-2", "south")
    for device_id in NORTH:
        add_device(api, device_id, "north", groups=["beta"])
    add_device(api, SOUTH, "south", groups=["beta"])
    release_id = upload(api, "v2", 2)
    publish(api, release_id, groups=["beta"])
    response = api.post(
        "/api/admin/v1/rollouts",
        json={"release_id": release_id, "stages": [{"percent": 50}, {"percent": 100}]},
    )
    assert response.status_code == 201, response.text
    rollout_id: int = response.json()["id"]
    now = datetime.now(UTC)
    with api.state.sessions() as session:
        session.add(Webhook(id=7, event="temp", url=HOOK_URL, created_at=now, headers={}, query={}))
        session.commit()
    relay_auth = {"Authorization": f"Bearer {relay}"}
    response = api.post(
        "/api/relay/v1/events",
        headers=relay_auth,
        json={
            "events": [
                {
                    "id": f"{NORTH[0]}:1",
                    "device_id": NORTH[0],
                    "name": "temp",
                    "data": HOSTILE,
                    "captured_at": (now - timedelta(minutes=5)).isoformat(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    response = api.post(
        "/api/relay/v1/reports",
        headers=relay_auth,
        json={
            "reports": [
                {
                    "id": "rep-1",
                    "device_id": NORTH[0],
                    "kind": "update",
                    "at": (now - timedelta(minutes=2)).isoformat(),
                    "rssi": -61,
                    "state": {"product_version": 1},
                    "update": {"release_id": release_id, "state": "failed", "reason": HOSTILE},
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    with api.state.sessions() as session:
        item = session.scalar(select(OutboxItem))
        assert item is not None
        session.add_all(
            [
                DeliveryLog(
                    outbox_id=item.id,
                    attempt=1,
                    at=now - timedelta(minutes=1),
                    outcome="retry",
                    status_code=503,
                    error=HOSTILE,
                    duration_ms=12,
                ),
                DeliveryLog(
                    outbox_id=item.id,
                    attempt=2,
                    at=now,
                    outcome="delivered",
                    status_code=200,
                    duration_ms=9,
                ),
            ]
        )
        session.commit()
    return {"release_id": release_id, "rollout_id": rollout_id}


def login(api: Api) -> dict[str, str]:
    """The Cookie header of a new dashboard session."""
    response = api.post("/dashboard/login", auth=False, data={"token": api.token})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard/"
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert api.token not in cookie
    return {"Cookie": f"{dashboard.COOKIE}={response.cookies[dashboard.COOKIE]}"}


def page(api: Api, path: str, cookie: dict[str, str]) -> str:
    response = api.get(path, auth=False, headers=cookie)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert api.token not in response.text
    return response.text


def csrf_of(html: str) -> str:
    match = re.search(r'name=csrf value="([0-9a-f]+)"', html)
    assert match
    return match.group(1)


def rollout_status(api: Api, rollout_id: int) -> str:
    with api.state.sessions() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout.status


def test_pages_render_and_escape_everything(api: Api) -> None:
    ids = seed(api)
    cookie = login(api)
    overview = page(api, "/dashboard/", cookie)
    assert "Devices by update state" in overview and "Devices by site" in overview
    assert "Devices by version" in overview and NORTH[0] in overview
    assert '<td>north</td><td><span class="num">3</span>' in overview
    assert "failed" in overview and "v1" in overview

    releases = page(api, "/dashboard/releases", cookie)
    assert f"<td>{ids['release_id']}</td>" in releases and "v2.bin" in releases

    rollouts = page(api, "/dashboard/rollouts", cookie)
    assert f'href="/dashboard/rollouts/{ids["rollout_id"]}"' in rollouts

    detail = page(api, f"/dashboard/rollouts/{ids['rollout_id']}", cookie)
    assert "id=rollout-pause" in detail and "confirmed_running" in detail
    assert "cached_on_relay" in detail

    timeline = page(api, f"/dashboard/devices/{NORTH[0]}", cookie)
    for text in ("report: update", "event: temp", "delivery: retry", "delivery: delivered"):
        assert text in timeline
    # newest first: the delivery, then the report, then the event
    assert (
        timeline.index("delivery: delivered")
        < timeline.index("delivery: retry")
        < timeline.index("report: update")
        < timeline.index("event: temp")
    )
    webhooks = page(api, "/dashboard/webhooks", cookie)
    assert "<td>503</td>" in webhooks and "<td>200</td>" in webhooks
    for html in (timeline, webhooks, detail):
        assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in timeline
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in webhooks

    assert api.get("/dashboard/devices/nope", auth=False, headers=cookie).status_code == 404
    assert api.get("/dashboard/rollouts/999", auth=False, headers=cookie).status_code == 404


def test_login_is_required(api: Api) -> None:
    for path in ("/dashboard/", "/dashboard/releases", "/dashboard/rollouts/1"):
        response = api.get(path)  # the bearer token is not a dashboard session
        assert response.status_code == 303
        assert response.headers["location"].startswith("/dashboard/login?next=")
    login_page = api.get("/dashboard/login", auth=False)
    assert login_page.status_code == 200 and "type=password" in login_page.text
    wrong = api.post("/dashboard/login", auth=False, data={"token": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    forged = {"Cookie": f"{dashboard.COOKIE}=9999999999.00.00"}
    assert api.get("/dashboard/", auth=False, headers=forged).status_code == 303
    # no open redirect after logging in
    response = api.post(
        "/dashboard/login", auth=False, data={"token": api.token, "next": "//evil.example/"}
    )
    assert response.headers["location"] == "/dashboard/"
    response = api.post(
        "/dashboard/login", auth=False, data={"token": api.token, "next": "/dashboard/webhooks"}
    )
    assert response.headers["location"] == "/dashboard/webhooks"


def test_expired_sessions_and_rotated_tokens_end_sessions(api: Api) -> None:
    state = api.state
    cookie = dashboard.new_session(state, now=1000.0)
    assert dashboard.session_nonce(state, cookie, now=1001.0) is not None
    assert dashboard.session_nonce(state, cookie, now=1000.0 + 13 * 3600) is None
    other = dataclasses.replace(state, admin_token_sha256=b"\0" * 32)
    assert dashboard.session_nonce(other, cookie, now=1001.0) is None


def test_pause_and_resume_need_the_form_token(api: Api) -> None:
    rollout_id = seed(api)["rollout_id"]
    cookie = login(api)
    detail = page(api, f"/dashboard/rollouts/{rollout_id}", cookie)
    csrf = csrf_of(detail)
    action = f"/dashboard/rollouts/{rollout_id}/pause"

    assert api.post(action, auth=False, headers=cookie).status_code == 403
    assert api.post(action, auth=False, headers=cookie, data={"csrf": "0" * 64}).status_code == 403
    other = login(api)  # another session's token does not work either
    other_csrf = csrf_of(page(api, "/dashboard/", other))
    assert other_csrf != csrf
    assert (
        api.post(action, auth=False, headers=cookie, data={"csrf": other_csrf}).status_code == 403
    )
    no_session = api.post(action, auth=False, data={"csrf": csrf})
    assert no_session.status_code == 401
    assert rollout_status(api, rollout_id) == "running"

    response = api.post(action, auth=False, headers=cookie, data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/rollouts/{rollout_id}"
    assert rollout_status(api, rollout_id) == "paused"
    detail = page(api, f"/dashboard/rollouts/{rollout_id}", cookie)
    assert "status-paused" in detail and "id=rollout-resume" in detail
    # the admin API agrees
    assert api.get(f"/api/admin/v1/rollouts/{rollout_id}").json()["status"] == "paused"

    resume = f"/dashboard/rollouts/{rollout_id}/resume"
    response = api.post(resume, auth=False, headers=cookie, data={"csrf": csrf})
    assert response.status_code == 303
    assert rollout_status(api, rollout_id) == "running"
    missing = api.post(
        "/dashboard/rollouts/999/pause", auth=False, headers=cookie, data={"csrf": csrf}
    )
    assert missing.status_code == 404

    logout = api.post("/dashboard/logout", auth=False, headers=cookie, data={"csrf": csrf})
    assert logout.status_code == 303 and 'bluemule_dashboard=""' in logout.headers["set-cookie"]


def test_next_stage_retry_and_abort_buttons(api: Api) -> None:
    rollout_id = seed(api)["rollout_id"]
    cookie = login(api)
    url = f"/dashboard/rollouts/{rollout_id}"
    detail = page(api, url, cookie)
    csrf = csrf_of(detail)
    assert "id=rollout-next" in detail and "id=rollout-abort" in detail
    doc = api.get(f"/api/admin/v1/rollouts/{rollout_id}").json()
    assert doc["stage"] == 0
    # next stage: the form token is required, then the stage opens
    assert api.post(f"{url}/next", auth=False, headers=cookie).status_code == 403
    opened = api.post(f"{url}/next", auth=False, headers=cookie, data={"csrf": csrf})
    assert opened.status_code == 303 and opened.headers["location"] == url
    assert api.get(f"/api/admin/v1/rollouts/{rollout_id}").json()["stage"] == 1
    assert "id=rollout-next" not in page(api, url, cookie)  # no stage after the last
    # a failed device gets a Retry button; it needs the form token too
    relay = add_relay(api, "phone-3", "north")
    failing = doc["devices"][0]["device_id"]
    report = {
        "id": "fail-1",
        "device_id": failing,
        "kind": "update",
        "at": datetime.now(UTC).isoformat(),
        "update": {"release_id": doc["release_id"], "state": "failed", "reason": "flash"},
    }
    sent = api.post(
        "/api/relay/v1/reports",
        auth=False,
        headers={"Authorization": f"Bearer {relay}"},
        json={"reports": [report]},
    )
    assert sent.status_code == 200, sent.text
    detail = page(api, url, cookie)
    assert f"id=retry-{failing}" in detail
    retry = f"{url}/devices/{failing}/retry"
    assert api.post(retry, auth=False, headers=cookie, data={"csrf": "0" * 64}).status_code == 403
    done = api.post(retry, auth=False, headers=cookie, data={"csrf": csrf})
    assert done.status_code == 303
    states = {
        d["device_id"]: d["state"]
        for d in api.get(f"/api/admin/v1/rollouts/{rollout_id}").json()["devices"]
    }
    assert states[failing] == "pending"
    again = api.post(retry, auth=False, headers=cookie, data={"csrf": csrf})
    assert again.status_code == 409 and "has not failed" in again.text
    # abort: the buttons go away
    aborted = api.post(f"{url}/abort", auth=False, headers=cookie, data={"csrf": csrf})
    assert aborted.status_code == 303
    detail = page(api, url, cookie)
    assert "status-aborted" in detail and "id=rollout-abort" not in detail
    assert "id=rollout-pause" not in detail and "id=rollout-next" not in detail


def test_empty_dashboard(api: Api) -> None:
    cookie = login(api)
    for path, text in (
        ("/dashboard/", "no devices"),
        ("/dashboard/releases", "no releases"),
        ("/dashboard/rollouts", "no rollouts"),
        ("/dashboard/webhooks", "no deliveries yet"),
    ):
        assert text in page(api, path, cookie)


@pytest.mark.parametrize("value", ["", "a.b", "x.y.z", "1.2.3.4"])
def test_malformed_cookies_are_not_sessions(api: Api, value: str) -> None:
    assert dashboard.session_nonce(api.state, value) is None
    response: httpx.Response = api.get(
        "/dashboard/", auth=False, headers={"Cookie": f"{dashboard.COOKIE}={value}"}
    )
    assert response.status_code == 303
