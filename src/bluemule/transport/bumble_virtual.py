"""In-process virtual BLE: Bumble virtual controllers on one ``LocalLink``, one asyncio loop.

For tests, the CLI's ``emu:`` targets and the demo::

    async with VirtualLink() as link:
        device = await link.add_peripheral(spec, handler)
        central = await link.connect()            # the only peripheral
        reconnect = link.connector(device.address)

Several peripherals can share the link, each with its own random static address; one
central device (its own controller) connects to any of them and scans.

What the virtual link does *not* emulate (reference §4.3): radio timing, connection
events, packet loss, DLE (``set_data_length`` fails) and PHY updates. Each controller's
LE ACL data packet length is set to 251 bytes so the host does not fragment 247-byte ATT
PDUs into 27-byte packets (what DLE would give on hardware). Throughput figures over it
measure CPU, not radio.

Virtual-controller quirks (Bumble 0.0.236): it answers a scan request with the
*advertising* data instead of the scan-response data, so whatever
:func:`~bluemule.transport.advertising.advertising_payloads` puts in the scan response
(a device name that does not fit beside the UUID and ``advertising_data``) is never
seen by a scanner here; and its LE Create Connection Cancel does not cancel, which
:class:`_VirtualController` fixes so a connect to an absent device times out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from bluemule.transport.base import Connector, GattServerSpec, PeripheralHandler
from bluemule.transport.bumble_link import (
    DEFAULT_MTU,
    BumbleCentral,
    BumbleCentralLink,
    BumbleGattServer,
    ScanResult,
)

__all__ = ["VirtualLink", "VirtualPeripheral"]

ACL_PACKET_LENGTH = 251
"""LE ACL data packet length of the virtual controllers (a DLE-sized LE data PDU)."""

CENTRAL_ADDRESS = "F0:00:00:00:00:00"
_PERIPHERAL_PREFIX = "C0:00:00:00"


class _VirtualController(Controller):
    """Bumble's virtual controller, with LE Create Connection Cancel implemented.

    Bumble 0.0.236 answers the cancel with success but keeps the connection pending and
    never sends the LE Connection Complete event the host waits for, so a timed-out
    ``Device.connect`` hangs for ever. Per the spec (Vol 4, Part E, 7.8.13) the pending
    attempt is dropped and completes with Unknown Connection Identifier.
    """

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failure = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete this handler's return value produces.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failure)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


@dataclass
class VirtualPeripheral:
    """One emulated device on a :class:`VirtualLink`."""

    address: str
    device: Device
    server: BumbleGattServer

    @property
    def spec(self) -> GattServerSpec:
        return self.server.spec

    async def disconnect(self) -> None:
        """Drop the current connection from the device side (it re-advertises)."""
        if self.server.link is not None:
            await self.server.link.disconnect()

    async def stop(self) -> None:
        """Go silent: stop advertising and drop the connection (out of range)."""
        await self.server.close()

    async def start(self) -> None:
        """Advertise again after :meth:`stop`."""
        await self.server.start()


class VirtualLink:
    """A ``LocalLink`` with one central and any number of emulated peripherals."""

    def __init__(self, *, advertising_interval_ms: float = 20.0) -> None:
        self.advertising_interval_ms = advertising_interval_ms
        self._link: LocalLink | None = None
        self._central: BumbleCentral | None = None
        self._peripherals: dict[str, VirtualPeripheral] = {}
        self._links: list[BumbleCentralLink] = []

    def _controller(self, name: str, address: str) -> Controller:
        assert self._link is not None, "use VirtualLink as an async context manager"
        controller = _VirtualController(name, link=self._link, public_address=address)
        controller.le_acl_data_packet_length = ACL_PACKET_LENGTH
        return controller

    def _device(self, name: str, address: str) -> Device:
        controller = self._controller(name, address)
        host = Host(controller, AsyncPipeSink(controller))
        return Device(name=name, address=hci.Address(address), host=host)

    async def __aenter__(self) -> Self:
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        device = self._device("bluemule-central", CENTRAL_ADDRESS)
        await device.power_on()
        # The virtual controller does not implement LE Set Data Length: skip it.
        self._central = BumbleCentral(device, data_length=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Disconnect everything and stop advertising timers (idempotent)."""
        for link in self._links:
            await link.disconnect()
        self._links.clear()
        for peripheral in self._peripherals.values():
            await peripheral.server.close()
        devices = [p.device for p in self._peripherals.values()]
        if self._central is not None:
            devices.append(self._central.device)
        for device in devices:
            with contextlib.suppress(core.BaseBumbleError):
                await device.power_off()
        self._peripherals.clear()
        self._central = None

    @property
    def central(self) -> BumbleCentral:
        """The central role (one Bumble device on its own virtual controller)."""
        assert self._central is not None, "use VirtualLink as an async context manager"
        return self._central

    @property
    def peripherals(self) -> dict[str, VirtualPeripheral]:
        """Emulated devices by address."""
        return dict(self._peripherals)

    async def add_peripheral(
        self,
        spec: GattServerSpec,
        handler: PeripheralHandler,
        *,
        address: str | None = None,
        mtu: int = DEFAULT_MTU,
    ) -> VirtualPeripheral:
        """Add an advertising device serving ``spec`` through ``handler``.

        ``address`` (a random static address, ``C0``–``FF`` in the top byte) defaults
        to ``C0:00:00:00:NN:NN`` counting up.
        """
        if address is None:
            n = len(self._peripherals) + 1
            address = f"{_PERIPHERAL_PREFIX}:{n >> 8:02X}:{n & 0xFF:02X}"
        address = address.upper()
        if address in self._peripherals or address == CENTRAL_ADDRESS:
            raise ValueError(f"address {address} already on the link")
        device = self._device(spec.device_name, address)
        server = BumbleGattServer(
            device, spec, handler, mtu=mtu, advertising_interval_ms=self.advertising_interval_ms
        )
        await device.power_on()
        await server.start()
        peripheral = VirtualPeripheral(address, device, server)
        self._peripherals[address] = peripheral
        return peripheral

    def _target(self, address: str | None) -> VirtualPeripheral:
        if address is None:
            if len(self._peripherals) != 1:
                raise ValueError(
                    f"{len(self._peripherals)} peripherals on the link: pass an address"
                )
            return next(iter(self._peripherals.values()))
        try:
            return self._peripherals[address.upper()]
        except KeyError:
            raise ValueError(f"no peripheral {address} on the link") from None

    async def connect(
        self, address: str | None = None, *, mtu: int = DEFAULT_MTU, timeout: float = 5.0
    ) -> BumbleCentralLink:
        """Connect the central to a peripheral (the only one when ``address`` is None)."""
        target = self._target(address)
        link = await self.central.connect(
            target.address, target.spec.service_uuid, mtu=mtu, timeout=timeout
        )
        self._links = [x for x in self._links if x.connected]
        self._links.append(link)
        return link

    def connector(
        self, address: str | None = None, *, mtu: int = DEFAULT_MTU, timeout: float = 5.0
    ) -> Connector:
        """A :data:`Connector` to the same peripheral, for reconnect-and-resume."""
        target_address = self._target(address).address

        async def connect() -> BumbleCentralLink:
            return await self.connect(target_address, mtu=mtu, timeout=timeout)

        return connect

    def scan(
        self, service_uuid: str | None = None, *, active: bool = True
    ) -> contextlib.aclosing[AsyncGenerator[ScanResult, None]]:
        """Scan from the central: ``async with link.scan(uuid) as results: async for …``."""
        return contextlib.aclosing(self.central.scan(service_uuid, active=active))
