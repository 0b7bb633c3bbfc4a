"""What a BLE transport offers the protocol core, and nothing more.

The DFU and event sessions are sans-IO (``bluemule.protocol``); the glue that drives
them talks to a peer through these two small interfaces, so the same code runs over
Bumble (virtual link or a real controller), the OS stack via bleak, or a test double.

Central side (the relay, ``bluemule flash``): :class:`CentralLink`.
Peripheral side (the device emulator): a :class:`GattServerSpec` describing the
service and a :class:`PeripheralHandler` receiving writes and reads; the transport
hands the handler a :class:`PeripheralLink` to send notifications.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


class CharProperty(enum.Flag):
    """GATT characteristic properties bluemule uses."""

    READ = enum.auto()
    WRITE = enum.auto()
    """Write request (with response): ordered, acknowledged by the ATT layer."""
    WRITE_WITHOUT_RESPONSE = enum.auto()
    NOTIFY = enum.auto()


@dataclass(frozen=True)
class CharacteristicSpec:
    """One characteristic: its 128-bit UUID (lowercase, dashed) and properties."""

    uuid: str
    properties: CharProperty


@dataclass(frozen=True)
class ServiceSpec:
    """A further primary service of the same GATT server (not advertised)."""

    uuid: str
    characteristics: tuple[CharacteristicSpec, ...]


@dataclass(frozen=True)
class GattServerSpec:
    """A primary service with its characteristics, plus what to advertise."""

    service_uuid: str
    characteristics: tuple[CharacteristicSpec, ...]
    device_name: str = "bluemule"
    advertising_data: bytes = b""
    """Raw AD structures (length, type, data…) to advertise besides flags and name."""
    refresh_advertising_data: Callable[[], bytes] | None = field(default=None, compare=False)
    """Called before advertising (again, after each disconnect) for the current
    ``advertising_data``: a device's advertisement changes with its state."""
    service_uuid_in_scan_response: bool = False
    """Advertise ``advertising_data`` beside the flags and move the 128-bit service UUID to
    the scan response: legacy advertising holds 31 bytes, and bluemule's manufacturer data
    (26 with its header) and the UUID (18) do not fit together."""
    extra_services: tuple[ServiceSpec, ...] = ()
    """More primary services in the same table (e.g. Device OS's control service beside the
    app's); their characteristics reach the same handler by UUID."""


class PeripheralLink(Protocol):
    """The peripheral's side of one connection, as the transport gives it to the handler."""

    @property
    def mtu(self) -> int:
        """Negotiated ATT MTU (payloads up to ``mtu - 3``)."""
        ...

    async def notify(self, uuid: str, value: bytes) -> None:
        """Notify the subscribed central; a no-op if it has not subscribed."""
        ...

    async def disconnect(self) -> None:
        """Drop the connection."""
        ...


class PeripheralHandler(Protocol):
    """What the device side implements; the transport calls it in arrival order."""

    def on_connect(self, link: PeripheralLink) -> None:
        """A central connected."""

    def on_disconnect(self) -> None:
        """The connection is gone (writes still queued in the host are lost)."""

    def on_write(self, uuid: str, value: bytes) -> None:
        """A write (with or without response) to characteristic ``uuid``."""

    def on_read(self, uuid: str) -> bytes:
        """The current value of characteristic ``uuid``."""
        ...


NotificationCallback = Callable[[bytes], None]


class CentralLink(Protocol):
    """The central's side of one connection to a bluemule device."""

    @property
    def mtu(self) -> int:
        """Negotiated ATT MTU."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the link is still up."""
        ...

    async def write(self, uuid: str, value: bytes, *, response: bool) -> None:
        """Write a characteristic; without response returns once queued in the host."""
        ...

    async def read(self, uuid: str) -> bytes:
        """Read a characteristic (also a delivery barrier: ATT is ordered)."""
        ...

    async def subscribe(self, uuid: str, callback: NotificationCallback) -> None:
        """Receive notifications of ``uuid``."""
        ...

    async def disconnect(self) -> None:
        """Close the link."""
        ...

    async def wait_disconnected(self) -> None:
        """Return when the link drops."""
        ...


class TransportError(Exception):
    """Root of transport failures (connection lost, peer not found, stack errors)."""


class LinkLostError(TransportError, ConnectionError):
    """The connection dropped while an operation was pending."""


class PeerNotFoundError(TransportError, LookupError):
    """No device matching the target answered."""


Connector = Callable[[], Awaitable[CentralLink]]
"""Opens a fresh connection to the same device (used to reconnect and resume)."""
