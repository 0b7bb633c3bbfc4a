"""The relay agent over Bumble's virtual link, emulated devices and a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bluemule.relay.agent import RunSummary
from bluemule.relay.config import MaintenanceWindow
from bluemule.relay.server_client import Unauthorized
from bluemule.server.models import DeviceUpdate, Event
from tests.relay.fleet import fleet
from tests.relay.helpers import reported_states
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.support.live_server import LiveServer

DEVICES = ["e00fce680000000000000c01", "e00fce680000000000000c02"]


def update_state(api: Api, device_id: str) -> tuple[str, str | None] | None:
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, device_id)
        return None if row is None else (row.state, row.reason)


def by_device(summary: RunSummary) -> dict[str, Any]:
    return {v.device_id: v for v in summary.devices}


def test_agent_updates_the_device_that_needs_it_and_sights_the_other(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICES[0], groups=["beta"])
    add_device(api, DEVICES[1])
    release_id = upload(api, "v2", 2, {"a.txt": b"asset bytes " * 100})
    publish(api, release_id, groups=["beta"])
    app_sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]

    async def run() -> tuple[RunSummary, RunSummary]:
        key = api.state.signing_key.public_key
        async with fleet(tmp_path / "devices", DEVICES, key) as devices:
            # progress is reported at most once an hour: once per transfer here
            agent = devices.agent(server.url, token, tmp_path / "relay", progress_interval=3600.0)
            try:
                first = await agent.run_once()
                second = await agent.run_once()
            finally:
                await agent.aclose()
            return first, second

    first, second = asyncio.run(run())
    assert first.online and first.desired == 1 and first.downloaded_bytes > 0
    visits = by_device(first)
    assert set(visits) == set(DEVICES)
    assert visits[DEVICES[0]].update == "applied" and visits[DEVICES[1]].update is None
    assert first.pending == {"report": 0, "event": 0}
    assert update_state(api, DEVICES[0]) == ("confirmed_running", None)
    assert update_state(api, DEVICES[1]) is None
    assert reported_states(api, DEVICES[0]) == [
        "cached_on_relay",
        "transferring",
        "installed",
        "confirmed_running",
    ]
    shown = api.get(f"/api/admin/v1/devices/{DEVICES[0]}").json()
    assert shown["state"]["app_sha256"] == app_sha
    # the second pass: nothing left to do, nothing downloaded again
    assert second.desired == 0 and second.downloaded_bytes == 0
    assert all(v.update is None for v in second.devices)


def test_offline_after_a_restart_the_relay_updates_from_its_journal(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICES[0], groups=["beta"])
    release_id = upload(api, "v2", 2)
    publish(api, release_id, groups=["beta"])
    hour = dt.datetime.now(dt.UTC).hour
    closed = MaintenanceWindow.parse(f"{(hour + 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00")
    cache = tmp_path / "relay"
    cached: list[tuple[str, str | None] | None] = []

    async def run() -> tuple[RunSummary, RunSummary, RunSummary]:
        key = api.state.signing_key.public_key
        async with fleet(tmp_path / "devices", DEVICES[:1], key) as devices:
            agent = devices.agent(server.url, token, cache, maintenance_window=closed)
            try:
                waiting = await agent.run_once()  # cached, outside the window: no update
            finally:
                await agent.aclose()
            cached.append(await asyncio.to_thread(update_state, api, DEVICES[0]))
            await asyncio.to_thread(server.stop)
            agent = devices.agent(server.url, token, cache)  # restarted, offline
            try:
                offline = await agent.run_once()
                await asyncio.to_thread(server.start)
                online = await agent.run_once()
            finally:
                await agent.aclose()
            return waiting, offline, online

    waiting, offline, online = asyncio.run(run())
    assert [v.update for v in waiting.devices] == [None] and waiting.desired == 1
    assert cached == [("cached_on_relay", None)]
    assert not offline.online and [v.update for v in offline.devices] == ["applied"]
    assert offline.pending["report"] >= 3  # sighting, installed, confirmed: kept for later
    assert online.online and online.pending == {"report": 0, "event": 0}
    assert online.uploaded_reports >= offline.pending["report"]
    assert update_state(api, DEVICES[0]) == ("confirmed_running", None)
    assert all(v.update is None for v in online.devices)


def test_items_the_server_refuses_move_aside_and_do_not_block_the_rest(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICES[0])
    add_device(api, DEVICES[1], "south")  # another site: the server refuses its events

    def event(device_id: str, n: int) -> dict[str, Any]:
        return {"id": f"{device_id}:{n}", "device_id": device_id, "name": "t", "data": str(n)}

    async def run() -> tuple[tuple[int, int], list[tuple[str, str]], dict[str, int]]:
        async with fleet(tmp_path / "devices", [], b"") as devices:
            agent = devices.agent(server.url, token, tmp_path / "relay")
            try:
                agent.journal.add_events(
                    [event(DEVICES[0], 1), event(DEVICES[1], 1), event(DEVICES[0], 2)]
                )
                sent = await agent.upload()
                refused = [(i.item_id, reason) for i, reason in agent.journal.refused()]
                return sent, refused, agent.journal.counts()
            finally:
                await agent.aclose()

    sent, refused, counts = asyncio.run(run())
    assert sent == (0, 2) and counts == {"report": 0, "event": 0}
    assert [i for i, _ in refused] == [f"{DEVICES[1]}:1"] and "403" in refused[0][1]
    with api.state.sessions() as session:
        stored = session.scalars(select(Event.id).order_by(Event.id)).all()
    assert stored == [f"{DEVICES[0]}:1", f"{DEVICES[0]}:2"]


class SteppedClock:
    """The system clock plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def test_backoff_after_a_refusal_and_no_update_without_room_in_the_cache(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICES[0], groups=["beta"])
    add_device(api, DEVICES[1], groups=["big"])
    publish(api, upload(api, "v2", 2), groups=["beta"])
    publish(
        api, upload(api, "v3", 3, {"big.bin": random.Random(1).randbytes(40_000)}), groups=["big"]
    )
    clock = SteppedClock()

    async def run() -> list[RunSummary]:
        key = api.state.signing_key.public_key
        async with fleet(tmp_path / "devices", DEVICES, key, distrusting=DEVICES[:1]) as f:
            agent = f.agent(
                server.url, token, tmp_path / "relay", retry_base=600.0, cache_max_bytes=30_000
            )
            agent.clock = clock
            try:
                first = await agent.run_once()  # refused: retry in 10 minutes
                second = await agent.run_once()  # too early
                clock.offset = dt.timedelta(minutes=11)
                third = await agent.run_once()  # retried (and refused again)
                return [first, second, third]
            finally:
                await agent.aclose()

    first, second, third = asyncio.run(run())
    assert by_device(first)[DEVICES[0]].update == "rejected"
    assert DEVICES[0] not in by_device(second)  # backing off: not even connected
    assert by_device(third)[DEVICES[0]].update == "rejected"
    assert "UNKNOWN_KEY" in (by_device(first)[DEVICES[0]].reason or "")
    # the second release does not fit in the cache: never offered to its device
    assert by_device(first)[DEVICES[1]].update is None
    assert all(
        v.update is None for s in (second, third) for v in s.devices if v.device_id != DEVICES[0]
    )
    assert first.desired == 2 and update_state(api, DEVICES[1]) is None
    assert reported_states(api, DEVICES[0]).count("failed") == 2


def test_run_until_stopped_and_a_refused_token_stops_it(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICES[0], groups=["beta"])
    publish(api, upload(api, "v2", 2), groups=["beta"])

    async def run() -> None:
        key = api.state.signing_key.public_key
        async with fleet(tmp_path / "devices", DEVICES[:1], key) as devices:
            agent = devices.agent(server.url, token, tmp_path / "relay", sync_interval=0.3)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            try:
                deadline = time.monotonic() + 30
                while await asyncio.to_thread(update_state, api, DEVICES[0]) != (
                    "confirmed_running",
                    None,
                ):
                    assert time.monotonic() < deadline and not task.done()
                    await asyncio.sleep(0.1)
                stop.set()
                await asyncio.wait_for(task, 10)
            finally:
                await agent.aclose()
            refused = devices.agent(server.url, "wrong", tmp_path / "relay2")
            try:
                with pytest.raises(Unauthorized):
                    await asyncio.wait_for(refused.run(asyncio.Event()), 10)
            finally:
                await refused.aclose()

    asyncio.run(run())
    assert update_state(api, DEVICES[0]) == ("confirmed_running", None)
