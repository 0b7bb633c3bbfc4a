"""Bumble adapters: a GATT server for :class:`PeripheralHandler`, a :class:`CentralLink`,
scanning, and Bumble transports by moniker (``usb:0``, ``serial:/dev/ttyACM0``, …).

The in-process virtual link (two or more virtual controllers on one
``bumble.link.LocalLink``) lives in :mod:`bluemule.transport.bumble_virtual` and is
re-exported here as :class:`VirtualLink`.

Bumble behaviour this module relies on or works around (Bumble 0.0.236):

* The GATT server runs every ATT write/read in its own task, created in arrival order;
  the write and read callbacks here are synchronous, so each task completes before the
  next starts and the handler sees writes and reads in arrival order (a read is
  therefore a delivery barrier for earlier writes).
* Write Without Response returns as soon as the PDU is queued in the host, with no
  back-pressure; data still queued is dropped at a disconnect.
* On a disconnect Bumble *cancels* the pending ATT response future, so a pending read or
  write request would surface as ``CancelledError``; operations here race against the
  disconnection instead and raise :class:`LinkLostError`.
* Notifications longer than ``mtu - 3`` are silently truncated by Bumble; ``notify``
  rejects them instead.
* ``Device.connect`` refuses a second LE connection while one is pending; connects are
  serialised per device.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid as _uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from bumble import core, gatt, hci
from bumble.att import ATT_UNLIKELY_ERROR_ERROR, ATT_Error
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.transport import open_transport
from bumble.transport.common import TransportSpecError

from bluemule.transport._common import normalize_uuid, race_link_loss
from bluemule.transport.advertising import (
    advertising_payloads,
    local_name,
    service_uuids,
)
from bluemule.transport.base import (
    CharProperty,
    Connector,
    GattServerSpec,
    LinkLostError,
    NotificationCallback,
    PeerNotFoundError,
    PeripheralHandler,
    ServiceSpec,
    TransportError,
)

if TYPE_CHECKING:
    from bluemule.transport.bumble_virtual import VirtualLink, VirtualPeripheral

__all__ = [
    "DEFAULT_MTU",
    "BumbleCentral",
    "BumbleCentralLink",
    "BumbleGattServer",
    "ScanResult",
    "VirtualLink",
    "VirtualPeripheral",
    "advertising_payloads",
    "open_central",
    "open_device",
    "scan",
    "serve",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MTU = 247
"""ATT MTU bluemule negotiates: 244-byte payloads, one 251-byte LE data PDU each."""

_ADVERTISING_INTERVAL_MS = 100.0


def _address_str(address: hci.Address) -> str:
    return address.to_string(with_type_qualifier=False)


# --------------------------------------------------------------------------- peripheral


def _bumble_properties(props: CharProperty) -> gatt.Characteristic.Properties:
    result = gatt.Characteristic.Properties(0)
    mapping = {
        CharProperty.READ: gatt.Characteristic.Properties.READ,
        CharProperty.WRITE: gatt.Characteristic.Properties.WRITE,
        CharProperty.WRITE_WITHOUT_RESPONSE: gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        CharProperty.NOTIFY: gatt.Characteristic.Properties.NOTIFY,
    }
    for ours, theirs in mapping.items():
        if ours in props:
            result |= theirs
    return result


class _BumblePeripheralLink:
    """The :class:`PeripheralLink` handed to the handler for one connection."""

    def __init__(self, server: BumbleGattServer, connection: Connection) -> None:
        self._server = server
        self._connection = connection
        self.closed = False

    @property
    def mtu(self) -> int:
        return int(self._connection.att_mtu)

    async def notify(self, uuid: str, value: bytes) -> None:
        characteristic = self._server.characteristic(uuid)
        if not characteristic.has_properties(gatt.Characteristic.Properties.NOTIFY):
            raise ValueError(f"characteristic {uuid} does not notify")
        if len(value) > self.mtu - 3:
            raise ValueError(f"notification of {len(value)} bytes exceeds mtu - 3 = {self.mtu - 3}")
        if self.closed:
            return  # a disconnected central is no longer subscribed
        await self._server.device.notify_subscriber(self._connection, characteristic, value)

    async def disconnect(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(core.BaseBumbleError):
            await self._connection.disconnect()


class BumbleGattServer:
    """Serves ``spec`` on a powered Bumble ``Device`` and routes ATT traffic to ``handler``.

    One central at a time: advertising stops when a central connects (controller
    behaviour) and :meth:`start` restarts it after each disconnect until :meth:`close`.
    """

    def __init__(
        self,
        device: Device,
        spec: GattServerSpec,
        handler: PeripheralHandler,
        *,
        mtu: int = DEFAULT_MTU,
        advertising_interval_ms: float = _ADVERTISING_INTERVAL_MS,
    ) -> None:
        self.device = device
        self.spec = spec
        self.handler = handler
        self.advertising_interval_ms = advertising_interval_ms
        self.advertising_data, self.scan_response_data = advertising_payloads(spec)
        self._chars: dict[str, gatt.Characteristic[bytes]] = {}
        self._link: _BumblePeripheralLink | None = None
        self._advertise = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._advertising_lock = asyncio.Lock()
        primary = ServiceSpec(spec.service_uuid, spec.characteristics)
        for service in (primary, *spec.extra_services):
            chars = []
            for char_spec in service.characteristics:
                uuid = normalize_uuid(char_spec.uuid)
                self._chars[uuid] = self._make_characteristic(uuid, char_spec.properties)
                chars.append(self._chars[uuid])
            device.add_service(gatt.Service(normalize_uuid(service.uuid), chars))
        device.gatt_server.max_mtu = mtu
        device.on(Device.EVENT_CONNECTION, self._on_connection)

    def _make_characteristic(self, uuid: str, props: CharProperty) -> gatt.Characteristic[bytes]:
        permissions = gatt.Characteristic.Permissions(0)
        if CharProperty.READ in props:
            permissions |= gatt.Characteristic.Permissions.READABLE
        if props & (CharProperty.WRITE | CharProperty.WRITE_WITHOUT_RESPONSE):
            permissions |= gatt.Characteristic.Permissions.WRITEABLE

        # Synchronous callbacks keep the handler's view in arrival order (module doc).
        def read(_connection: Connection) -> bytes:
            try:
                return bytes(self.handler.on_read(uuid))
            except Exception as error:
                logger.exception("handler.on_read(%s) failed", uuid)
                raise ATT_Error(ATT_UNLIKELY_ERROR_ERROR) from error

        def write(_connection: Connection, value: bytes) -> None:
            try:
                self.handler.on_write(uuid, bytes(value))
            except Exception as error:
                logger.exception("handler.on_write(%s) failed", uuid)
                raise ATT_Error(ATT_UNLIKELY_ERROR_ERROR) from error

        value = gatt.CharacteristicValue(
            read=read if CharProperty.READ in props else None,
            write=write if permissions & gatt.Characteristic.Permissions.WRITEABLE else None,
        )
        return gatt.Characteristic(uuid, _bumble_properties(props), permissions, value)

    def characteristic(self, uuid: str) -> gatt.Characteristic[bytes]:
        """The Bumble characteristic for ``uuid`` (``KeyError`` if not in the spec)."""
        return self._chars[normalize_uuid(uuid)]

    @property
    def link(self) -> _BumblePeripheralLink | None:
        """The current connection's link, if a central is connected."""
        return self._link

    @property
    def address(self) -> str:
        return _address_str(self.device.random_address)

    async def start(self) -> None:
        """Start advertising (and keep re-advertising after each disconnect)."""
        self._advertise = True
        async with self._advertising_lock:
            await self._start_advertising()

    async def _start_advertising(self) -> None:
        refresh = self.spec.refresh_advertising_data
        if refresh is not None:
            fresh = dataclasses.replace(self.spec, advertising_data=refresh())
            self.advertising_data, self.scan_response_data = advertising_payloads(fresh)
        await self.device.start_advertising(
            advertising_data=self.advertising_data,
            scan_response_data=self.scan_response_data,
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )

    async def close(self) -> None:
        """Stop advertising and drop the current connection."""
        # Never cancel a Bumble HCI exchange half-way (that corrupts the host's command
        # state): advertising changes are serialised and a pending restart sees the flag.
        self._advertise = False
        async with self._advertising_lock:
            with contextlib.suppress(core.BaseBumbleError):
                await self.device.stop_advertising()
        if self._link is not None:
            await self._link.disconnect()
        if self._tasks:
            await asyncio.gather(*self._tasks)

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        link = _BumblePeripheralLink(self, connection)
        self._link = link

        def on_disconnection(_reason: int) -> None:
            link.closed = True
            if self._link is link:
                self._link = None
            try:
                self.handler.on_disconnect()
            finally:
                if self._advertise:
                    self._readvertise()

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)
        self.handler.on_connect(link)

    def _readvertise(self) -> None:
        async def run() -> None:
            async with self._advertising_lock:
                if not self._advertise:
                    return
                try:
                    await self._start_advertising()
                except core.BaseBumbleError:
                    logger.exception("restarting advertising failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# --------------------------------------------------------------------------- central


class BumbleCentralLink:
    """:class:`CentralLink` over one Bumble LE connection (built by :class:`BumbleCentral`)."""

    def __init__(self, connection: Connection, service_uuid: str) -> None:
        self._connection = connection
        self._peer = Peer(connection)
        self.service_uuid = normalize_uuid(service_uuid)
        self._chars: dict[str, CharacteristicProxy[bytes]] = {}
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)

    def _on_disconnection(self, _reason: int) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    @property
    def address(self) -> str:
        return _address_str(self._connection.peer_address)

    @property
    def mtu(self) -> int:
        return int(self._connection.att_mtu)

    @property
    def connected(self) -> bool:
        return not self._lost.done()

    async def _setup(self, mtu: int, data_length: bool) -> None:
        if data_length:
            # Real controllers: ask for 251-byte LE data PDUs (DLE). The virtual
            # controller does not emulate it (answers UNKNOWN_HCI_COMMAND).
            try:
                await self._op(self._connection.set_data_length(251, 2120), "set_data_length")
            except LinkLostError:
                raise
            except TransportError as error:
                logger.info("no data length extension: %s", error)
        await self._op(self._peer.request_mtu(mtu), "MTU exchange")
        services = await self._op(self._peer.discover_service(self.service_uuid), "discovery")
        if not services:
            raise PeerNotFoundError(f"{self.address} has no service {self.service_uuid}")
        chars = await self._op(
            self._peer.discover_characteristics(service=services[0]), "discovery"
        )
        for proxy in chars:
            raw = proxy.uuid.to_bytes(force_128=True)[::-1]
            self._chars[str(_uuid.UUID(bytes=raw))] = proxy

    async def _op(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await race_link_loss(self._lost, awaitable, what)
        except (LinkLostError, PeerNotFoundError):
            raise
        except ATT_Error as error:
            raise TransportError(f"{what}: ATT error {error.error_name}") from error
        except core.BaseBumbleError as error:
            raise TransportError(f"{what}: {error}") from error

    def _char(self, uuid: str) -> CharacteristicProxy[bytes]:
        try:
            return self._chars[normalize_uuid(uuid)]
        except KeyError:
            raise TransportError(f"{self.address} has no characteristic {uuid}") from None

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        proxy = self._char(uuid)
        if not self.connected:
            raise LinkLostError(f"write {uuid}: link lost")
        if response:
            await self._op(proxy.write_value(value, with_response=True), f"write {uuid}")
            return
        if len(value) > self.mtu - 3:
            raise ValueError(f"{len(value)} bytes exceed mtu - 3 = {self.mtu - 3}")
        # Queues the PDU in the host and returns; nothing to wait for.
        await proxy.write_value(value, with_response=False)

    async def read(self, uuid: str) -> bytes:
        proxy = self._char(uuid)
        return bytes(await self._op(proxy.read_value(), f"read {uuid}"))

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        proxy = self._char(uuid)

        def deliver(value: bytes) -> None:
            callback(bytes(value))

        await self._op(proxy.subscribe(deliver), f"subscribe {uuid}")

    async def disconnect(self) -> None:
        if not self.connected:
            return
        with contextlib.suppress(core.BaseBumbleError):
            await self._connection.disconnect()
        self._on_disconnection(0)

    async def wait_disconnected(self) -> None:
        await asyncio.shield(self._lost)


@dataclass(frozen=True)
class ScanResult:
    """One advertisement (with its scan response, when one was received)."""

    address: str
    rssi: int
    service_uuids: tuple[str, ...]
    advertising_data: bytes
    """Raw AD structures as received (advertising data followed by scan response)."""
    name: str | None = None


async def scan(
    device: Device, service_uuid: str | None = None, *, active: bool = True
) -> AsyncGenerator[ScanResult, None]:
    """Scan on a powered ``device`` and yield advertisements listing ``service_uuid``.

    Every advertisement is yielded (no de-duplication), ``service_uuid=None`` yields all.
    Scanning stops when the generator is closed: use ``contextlib.aclosing`` when leaving
    the loop early. One scan per device at a time.
    """
    wanted = None if service_uuid is None else normalize_uuid(service_uuid)
    queue: asyncio.Queue[ScanResult] = asyncio.Queue()
    primary: dict[str, bytes] = {}

    def on_advertisement(advertisement: Advertisement) -> None:
        address = _address_str(advertisement.address)
        if advertisement.is_scan_response:
            extra = advertisement.data_bytes
            if primary.get(address) == extra:
                # Bumble's virtual controller echoes the advertising data as the scan
                # response; the advertisement itself was already reported.
                return
            raw = primary[address] + extra if address in primary else bytes(advertisement.data)
        else:
            raw = primary[address] = advertisement.data_bytes
        uuids = service_uuids(raw)
        if wanted is None or wanted in uuids:
            queue.put_nowait(ScanResult(address, advertisement.rssi, uuids, raw, local_name(raw)))

    device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
    try:
        await device.start_scanning(active=active, filter_duplicates=False)
        while True:
            yield await queue.get()
    finally:
        device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
        if device.is_scanning:
            with contextlib.suppress(core.BaseBumbleError):
                await device.stop_scanning()


class BumbleCentral:
    """The central role on a powered Bumble ``Device``: connect, reconnect and scan."""

    def __init__(self, device: Device, *, data_length: bool = True) -> None:
        self.device = device
        self.data_length = data_length
        self._lock = asyncio.Lock()

    async def connect(
        self,
        address: str,
        service_uuid: str,
        *,
        mtu: int = DEFAULT_MTU,
        timeout: float | None = 10.0,
    ) -> BumbleCentralLink:
        """Connect to ``address``, exchange the MTU and discover ``service_uuid``.

        Raises :class:`PeerNotFoundError` when nothing at ``address`` answers within
        ``timeout`` seconds or it lacks the service.
        """
        async with self._lock:
            try:
                connection = await self.device.connect(hci.Address(address), timeout=timeout)
            except core.TimeoutError as error:
                raise PeerNotFoundError(f"no answer from {address} in {timeout} s") from error
            except core.BaseBumbleError as error:
                raise TransportError(f"connecting to {address}: {error}") from error
        link = BumbleCentralLink(connection, service_uuid)
        try:
            await link._setup(mtu, self.data_length)
        except BaseException:
            await asyncio.shield(link.disconnect())
            raise
        return link

    def connector(
        self, address: str, service_uuid: str, *, mtu: int = DEFAULT_MTU, timeout: float = 10.0
    ) -> Connector:
        """A :data:`Connector` that opens a fresh link to the same device each call."""

        async def connect() -> BumbleCentralLink:
            return await self.connect(address, service_uuid, mtu=mtu, timeout=timeout)

        return connect

    def scan(
        self, service_uuid: str | None = None, *, active: bool = True
    ) -> AsyncGenerator[ScanResult, None]:
        """See :func:`scan`."""
        return scan(self.device, service_uuid, active=active)


# --------------------------------------------------------------------------- real transports


@contextlib.asynccontextmanager
async def open_device(
    transport: str, *, name: str = "bluemule", address: str | None = None
) -> AsyncIterator[Device]:
    """Open a Bumble transport by moniker and yield a powered ``Device`` on it.

    ``address`` is the device's own (random static) address; one is generated when
    omitted. Needs hardware (or an emulator) behind the moniker.
    """
    try:
        hci_transport = await open_transport(transport)
    except (TransportSpecError, core.BaseBumbleError, OSError, ValueError) as error:
        raise TransportError(f"cannot open Bumble transport {transport!r}: {error}") from error
    async with hci_transport:
        own = hci.Address(address) if address else hci.Address.generate_static_address()
        device = Device.with_hci(name, own, hci_transport.source, hci_transport.sink)
        await device.power_on()
        try:
            yield device
        finally:
            await device.power_off()


@contextlib.asynccontextmanager
async def open_central(
    transport: str, *, address: str | None = None
) -> AsyncIterator[BumbleCentral]:
    """:class:`BumbleCentral` on the controller behind ``transport``."""
    async with open_device(transport, address=address) as device:
        yield BumbleCentral(device)


@contextlib.asynccontextmanager
async def serve(
    transport: str,
    spec: GattServerSpec,
    handler: PeripheralHandler,
    *,
    address: str | None = None,
    mtu: int = DEFAULT_MTU,
) -> AsyncIterator[BumbleGattServer]:
    """Serve ``spec`` and advertise on the controller behind ``transport``."""
    async with open_device(transport, name=spec.device_name, address=address) as device:
        server = BumbleGattServer(device, spec, handler, mtu=mtu)
        await server.start()
        try:
            yield server
        finally:
            await server.close()


def __getattr__(name: str) -> object:
    # VirtualLink lives in its own module (it imports this one); re-export lazily.
    if name in ("VirtualLink", "VirtualPeripheral"):
        from bluemule.transport import bumble_virtual  # noqa: PLC0415

        return getattr(bumble_virtual, name)
    raise AttributeError(name)
