"""The device's end of Particle's control channel, per connection, and a TCP server for it.

:class:`ControlConnection` joins a fresh
:class:`~bluemule.particle_ctrl.session.ServerSession` (new EC-JPAKE handshake per
connection, keyed by the device's mobile secret) to the device's
:class:`~bluemule.emulator.control.DeviceOsControl`. It is sans-IO: bytes in, steps out.
The transport (the GATT peripheral, or :func:`serve_control_stream` over TCP) runs the
steps in order from one task, which makes requests strictly one at a time as in Device
OS's system thread, sends each reply and only then runs what Device OS does after the
reply (apply the update, reset). A reset ends the connection, as the reboot drops the
BLE link. A handshake or channel error ends the connection too (Device OS disconnects a
phone with the wrong secret) and never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from bluemule.emulator.control import AfterReply, DeviceOsControl
from bluemule.emulator.setup import load_settings
from bluemule.particle_ctrl.errors import ParticleCtrlError
from bluemule.particle_ctrl.session import IncomingRequest, Send, ServerSession

_READ_SIZE: Final = 4096


@dataclass(frozen=True)
class Transmit:
    """Bytes for the peer (TX notifications on GATT)."""

    data: bytes


@dataclass(frozen=True)
class Handle:
    """A request to answer with :meth:`ControlConnection.answer`, in order."""

    request: IncomingRequest


Step: TypeAlias = Transmit | Handle


class ControlConnection:
    """One connection's channel state: the session and the handler it feeds."""

    def __init__(self, control: DeviceOsControl) -> None:
        self.control = control
        secret = load_settings(control.device.state_dir).mobile_secret
        self.session = ServerSession(secret.encode("ascii"))

    def receive(self, data: bytes) -> list[Step]:
        """Bytes from the peer → what to do, in order.

        Raises:
            ParticleCtrlError: handshake or channel failure; drop the connection.
        """
        steps: list[Step] = []
        for event in self.session.receive(data):
            if isinstance(event, Send):
                steps.append(Transmit(event.data))
            elif isinstance(event, IncomingRequest):
                steps.append(Handle(event))
        return steps

    def answer(self, request: IncomingRequest) -> tuple[bytes, AfterReply | None]:
        """Run the request; the sealed reply to send, then the action to run after it."""
        result = self.control.handle(request.type, request.payload)
        sends = self.session.reply(request.request_id, result.result, result.payload)
        return b"".join(s.data for s in sends), result.after_reply

    def close(self) -> None:
        """Forget the session (its keys)."""
        self.session.close()


async def run_steps(
    connection: ControlConnection,
    steps: list[Step],
    send: Callable[[bytes], Awaitable[None]],
) -> bool:
    """Carry out ``steps``; True when the device reset (the connection must end)."""
    for step in steps:
        if isinstance(step, Transmit):
            await send(step.data)
            continue
        reply, action = connection.answer(step.request)
        await send(reply)
        if action is not None and connection.control.after_reply(action):
            return True
    return False


async def serve_connection(
    control: DeviceOsControl, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> str:
    """Run one TCP client until it leaves, fails or the device resets; why it ended."""
    connection = ControlConnection(control)

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    try:
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                return "closed by the client"
            if await run_steps(connection, connection.receive(data), send):
                return "device reset"
    except ParticleCtrlError as exc:
        return f"channel refused: {type(exc).__name__}"
    except ConnectionError:
        return "connection lost"
    finally:
        connection.close()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_control_stream(
    control: DeviceOsControl,
    host: str,
    port: int,
    *,
    on_end: Callable[[str], None] | None = None,
) -> AsyncIterator[asyncio.Server]:
    """Serve the control channel as a raw byte stream on ``host:port``, one client at a
    time (a second client is closed at once); yields the listening server."""
    busy = asyncio.Lock()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if busy.locked():
            writer.close()
            return
        try:
            async with busy:
                why = await serve_connection(control, reader, writer)
        except asyncio.CancelledError:
            # Shutting down. Return normally: asyncio's stream callback (3.11) calls
            # task.exception() on a cancelled handler task and would log a traceback.
            writer.close()
            return
        if on_end is not None:
            on_end(why)

    server = await asyncio.start_server(client, host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
