"""What happens at boot: the bootloader applies staged slots, the system checks the app.

* :class:`Bootloader` is ``FLASH_UpdateModules`` (``shared/reference/particle.md`` §3.3):
  for each DCT slot with magic 0xABCD (bootloader modules last) verify the source,
  then erase the destination and copy (or inflate), and only then clear the slot, so a
  power loss mid-copy makes the next boot redo it from the intact OTA region. A slot
  that fails verification is cleared and its destination left untouched.
* :func:`find_user_part` and :func:`user_part_valid` are the system's view of the
  application at boot (§3.4: CRC and dependencies, else safe mode).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Final

from bluemule.emulator.dct import Dct, ModuleSlot, SlotFlag
from bluemule.emulator.flash import Flash
from bluemule.emulator.layout import SECTOR_SIZE, Bounds, FlashDevice, FlashLayout
from bluemule.emulator.validation import (
    InstalledModule,
    dependencies_valid,
    module_info_offset,
)
from bluemule.image import (
    DynamicLocationExtension,
    ImageError,
    Module,
    ModuleFunction,
    ModulePrefix,
    decompress_module,
    parse_module,
    read_compressed_header,
)
from bluemule.image.extensions import decode_extensions

_PREFIX_SIZE: Final = 24
_CRC_SIZE: Final = 4
_SUFFIX_BASE_SIZE: Final = 36
_HEAD: Final = 0x200 + _PREFIX_SIZE

Reader = Callable[[int, int], bytes | None]
"""Reads ``length`` bytes at an absolute internal-flash address; None where not backed."""


def verify_slot(  # noqa: PLR0911 - one return per check, like verify_module
    slot: ModuleSlot, source: bytes | None, layout: FlashLayout
) -> Module | None:
    """``verify_module`` of the bootloader's ``FLASH_CopyMemory`` (§3.3). Pure.

    ``source`` is the slot's ``length`` bytes read from its source address (None when
    that range is not in the OTA region). Checks: address ranges; platform ==
    PLATFORM_ID (unless a resource); source length ≥ module length + 4; function ==
    the slot's; module_start_address == destination; CRC-32 of the source; and the
    destination (inflated size for a compressed module) within the module's bounds.
    Returns the parsed source module, or None when any check fails.
    """
    if source is None or len(source) != slot.length:
        return None
    at = module_info_offset(source[:_HEAD], layout.platform.mcu)
    if len(source) < at + _PREFIX_SIZE:
        return None
    p = ModulePrefix.unpack(source, at)
    length = p.end_address - p.start_address + _CRC_SIZE
    if length <= 0 or length > len(source):
        return None
    if p.function != ModuleFunction.RESOURCE and p.platform_id != layout.platform_id:
        return None
    if slot.flags & SlotFlag.VERIFY_FUNCTION and p.function != slot.function:
        return None
    if (
        slot.flags & SlotFlag.VERIFY_DESTINATION_IS_START_ADDRESS
        and p.start_address != slot.destination_address
    ):
        return None
    data = source[:length]
    if zlib.crc32(data[:-_CRC_SIZE]) != int.from_bytes(data[-_CRC_SIZE:], "big"):
        return None
    bounds = layout.bounds_for(p.function, p.index)
    if bounds is None or slot.destination_device != bounds.device:
        return None
    try:
        module = parse_module(data)
        size = read_compressed_header(module).original_size if module.is_compressed else length
    except ImageError:
        return None
    dest = slot.destination_address
    if not (bounds.start <= dest and dest + size <= bounds.end):
        return None
    return module


def destination_image(module: Module, flags: int) -> bytes:
    """The bytes the bootloader writes: inflated if COMPRESSED, without the prefix if
    DROP_MODULE_INFO (§1.3, §1.10).

    Raises:
        ImageError: the Deflate stream is bad (the bootloader has already erased).
    """
    image = decompress_module(module) if flags & SlotFlag.COMPRESSED else module.data
    if flags & SlotFlag.DROP_MODULE_INFO and not flags & SlotFlag.COMPRESSED:
        image = image[module.prefix_offset + module.prefix_size :]
    return image


class Bootloader:
    """``FLASH_UpdateModules`` over the emulated flash.

    Args:
        layout: the platform layout.
        flash: flash with ``"ota"`` and ``"user"`` regions.
        dct: the slot table.
        install_record: records a system part, bootloader or radio stack (their bytes
            are not emulated); must be one flash operation.
    """

    def __init__(
        self,
        layout: FlashLayout,
        flash: Flash,
        dct: Dct,
        install_record: Callable[[InstalledModule], None],
    ) -> None:
        self._layout = layout
        self._flash = flash
        self._dct = dct
        self._install_record = install_record

    def _read_source(self, slot: ModuleSlot) -> bytes | None:
        where = self._flash.locate(slot.source_device, slot.source_address, slot.length)
        if where is None or where[0] != "ota":
            return None
        return self._flash.read(where[0], where[1], slot.length)

    def run(self) -> list[int]:
        """Apply every pending slot; returns the indexes of the slots applied."""
        slots = list(enumerate(self._dct.slots()))
        pending = [(i, s) for i, s in slots if s.pending]
        pending.sort(key=lambda item: item[1].function == ModuleFunction.BOOTLOADER)
        return [i for i, slot in pending if self._apply(i, slot)]

    def _apply(self, index: int, slot: ModuleSlot) -> bool:
        module = verify_slot(slot, self._read_source(slot), self._layout)
        if module is None:
            self._dct.clear(index)
            return False
        if module.function == ModuleFunction.USER_PART:
            copied = self._copy_user_part(slot, module)
        else:
            copied = self._record(slot, module)
        self._dct.clear(index)
        return copied

    def _record(self, slot: ModuleSlot, module: Module) -> bool:
        try:
            image = destination_image(module, slot.flags)
            prefix = parse_module(image).prefix if slot.flags & SlotFlag.COMPRESSED else None
        except ImageError:
            return False
        self._install_record(InstalledModule.of(prefix or module.prefix))
        return True

    def _copy_user_part(self, slot: ModuleSlot, module: Module) -> bool:
        size = (
            read_compressed_header(module).original_size
            if slot.flags & SlotFlag.COMPRESSED
            else len(module.data)
        )
        where = self._flash.locate(FlashDevice.INTERNAL, slot.destination_address, size)
        if where is None or where[0] != "user":
            return False
        region, offset = where
        self._flash.erase_range(region, offset, size)
        try:
            image = destination_image(module, slot.flags)
        except ImageError:
            return False  # destination already erased: the device boots into safe mode
        self._program(region, offset, image)
        self._invalidate_legacy(module, offset, len(image))
        return True

    def _program(self, region: str, offset: int, image: bytes) -> None:
        """Program in pieces that end on sector boundaries (one operation each)."""
        pos = 0
        while pos < len(image):
            room = SECTOR_SIZE - (offset + pos) % SECTOR_SIZE
            self._flash.program(region, offset + pos, image[pos : pos + room])
            pos += room

    def _invalidate_legacy(self, module: Module, offset: int, length: int) -> None:
        """A 256 KB app must not leave an older legacy 128 KB app valid at 0xD4000: the 3.1+
        flow erases 4 KB there (§3.6). Done here, before the slot is cleared."""
        window = self._layout.user_window
        current = self._layout.default_user_part
        if module.prefix.index != current.index:
            return
        for bounds in self._layout.user_parts:
            if bounds == current or bounds.grows_left:
                continue
            legacy = bounds.start - window.start
            if offset <= legacy < offset + length:
                continue  # the copy itself overwrote it
            if self._flash.read("user", legacy, SECTOR_SIZE) != b"\xff" * SECTOR_SIZE:
                self._flash.erase_sector("user", legacy)


def _valid_app(data: bytes | None, bounds: Bounds, layout: FlashLayout) -> Module | None:
    if data is None:
        return None
    try:
        module = parse_module(data)
    except ImageError:
        return None
    p = module.prefix
    ok = (
        module.crc_ok
        and module.prefix_offset == 0
        and p.function == ModuleFunction.USER_PART
        and p.index == bounds.index
        and p.platform_id == layout.platform_id
        and not module.is_compressed
    )
    return module if ok else None


def _fixed_start(read: Reader, bounds: Bounds, layout: FlashLayout) -> Module | None:
    head = read(bounds.start, _PREFIX_SIZE)
    if head is None:
        return None
    p = ModulePrefix.unpack(head)
    length = p.end_address - p.start_address + _CRC_SIZE
    if p.start_address != bounds.start or not 0 < length <= bounds.length:
        return None
    return _valid_app(read(bounds.start, length), bounds, layout)


def _grows_left(  # noqa: PLR0911 - one return per check
    read: Reader, bounds: Bounds, layout: FlashLayout
) -> Module | None:
    """RTL872x: the suffix ends at the fixed end; its DYNAMIC_LOCATION gives the start."""
    base = read(bounds.end - _CRC_SIZE - _SUFFIX_BASE_SIZE, _SUFFIX_BASE_SIZE)
    if base is None:
        return None
    (size,) = struct.unpack_from("<H", base, _SUFFIX_BASE_SIZE - 2)
    if not _SUFFIX_BASE_SIZE < size < bounds.length:
        return None
    ext_start = bounds.end - _CRC_SIZE - size
    exts_data = read(ext_start, size - _SUFFIX_BASE_SIZE)
    if exts_data is None:
        return None
    try:
        exts, _ = decode_extensions(exts_data, 0, len(exts_data))
    except ImageError:
        return None
    location = next((e for e in exts if isinstance(e, DynamicLocationExtension)), None)
    if location is None:
        return None
    start = location.module_start_address
    if not bounds.start <= start < ext_start:
        return None
    module = _valid_app(read(start, bounds.end - start), bounds, layout)
    if module is None or module.prefix.start_address != start:
        return None
    return module


def find_user_part(read: Reader, layout: FlashLayout) -> Module | None:
    """The installed application whose CRC-32 is valid, in boot precedence order (Boron:
    the legacy 128 KB slot first, §3.6), or None (then the device is in safe mode, §3.4)."""
    for bounds in layout.user_parts:
        find = _grows_left if bounds.grows_left else _fixed_start
        module = find(read, bounds, layout)
        if module is not None:
            return module
    return None


def user_part_valid(module: Module, installed: list[InstalledModule]) -> bool:
    """``HAL_Core_Validate_User_Module``'s dependency half: dep1/dep2 against the installed
    system modules, not optional this time (§1.2, §3.4)."""
    return dependencies_valid(module.prefix, installed, user_optional=False, full=False)
