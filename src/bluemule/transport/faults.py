"""Fault injection for tests: :class:`CentralLink` wrappers, independent of the transport.

* :class:`DisconnectAfterBytes`: the "disconnect at byte n" fault. Writes without
  response pass through until ``limit`` payload bytes have been queued; then the
  underlying link is disconnected, so data still queued in the host is lost (as on a
  real drop) and later operations fail with :class:`LinkLostError`.
* :class:`WriteFaults`: the "Boron pool full" fault. Chosen writes without response are
  silently discarded, or corrupted, before they reach the link; the caller is not told.
* :func:`fault_first`: wrap only the first connection a :data:`Connector` opens, so a
  reconnect gets a healthy link.

Writes *with* response, reads and notifications are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bluemule.transport.base import CentralLink, Connector, NotificationCallback

__all__ = [
    "DisconnectAfterBytes",
    "LinkWrapper",
    "Selector",
    "WriteFaults",
    "fault_first",
    "flip_last_byte",
]

Selector = Collection[int] | Callable[[int], bool]
"""Which writes without response a fault hits, by 0-based index: a set of indexes or a
predicate. Only writes to the wrapper's ``uuid`` (all, when it is ``None``) are counted."""


class LinkWrapper:
    """A :class:`CentralLink` that forwards everything to ``inner``; subclasses override."""

    def __init__(self, inner: CentralLink) -> None:
        self.inner = inner

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        await self.inner.write(uuid, value, response=response)

    async def read(self, uuid: str) -> bytes:
        return await self.inner.read(uuid)

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        await self.inner.subscribe(uuid, callback)

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def wait_disconnected(self) -> None:
        await self.inner.wait_disconnected()


def _same_uuid(a: str, b: str) -> bool:
    return a.lower() == b.lower()


class DisconnectAfterBytes(LinkWrapper):
    """Disconnect ``inner`` once ``limit`` bytes of write-without-response payload are queued.

    The write that reaches ``limit`` is forwarded whole and returns normally (it was
    queued); the disconnect follows at once. ``uuid`` restricts the count to one
    characteristic. ``limit=0`` disconnects before the first such write.
    """

    def __init__(self, inner: CentralLink, limit: int, *, uuid: str | None = None) -> None:
        super().__init__(inner)
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.limit = limit
        self.uuid = uuid
        self.queued = 0
        """Payload bytes of counted writes forwarded so far."""
        self.tripped = False

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        counted = not response and (self.uuid is None or _same_uuid(uuid, self.uuid))
        if counted and not self.tripped and self.queued >= self.limit:
            await self._trip()
        await self.inner.write(uuid, value, response=response)
        if counted:
            self.queued += len(value)
            if not self.tripped and self.queued >= self.limit:
                await self._trip()

    async def _trip(self) -> None:
        self.tripped = True
        await self.inner.disconnect()


def flip_last_byte(value: bytes) -> bytes:
    """The default corruption: invert the bits of the last byte (empty stays empty)."""
    if not value:
        return value
    return value[:-1] + bytes((value[-1] ^ 0xFF,))


def _selected(selector: Selector, index: int) -> bool:
    if callable(selector):
        return selector(index)
    return index in selector


class WriteFaults(LinkWrapper):
    """Silently drop or corrupt chosen writes without response.

    ``drop`` and ``corrupt`` select writes by their 0-based index among the writes
    without response to ``uuid`` (all characteristics when ``None``); a write selected by
    both is dropped. ``dropped`` and ``corrupted`` record the indexes actually hit.
    """

    def __init__(
        self,
        inner: CentralLink,
        *,
        drop: Selector = (),
        corrupt: Selector = (),
        uuid: str | None = None,
        corrupter: Callable[[bytes], bytes] = flip_last_byte,
    ) -> None:
        super().__init__(inner)
        self.drop = drop
        self.corrupt = corrupt
        self.uuid = uuid
        self.corrupter = corrupter
        self.count = 0
        """Writes without response seen (counted ones only)."""
        self.dropped: list[int] = []
        self.corrupted: list[int] = []

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        if response or not (self.uuid is None or _same_uuid(uuid, self.uuid)):
            await self.inner.write(uuid, value, response=response)
            return
        index = self.count
        self.count += 1
        if _selected(self.drop, index):
            self.dropped.append(index)
            return
        if _selected(self.corrupt, index):
            self.corrupted.append(index)
            value = self.corrupter(value)
        await self.inner.write(uuid, value, response=False)


def fault_first(connector: Connector, wrap: Callable[[CentralLink], CentralLink]) -> Connector:
    """A connector whose first link is ``wrap(link)``; later links are returned as is."""
    state = {"first": True}

    async def connect() -> CentralLink:
        link = await connector()
        if state["first"]:
            state["first"] = False
            return wrap(link)
        return link

    return connect
