"""Byte-stream transports for the control channel, and the async driver over them.

* :class:`ByteStream`: what the driver needs from a transport: ``send``, ``receive``
  (``b""`` once the peer closed) and ``close``.
* :class:`GattByteStream` (:func:`open_gatt_stream`): the device's GATT service
  (particle.md §5.1) over a :class:`~bluemule.transport.base.CentralLink`: checks the
  version characteristic, subscribes to TX *before* anything is sent (Device OS sends
  only once the CCCD is enabled), writes RX without response in chunks of
  ``mtu - 3`` and paces them (below).
* :class:`TcpByteStream` (:func:`open_tcp_stream`): the same stream over TCP, for
  emulators and tests.
* :func:`open_channel` / :class:`ControlChannel`: the handshake, then one request at a
  time: ``reply = await ch.request(type, payload, timeout=...)``.

Pacing (§5.3): the device copies each received packet into a 1,024-byte pool that its
system thread drains; a client that runs more than about 1 KB ahead makes the
allocation fail and the device disconnects. So the driver keeps one request in flight
(like Particle's clients, ``DEFAULT_MAX_CONCURRENT_REQUESTS = 1``) and the GATT stream
never lets more than ``window`` bytes (512 by default) leave without an ATT
acknowledgement: the chunk that would exceed it goes as a Write Request and the stream
waits for its response, which also confirms every earlier Write Command (ATT is
ordered). At most ``window + mtu - 3`` bytes (756 at the device's MTU of 247) are thus
unacknowledged at any moment.

The driver never retries a handshake by itself: a failure surfaces once, as
:class:`HandshakeError` (or :class:`WrongMobileSecretError` when the device drops the
link after our key confirmation, which is what Device OS does on a wrong secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    RequestTimeoutError,
)
from bluemule.particle_ctrl.gatt import PROTOCOL_VERSION, RX_UUID, TX_UUID, VERSION_UUID
from bluemule.particle_ctrl.results import request_error
from bluemule.particle_ctrl.session import (
    ClientSession,
    HandshakeComplete,
    Reply,
    Rng,
    Send,
)
from bluemule.transport.base import CentralLink, TransportError

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds the handshake may take (Particle's Java client uses 10 s; the device has none)."""
DEFAULT_REQUEST_TIMEOUT: Final = 60.0
"""Seconds a request may take (Particle's Java client default)."""
DEFAULT_WINDOW: Final = 512
"""Bytes the GATT stream writes without response before waiting for an acknowledgement."""
_TCP_READ_SIZE: Final = 4096

_LINK_FAILURES: Final = (ConnectionError, TransportError, OSError)


class ByteStream(Protocol):
    """A reliable, ordered byte stream to the device (message boundaries not preserved)."""

    async def send(self, data: bytes) -> None:
        """Write ``data``; raises ``ConnectionError`` (or a transport error) once closed."""
        ...

    async def receive(self) -> bytes:
        """The next bytes from the peer, or ``b""`` once the peer has closed the stream."""
        ...

    async def close(self) -> None:
        """Close the stream (idempotent)."""
        ...


StreamConnector = Callable[[], Awaitable[ByteStream]]
"""Connect to a device's control service and return its RX/TX byte stream."""


class GattByteStream:
    """The control service's TX/RX characteristics as a :class:`ByteStream`.

    Build it with :func:`open_gatt_stream`, which subscribes before returning.
    """

    def __init__(self, link: CentralLink, *, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 byte")
        self.link = link
        self.window = window
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False
        self._watcher: asyncio.Task[None] | None = None

    async def _start(self, *, check_version: bool) -> None:
        if check_version:
            version = await self.link.read(VERSION_UUID)
            if version != bytes((PROTOCOL_VERSION,)):
                raise ChannelError(
                    f"control service version {version.hex() or 'empty'}, "
                    f"not {PROTOCOL_VERSION:02x}"
                )
        # Writes the CCCD with a Write Request: once this returns the device has it
        # enabled, and only then does Device OS send anything (§5.1).
        await self.link.subscribe(TX_UUID, self._on_notification)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _on_notification(self, value: bytes) -> None:
        if value:  # b"" in the queue means the link is gone; an empty packet carries nothing
            self._queue.put_nowait(bytes(value))

    async def _watch(self) -> None:
        await self.link.wait_disconnected()
        self._queue.put_nowait(b"")

    async def send(self, data: bytes) -> None:
        """Write ``data`` to RX in ``mtu - 3`` chunks, paced by :attr:`window`."""
        chunk_size = self.link.mtu - 3
        unacknowledged = 0
        for offset in range(0, len(data), chunk_size):
            chunk = data[offset : offset + chunk_size]
            acknowledged = unacknowledged + len(chunk) > self.window
            await self.link.write(RX_UUID, chunk, response=acknowledged)
            unacknowledged = 0 if acknowledged else unacknowledged + len(chunk)

    async def receive(self) -> bytes:
        """The next notification's bytes, or ``b""`` once the link is gone."""
        if self._closed:
            return b""
        data = await self._queue.get()
        if not data:
            self._closed = True
        return data

    async def close(self) -> None:
        """Disconnect (the device resets its side of the channel)."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.link.disconnect()


async def open_gatt_stream(
    link: CentralLink, *, window: int = DEFAULT_WINDOW, check_version: bool = True
) -> GattByteStream:
    """A :class:`GattByteStream` on a link to the control service, subscribed to TX.

    Raises :class:`ChannelError` when the version characteristic is not 0x02, and the
    link's own errors (``TransportError``) when reading or subscribing fails.
    """
    stream = GattByteStream(link, window=window)
    await stream._start(check_version=check_version)
    return stream


class TcpByteStream:
    """A :class:`ByteStream` over an asyncio TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: bytes) -> None:
        """Write and drain."""
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes:
        """Up to 4 KiB, or ``b""`` at end of stream (a reset counts as the end)."""
        try:
            return await self._reader.read(_TCP_READ_SIZE)
        except ConnectionError:
            return b""

    async def close(self) -> None:
        """Close the socket."""
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


async def open_tcp_stream(host: str, port: int) -> TcpByteStream:
    """Connect to ``host:port``."""
    reader, writer = await asyncio.open_connection(host, port)
    return TcpByteStream(reader, writer)


class ControlChannel:
    """An open control channel: one request in flight at a time. Use :func:`open_channel`."""

    def __init__(self, stream: ByteStream, session: ClientSession) -> None:
        self._stream = stream
        self._session = session
        self._lock = asyncio.Lock()
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._failure: ParticleCtrlError | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ControlChannel({self._session!r})"

    @property
    def is_open(self) -> bool:
        """Whether requests can be sent."""
        return self._failure is None and not self._closed and self._session.is_open

    async def _open(self, timeout: float) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        await self._send(self._session.start())
        try:
            await asyncio.wait_for(asyncio.shield(self._handshake), timeout)
        except TimeoutError:
            self._fail(HandshakeError(f"the device did not complete the handshake in {timeout} s"))
            raise self._dead() from None

    async def _send(self, sends: list[Send]) -> None:
        try:
            for send in sends:
                await self._stream.send(send.data)
        except _LINK_FAILURES:
            self._fail(self._session.connection_lost())
            raise self._dead() from None

    def _dead(self) -> ParticleCtrlError:
        assert self._failure is not None
        return self._failure

    def _fail(self, error: ParticleCtrlError) -> None:
        """Record the first failure and hand it to everyone waiting."""
        if self._failure is not None:
            return
        self._failure = error
        self._session.close()
        waiters: list[asyncio.Future[None] | asyncio.Future[Reply]] = [self._handshake]
        waiters.extend(self._replies.values())
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: nobody may be waiting any more

    async def _read_loop(self) -> None:
        try:
            while self._failure is None:
                data = await self._stream.receive()
                if not data:
                    self._fail(self._session.connection_lost())
                    return
                for event in self._session.receive(data):
                    match event:
                        case Send():
                            await self._send([event])
                        case HandshakeComplete() if not self._handshake.done():
                            self._handshake.set_result(None)
                        case Reply(request_id=request_id):
                            waiter = self._replies.pop(request_id, None)
                            if waiter is not None and not waiter.done():
                                waiter.set_result(event)
        except ParticleCtrlError as error:
            self._fail(error)
        except _LINK_FAILURES:
            self._fail(self._session.connection_lost())

    async def exchange(
        self, type: int, payload: bytes = b"", *, timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> Reply:
        """Send one request and return the device's reply, whatever its result.

        Requests are serialised: one in flight. Raises :class:`RequestTimeoutError` (and
        closes the channel: the device may still be working on it) after ``timeout``
        seconds, :class:`ChannelError` when the channel broke. Cancelling the caller
        closes the channel too, for the same reason.
        """
        async with self._lock:
            if self._failure is not None:
                raise ChannelError(f"the channel is closed: {self._failure}") from self._failure
            if self._closed:
                raise ChannelError("the channel is closed")
            request_id, sends = self._session.request(type, payload)
            waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._replies[request_id] = waiter
            try:
                await self._send(sends)
                return await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except TimeoutError:
                self._fail(RequestTimeoutError(f"no reply to request {type} in {timeout} s"))
                raise self._dead() from None
            except asyncio.CancelledError:
                # The device still works on it; a next request would make two in flight.
                self._fail(ChannelError(f"request {type} was cancelled: the channel is closed"))
                raise
            finally:
                self._replies.pop(request_id, None)

    async def request(
        self, type: int, payload: bytes = b"", *, timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> bytes:
        """Send one request; return the reply payload, or raise :class:`RequestError`
        when the device answers with a negative ``system_error_t`` (the channel stays
        open). Otherwise as :meth:`exchange`."""
        reply = await self.exchange(type, payload, timeout=timeout)
        if reply.result < 0:
            raise request_error(type, reply.result)
        return reply.payload

    async def aclose(self) -> None:
        """Close the channel and its stream (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._fail(ChannelError("the channel was closed"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(*_LINK_FAILURES):
            await self._stream.close()


@contextlib.asynccontextmanager
async def open_channel(
    stream: ByteStream,
    mobile_secret: bytes,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    rng: Rng = os.urandom,
) -> AsyncIterator[ControlChannel]:
    """Run the handshake over ``stream`` and yield the open channel; close both on exit.

    The channel owns the stream: a new handshake needs a new connection (Device OS
    resets the channel on each). Raises :class:`HandshakeError` /
    :class:`WrongMobileSecretError` when the handshake fails; it is never retried.
    """
    channel = ControlChannel(stream, ClientSession(mobile_secret, rng=rng))
    try:
        await channel._open(handshake_timeout)
        yield channel
    finally:
        await channel.aclose()
