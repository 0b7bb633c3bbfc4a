"""A :class:`CentralLink` over the OS Bluetooth stack through bleak (extra ``ble``).

bleak is imported only when a link is opened, so this module imports without it; opening
a link without bleak raises an ``ImportError`` that names the ``ble`` extra.

bleak behaviour handled here (reference §5):

* ``write_gatt_char`` prefers write-*with*-response when ``response`` is omitted and the
  characteristic allows it; ``response`` is always passed explicitly.
* BlueZ reports ``mtu_size`` as 23 (with a warning) unless the MTU is acquired; the MTU
  is taken from ``max_write_without_response_size + 3`` of the service's
  write-without-response characteristics instead, which every backend fills in (it may
  read 20 at first and rise later, so it is read on every access), else ``mtu_size``.
* The disconnect callback completes a future; pending and later operations raise
  :class:`LinkLostError`.
* Write Without Response has no flow control on CoreBluetooth (writes can be dropped when
  the OS queue overflows); the protocol's own acknowledgements must cover that.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import Any, Protocol, TypeVar

from bluemule.transport._common import normalize_uuid, race_link_loss
from bluemule.transport.base import (
    LinkLostError,
    NotificationCallback,
    PeerNotFoundError,
    TransportError,
)

__all__ = [
    "BLE_EXTRA_HINT",
    "BleakCentralLink",
    "BleakClientLike",
    "ClientFactory",
    "require_bleak",
]

T = TypeVar("T")

BLE_EXTRA_HINT = (
    "the bleak transport (ble: targets) needs the optional 'ble' extra: pip install 'bluemule[ble]'"
)


def require_bleak() -> ModuleType:
    """Import bleak, or raise an ``ImportError`` naming the ``ble`` extra."""
    try:
        return importlib.import_module("bleak")
    except ImportError as error:
        raise ImportError(BLE_EXTRA_HINT) from error


def _bleak_errors() -> tuple[type[BaseException], ...]:
    try:
        exc = importlib.import_module("bleak.exc")
    except ImportError:
        return (OSError,)
    return (exc.BleakError, OSError)


class CharacteristicLike(Protocol):
    """The part of ``BleakGATTCharacteristic`` used here."""

    @property
    def uuid(self) -> str: ...

    @property
    def properties(self) -> Sequence[str]: ...

    @property
    def max_write_without_response_size(self) -> int: ...


class ServiceLike(Protocol):
    @property
    def characteristics(self) -> Sequence[CharacteristicLike]: ...


class ServicesLike(Protocol):
    def get_service(self, specifier: str) -> ServiceLike | None: ...


class BleakClientLike(Protocol):
    """The part of ``bleak.BleakClient`` used here (tests substitute a fake)."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def mtu_size(self) -> int: ...

    @property
    def services(self) -> ServicesLike: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def read_gatt_char(self, char_specifier: Any) -> bytearray: ...

    async def write_gatt_char(self, char_specifier: Any, data: bytes, response: bool) -> None: ...

    async def start_notify(
        self, char_specifier: Any, callback: Callable[[Any, bytearray], None]
    ) -> None: ...


ClientFactory = Callable[[str, Callable[[], None], str, float], Awaitable[BleakClientLike]]
"""``(address, on_disconnect, service_uuid, timeout) -> unconnected client``."""


async def bleak_client_factory(
    address: str, on_disconnect: Callable[[], None], service_uuid: str, timeout: float
) -> BleakClientLike:
    """Find ``address`` with ``BleakScanner`` and build a ``BleakClient`` for it."""
    bleak = require_bleak()
    device = await bleak.BleakScanner.find_device_by_address(address, timeout=timeout)
    if device is None:
        raise PeerNotFoundError(f"{address} not found by a {timeout} s scan")
    client: BleakClientLike = bleak.BleakClient(
        device,
        disconnected_callback=lambda _client: on_disconnect(),
        services=[service_uuid],
        timeout=timeout,
    )
    return client


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BleakCentralLink:
    """:class:`CentralLink` over a connected bleak client; open with :meth:`connect`."""

    def __init__(
        self, client: BleakClientLike, service_uuid: str, lost: asyncio.Future[None]
    ) -> None:
        self._client = client
        self.service_uuid = normalize_uuid(service_uuid)
        self._lost = lost
        self._chars: dict[str, CharacteristicLike] = {}

    @classmethod
    async def connect(
        cls,
        address: str,
        service_uuid: str,
        *,
        timeout: float = 20.0,
        client_factory: ClientFactory = bleak_client_factory,
    ) -> BleakCentralLink:
        """Connect to ``address`` and resolve ``service_uuid``'s characteristics.

        Raises :class:`PeerNotFoundError` when the device is not found, does not answer in
        ``timeout`` seconds or lacks the service; :class:`TransportError` for stack errors.
        """
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_disconnect() -> None:
            loop.call_soon_threadsafe(_finish, lost)

        client = await client_factory(address, on_disconnect, normalize_uuid(service_uuid), timeout)
        try:
            await asyncio.wait_for(client.connect(), timeout)
        except TimeoutError as error:
            raise PeerNotFoundError(f"no answer from {address} in {timeout} s") from error
        except _bleak_errors() as error:
            raise TransportError(f"connecting to {address}: {error}") from error
        link = cls(client, service_uuid, lost)
        try:
            link._resolve()
        except BaseException:
            await asyncio.shield(link.disconnect())
            raise
        return link

    def _resolve(self) -> None:
        service = self._client.services.get_service(self.service_uuid)
        if service is None:
            raise PeerNotFoundError(f"the device has no service {self.service_uuid}")
        for char in service.characteristics:
            self._chars[normalize_uuid(char.uuid)] = char

    @property
    def mtu(self) -> int:
        sizes = [
            c.max_write_without_response_size
            for c in self._chars.values()
            if "write-without-response" in c.properties
        ]
        if sizes:
            return max(sizes) + 3
        return self._client.mtu_size

    @property
    def connected(self) -> bool:
        return not self._lost.done()

    def _char(self, uuid: str) -> CharacteristicLike:
        try:
            return self._chars[normalize_uuid(uuid)]
        except KeyError:
            raise TransportError(f"no characteristic {uuid} in {self.service_uuid}") from None

    async def _op(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await race_link_loss(self._lost, awaitable, what)
        except LinkLostError:
            raise
        except _bleak_errors() as error:
            if not self._client.is_connected:
                _finish(self._lost)
                raise LinkLostError(f"{what}: link lost") from error
            raise TransportError(f"{what}: {error}") from error

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        char = self._char(uuid)
        if not response and len(value) > self.mtu - 3:
            raise ValueError(f"{len(value)} bytes exceed mtu - 3 = {self.mtu - 3}")
        await self._op(
            self._client.write_gatt_char(char, bytes(value), response=response), f"write {uuid}"
        )

    async def read(self, uuid: str) -> bytes:
        char = self._char(uuid)
        return bytes(await self._op(self._client.read_gatt_char(char), f"read {uuid}"))

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        char = self._char(uuid)

        def deliver(_sender: Any, data: bytearray) -> None:
            callback(bytes(data))

        await self._op(self._client.start_notify(char, deliver), f"subscribe {uuid}")

    async def disconnect(self) -> None:
        if not self.connected:
            return
        with contextlib.suppress(*_bleak_errors()):
            await self._client.disconnect()
        _finish(self._lost)

    async def wait_disconnected(self) -> None:
        await asyncio.shield(self._lost)
