"""Device OS's control service on the emulated peripheral, over Bumble's virtual link with
a real GATT client: a stock device has only that service and is updated through it; a
bluemule device offers it beside its own; every connection needs its own handshake."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.setup import load_settings
from bluemule.particle_ctrl import gatt
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.errors import WrongMobileSecretError
from bluemule.particle_ctrl.stream import open_channel, open_gatt_stream
from bluemule.protocol.constants import SERVICE_UUID
from bluemule.relay.targets import open_target
from bluemule.transport.base import PeerNotFoundError
from bluemule.transport.bumble_link import VirtualLink
from bluemule.transport.monikers import EmulatorTarget
from tests.emulator.helpers import new_device

T = m.RequestType


async def _device_id(link: VirtualLink, address: str, phrase: bytes) -> str:
    central = await link.central.connect(address, gatt.SERVICE_UUID)
    stream = await open_gatt_stream(central)
    async with open_channel(stream, phrase) as channel:
        return m.GetDeviceIdReply.decode(await channel.request(T.DEVICE_ID, timeout=20)).id


def test_stock_device_has_only_the_control_service_and_updates_through_it(
    tmp_path: Path,
) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    phrase = load_settings(device.state_dir).mobile_secret.encode()
    app = make_app("boron", library=False, product_version=7, tag="gatt", body_size=3000)
    handler = EmulatedPeripheral(device)
    spec = handler.gatt_spec()
    assert handler.stock and spec.service_uuid == gatt.SERVICE_UUID and not spec.extra_services
    assert f"Boron-{device.device_id[-6:].upper()}".encode() in spec.advertising_data

    async def main() -> None:
        async with VirtualLink() as link:
            vp = await link.add_peripheral(spec, handler)
            with pytest.raises(PeerNotFoundError, match="has no service"):
                await link.central.connect(vp.address, SERVICE_UUID, timeout=5)
            central = await link.central.connect(vp.address, gatt.SERVICE_UUID)
            stream = await open_gatt_stream(central)
            async with open_channel(stream, phrase) as ch:
                start = m.StartFirmwareUpdateRequest(len(app)).encode()
                chunk = m.StartFirmwareUpdateReply.decode(
                    await ch.request(T.START_FIRMWARE_UPDATE, start, timeout=30)
                ).chunk_size
                for offset in range(0, len(app), chunk):
                    data = m.FirmwareUpdateDataRequest(app[offset : offset + chunk])
                    await ch.request(T.FIRMWARE_UPDATE_DATA, data.encode(), timeout=20)
                await ch.request(T.FINISH_FIRMWARE_UPDATE, timeout=30)
                await asyncio.wait_for(handler.reset_done.wait(), 10)
            assert await _device_id(link, vp.address, phrase) == device.device_id
            await handler.aclose()

    asyncio.run(main())
    assert handler.resets == 1
    reopened = EmulatedDevice.open(device.state_dir)
    assert reopened.installed_app is not None and reopened.installed_app.data == app
    assert reopened.mode == "normal"


def test_bluemule_device_offers_the_control_service_beside_its_own(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    phrase = load_settings(device.state_dir).mobile_secret.encode()
    handler = EmulatedPeripheral(device)
    spec = handler.gatt_spec()
    assert not handler.stock and spec.service_uuid == SERVICE_UUID
    assert [s.uuid for s in spec.extra_services] == [gatt.SERVICE_UUID]

    async def main() -> None:
        async with VirtualLink() as link:
            vp = await link.add_peripheral(spec, handler)
            with pytest.raises(WrongMobileSecretError):
                await _device_id(link, vp.address, b"WRONGWRONGWRONG")
            assert await _device_id(link, vp.address, phrase) == device.device_id
            bluemule = await link.connect(vp.address)  # bluemule's own service still works
            assert bluemule.connected
            await bluemule.disconnect()
            await handler.aclose()

    asyncio.run(main())


def test_bluemule_relay_refuses_a_stock_emulated_device_clearly(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)

    async def main() -> None:
        async with open_target(EmulatorTarget(device.state_dir)):
            pass

    with pytest.raises(PeerNotFoundError, match="no bluemule library"):
        asyncio.run(main())
