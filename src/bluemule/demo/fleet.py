"""The demo's devices: who they are, the release they get, and their emulators on BLE.

Devices alternate Boron and M-SoM; ids and sensor readings derive from the seed. Every
device starts with version 1 of a generated app (with the bluemule library) and trusts
the fleet server's release-signing key. The release is version 2 with three assets, one
bundle per platform, generated here (an installed user has no fixtures).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.services import set_trusted_keys
from bluemule.image import platform_by_name, write_bundle
from bluemule.transport.bumble_link import VirtualLink

PLATFORMS: Final = ("boron", "msom")
PILOT_GROUP: Final = "pilot"
FLEET_GROUP: Final = "fleet"
EVENT_PREFIX: Final = "demo/"
NEW_VERSION: Final = 2
APP_BODY_SIZE: Final = 96 * 1024
"""Bytes of the generated app's body (a small real app is 50-200 KB; this one compresses
to about a third), so a transfer takes long enough to watch."""
CHIME_SIZE: Final = 32 * 1024


@dataclass(frozen=True)
class DevicePlan:
    """One device of the demo."""

    device_id: str
    platform: str
    pilot: bool
    """In the rollout's first stage."""

    @property
    def product_id(self) -> int:
        """The product the generated apps declare (the platform id, Particle's default)."""
        platform = platform_by_name(self.platform)
        assert platform is not None
        return platform.id

    @property
    def group(self) -> str:
        """The device group that puts it in its rollout stage."""
        return PILOT_GROUP if self.pilot else FLEET_GROUP


def plan_devices(count: int, seed: int) -> list[DevicePlan]:
    """``count`` devices, platforms alternating; the first third of each platform pilots."""
    rng = random.Random(f"bluemule-demo-ids:{seed}")
    ids: list[str] = []
    while len(ids) < count:
        device_id = f"e00fce68{rng.getrandbits(64):016x}"
        if device_id not in ids:
            ids.append(device_id)
    platforms = [PLATFORMS[i % len(PLATFORMS)] for i in range(count)]
    pilots: set[int] = set()
    for platform in PLATFORMS:
        members = [i for i, p in enumerate(platforms) if p == platform]
        pilots.update(members[: math.ceil(len(members) / 3)])
    return [DevicePlan(ids[i], platforms[i], i in pilots) for i in range(count)]


def release_assets(platform: str) -> dict[str, bytes]:
    """The three assets of version 2 (a config, a sound, a note; a few KiB in all)."""
    config = {"platform": platform, "version": NEW_VERSION, "report_every_s": 60}
    rng = random.Random(f"bluemule-demo-chime:{platform}")  # noise: it does not compress
    tone = bytes(
        max(0, min(255, 128 + round(90 * math.sin(i / 5)) + rng.randint(-30, 30)))
        for i in range(CHIME_SIZE)
    )
    return {
        "config.json": json.dumps(config, indent=2).encode() + b"\n",
        "chime.pcm": tone,
        "notes.txt": b"bluemule demo release 2: new config, a chime, these notes.\n",
    }


def release_bundle(platform: str) -> tuple[str, bytes]:
    """The release bundle for ``platform``: file name and zip bytes."""
    assets = release_assets(platform)
    app = make_app(
        platform,
        product_version=NEW_VERSION,
        tag="demo",
        assets=assets,
        body_size=APP_BODY_SIZE,
    )
    name = f"demo-v{NEW_VERSION}-{platform}"
    return f"{name}.zip", write_bundle(f"{name}.bin", app, sorted(assets.items()))


@dataclass
class DemoDevice:
    """A device's emulator, its BLE side, and the events it published."""

    plan: DevicePlan
    device: EmulatedDevice
    peripheral: EmulatedPeripheral
    published: list[str] = field(default_factory=list)
    """Event ids, in order."""

    async def publish(self, name: str, data: str) -> None:
        """The app publishes an event while offline (queued until a relay drains it)."""
        event = await self.peripheral.publish(EVENT_PREFIX + name, data)
        self.published.append(event.event_id)


@dataclass
class DemoFleet:
    """The devices on one virtual link."""

    link: VirtualLink
    devices: list[DemoDevice]
    rng: random.Random

    def reading(self, device: DemoDevice) -> str:
        """A sensor reading as event data (JSON, numbered per device)."""
        doc = {
            "n": len(device.published) + 1,
            "temp_c": round(self.rng.uniform(12.0, 31.0), 1),
            "battery": round(self.rng.uniform(3.4, 4.2), 2),
        }
        return json.dumps(doc, separators=(",", ":"))

    async def publish_all(self, name: str) -> None:
        """Every device publishes one event ``name`` with a reading."""
        for device in self.devices:
            await device.publish(name, self.reading(device))


@asynccontextmanager
async def demo_fleet(
    root: Path, plans: Sequence[DevicePlan], trusted_key: bytes, seed: int
) -> AsyncIterator[DemoFleet]:
    """Create the devices under ``root`` and serve each on a Bumble virtual link."""
    async with VirtualLink() as link:
        fleet = DemoFleet(link, [], random.Random(f"bluemule-demo-readings:{seed}"))
        try:
            for plan in plans:
                device = EmulatedDevice.create(
                    root / plan.device_id, plan.platform, device_id=plan.device_id
                )
                set_trusted_keys(device, [trusted_key])
                peripheral = EmulatedPeripheral(device)
                served = await link.add_peripheral(peripheral.gatt_spec(), peripheral)
                peripheral.advertising_changed = served.server.start  # EVENTS_QUEUED shows
                fleet.devices.append(DemoDevice(plan, device, peripheral))
            yield fleet
        finally:
            for demo_device in fleet.devices:
                await demo_device.peripheral.aclose()
