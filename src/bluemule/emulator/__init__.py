"""An emulated Particle device: flash, file systems, Device OS update API, bootloader.

What Device OS and the hardware do, modelled after ``shared/reference/particle.md``
§1–§4, so that the bluemule on-device library logic can run on top:

* :class:`EmulatedDevice` (``device.py``): create/open a device in a state directory,
  power, reset/boot, mode (normal/safe), installed app and assets, key-value store,
  ``show()``;
* the update API (``deviceos.py``; module checks in ``validation.py``): ``prepare_update``
  / ``save_chunk`` / ``finish_update`` / ``cancel_update`` = ``Spark_*_Firmware_Update``
  (§3.1, §3.5, §4);
* the bootloader (``bootloader.py``): DCT slots applied at boot (§3.2, §3.3);
* flash (``flash.py``): NOR semantics, numbered operations, power-loss injection;
* file systems (``storage.py``, ``dct.py``) and layouts (``layout.py``, §3.6);
* the library's durable event queue (``events.py``): ``EmulatedDevice.publish`` while
  offline, drained by relays over BLE (``docs/protocol.md`` §11);
* application images for tests and demos (``apps.py``).
"""

from __future__ import annotations

from bluemule.emulator.apps import LIBRARY_MARKER, make_app
from bluemule.emulator.dct import ModuleSlot, SlotFlag, SlotMagic
from bluemule.emulator.device import EmulatedDevice, InstalledAsset
from bluemule.emulator.device_config import (
    DEFAULT_BOOTLOADER_VERSION,
    DEFAULT_DEVICE_OS,
    DeviceConfig,
)
from bluemule.emulator.deviceos import OtaSession, UpdateModule, UpdateResult
from bluemule.emulator.errors import (
    DeviceOsError,
    EmulatorError,
    PoweredOff,
    PowerLoss,
    StateDirError,
    SystemErrorCode,
    UsageError,
)
from bluemule.emulator.flash import Flash
from bluemule.emulator.layout import (
    LAYOUTS,
    OTA_CHUNK_SIZE,
    SECTOR_SIZE,
    Area,
    Bounds,
    FlashDevice,
    FlashLayout,
    layout_for,
)
from bluemule.emulator.storage import AssetStorage, StoredAsset
from bluemule.emulator.validation import InstalledModule

__all__ = [
    "DEFAULT_BOOTLOADER_VERSION",
    "DEFAULT_DEVICE_OS",
    "LAYOUTS",
    "LIBRARY_MARKER",
    "OTA_CHUNK_SIZE",
    "SECTOR_SIZE",
    "Area",
    "AssetStorage",
    "Bounds",
    "DeviceConfig",
    "DeviceOsError",
    "EmulatedDevice",
    "EmulatorError",
    "Flash",
    "FlashDevice",
    "FlashLayout",
    "InstalledAsset",
    "InstalledModule",
    "ModuleSlot",
    "OtaSession",
    "PowerLoss",
    "PoweredOff",
    "SlotFlag",
    "SlotMagic",
    "StateDirError",
    "StoredAsset",
    "SystemErrorCode",
    "UpdateModule",
    "UpdateResult",
    "UsageError",
    "layout_for",
    "make_app",
]
