"""Finding bluemule devices by their advertisements, over any BLE stack.

A :class:`Scanner` listens for ``seconds`` and returns one :class:`Sighting` per device
(the strongest recent advertisement). The agent decides from the advertisement alone
(device id, release counter, flags) whether a device has work before connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bluemule.protocol.constants import SERVICE_UUID
from bluemule.protocol.messages import Advertisement, decode_advertisement
from bluemule.relay.targets import bluemule_advertisement
from bluemule.transport.base import Connector

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


class Scanner(Protocol):
    """Something that can listen for bluemule advertisements."""

    async def sweep(self, seconds: float) -> list[Sighting]:
        """Listen for ``seconds``; one sighting per device, in the order first heard."""
        ...


def _merge(seen: dict[str, Sighting], sighting: Sighting) -> None:
    seen[sighting.device_id] = sighting


class BumbleScanner:
    """Scanning on a Bumble central (virtual link or an HCI controller)."""

    def __init__(self, central: BumbleCentral) -> None:
        self.central = central

    async def sweep(self, seconds: float) -> list[Sighting]:
        """See :meth:`Scanner.sweep`."""
        seen: dict[str, Sighting] = {}

        async def listen() -> None:
            async with contextlib.aclosing(self.central.scan(None)) as results:
                async for result in results:
                    if advert := bluemule_advertisement(result.advertising_data):
                        _merge(seen, Sighting(result.address, advert, result.rssi))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listen(), seconds)
        return list(seen.values())

    def connector(self, address: str) -> Connector:
        """A connector to a sighted device."""
        return self.central.connector(address, SERVICE_UUID)


def advertisement_from_manufacturer_data(company: int, value: bytes) -> Advertisement | None:
    """Rebuild the bluemule advertisement from bleak's ``{company: data}`` entry."""
    return decode_advertisement(struct.pack("<H", company) + value)


class BleakScanner:
    """Scanning with the OS Bluetooth stack (needs the ``ble`` extra)."""

    async def sweep(self, seconds: float) -> list[Sighting]:
        """See :meth:`Scanner.sweep`."""
        from bluemule.transport.bleak_link import require_bleak  # noqa: PLC0415

        bleak = require_bleak()
        seen: dict[str, Sighting] = {}

        def detected(device: Any, data: Any) -> None:
            for company, value in dict(data.manufacturer_data).items():
                advert = advertisement_from_manufacturer_data(int(company), bytes(value))
                if advert is not None:
                    _merge(seen, Sighting(str(device.address), advert, int(data.rssi)))

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
