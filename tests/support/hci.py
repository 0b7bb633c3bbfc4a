"""Bumble virtual controllers on one link, each exposed as HCI over TCP on 127.0.0.1.

Separate processes (``bluemule emulator run DIR --transport tcp-client:…``, ``bluemule
relay run --transport bumble:tcp-client:…``) open them as if they were USB dongles. The
controllers run on an event loop in a thread of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bumble import hci
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket


class LinkedControllers:
    """``monikers[i]`` is the ``tcp-client:`` transport of controller ``i``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.monikers: list[str] = []
        self.controllers: list[Controller] = []

    def drop_connections(self, index: int) -> None:
        """End controller ``index``'s connections as a supervision timeout would (its
        host died: the peer sees the link drop and advertises again)."""

        def drop() -> None:
            controller = self.controllers[index]
            for connection in list(controller.le_connections.values()):
                command = hci.HCI_Disconnect_Command(
                    connection_handle=connection.handle,
                    reason=hci.HCI_CONNECTION_TIMEOUT_ERROR,
                )
                # the dead host cannot hear the command status
                with contextlib.suppress(Exception):
                    controller.on_hci_disconnect_command(command)
            done.set()

        done = threading.Event()
        self.loop.call_soon_threadsafe(drop)
        assert done.wait(10)


@contextmanager
def linked_controllers(count: int) -> Iterator[LinkedControllers]:
    """``count`` controllers on one link; yields them (``.monikers`` to connect to)."""
    loop = asyncio.new_event_loop()
    linked = LinkedControllers(loop)
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        link = LocalLink()  # type: ignore[no-untyped-call]
        transports = []
        for index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            transport = await open_tcp_server_transport_with_socket(sock)
            transports.append(transport)
            controller = Controller(
                f"C{index}", host_source=transport.source, host_sink=transport.sink, link=link
            )
            controller.le_acl_data_packet_length = 251
            linked.controllers.append(controller)
            linked.monikers.append(f"tcp-client:127.0.0.1:{sock.getsockname()[1]}")
        started.set()
        await stop.wait()
        for transport in transports:
            server = transport.server  # type: ignore[attr-defined]
            server.close()
            await server.wait_closed()
            await transport.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield linked
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
