"""Finding bluemule devices by their advertisements, over any BLE stack.

A :class:`Scanner` listens for ``seconds`` and returns one :class:`Sighting` per device
(the strongest recent advertisement). The agent decides from the advertisement alone
(device id, release counter, flags) whether a device has work before connecting.

Devices without the bluemule library show up only in listening mode, with Particle's
setup advertising (manufacturer data ``0x0662`` ‖ platform id ‖ 6-character setup code,
particle.md §5.1): a :class:`StockSighting`, reached over Device OS's control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from bluemule.particle_ctrl.gatt import SERVICE_UUID as CONTROL_SERVICE_UUID
from bluemule.particle_ctrl.gatt import decode_setup_manufacturer_data, find_setup_advertisement
from bluemule.particle_ctrl.stream import ByteStream, StreamConnector, open_gatt_stream
from bluemule.protocol.constants import SERVICE_UUID
from bluemule.protocol.messages import Advertisement, decode_advertisement
from bluemule.relay.targets import bluemule_advertisement
from bluemule.transport.base import Connector

_AD_MANUFACTURER: Final = 0xFF

if TYPE_CHECKING:
    from bluemule.transport.bumble_link import BumbleCentral


@dataclass(frozen=True)
class Sighting:
    """A bluemule device heard advertising."""

    address: str
    advertisement: Advertisement
    rssi: int

    @property
    def device_id(self) -> str:
        """Particle's 24-hex-digit device id."""
        return self.advertisement.device_id.hex()


@dataclass(frozen=True)
class StockSighting:
    """A device in listening mode advertising Particle's setup data (no bluemule library)."""

    address: str
    platform_id: int
    setup_code: str
    rssi: int


AnySighting = Sighting | StockSighting


class Scanner(Protocol):
    """Something that can listen for bluemule (and Particle setup) advertisements."""

    async def sweep(self, seconds: float) -> Sequence[AnySighting]:
        """Listen for ``seconds``; one sighting per device, in the order first heard."""
        ...


def stock_sighting(address: str, advertising_data: bytes, rssi: int) -> StockSighting | None:
    """A :class:`StockSighting` if the advertisement carries Particle's setup data."""
    found = find_setup_advertisement(advertising_data)
    return None if found is None else StockSighting(address, found[0], found[1], rssi)


def _key(sighting: AnySighting) -> str:
    return sighting.device_id if isinstance(sighting, Sighting) else f"stock:{sighting.address}"


def _merge(seen: dict[str, AnySighting], sighting: AnySighting) -> None:
    seen[_key(sighting)] = sighting


class BumbleScanner:
    """Scanning on a Bumble central (virtual link or an HCI controller)."""

    def __init__(self, central: BumbleCentral) -> None:
        self.central = central

    async def sweep(self, seconds: float) -> list[AnySighting]:
        """See :meth:`Scanner.sweep`."""
        seen: dict[str, AnySighting] = {}

        async def listen() -> None:
            async with contextlib.aclosing(self.central.scan(None)) as results:
                async for result in results:
                    data = result.advertising_data
                    if advert := bluemule_advertisement(data):
                        _merge(seen, Sighting(result.address, advert, result.rssi))
                    elif stock := stock_sighting(result.address, data, result.rssi):
                        _merge(seen, stock)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listen(), seconds)
        return list(seen.values())

    def connector(self, address: str) -> Connector:
        """A connector to a sighted device."""
        return self.central.connector(address, SERVICE_UUID)

    def control_connector(self, address: str) -> StreamConnector:
        """A connector to a stock device's control channel (RX/TX byte stream)."""
        connect = self.central.connector(address, CONTROL_SERVICE_UUID)

        async def stream() -> ByteStream:
            return await open_gatt_stream(await connect())

        return stream


def advertisement_from_manufacturer_data(company: int, value: bytes) -> Advertisement | None:
    """Rebuild the bluemule advertisement from bleak's ``{company: data}`` entry."""
    return decode_advertisement(struct.pack("<H", company) + value)


class BleakScanner:
    """Scanning with the OS Bluetooth stack (needs the ``ble`` extra)."""

    async def sweep(self, seconds: float) -> list[AnySighting]:
        """See :meth:`Scanner.sweep`."""
        from bluemule.transport.bleak_link import require_bleak  # noqa: PLC0415

        bleak = require_bleak()
        seen: dict[str, AnySighting] = {}

        def detected(device: Any, data: Any) -> None:
            for company, value in dict(data.manufacturer_data).items():
                raw = struct.pack("<H", int(company)) + bytes(value)
                address, rssi = str(device.address), int(data.rssi)
                if (advert := decode_advertisement(raw)) is not None:
                    _merge(seen, Sighting(address, advert, rssi))
                elif (setup := decode_setup_manufacturer_data(raw)) is not None:
                    _merge(seen, StockSighting(address, setup[0], setup[1], rssi))

        scanner = bleak.BleakScanner(detection_callback=detected)
        await scanner.start()
        try:
            await asyncio.sleep(seconds)
        finally:
            await scanner.stop()
        return list(seen.values())

    def connector(self, address: str) -> Connector:
        """A connector through the OS stack."""
        from bluemule.transport.bleak_link import BleakCentralLink  # noqa: PLC0415

        async def connect() -> BleakCentralLink:
            return await BleakCentralLink.connect(address, SERVICE_UUID)

        return connect

    def control_connector(self, address: str) -> StreamConnector:
        """A connector to a stock device's control channel through the OS stack."""
        from bluemule.transport.bleak_link import BleakCentralLink  # noqa: PLC0415

        async def stream() -> ByteStream:
            link = await BleakCentralLink.connect(address, CONTROL_SERVICE_UUID)
            return await open_gatt_stream(link)

        return stream
