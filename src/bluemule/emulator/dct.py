"""DCT module slots: how Device OS flags a staged module for the bootloader.

``application_dct_t.flash_modules[5]`` at DCT offset 2852, 20 bytes each; slot 0 is
the factory-reset slot, slots 1–4 take updates. On Gen 3 and Gen 4 the DCT is the file
``/sys/dct.bin`` of the main LittleFS (``shared/reference/particle.md`` §3.2), so
writing it is one atomic file-system commit (one flash operation).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace
from typing import Final

from bluemule.emulator.storage import FileStore

DCT_FILE: Final = "sys/dct.bin"
FLASH_MODULES_OFFSET: Final = 2852
SLOT_COUNT: Final = 5
FACTORY_SLOT: Final = 0
_SLOT: Final = struct.Struct("<HBBIIIBBH")
SLOT_SIZE: Final = _SLOT.size
assert SLOT_SIZE == 20
DCT_SIZE: Final = FLASH_MODULES_OFFSET + SLOT_COUNT * SLOT_SIZE
"""The emulated DCT file ends after the slot table (the fields after it are not modelled)."""
ERASED_DCT: Final = b"\xff" * DCT_SIZE


class SlotMagic(enum.IntEnum):
    """``platform_flash_modules_t.magicNumber``."""

    PENDING = 0xABCD
    FACTORY = 0x0FAC
    EMPTY = 0xFFFF


class SlotFlag(enum.IntFlag):
    """Slot flags (hal/shared/module_info_hal.h, §3.2)."""

    VERIFY_CRC = 0x02
    VERIFY_DESTINATION_IS_START_ADDRESS = 0x04
    VERIFY_FUNCTION = 0x08
    DROP_MODULE_INFO = 0x10
    COMPRESSED = 0x20
    ENCRYPTED = 0x40


@dataclass(frozen=True)
class ModuleSlot:
    """One ``platform_flash_modules_t`` record."""

    magic: int = SlotMagic.EMPTY
    source_device: int = 0xFF
    destination_device: int = 0xFF
    source_address: int = 0xFFFFFFFF
    destination_address: int = 0xFFFFFFFF
    length: int = 0xFFFFFFFF
    flags: int = 0xFF
    function: int = 0xFF
    reserved: int = 0xFFFF

    @property
    def pending(self) -> bool:
        """Magic 0xABCD: the bootloader applies this slot at the next boot."""
        return self.magic == SlotMagic.PENDING

    def pack(self) -> bytes:
        """The 20 bytes as stored."""
        return _SLOT.pack(
            self.magic,
            self.source_device,
            self.destination_device,
            self.source_address,
            self.destination_address,
            self.length,
            self.flags,
            self.function,
            self.reserved,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ModuleSlot:
        """Read 20 bytes at ``offset``."""
        return cls(*_SLOT.unpack_from(data, offset))


EMPTY_SLOT: Final = ModuleSlot()


def decode_slots(dct: bytes) -> list[ModuleSlot]:
    """The five slots of a DCT image (short or missing bytes read as erased)."""
    padded = dct.ljust(DCT_SIZE, b"\xff")
    return [
        ModuleSlot.unpack(padded, FLASH_MODULES_OFFSET + i * SLOT_SIZE) for i in range(SLOT_COUNT)
    ]


def encode_slots(dct: bytes, slots: list[ModuleSlot]) -> bytes:
    """The DCT image with its slot table replaced."""
    buf = bytearray(dct.ljust(DCT_SIZE, b"\xff"))
    for i, slot in enumerate(slots):
        at = FLASH_MODULES_OFFSET + i * SLOT_SIZE
        buf[at : at + SLOT_SIZE] = slot.pack()
    return bytes(buf)


class Dct:
    """The slot table in ``/sys/dct.bin``; every change is one flash operation."""

    def __init__(self, fs: FileStore) -> None:
        self._fs = fs

    def _image(self) -> bytes:
        return self._fs.read(DCT_FILE) or b""

    def slots(self) -> list[ModuleSlot]:
        """All five slots."""
        return decode_slots(self._image())

    def _write(self, slots: list[ModuleSlot]) -> None:
        self._fs.write(DCT_FILE, encode_slots(self._image(), slots))

    def add_pending(self, slot: ModuleSlot) -> int | None:
        """``FLASH_AddToNextAvailableModulesSlot``: the first update slot not pending.

        Returns the slot index, or None when all four are taken (nothing written).
        """
        slots = self.slots()
        for i in range(FACTORY_SLOT + 1, SLOT_COUNT):
            if not slots[i].pending:
                slots[i] = replace(slot, magic=SlotMagic.PENDING)
                self._write(slots)
                return i
        return None

    def clear(self, index: int) -> None:
        """Set one slot's magic to 0xFFFF (the bootloader after a copy or a failed check)."""
        slots = self.slots()
        slots[index] = EMPTY_SLOT
        self._write(slots)

    def clear_update_slots(self) -> bool:
        """``FLASH_Begin``: empty slots 1–4 (one operation, only if any is in use)."""
        slots = self.slots()
        if all(s == EMPTY_SLOT for s in slots[FACTORY_SLOT + 1 :]):
            return False
        self._write([slots[FACTORY_SLOT]] + [EMPTY_SLOT] * (SLOT_COUNT - 1))
        return True
