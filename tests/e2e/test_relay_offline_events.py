"""The server unreachable for a while as devices publish: events wait on the devices and in
the relay's journal, then reach the webhook receiver exactly once each, in per-device order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bluemule.relay.agent import RunSummary
from bluemule.server.config import Settings
from tests.relay.fleet import fleet
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device
from tests.server.test_webhooks import Receiver, add_hook, receiver
from tests.support.live_server import LiveServer

__all__ = ["receiver"]
DEVICES = ["e00fce680000000000000c0a", "e00fce680000000000000c0b"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The server with its webhook delivery worker running."""
    return Settings(data_dir=tmp_path / "data", webhook_poll_seconds=0.1)


def test_events_published_while_the_server_is_unreachable_arrive_once_in_order(
    api: Api, server: LiveServer, token: str, receiver: Receiver, tmp_path: Path
) -> None:
    for device_id in DEVICES:
        add_device(api, device_id)
    add_hook(api, event="reading", url=f"{receiver.url}/hook")
    published: dict[str, list[str]] = {d: [] for d in DEVICES}
    rounds: list[RunSummary] = []

    async def run() -> None:
        key = api.state.signing_key.public_key
        async with fleet(tmp_path / "devices", DEVICES, key) as devices:

            def publish(count: int) -> None:
                for device_id, device in devices.devices.items():
                    for _ in range(count):
                        data = f"{device_id[-2:]}-{len(published[device_id])}"
                        device.publish("reading", data)
                        published[device_id].append(data)

            agent = devices.agent(server.url, token, tmp_path / "relay", sighting_interval=0.0)
            try:
                await asyncio.to_thread(server.stop)
                publish(3)
                rounds.append(await agent.run_once())  # offline: drained into the journal
                publish(2)
                rounds.append(await agent.run_once())
                publish(2)  # still on the devices when the server comes back
                await asyncio.to_thread(server.start)
                rounds.append(await agent.run_once())
                rounds.append(await agent.run_once())  # nothing new: nothing sent twice
            finally:
                await agent.aclose()

    asyncio.run(run())
    offline1, offline2, back, again = rounds
    assert not offline1.online and not offline2.online and back.online
    assert sum(v.events for v in offline1.devices) == 6 and offline1.pending["event"] == 6
    assert sum(v.events for v in offline2.devices) == 4 and offline2.pending["event"] == 10
    assert back.uploaded_events == 14 and back.pending == {"report": 0, "event": 0}
    assert again.uploaded_events == 0 and sum(v.events for v in again.devices) == 0
    deadline = time.monotonic() + 20
    while len(receiver.hits) < 14 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a duplicate would arrive now
    forms = [hit.form() for hit in receiver.hits]
    assert len(forms) == 14
    for device_id in DEVICES:
        got = [f["data"] for f in forms if f["coreid"] == device_id]
        assert got == published[device_id]  # each once, in the order published
