"""Emulated devices served over Bumble's virtual link, reached by a real GATT client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.services import set_trusted_keys
from bluemule.protocol.manifest import SigningKey
from bluemule.transport.base import Connector
from bluemule.transport.bumble_link import VirtualLink

KEY = SigningKey.from_seed(bytes(range(1, 33)))
DEVICE_IDS = {"boron": "e00fce68a1b2c3d4e5f60718", "msom": "0a10aced202194944a0d7fe1"}


def new_device(
    state_dir: Path, platform: str = "boron", *, assets: Mapping[str, bytes] | None = None
) -> EmulatedDevice:
    device = EmulatedDevice.create(
        state_dir, platform, device_id=DEVICE_IDS[platform], assets=dict(assets or {})
    )
    set_trusted_keys(device, [KEY.public_key])
    return device


@dataclass
class Rig:
    link: VirtualLink
    peripheral: EmulatedPeripheral
    address: str

    def connector(self) -> Connector:
        return self.link.connector(self.address)


@asynccontextmanager
async def served(device: EmulatedDevice, *, app_healthy: bool = True) -> AsyncIterator[Rig]:
    handler = EmulatedPeripheral(device, app_healthy=app_healthy)
    async with VirtualLink() as link:
        vp = await link.add_peripheral(handler.gatt_spec(), handler)
        try:
            yield Rig(link, handler, vp.address)
        finally:
            await handler.aclose()
