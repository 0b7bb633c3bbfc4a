"""Shared helpers for the emulator tests: a device per platform and a whole update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bluemule.emulator import OTA_CHUNK_SIZE, EmulatedDevice, UpdateResult

PLATFORMS = ("boron", "msom")
DEVICE_ID = "e00fce68aa5e1b2c3d4e5f60"


def new_device(root: Path, platform: str, **kwargs: Any) -> EmulatedDevice:
    """A fresh device in ``root / platform``."""
    return EmulatedDevice.create(
        root / platform,
        platform,
        device_id=DEVICE_ID,
        **kwargs,
    )


def transfer(device: EmulatedDevice, image: bytes, *, chunk: int = OTA_CHUNK_SIZE) -> None:
    """Prepare and send ``image`` in order, without finishing."""
    device.prepare_update(len(image))
    for offset in range(0, len(image), chunk):
        device.save_chunk(offset, image[offset : offset + chunk])


def send(device: EmulatedDevice, image: bytes, *, chunk: int = OTA_CHUNK_SIZE) -> UpdateResult:
    """Prepare, send and finish (applied, not validate-only) ``image``."""
    transfer(device, image, chunk=chunk)
    return device.finish_update()
