"""Every kind of error is an RFC 9457 problem document, and the OpenAPI document is served."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from bluemule.server import sync
from tests.server.conftest import Api, assert_problem
from tests.server.test_relay_api import NORTH, SOUTH, add_device, add_relay, relay_call, upload


def test_openapi_lists_every_api_route(api: Api) -> None:
    spec = api.get("/openapi.json", auth=False).json()
    assert spec["info"]["title"] == "bluemule fleet server"
    paths = spec["paths"]
    for path in (
        "/api/admin/v1/relays",
        "/api/admin/v1/devices",
        "/api/admin/v1/releases",
        "/api/admin/v1/releases/{release_id}/publish",
        "/api/admin/v1/rollouts/{rollout_id}/abort",
        "/api/admin/v1/rollouts/{rollout_id}/devices/{device_id}/retry",
        "/api/admin/v1/webhooks",
        "/api/admin/v1/deliveries",
        "/api/relay/v1/sync",
        "/api/relay/v1/blobs/{sha256}",
        "/api/relay/v1/reports",
        "/api/relay/v1/events",
    ):
        assert path in paths, path
    event = spec["components"]["schemas"]["EventIn"]["properties"]
    assert {"captured_at", "relayed_at"} <= set(event)
    assert "304" in paths["/api/relay/v1/sync"]["get"]["responses"]


def test_every_error_kind_is_a_problem(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0])
    add_device(api, SOUTH, site="south")
    release_id = upload(api, "v1", 1)
    # 400: not JSON
    bad_json = relay_call(
        api, token, "POST", "/events", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_problem(bad_json, 400, "not valid JSON")
    # 401: no token, wrong token (admin and relay)
    assert_problem(api.get("/api/admin/v1/devices", auth=False), 401, "missing bearer token")
    assert_problem(relay_call(api, "bmr_wrong", "GET", "/sync"), 401, "wrong relay token")
    # 403: another site's device
    other = {"id": "x1", "device_id": SOUTH, "name": "t"}
    assert_problem(relay_call(api, token, "POST", "/events", json={"events": [other]}), 403)
    # 404: unknown route, unknown resource
    assert_problem(api.get("/api/admin/v1/nowhere"), 404)
    assert_problem(api.get("/api/admin/v1/releases/999"), 404, "no release 999")
    # 405: wrong method
    assert_problem(api.request("PATCH", "/api/admin/v1/devices"), 405)
    # 409: conflict
    duplicate = {"id": NORTH[0], "platform": "boron", "site": "north"}
    assert_problem(api.post("/api/admin/v1/devices", json=duplicate), 409, "exists")
    # 413: too large
    api.state.settings = dataclasses.replace(api.state.settings, max_upload_bytes=10)
    assert_problem(api.upload(b"x" * 11, "big.bin"), 413)
    # 416: a range past the end of a blob
    relay_call(api, token, "GET", "/sync")
    blob = api.get(f"/api/admin/v1/releases/{release_id}").json()["parts"][-1]["blob_sha256"]
    api.post(f"/api/admin/v1/releases/{release_id}/publish", json={"product_default": True})
    past = relay_call(api, token, "GET", f"/blobs/{blob}", headers={"Range": "bytes=99999999-"})
    assert_problem(past, 416)
    # 422: invalid content
    assert_problem(relay_call(api, token, "POST", "/events", json={"events": "x"}), 422)

    # 500: an unexpected error says nothing about itself
    def explode(*_args: object) -> bytes:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(sync, "sync_body", explode)
    api.post(f"/api/admin/v1/releases/{release_id}/publish", json={"groups": ["g"]})
    crashed = relay_call(api, token, "GET", "/sync")
    body = assert_problem(crashed, 500, "internal server error")
    assert "secret" not in crashed.text and "Traceback" not in crashed.text
    assert body["instance"] == "/api/relay/v1/sync"


def test_request_bodies_are_capped_while_they_stream(api: Api) -> None:
    """A relay's oversized JSON batch is refused (413) before its route runs: nothing
    stored, whether the size is declared or the body arrives in chunks."""
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0])
    limit = api.settings.max_request_bytes
    event = {"id": "x", "device_id": NORTH[0], "name": "big", "data": "d"}
    padding = "p" * (limit + 1)
    body = json.dumps({"events": [event], "pad": padding}).encode()
    declared = relay_call(
        api, token, "POST", "/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(declared, 413, "limit")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = relay_call(
        api,
        token,
        "POST",
        "/events",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(streamed, 413, "limit")
    assert api.counts()["events"] == 0
    # an honest batch passes
    honest = relay_call(api, token, "POST", "/events", json={"events": [event]})
    assert honest.json() == {"accepted": 1, "duplicates": 0}
