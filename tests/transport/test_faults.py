"""Fault wrappers over real Bumble links on the virtual link."""

from __future__ import annotations

import pytest

from bluemule.transport.base import CentralLink, LinkLostError
from bluemule.transport.bumble_link import VirtualLink
from bluemule.transport.faults import (
    DisconnectAfterBytes,
    WriteFaults,
    fault_first,
    flip_last_byte,
)
from tests.transport.helpers import (
    CONTROL,
    DATA,
    SPEC,
    STATUS,
    Recorder,
    payload,
    run,
    sha256,
    status,
    stream,
)


def test_disconnect_after_bytes_then_resume_on_a_healthy_link() -> None:
    data = payload(100_000, seed=5)
    limit = 10_000

    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            faulty: list[DisconnectAfterBytes] = []

            def wrap(link: CentralLink) -> CentralLink:
                faulty.append(DisconnectAfterBytes(link, limit, uuid=DATA))
                return faulty[0]

            connector = fault_first(vlink.connector(), wrap)
            link = await connector()
            await link.write(CONTROL, b"not counted", response=True)
            with pytest.raises(LinkLostError):
                await stream(link, data)
            fault = faulty[0]
            assert fault.tripped and not link.connected
            # Forwarded whole writes until the limit was reached, then nothing.
            assert limit <= fault.queued < limit + 244
            assert fault.queued % 244 == 0
            await link.wait_disconnected()
            # At most what was queued reached the device, in order.
            received = len(device.data)
            assert received <= fault.queued
            assert device.data == data[:received]

            again = await connector()
            assert not isinstance(again, DisconnectAfterBytes)
            offset = await status(again)
            assert offset == received
            await stream(again, data, start=offset)
            assert await status(again) == len(data)
            assert sha256(device.data) == sha256(data)

    run(main)


def test_disconnect_after_zero_bytes_fails_the_first_write() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            await vlink.add_peripheral(SPEC, Recorder())
            link = DisconnectAfterBytes(await vlink.connect(), 0)
            assert link.mtu == 247 and link.connected
            with pytest.raises(LinkLostError):
                await link.write(DATA, b"x", response=False)
            assert link.tripped and link.queued == 0
            with pytest.raises(ValueError, match=">= 0"):
                DisconnectAfterBytes(link, -1)

    run(main)


def test_write_faults_drop_and_corrupt_chosen_writes() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            link = WriteFaults(await vlink.connect(), drop={1, 3}, corrupt={2, 3}, uuid=DATA)
            for i in range(5):
                await link.write(DATA, bytes([i]) * 10, response=False)
            await link.write(DATA, b"acknowledged", response=True)  # never touched
            await link.write(CONTROL, b"control", response=True)
            assert await status(link) == 3 * 10 + len(b"acknowledged")
            data_writes = [v for u, v in device.writes if u == DATA]
            assert data_writes == [
                bytes(10),
                flip_last_byte(bytes([2]) * 10),
                bytes([4]) * 10,
                b"acknowledged",
            ]
            assert link.dropped == [1, 3]  # 3 is dropped, not corrupted
            assert link.corrupted == [2]
            assert link.count == 5

    run(main)


def test_write_faults_predicate_and_custom_corrupter() -> None:
    async def main() -> None:
        async with VirtualLink() as vlink:
            device = Recorder()
            await vlink.add_peripheral(SPEC, device)
            received: list[bytes] = []
            link = WriteFaults(
                await vlink.connect(),
                drop=lambda i: i % 3 == 2,  # a full pool losing every third packet
                corrupt=lambda i: i == 0,
                corrupter=lambda v: b"?" + v[1:],
            )
            await link.subscribe(STATUS, received.append)
            for i in range(6):
                await link.write(DATA, bytes([65 + i]) * 4, response=False)
            await link.read(STATUS)
            assert [v for u, v in device.writes if u == DATA] == [
                b"?AAA",
                b"BBBB",
                b"DDDD",
                b"EEEE",
            ]
            assert link.dropped == [2, 5]
            await link.disconnect()
            await link.wait_disconnected()
            assert not link.connected

    run(main)


def test_flip_last_byte() -> None:
    assert flip_last_byte(b"") == b""
    assert flip_last_byte(b"\x00\x0f") == b"\x00\xf0"
