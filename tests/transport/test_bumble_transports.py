"""Opening Bumble transports by moniker, without hardware.

Two Bumble virtual controllers on one ``LocalLink`` are exposed as HCI over TCP servers on
localhost, as ``bumble-controllers`` does; ``serve`` and ``open_central`` then reach them
through ``tcp-client:`` monikers, so the whole moniker → ``open_transport`` → HCI path
runs (USB, UART and HCI sockets differ only in the byte pipe).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import pytest
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from bluemule.transport.base import TransportError
from bluemule.transport.bumble_link import open_central, open_device, serve
from tests.transport.helpers import (
    SERVICE,
    SPEC,
    STATUS,
    Recorder,
    payload,
    run,
    sha256,
    status,
    stream,
)


@asynccontextmanager
async def hci_over_tcp(count: int) -> AsyncIterator[list[str]]:
    """``count`` linked virtual controllers; yields their ``tcp-client:`` monikers."""
    link = LocalLink()  # type: ignore[no-untyped-call]
    transports = []
    monikers = []
    try:
        for index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            transport = await open_tcp_server_transport_with_socket(sock)
            transports.append(transport)
            controller = Controller(
                f"C{index}", host_source=transport.source, host_sink=transport.sink, link=link
            )
            controller.le_acl_data_packet_length = 251
            monikers.append(f"tcp-client:127.0.0.1:{port}")
        yield monikers
    finally:
        for transport in transports:
            server = transport.server  # type: ignore[attr-defined]
            server.close()
            await server.wait_closed()
            await transport.close()


def test_serve_and_central_over_monikers() -> None:
    data = payload(50_000, seed=6)

    async def main() -> None:
        async with hci_over_tcp(2) as (device_moniker, central_moniker):
            device = Recorder()
            async with (
                serve(device_moniker, SPEC, device, address="C0:00:00:00:00:0A") as server,
                open_central(central_moniker, address="F0:00:00:00:00:0B") as central,
            ):
                assert server.address == "C0:00:00:00:00:0A"
                async with aclosing(central.scan(SERVICE)) as results:
                    found = await anext(results)
                assert found.address == server.address
                # data_length is on by default: the virtual controller refuses it, ignored.
                link = await central.connect(found.address, SERVICE)
                assert link.mtu == 247
                notes: list[bytes] = []
                await link.subscribe(STATUS, notes.append)
                await stream(link, data)
                assert await status(link) == len(data)
                assert sha256(device.data) == sha256(data)
                assert device.link is not None
                await device.link.notify(STATUS, b"done")
                await link.read(STATUS)  # the notification was sent before the answer
                assert notes == [b"done"]
                await link.disconnect()

    run(main)


def test_bad_moniker_is_a_transport_error() -> None:
    async def main() -> None:
        with pytest.raises(TransportError, match="cannot open Bumble transport"):
            async with open_device("nosuch:0"):
                pass

    run(main)
