"""Emulated devices on one Bumble virtual link, and a relay agent that reaches them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.services import set_trusted_keys
from bluemule.emulator.setup import update_settings
from bluemule.protocol.manifest import SigningKey
from bluemule.relay.agent import RelayAgent
from bluemule.relay.config import RelayConfig
from bluemule.relay.scan import BumbleScanner
from bluemule.relay.update import UpdatePolicy
from bluemule.transport.bumble_link import VirtualLink

FAST = UpdatePolicy(notification_timeout=0.5, reboot_timeout=10.0)
OTHER_KEY = SigningKey.from_seed(bytes([7]) * 32).public_key
"""A key the server does not sign with (a device trusting only it refuses every release)."""


@dataclass
class Fleet:
    """Devices by id, served on ``link``."""

    link: VirtualLink
    root: Path
    devices: dict[str, EmulatedDevice] = field(default_factory=dict)
    peripherals: dict[str, EmulatedPeripheral] = field(default_factory=dict)

    def agent(self, url: str, token: str, cache_dir: Path, **settings: Any) -> RelayAgent:
        """A relay agent scanning and connecting through this link's central."""
        config = RelayConfig(
            server_url=url,
            token=token,
            cache_dir=cache_dir,
            transport="bumble:virtual",
            **{"scan_seconds": 0.6, "retry_base": 0.0, "progress_interval": 0.0, **settings},
        )
        scanner = BumbleScanner(self.link.central)
        return RelayAgent(
            config,
            scanner,
            scanner.connector,
            update_policy=FAST,
            control_connector_factory=scanner.control_connector,
        )

    def shown(self, device_id: str) -> dict[str, Any]:
        """The device's state as its own storage holds it (reopened from disk)."""
        shown: dict[str, Any] = EmulatedDevice.open(self.root / device_id).show()
        return shown


@asynccontextmanager
async def fleet(
    root: Path,
    device_ids: Sequence[str],
    trusted: bytes,
    *,
    distrusting: Sequence[str] = (),
    stock: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    device_os: int = 6200,
) -> AsyncIterator[Fleet]:
    """Boron devices trusting the key ``trusted`` (those in ``distrusting`` trust another);
    ``stock`` maps device ids to the mobile secret of a ``--stock`` device (no library),
    ``secrets`` gives bluemule devices their mobile secret."""
    stock = stock or {}
    secrets = {**(secrets or {}), **stock}
    async with VirtualLink() as link:
        out = Fleet(link, root)
        try:
            for device_id in device_ids:
                device = EmulatedDevice.create(
                    root / device_id,
                    "boron",
                    device_id=device_id,
                    stock=device_id in stock,
                    device_os=device_os,
                )
                if device_id in secrets:
                    update_settings(root / device_id, mobile_secret=secrets[device_id])
                set_trusted_keys(device, [OTHER_KEY if device_id in distrusting else trusted])
                peripheral = EmulatedPeripheral(device)
                await link.add_peripheral(peripheral.gatt_spec(), peripheral)
                out.devices[device_id] = device
                out.peripherals[device_id] = peripheral
            yield out
        finally:
            for peripheral in out.peripherals.values():
                await peripheral.aclose()
