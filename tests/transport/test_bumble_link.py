"""Bumble GATT server and central over the in-process virtual link (real Bumble peers)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from bluemule.transport.base import (
    CentralLink,
    GattServerSpec,
    LinkLostError,
    PeerNotFoundError,
    TransportError,
)
from bluemule.transport.bumble_link import (
    DEFAULT_MTU,
    BumbleCentralLink,
    ScanResult,
    VirtualLink,
    advertising_payloads,
)
from tests.transport.helpers import (
    ADVERTISING,
    CONTROL,
    DATA,
    SERVICE,
    SPEC,
    STATUS,
    Recorder,
    make_spec,
    payload,
    run,
    sha256,
    status,
    stream,
)

SIZE = 256 * 1024


def test_connect_negotiates_mtu_247() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            central: CentralLink = await vlink.connect()
            assert central.connected
            assert central.mtu == DEFAULT_MTU == 247
            await device.wait_events(1)
            assert device.link is not None
            assert device.link.mtu == 247
            assert device.events == ["connect"]

    run(main)


def test_256_kib_without_response_arrives_complete_and_in_order() -> None:
    data = payload(SIZE)

    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            central = await vlink.connect()
            await stream(central, data)
            # ATT is ordered on the bearer: the read's answer comes after every write.
            assert await status(central) == SIZE
            assert sha256(device.data) == sha256(data)
            sizes = {len(v) for u, v in device.writes if u == DATA}
            assert sizes == {244, SIZE % 244}

    run(main)


def test_read_is_a_barrier_after_mixed_writes() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            central = await vlink.connect()
            await central.write(CONTROL, b"begin", response=True)
            for i in range(50):
                await central.write(DATA, bytes([i]) * 200, response=False)
            assert await status(central) == 50 * 200
            assert device.writes[0] == (CONTROL, b"begin")
            assert [v[0] for u, v in device.writes[1:]] == list(range(50))
            await central.write(DATA, b"with response", response=True)
            assert device.writes[-1] == (DATA, b"with response")

    run(main)


def test_notifications_arrive_in_order_after_subscribing() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            central = await vlink.connect()
            await device.wait_events(1)
            assert device.link is not None
            await device.link.notify(STATUS, b"before subscribing")  # a no-op
            received: list[bytes] = []
            done = asyncio.Event()

            def on_note(value: bytes) -> None:
                received.append(value)
                if len(received) == 3:
                    done.set()

            await central.subscribe(STATUS, on_note)
            for value in (b"one", b"two", b"x" * 244):
                await device.link.notify(STATUS, value)
            await done.wait()
            assert received == [b"one", b"two", b"x" * 244]
            with pytest.raises(ValueError, match="exceeds"):
                await device.link.notify(STATUS, b"x" * 245)
            with pytest.raises(ValueError, match="does not notify"):
                await device.link.notify(DATA, b"x")

    run(main)


def test_handler_error_fails_the_write_request() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            device.fail_control = True
            await vlink.add_peripheral(SPEC, device)
            central = await vlink.connect()
            with pytest.raises(TransportError, match="ATT error"):
                await central.write(CONTROL, b"x", response=True)
            assert central.connected
            with pytest.raises(TransportError, match="no characteristic"):
                await central.read("6fa900ff-5c4e-48a8-94f4-8030546f36fc")
            with pytest.raises(ValueError, match="exceed"):
                await central.write(DATA, b"x" * 245, response=False)

    run(main)


def test_disconnect_mid_stream_raises_link_lost_and_reconnect_resumes() -> None:
    data = payload(SIZE, seed=2)

    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            connector = vlink.connector()
            central = await connector()
            # The device drops the link once 64 KiB have arrived (deterministic).
            dropped = False

            def on_data(count: int) -> None:
                nonlocal dropped
                if count >= 64 * 1024 and not dropped and device.link is not None:
                    dropped = True
                    asyncio.get_running_loop().create_task(device.link.disconnect())

            device.on_data = on_data
            await stream(central, data)  # all queued in the host before the drop
            with pytest.raises(LinkLostError):
                await status(central)  # pending when the link drops
            await central.wait_disconnected()
            assert not central.connected
            with pytest.raises(LinkLostError):
                await central.write(DATA, b"late", response=False)
            with pytest.raises(LinkLostError):
                await central.write(CONTROL, b"late", response=True)
            with pytest.raises(LinkLostError):
                await central.subscribe(STATUS, lambda _v: None)
            await central.disconnect()  # idempotent

            received = len(device.data)
            assert 64 * 1024 <= received < SIZE
            assert device.data == data[:received]

            device.on_data = None
            again = await connector()
            assert again.connected and again.mtu == 247
            offset = await status(again)
            assert offset == received
            await stream(again, data, start=offset)
            assert await status(again) == SIZE
            assert sha256(device.data) == sha256(data)
            assert device.events == ["connect", "disconnect", "connect"]

    run(main)


def test_central_disconnect_is_seen_by_both_sides() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            central = await vlink.connect()
            await central.disconnect()
            await central.wait_disconnected()
            await device.wait_events(2)
            assert device.events == ["connect", "disconnect"]
            with pytest.raises(LinkLostError):
                await central.read(STATUS)
            # The device advertises again: a new connection works.
            again = await vlink.connect()
            assert await status(again) == 0

    run(main)


def test_two_peripherals_on_one_link() -> None:
    other_service = "6fa90001-5c4e-48a8-94f4-8030546f0002"
    first_data, second_data = payload(30_000, seed=3), payload(20_000, seed=4)

    async def main() -> None:
        async with VirtualLink() as vlink:
            first, second = Recorder(), Recorder()
            a = await vlink.add_peripheral(SPEC, first)
            b = await vlink.add_peripheral(make_spec(other_service, "second"), second)
            assert a.address != b.address
            assert set(vlink.peripherals) == {a.address, b.address}
            with pytest.raises(ValueError, match="pass an address"):
                await vlink.connect()
            with pytest.raises(ValueError, match="already on the link"):
                await vlink.add_peripheral(SPEC, Recorder(), address=a.address)
            link_a = await vlink.connect(a.address)
            link_b = await vlink.connect(b.address)
            assert isinstance(link_b, BumbleCentralLink)
            assert link_b.address == b.address and link_b.service_uuid == other_service

            async def send(link: CentralLink, data: bytes) -> int:
                await stream(link, data)
                return await status(link)

            counts = await asyncio.gather(send(link_a, first_data), send(link_b, second_data))
            assert list(counts) == [len(first_data), len(second_data)]
            assert sha256(first.data) == sha256(first_data)
            assert sha256(second.data) == sha256(second_data)

    run(main)


def test_scan_finds_peripheral_by_service_uuid() -> None:
    other_service = "6fa90001-5c4e-48a8-94f4-8030546f0003"

    async def main() -> None:
        async with VirtualLink() as vlink:
            await vlink.add_peripheral(make_spec(other_service, "other"), Recorder())
            wanted = await vlink.add_peripheral(SPEC, Recorder())
            seen: list[ScanResult] = []
            async with vlink.scan(SERVICE) as results:
                async for result in results:
                    seen.append(result)
                    if len(seen) == 3:
                        break
            assert {r.address for r in seen} == {wanted.address}
            result = seen[0]
            assert result.service_uuids == (SERVICE,)
            # The name did not fit beside the UUID and ADVERTISING, so it went to the scan
            # response, which Bumble's virtual controller never transmits (it echoes the
            # advertising data instead).
            assert result.name is None
            assert ADVERTISING in result.advertising_data
            expected, _ = advertising_payloads(SPEC)
            assert result.advertising_data == expected
            assert isinstance(result.rssi, int)
            # Scanning stopped when the generator closed; the device still connects.
            assert not vlink.central.device.is_scanning
            link = await vlink.connect(wanted.address)
            assert link.connected

    run(main)


def test_scan_without_filter_reports_every_device() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            a = await vlink.add_peripheral(SPEC, Recorder())
            b = await vlink.add_peripheral(make_spec(name="b"), Recorder())
            found: dict[str, str | None] = {}
            async with aclosing(vlink.central.scan()) as results:
                async for result in results:
                    found[result.address] = result.name
                    if set(found) == {a.address, b.address}:
                        break
            assert found[b.address] == "b"  # short enough for the advertising PDU

    run(main)


def test_peer_not_found() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = await vlink.add_peripheral(SPEC, Recorder())
            with pytest.raises(PeerNotFoundError, match="no answer"):
                await vlink.central.connect("C0:00:00:00:99:99", SERVICE, timeout=0.2)
            with pytest.raises(PeerNotFoundError, match="has no service"):
                await vlink.central.connect(
                    device.address, "6fa90001-5c4e-48a8-94f4-000000000000", timeout=2.0
                )
            # A stopped device does not answer; started again, it does.
            await device.stop()
            with pytest.raises(PeerNotFoundError):
                await vlink.connect(timeout=0.2)
            await device.start()
            assert (await vlink.connect()).connected

    run(main)


def test_advertising_payloads() -> None:
    adv, scan_response = advertising_payloads(SPEC)
    assert adv.startswith(bytes((2, 0x01, 0x06, 17, 0x07)))
    assert adv.endswith(ADVERTISING)
    assert scan_response == bytes((14, 0x09)) + b"bluemule-test"  # no room left in adv
    short = GattServerSpec(SERVICE, (), device_name="dev1")
    assert advertising_payloads(short) == (advertising_payloads(short)[0], b"")
    assert advertising_payloads(short)[0].endswith(bytes((5, 0x09)) + b"dev1")
    long_name = GattServerSpec(SERVICE, (), device_name="a-rather-long-device-name-here-xyz")
    adv, scan_response = advertising_payloads(long_name)
    assert len(adv) <= 31 and b"a-rather" not in adv
    assert scan_response[1] == 0x08 and len(scan_response) == 31  # shortened name
    with pytest.raises(ValueError, match="leaves 10"):
        advertising_payloads(
            GattServerSpec(SERVICE, (), advertising_data=bytes((11, 0xFF)) + bytes(10))
        )
    with pytest.raises(ValueError, match="overruns"):
        advertising_payloads(GattServerSpec(SERVICE, (), advertising_data=bytes((5, 0xFF, 1))))
