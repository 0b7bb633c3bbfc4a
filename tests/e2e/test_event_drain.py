"""End to end over Bumble's virtual link: a relay drains an emulated device's events.

The "server" here is a dict keyed by event id, as the fleet server dedupes: the checks
are that every published event reaches it exactly once by id, in sequence order, across
lost links, and that the device deletes only what the relay stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.protocol.client_session import Outcome
from bluemule.protocol.constants import AdvertisingFlag
from bluemule.protocol.events import event_id
from bluemule.protocol.messages import decode_advertisement
from bluemule.protocol.release import build_release, parse_device_id
from bluemule.relay.events import (
    EventDrainInterruptedError,
    RelayedEvent,
    drain_events,
)
from bluemule.relay.targets import bluemule_advertisement
from bluemule.relay.update import UpdatePolicy, push_update
from bluemule.transport.base import CentralLink, NotificationCallback, TransportError
from bluemule.transport.faults import LinkWrapper
from tests.e2e.harness import DEVICE_IDS, KEY, Rig, new_device, served

AT = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
BIG = "€" * 341 + "x"  # 1,024 bytes of UTF-8
UNICODE = "temp 21.5 °C, ☂, 🐝"


class Server:
    """Stores batches durably (a dict), deduplicating by id like the fleet server."""

    def __init__(self) -> None:
        self.events: dict[str, RelayedEvent] = {}
        self.received: list[str] = []

    async def store(self, batch: Sequence[RelayedEvent]) -> None:
        for e in batch:
            self.received.append(e.event_id)
            self.events.setdefault(e.event_id, e)


class DropAfterRequests(LinkWrapper):
    """Disconnect before the ``limit``-th CONTROL write (a request mid-drain)."""

    def __init__(self, inner: CentralLink, limit: int) -> None:
        super().__init__(inner)
        self.limit = limit
        self.requests = 0

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        if response:
            self.requests += 1
            if self.requests == self.limit:
                await self.inner.disconnect()
        await self.inner.write(uuid, value, response=response)


def publish(device: EmulatedDevice, count: int, start: int = 0) -> list[tuple[str, str | None]]:
    sent = []
    for i in range(start, start + count):
        data = BIG if i % 4 == 0 else (None if i % 4 == 1 else f"{UNICODE} #{i}")
        device.publish(f"sensor/{i % 3}", data, AT)
        sent.append((f"sensor/{i % 3}", data))
    return sent


def test_drain_ack_republish_and_survive_lost_links(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    dev_id = DEVICE_IDS["boron"]
    sent = publish(device, 10)
    server = Server()

    async def run() -> None:
        async with served(device) as rig:
            advert = decode_advertisement(rig.peripheral.gatt_spec().advertising_data[2:])
            assert advert is not None and advert.flags & AdvertisingFlag.EVENTS_QUEUED
            # 1. A clean drain in batches of 4.
            link = await rig.connector()()
            assert await drain_events(link, server.store, batch=4) == 10
            assert device.queued_events()["queued"] == 0
            assert await drain_events(link, server.store) == 0
            await link.disconnect()

            # 2. Republish, then lose the link in the middle of a 1,024-byte record.
            sent.extend(publish(device, 6, start=10))
            # Requests: read 11, read 12, ack 12, read 13 at 0, read 13 at 233 (dropped).
            dropping = DropAfterRequests(await rig.connector()(), limit=5)
            with pytest.raises(EventDrainInterruptedError) as exc:
                await drain_events(dropping, server.store, batch=2)
            assert exc.value.drained == 2
            assert device.queued_events()["first_sequence"] == 13

            # 3. Lose the link after a batch was stored but before its ack went out.
            link = await rig.connector()()

            async def store_then_drop(batch: Sequence[RelayedEvent]) -> None:
                await server.store(batch)
                await link.disconnect()

            with pytest.raises(EventDrainInterruptedError):
                await drain_events(link, store_then_drop, batch=3)
            assert device.queued_events()["queued"] > 0  # the unacked batch is still there

            # 4. Re-drain: what was stored before arrives again with the same ids.
            link = await rig.connector()()
            await drain_events(link, server.store)
            await link.disconnect()

    asyncio.run(run())
    assert device.queued_events()["queued"] == 0
    ids = [event_id(dev_id, seq) for seq in range(1, 17)]
    assert list(server.events) == ids  # exactly once by id, in sequence order
    assert [(e.name, e.data) for e in server.events.values()] == sent
    assert all(e.captured_at == AT and e.device_id == dev_id for e in server.events.values())
    assert len(server.received) > len(ids)  # the lost ack really made the relay read again
    first_seen = list(dict.fromkeys(server.received))
    assert first_seen == ids


def test_drain_before_and_after_an_update_on_one_connection(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "msom")
    publish(device, 3)
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS["msom"]),
        app=make_app("msom", tag="v2"),
        release_counter=1,
    )
    server = Server()

    async def run() -> None:
        async with served(device) as rig:
            link = await rig.connector()()
            assert await drain_events(link, server.store) == 3
            used = False

            async def same_link_first() -> CentralLink:
                nonlocal used
                if not used:
                    used = True
                    return link
                return await rig.connector()()

            policy = UpdatePolicy(notification_timeout=0.5, reboot_timeout=10.0)
            report = await push_update(same_link_first, release, policy=policy)
            assert report.result.outcome == Outcome.APPLIED, report.result
            publish(device, 2, start=3)  # the new app publishes after the reset
            link = await rig.connector()()
            assert await drain_events(link, server.store) == 2
            await link.disconnect()

    asyncio.run(run())
    assert list(server.events) == [event_id(DEVICE_IDS["msom"], s) for s in range(1, 6)]


def test_the_advertisement_tells_a_relay_events_are_queued(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")

    async def events_queued(rig: Rig) -> bool:
        async with rig.link.scan(None) as results:
            async for result in results:
                advert = bluemule_advertisement(result.advertising_data)
                if advert is not None and advert.device_id.hex() == DEVICE_IDS["boron"]:
                    return bool(advert.flags & AdvertisingFlag.EVENTS_QUEUED)
        raise AssertionError("no advertisement")

    async def run() -> list[bool]:
        async with served(device) as rig:
            rig.peripheral.advertising_changed = rig.link.peripherals[rig.address].server.start
            seen = [await events_queued(rig)]
            await rig.peripheral.publish("door/open", None, AT)  # idle: re-advertised
            seen.append(await events_queued(rig))
            link = await rig.connector()()
            assert await drain_events(link, Server().store) == 1
            await link.disconnect()  # advertising restarts with fresh data
            seen.append(await events_queued(rig))
            # Another process (``bluemule emulator publish``) adds to the state directory.
            fresh = asyncio.create_task(rig.peripheral.keep_advertising_fresh(0.05))
            EmulatedDevice.open(device.state_dir).publish("from/cli", "1", AT)
            await asyncio.sleep(0.3)
            seen.append(await events_queued(rig))
            fresh.cancel()
            return seen

    assert asyncio.run(run()) == [False, True, False, True]


class NoNotifications(LinkWrapper):
    """A central stack that cannot subscribe (some phones, browser harnesses)."""

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        raise TransportError(f"cannot subscribe to {uuid}")


def test_drain_by_polling_when_notifications_are_unavailable(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    sent = publish(device, 5)
    server = Server()

    async def run() -> int:
        async with served(device) as rig:
            link = NoNotifications(await rig.connector()())
            drained = await drain_events(link, server.store, batch=2, timeout=5.0)
            await link.disconnect()
            return drained

    assert asyncio.run(run()) == 5
    assert [(e.name, e.data) for e in server.events.values()] == sent
    assert device.queued_events()["queued"] == 0
