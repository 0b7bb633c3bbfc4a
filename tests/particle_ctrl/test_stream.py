"""The transports and the async driver against real peers: a TCP server on 127.0.0.1 and a
GATT peripheral on Bumble's virtual link, each running a ServerSession (particle.md §5)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    RequestError,
    RequestTimeoutError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.gatt import (
    PROTOCOL_VERSION,
    RX_UUID,
    TX_UUID,
    VERSION_UUID,
    control_service_spec,
    setup_advertising_data,
)
from bluemule.particle_ctrl.session import (
    HandshakeComplete,
    IncomingRequest,
    Send,
    ServerSession,
)
from bluemule.particle_ctrl.stream import (
    ByteStream,
    ControlChannel,
    TcpByteStream,
    open_channel,
    open_gatt_stream,
    open_tcp_stream,
)
from bluemule.transport.base import CentralLink, NotificationCallback, PeripheralLink
from bluemule.transport.bumble_link import VirtualLink
from tests.particle_ctrl.helpers import OTHER_SECRET, SECRET

ECHO, REFUSE, IGNORE, HANG_UP, SLOW_ECHO = 1, 2, 3, 4, 5


def run(factory: Callable[[], Coroutine[Any, Any, None]], timeout: float = 30.0) -> None:
    async def main() -> None:
        await asyncio.wait_for(factory(), timeout)

    asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the test's overall timeout bounds the wait)."""
    while not condition():
        await asyncio.sleep(0.005)


@dataclass
class Device:
    """The device's side: a ServerSession per connection answering test request types.

    ECHO replies with the payload, REFUSE with NOT_ALLOWED, IGNORE never replies,
    HANG_UP drops the connection, SLOW_ECHO echoes after 20 ms. Counts what it saw.
    """

    secret: bytes = SECRET
    connections: int = 0
    handshakes: int = 0
    errors: list[ParticleCtrlError] = field(default_factory=list)
    requests: list[IncomingRequest] = field(default_factory=list)
    outstanding: int = 0
    max_outstanding: int = 0
    hang_ups: int = 0

    def new_session(self) -> ServerSession:
        self.connections += 1
        return ServerSession(self.secret)

    async def handle(
        self,
        session: ServerSession,
        data: bytes,
        send: Callable[[bytes], Coroutine[Any, Any, None]],
        hang_up: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        try:
            events = session.receive(data)
        except ParticleCtrlError as error:  # Device OS disconnects on any channel error
            self.errors.append(error)
            await hang_up()
            return
        for event in events:
            if isinstance(event, Send):
                await send(event.data)
            elif isinstance(event, HandshakeComplete):
                self.handshakes += 1
            elif isinstance(event, IncomingRequest):
                self.requests.append(event)
                self.outstanding += 1
                self.max_outstanding = max(self.max_outstanding, self.outstanding)
                await self.answer(session, event, send, hang_up)

    async def answer(
        self,
        session: ServerSession,
        request: IncomingRequest,
        send: Callable[[bytes], Coroutine[Any, Any, None]],
        hang_up: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        if request.type == IGNORE:
            return
        if request.type == HANG_UP:
            await hang_up()
            return
        if request.type == SLOW_ECHO:
            await asyncio.sleep(0.02)
        result = -130 if request.type == REFUSE else 0
        payload = request.payload if request.type in (ECHO, SLOW_ECHO) else b""
        self.outstanding -= 1
        for frame in session.reply(request.request_id, result, payload):
            await send(frame.data)


# ------------------------------------------------------------------ TCP


@contextlib.asynccontextmanager
async def tcp_device(device: Device) -> AsyncIterator[tuple[str, int]]:
    """An asyncio server on 127.0.0.1 running ``device``; yields its address."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = device.new_session()

        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def hang_up() -> None:
            writer.close()

        try:
            while data := await reader.read(512):
                await device.handle(session, data, send, hang_up)
                if writer.is_closing():
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            device.hang_ups += 1

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    async with server:
        yield host, port
        # Let every connection handler finish: Python 3.11 logs an error for a handler
        # task the server cancels while it waits for its socket to close.
        await until(lambda: device.hang_ups == device.connections)


async def tcp_stream(address: tuple[str, int]) -> TcpByteStream:
    return await open_tcp_stream(*address)


@contextlib.asynccontextmanager
async def tcp_channel(device: Device) -> AsyncIterator[ControlChannel]:
    """An open channel to ``device`` served over TCP on 127.0.0.1."""
    async with tcp_device(device) as address:
        stream: ByteStream = await tcp_stream(address)
        async with open_channel(stream, SECRET) as channel:
            yield channel


def test_tcp_echo_of_every_size() -> None:
    async def main() -> None:
        device = Device()
        async with tcp_channel(device) as channel:
            assert channel.is_open
            for size in (0, 1, 1024, 1040, 65535):
                payload = bytes(i % 251 for i in range(size))
                assert await channel.request(ECHO, payload, timeout=10) == payload
        assert not channel.is_open
        await until(lambda: device.hang_ups == 1)  # the server saw the connection end
        assert (device.connections, device.handshakes, device.errors) == (1, 1, [])

    run(main)


def test_tcp_negative_result_is_a_request_error_and_the_channel_stays_open() -> None:
    async def main() -> None:
        async with tcp_channel(Device()) as channel:
            with pytest.raises(RequestError) as caught:
                await channel.request(REFUSE, b"x")
            assert (caught.value.code, caught.value.name) == (-130, "NOT_ALLOWED")
            reply = await channel.exchange(REFUSE)
            assert reply.result == -130
            assert await channel.request(ECHO, b"still open") == b"still open"

    run(main)


def test_tcp_wrong_secret_fails_once_without_retrying() -> None:
    async def main() -> None:
        device = Device()
        async with tcp_device(device) as address:
            with pytest.raises(WrongMobileSecretError, match="mobile secret"):
                async with open_channel(await tcp_stream(address), OTHER_SECRET):
                    pytest.fail("the handshake must not succeed")
        assert device.connections == 1
        assert device.handshakes == 0
        assert [type(e) for e in device.errors] == [WrongMobileSecretError]

    run(main)


def test_tcp_request_timeout_closes_the_channel() -> None:
    async def main() -> None:
        async with tcp_channel(Device()) as channel:
            with pytest.raises(RequestTimeoutError):
                await channel.request(IGNORE, timeout=0.2)
            assert not channel.is_open
            with pytest.raises(ChannelError, match="closed"):
                await channel.request(ECHO, b"late")

    run(main)


def test_tcp_device_hanging_up_mid_request_is_a_channel_error() -> None:
    async def main() -> None:
        async with tcp_channel(Device()) as channel:
            with pytest.raises(ChannelError, match="closed the connection"):
                await channel.request(HANG_UP)

    run(main)


def test_tcp_silent_device_times_the_handshake_out() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answers; returns when the client closes
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            address = server.sockets[0].getsockname()[:2]
            with pytest.raises(HandshakeError, match="did not complete"):
                async with open_channel(await tcp_stream(address), SECRET, handshake_timeout=0.3):
                    pytest.fail("no handshake")

    run(main)


def test_tcp_requests_are_serialised_one_in_flight() -> None:
    async def main() -> None:
        device = Device()
        async with tcp_channel(device) as channel:
            payloads = [bytes([n]) * 100 for n in range(6)]
            replies = await asyncio.gather(*(channel.request(SLOW_ECHO, p) for p in payloads))
        assert replies == payloads
        assert device.max_outstanding == 1

    run(main)


def test_tcp_garbage_from_the_device_is_a_typed_error() -> None:
    async def main() -> None:
        async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(b"\xff\xff" + bytes(100))  # a 65,535-byte handshake packet
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(liar, "127.0.0.1", 0)
        async with server:
            address = server.sockets[0].getsockname()[:2]
            with pytest.raises(HandshakeError, match="1–512"):
                async with open_channel(await tcp_stream(address), SECRET):
                    pytest.fail("no handshake")

    run(main)


# ------------------------------------------------------------------ GATT over Bumble


class GattDevice:
    """A PeripheralHandler serving the control service with :class:`Device` behind it.

    Like Device OS: version 0x02 on read, RX writes fed to the session in order,
    outgoing bytes packed into notifications of at most ``mtu - 3`` bytes, and any
    channel error answered by a disconnect.
    """

    def __init__(
        self, device: Device, *, version: int = PROTOCOL_VERSION, empty_first: bool = False
    ) -> None:
        self.device = device
        self.version = version
        self.empty_first = empty_first
        self.link: PeripheralLink | None = None
        self.session: ServerSession | None = None
        self.largest_write = 0
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def on_connect(self, link: PeripheralLink) -> None:
        self.link = link
        self.session = self.device.new_session()
        self._worker = asyncio.get_running_loop().create_task(self._work(link, self.session))

    def on_disconnect(self) -> None:
        self.link = None
        self._inbox.put_nowait(None)

    def on_read(self, uuid: str) -> bytes:
        assert uuid == VERSION_UUID
        return bytes((self.version,))

    def on_write(self, uuid: str, value: bytes) -> None:
        assert uuid == RX_UUID
        self.largest_write = max(self.largest_write, len(value))
        self._inbox.put_nowait(value)

    async def _work(self, link: PeripheralLink, session: ServerSession) -> None:
        async def send(data: bytes) -> None:
            if self.empty_first:  # a lying device: an empty notification must not end the stream
                self.empty_first = False
                await link.notify(TX_UUID, b"")
            size = link.mtu - 3
            for offset in range(0, len(data), size):
                await link.notify(TX_UUID, data[offset : offset + size])

        async def hang_up() -> None:
            await link.disconnect()

        while (data := await self._inbox.get()) is not None:
            await self.device.handle(session, data, send, hang_up)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker


class RecordingLink:
    """A real central link, with every write it carries recorded (size, with response)."""

    def __init__(self, link: CentralLink) -> None:
        self.link = link
        self.writes: list[tuple[int, bool]] = []

    @property
    def mtu(self) -> int:
        return self.link.mtu

    @property
    def connected(self) -> bool:
        return self.link.connected

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        self.writes.append((len(value), response))
        await self.link.write(uuid, value, response=response)

    async def read(self, uuid: str) -> bytes:
        return await self.link.read(uuid)

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        await self.link.subscribe(uuid, callback)

    async def disconnect(self) -> None:
        await self.link.disconnect()

    async def wait_disconnected(self) -> None:
        await self.link.wait_disconnected()


@contextlib.asynccontextmanager
async def gatt_device(
    device: Device, *, version: int = PROTOCOL_VERSION, empty_first: bool = False
) -> AsyncIterator[tuple[VirtualLink, GattDevice]]:
    handler = GattDevice(device, version=version, empty_first=empty_first)
    spec = control_service_spec(
        device_name="Boron-ABC123",
        advertising_data=setup_advertising_data("Boron", 13, "ABC123"),
    )
    async with VirtualLink() as vlink:
        await vlink.add_peripheral(spec, handler)
        try:
            yield vlink, handler
        finally:
            await handler.aclose()


def test_gatt_echo_over_the_virtual_link() -> None:
    async def main() -> None:
        device = Device()
        async with gatt_device(device) as (vlink, handler):
            link = RecordingLink(await vlink.connect())
            stream: ByteStream = await open_gatt_stream(link)
            async with open_channel(stream, SECRET) as channel:
                for size in (0, 200, 1024, 4000):
                    payload = bytes(i % 253 for i in range(size))
                    assert await channel.request(ECHO, payload, timeout=10) == payload
            await link.wait_disconnected()  # closing the channel disconnects
        assert (device.connections, device.handshakes, device.errors) == (1, 1, [])
        assert handler.largest_write == link.mtu - 3 == 244
        assert max(size for size, _ in link.writes) <= link.mtu - 3

    run(main)


def test_gatt_pacing_keeps_at_most_a_window_unacknowledged() -> None:
    async def main() -> None:
        async with gatt_device(Device()) as (vlink, _):
            link = RecordingLink(await vlink.connect())
            stream = await open_gatt_stream(link, window=512)
            async with open_channel(stream, SECRET) as channel:
                link.writes.clear()
                await channel.request(ECHO, bytes(5000))
            unacknowledged = 0
            for size, acknowledged in link.writes:
                if acknowledged:
                    assert unacknowledged + size > 512  # only when the window would overflow
                    unacknowledged = 0
                else:
                    unacknowledged += size
                    assert unacknowledged <= 512
            assert sum(size for size, _ in link.writes) == 5000 + 16
            assert any(acknowledged for _, acknowledged in link.writes)

    run(main)


def test_gatt_wrong_secret_the_device_hangs_up_and_the_client_says_why() -> None:
    async def main() -> None:
        device = Device()
        async with gatt_device(device) as (vlink, _):
            stream = await open_gatt_stream(await vlink.connect())
            with pytest.raises(WrongMobileSecretError, match="mobile secret"):
                async with open_channel(stream, OTHER_SECRET):
                    pytest.fail("the handshake must not succeed")
        assert device.connections == 1  # no retry
        assert [type(e) for e in device.errors] == [WrongMobileSecretError]

    run(main)


def test_gatt_device_hanging_up_mid_request() -> None:
    async def main() -> None:
        async with gatt_device(Device()) as (vlink, _):
            stream = await open_gatt_stream(await vlink.connect())
            async with open_channel(stream, SECRET) as channel:
                with pytest.raises(ChannelError, match="closed the connection"):
                    await channel.request(HANG_UP)

    run(main)


def test_gatt_wrong_protocol_version_is_refused() -> None:
    async def main() -> None:
        async with gatt_device(Device(), version=3) as (vlink, _):
            link = await vlink.connect()
            with pytest.raises(ChannelError, match="version 03"):
                await open_gatt_stream(link)
            stream = await open_gatt_stream(link, check_version=False)
            async with open_channel(stream, SECRET) as channel:
                assert await channel.request(ECHO, b"v3") == b"v3"

    run(main)


def test_gatt_stream_reports_the_end_of_the_link() -> None:
    async def main() -> None:
        async with gatt_device(Device()) as (vlink, handler):
            stream = await open_gatt_stream(await vlink.connect())
            assert handler.link is not None
            await handler.link.disconnect()
            assert await stream.receive() == b""
            assert await stream.receive() == b""
            await stream.close()

    run(main)


def test_gatt_empty_notification_carries_nothing() -> None:
    async def main() -> None:
        async with gatt_device(Device(), empty_first=True) as (vlink, handler):
            stream = await open_gatt_stream(await vlink.connect())
            async with open_channel(stream, SECRET) as channel:
                assert await channel.request(ECHO, b"after an empty packet") == (
                    b"after an empty packet"
                )
            assert not handler.empty_first  # it was sent

    run(main)
