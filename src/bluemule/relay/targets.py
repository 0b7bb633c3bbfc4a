"""Open a device by moniker (``emu:DIR``, ``bumble:TRANSPORT[@ADDRESS]``, ``ble:ADDRESS``).

Each yields a :data:`~bluemule.transport.base.Connector`. ``emu:`` runs the emulated
device in this process, still over Bumble's virtual link with a real GATT client and
server; its state lives in DIR (created on first use).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.services import set_trusted_keys
from bluemule.protocol.constants import SERVICE_UUID
from bluemule.protocol.messages import Advertisement, decode_advertisement
from bluemule.transport.advertising import iter_ad_structures
from bluemule.transport.base import Connector, PeerNotFoundError
from bluemule.transport.monikers import BleTarget, BumbleTarget, EmulatorTarget, Target

if TYPE_CHECKING:
    from bluemule.transport.bumble_link import BumbleCentral

_AD_MANUFACTURER: Final = 0xFF


@dataclass(frozen=True)
class EmulatorOptions:
    """How to create an emulated device the first time its directory is used."""

    platform: str = "boron"
    device_id: str | None = None
    device_os: int = 6200
    stock: bool = False


def is_emulator_dir(path: Path) -> bool:
    """Whether ``path`` already holds an emulated device."""
    return (path / "device.json").is_file()


def open_or_create_emulator(
    path: Path, options: EmulatorOptions, trusted_keys: list[bytes]
) -> EmulatedDevice:
    """Open the emulated device in ``path``, creating it (trusting ``trusted_keys``) if new."""
    if is_emulator_dir(path):
        return EmulatedDevice.open(path)
    device = EmulatedDevice.create(
        path,
        options.platform,
        device_id=options.device_id,
        device_os=options.device_os,
        stock=options.stock,
    )
    set_trusted_keys(device, trusted_keys)
    return device


@contextlib.asynccontextmanager
async def open_target(
    target: Target,
    *,
    emulator: EmulatorOptions | None = None,
    trusted_keys: list[bytes] | None = None,
) -> AsyncIterator[Connector]:
    """A connector to the device ``target`` names, for the duration of the context."""
    match target:
        case EmulatorTarget(directory=directory):
            from bluemule.transport.bumble_link import VirtualLink  # noqa: PLC0415

            device = open_or_create_emulator(
                directory, emulator or EmulatorOptions(), trusted_keys or []
            )
            handler = EmulatedPeripheral(device)
            if handler.stock:
                raise PeerNotFoundError(
                    "its app has no bluemule library: it offers only Device OS's control "
                    "service (see docs/emulator.md)"
                )
            async with VirtualLink() as link:
                vp = await link.add_peripheral(handler.gatt_spec(), handler)
                try:
                    yield link.connector(vp.address)
                finally:
                    await handler.aclose()
        case BumbleTarget(transport=transport, address=address):
            from bluemule.transport.bumble_link import open_central  # noqa: PLC0415

            async with open_central(transport) as central:
                if address is None:
                    address = await _first_advertiser(central)
                yield central.connector(address, SERVICE_UUID)
        case BleTarget(address=address):
            from bluemule.transport.bleak_link import BleakCentralLink  # noqa: PLC0415

            async def connect() -> BleakCentralLink:
                return await BleakCentralLink.connect(address, SERVICE_UUID)

            yield connect


def bluemule_advertisement(advertising_data: bytes) -> Advertisement | None:
    """The bluemule manufacturer data in an advertisement, if it carries any."""
    for ad_type, payload in iter_ad_structures(advertising_data, strict=False):
        if ad_type == _AD_MANUFACTURER and (advert := decode_advertisement(payload)):
            return advert
    return None


async def _first_advertiser(central: BumbleCentral) -> str:
    async with contextlib.aclosing(central.scan(None)) as results:
        async for result in results:
            if bluemule_advertisement(result.advertising_data) is not None:
                return result.address
    raise PeerNotFoundError("no bluemule device is advertising")
