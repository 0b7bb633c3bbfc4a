"""Open a device's control channel by moniker, for ``bluemule particle``.

==============================  =====================================================
``emu:DIR``                     an emulated device in this process, its control service
                                on Bumble's virtual link (created on first use, as
                                ``bluemule flash emu:`` does); before every connection
                                it is put in listening mode, as a person holding MODE
                                would
``bumble:TRANSPORT[@ADDRESS]``  a real controller opened by Bumble; without
                                ``@ADDRESS`` the first device advertising Particle's
                                control service
``ble:ADDRESS``                 the OS Bluetooth stack through bleak
``tcp:HOST:PORT``               the raw byte stream of ``bluemule emulator
                                control-stream``
==============================  =====================================================

Each yields a :class:`ControlTarget`: an :data:`~bluemule.particle_ctrl.client.OpenChannel`
(connect, handshake with the mobile secret) and the platform ID when the target knows it
(the emulator, or Particle's manufacturer data in the advertisement, particle.md §5.1).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bluemule.particle_ctrl.client import OpenChannel, stream_opener
from bluemule.particle_ctrl.gatt import SERVICE_UUID, find_setup_advertisement
from bluemule.particle_ctrl.stream import (
    ByteStream,
    StreamConnector,
    open_gatt_stream,
    open_tcp_stream,
)
from bluemule.relay.targets import EmulatorOptions, open_or_create_emulator
from bluemule.transport.base import CentralLink, PeerNotFoundError
from bluemule.transport.monikers import (
    BleTarget,
    BumbleTarget,
    EmulatorTarget,
    MonikerError,
    Target,
    parse_target,
)

if TYPE_CHECKING:
    from bluemule.transport.bumble_link import BumbleCentral

_USAGE: Final = "expected emu:DIR, bumble:TRANSPORT[@ADDRESS], ble:ADDRESS or tcp:HOST:PORT"


@dataclass(frozen=True)
class TcpTarget:
    """``tcp:HOST:PORT``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"tcp:{self.host}:{self.port}"


ControlMoniker = Target | TcpTarget


def parse_control_target(moniker: str) -> ControlMoniker:
    """Parse a target moniker; raises :class:`MonikerError` with the reason."""
    kind, colon, rest = moniker.strip().partition(":")
    if not colon:
        raise MonikerError(f"{moniker!r}: no scheme; {_USAGE}")
    if kind.lower() in ("emu", "bumble", "ble"):
        return parse_target(moniker)
    if kind.lower() != "tcp":
        raise MonikerError(f"{moniker!r}: unknown scheme {kind.lower()!r}; {_USAGE}")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        raise MonikerError(f"{moniker!r}: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:9010")
    return TcpTarget(host, int(port))


@dataclass(frozen=True)
class ControlTarget:
    """An open target: how to get a channel, and the platform if known."""

    opener: OpenChannel
    platform_id: int | None = None
    device_dir: Path | None = None
    """The emulator's state directory, for ``emu:`` targets."""


@contextlib.asynccontextmanager
async def open_control_target(
    target: ControlMoniker,
    mobile_secret: bytes,
    *,
    emulator: EmulatorOptions | None = None,
    handshake_timeout: float = 10.0,
) -> AsyncIterator[ControlTarget]:
    """A :class:`ControlTarget` for ``target`` for the duration of the context."""
    match target:
        case TcpTarget(host=host, port=port):

            async def tcp() -> ByteStream:
                return await open_tcp_stream(host, port)

            yield ControlTarget(
                stream_opener(tcp, mobile_secret, handshake_timeout=handshake_timeout)
            )
        case EmulatorTarget(directory=directory):
            async with _emulator(directory, emulator or EmulatorOptions(stock=True)) as connect:
                device_dir, platform_id, gatt = connect
                opener = stream_opener(gatt, mobile_secret, handshake_timeout=handshake_timeout)
                yield ControlTarget(opener, platform_id, device_dir)
        case BumbleTarget(transport=transport, address=address):
            from bluemule.transport.bumble_link import open_central  # noqa: PLC0415

            async with open_central(transport) as central:
                advertised: int | None = None
                if address is None:
                    address, advertised = await _first_listening_device(central)
                connector = central.connector(address, SERVICE_UUID)

                async def bumble() -> ByteStream:
                    return await open_gatt_stream(await connector())

                yield ControlTarget(
                    stream_opener(bumble, mobile_secret, handshake_timeout=handshake_timeout),
                    advertised,
                )
        case BleTarget(address=address):
            from bluemule.transport.bleak_link import BleakCentralLink  # noqa: PLC0415

            async def bleak() -> ByteStream:
                link: CentralLink = await BleakCentralLink.connect(address, SERVICE_UUID)
                return await open_gatt_stream(link)

            yield ControlTarget(
                stream_opener(bleak, mobile_secret, handshake_timeout=handshake_timeout)
            )


@contextlib.asynccontextmanager
async def _emulator(
    directory: Path, options: EmulatorOptions
) -> AsyncIterator[tuple[Path, int, StreamConnector]]:
    from bluemule.emulator.peripheral import EmulatedPeripheral  # noqa: PLC0415
    from bluemule.transport.bumble_link import VirtualLink  # noqa: PLC0415

    device = open_or_create_emulator(directory, options, [])
    handler = EmulatedPeripheral(device)
    async with VirtualLink() as link:
        vp = await link.add_peripheral(handler.gatt_spec(), handler)
        connector = link.central.connector(vp.address, SERVICE_UUID)

        async def gatt() -> ByteStream:
            if not device.listening:  # the person on site holds MODE (particle.md §5.2)
                device.set_listening(True)
            return await open_gatt_stream(await connector())

        try:
            yield device.state_dir, device.platform_id, gatt
        finally:
            await handler.aclose()


async def _first_listening_device(central: BumbleCentral) -> tuple[str, int | None]:
    async with contextlib.aclosing(central.scan(SERVICE_UUID)) as results:
        async for result in results:
            setup = find_setup_advertisement(result.advertising_data)
            return result.address, None if setup is None else setup[0]
    raise PeerNotFoundError("no device in listening mode is advertising the control service")
