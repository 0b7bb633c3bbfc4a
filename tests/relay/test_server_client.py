"""The relay API client against the real server app on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from bluemule.relay.server_client import (
    Accepted,
    Offline,
    RejectedError,
    ServerClient,
    Unauthorized,
    parse_desired,
)
from tests.relay.helpers import DEVICE, offer_release
from tests.server.conftest import Api
from tests.support.live_server import LiveServer

T = TypeVar("T")


def call(url: str, token: str, use: Callable[[ServerClient], Awaitable[T]]) -> T:
    async def go() -> T:
        client = ServerClient(url, token)
        try:
            return await use(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_sync_etag_and_desired_state(api: Api, server: LiveServer, token: str) -> None:
    offered = offer_release(api)
    first = call(server.url, token, lambda c: c.sync())
    assert first.body is not None and first.etag
    desired = parse_desired(first.body)
    update = desired[DEVICE]
    assert update.release_id == offered.release_id
    assert offered.blob in {p.sha256 for p in update.parts}
    unchanged = call(server.url, token, lambda c: c.sync(first.etag))
    assert unchanged.body is None and unchanged.etag == first.etag
    with pytest.raises(RejectedError, match="malformed"):
        parse_desired({"devices": [{"device_id": DEVICE}]})


def test_typed_failures_never_show_the_token(api: Api, server: LiveServer, token: str) -> None:
    wrong = "not-the-token-" + token[::-1]
    with pytest.raises(Unauthorized) as refused:
        call(server.url, wrong, lambda c: c.sync())
    assert wrong not in str(refused.value) and token not in repr(ServerClient(server.url, token))
    stranger = {"id": "x1", "device_id": "f" * 24, "kind": "sighting", "at": "2026-01-01T00:00Z"}
    with pytest.raises(RejectedError, match="403"):
        call(server.url, token, lambda c: c.post_reports([stranger]))
    server.stop()
    with pytest.raises(Offline) as offline:
        call(server.url, token, lambda c: c.sync())
    assert token not in str(offline.value)
    server.start()
    assert call(server.url, token, lambda c: c.post_events([])) == Accepted(0, 0)
