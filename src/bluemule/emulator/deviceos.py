"""Device OS's firmware-update API as a user application sees it.

``prepare_update`` / ``save_chunk`` / ``finish_update`` / ``cancel_update`` are
``Spark_Prepare_For_Firmware_Update``, ``Spark_Save_Firmware_Chunk`` and
``Spark_Finish_Firmware_Update`` (``shared/reference/particle.md`` §4.1) on top of
``FirmwareUpdate`` and the HAL (§3.1): the prepare erases the OTA region and clears the
staged DCT slots, chunks are programmed where they belong, and the finish validates the
module(s) in the OTA region (§3.5) and then stores an asset at once (§2.3) or stages
anything else in a DCT slot for the bootloader (§3.2, §3.3). The reset that Device OS
schedules after every applied finish is *not* performed: :attr:`Ram.reset_pending`
records it and the caller decides when to reset (the library runs with resets
disabled, §4.2).

The module checks are pure functions in :mod:`bluemule.emulator.validation`;
:class:`DeviceOs` adds the flash, DCT and asset-storage effects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bluemule.emulator.dct import Dct, ModuleSlot, SlotFlag
from bluemule.emulator.errors import DeviceOsError, SystemErrorCode
from bluemule.emulator.flash import Flash
from bluemule.emulator.layout import OTA_CHUNK_SIZE, FlashDevice, FlashLayout
from bluemule.emulator.storage import AssetStorage, validate_asset_module
from bluemule.emulator.validation import (
    FetchedModule,
    InstalledModule,
    fetch_modules,
    validate_modules,
)
from bluemule.image import ModuleFlag, ModuleFunction


@dataclass(frozen=True)
class OtaSession:
    """What ``Spark_Prepare_For_Firmware_Update`` reports in its descriptor (§4.1)."""

    size: int
    file_address: int
    """The OTA region's base address."""
    chunk_size: int = OTA_CHUNK_SIZE


Outcome = Literal["validated", "staged", "stored"]


@dataclass(frozen=True)
class UpdateModule:
    """One module of a finished update and what happened to it."""

    function: int
    index: int
    version: int
    offset: int
    length: int
    outcome: Outcome
    slot: int | None = None
    """DCT slot index for a staged module."""
    asset_name: str | None = None


@dataclass(frozen=True)
class UpdateResult:
    """Result of ``finish_update``: the Device OS return code and the modules handled."""

    error: SystemErrorCode | None
    validate_only: bool
    modules: tuple[UpdateModule, ...] = ()
    reset_pending: bool = False
    """Device OS scheduled a reset (every applied finish does, even a failed one, on the
    ``Spark_Finish_Firmware_Update`` path: §3.4); the emulator leaves it to the caller."""
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether Device OS returned 0."""
        return self.error is None

    def raise_for_error(self) -> None:
        """Raise :class:`DeviceOsError` if the finish failed."""
        if self.error is not None:
            raise DeviceOsError(self.error, self.message)


@dataclass
class Ram:
    """Volatile Device OS state: lost at every reset or power loss. Kept in a file only so
    another process can continue the same power cycle (writing it is not a flash op)."""

    mode: Literal["normal", "safe"] = "safe"
    update_size: int | None = None
    """Size of the open update (``FirmwareUpdate::updating_``), None when idle."""
    reset_pending: bool = False
    available: list[tuple[str, bytes]] | None = field(default_factory=list)
    """Assets (name, declared hash) valid at boot; None once the first store of this boot
    cleared the list (``availableAssets_.clear()``, §2.3)."""
    required: list[tuple[str, bytes]] = field(default_factory=list)
    """ASSET_DEPENDENCY (name, hash) of the installed application, read at boot."""
    listening: bool = False
    """Listening mode (blinking dark blue; the BLE control channel advertises, §5.2)."""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "mode": self.mode,
            "update_size": self.update_size,
            "reset_pending": self.reset_pending,
            "available": None
            if self.available is None
            else [[n, h.hex()] for n, h in self.available],
            "required": [[n, h.hex()] for n, h in self.required],
            "listening": self.listening,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Ram:
        """Inverse of :meth:`to_json`."""
        available = obj["available"]
        mode = obj["mode"]
        if mode not in ("normal", "safe"):
            raise ValueError(f"bad mode {mode!r}")
        return cls(
            mode=mode,
            update_size=None if obj["update_size"] is None else int(obj["update_size"]),
            reset_pending=bool(obj["reset_pending"]),
            available=None
            if available is None
            else [(str(n), bytes.fromhex(h)) for n, h in available],
            required=[(str(n), bytes.fromhex(h)) for n, h in obj["required"]],
            listening=bool(obj.get("listening", False)),
        )


class DeviceOs:
    """The update API over the emulated hardware.

    Args:
        layout: the platform's flash layout.
        flash: flash with an ``"ota"`` region.
        dct: the DCT slot table.
        assets: the asset file system.
        ram: volatile state (shared with the device object, which persists it).
        installed: returns the installed system modules (for dependency checks).
        save_ram: called after every change of ``ram``.
    """

    def __init__(
        self,
        *,
        layout: FlashLayout,
        flash: Flash,
        dct: Dct,
        assets: AssetStorage,
        ram: Ram,
        installed: Callable[[], list[InstalledModule]],
        save_ram: Callable[[], None],
    ) -> None:
        self._layout = layout
        self._flash = flash
        self._dct = dct
        self._assets = assets
        self._ram = ram
        self._installed = installed
        self._save_ram = save_ram

    @property
    def update_in_progress(self) -> bool:
        """Whether an update is open (prepared, not finished or cancelled)."""
        return self._ram.update_size is not None

    def _end_update(self) -> None:
        self._ram.update_size = None
        self._save_ram()

    def prepare_update(self, size: int) -> OtaSession:
        """``Spark_Prepare_For_Firmware_Update`` → ``FirmwareUpdate::startUpdate`` (§3.1).

        Clears DCT slots 1–4 (one operation, if any is set: a staged, unapplied module is
        discarded) and erases ``size`` bytes of the OTA region in 4 KB sectors (one
        operation each), then opens the update.

        Raises:
            DeviceOsError: INVALID_STATE while another update is open; OTA_INVALID_SIZE
                for 0 or more than the OTA region.
        """
        self._flash.require_power()
        if self._ram.update_size is not None:
            raise DeviceOsError(SystemErrorCode.INVALID_STATE, "an update is in progress")
        if size <= 0 or size > self._layout.ota.length:
            raise DeviceOsError(
                SystemErrorCode.OTA_INVALID_SIZE,
                f"{size} B; the OTA region holds {self._layout.ota.length} B",
            )
        self._dct.clear_update_slots()
        self._flash.erase_range("ota", 0, size)
        self._ram.update_size = size
        self._save_ram()
        return OtaSession(size, self._layout.ota.start)

    def save_chunk(self, offset: int, data: bytes) -> None:
        """``Spark_Save_Firmware_Chunk`` → ``FirmwareUpdate::saveChunk`` (§3.1).

        Programs ``data`` at ``offset`` of the OTA region (one operation); order is free.
        Device OS checks only the OTA region's bounds, not the prepared size.

        Raises:
            DeviceOsError: INVALID_STATE without an open update; FLASH_IO (and the update
                is cancelled) outside the OTA region.
        """
        self._flash.require_power()
        if self._ram.update_size is None:
            raise DeviceOsError(SystemErrorCode.INVALID_STATE, "no update in progress")
        if offset < 0 or offset + len(data) > self._layout.ota.length:
            self._end_update()
            raise DeviceOsError(
                SystemErrorCode.FLASH_IO,
                f"chunk at {offset} of {len(data)} B is outside the OTA region",
            )
        self._flash.program("ota", offset, bytes(data))

    def cancel_update(self) -> None:
        """``Spark_Finish_Firmware_Update(ERROR)``: abandon the open update, if any."""
        self._flash.require_power()
        if self._ram.update_size is not None:
            self._end_update()

    def finish_update(self, *, validate_only: bool = False) -> UpdateResult:
        """``Spark_Finish_Firmware_Update`` (§3.1, §3.5, §4.1).

        Validates the module(s) in the OTA region. ``validate_only`` stops there and the
        update stays open. Otherwise the update is closed and each module applied in
        order: an asset is stored now (:meth:`store_asset`), anything else is staged in
        the next free DCT slot (one operation) for the bootloader. The reset Device OS
        then schedules is reported in ``reset_pending``, not performed.

        Raises:
            DeviceOsError: INVALID_STATE without an open update (every other failure is
                returned in the result).
        """
        self._flash.require_power()
        if self._ram.update_size is None:
            raise DeviceOsError(SystemErrorCode.INVALID_STATE, "no update in progress")
        region = self._flash.read("ota", 0, self._layout.ota.length)
        try:
            modules = fetch_modules(region, self._layout, self._installed())
            validate_modules(modules)
        except DeviceOsError as exc:
            if not validate_only:
                self._ram.reset_pending = True
                self._end_update()
            return UpdateResult(exc.code, validate_only, (), not validate_only, exc.message)
        if validate_only:
            done = tuple(_describe(m, "validated") for m in modules)
            return UpdateResult(None, True, done)
        applied: list[UpdateModule] = []
        error: DeviceOsError | None = None
        try:
            for m in modules:
                if m.prefix.function == ModuleFunction.ASSET:
                    name = self.store_asset(m)
                    applied.append(_describe(m, "stored", asset_name=name))
                else:
                    applied.append(_describe(m, "staged", slot=self._stage(m)))
        except DeviceOsError as exc:
            error = exc
        self._ram.reset_pending = True
        self._end_update()
        code, message = (error.code, error.message) if error else (None, "")
        return UpdateResult(code, False, tuple(applied), True, message)

    def _stage(self, m: FetchedModule) -> int:
        """``FLASH_AddToNextAvailableModulesSlot`` with the flags ``HAL_FLASH_End`` uses."""
        flags = (
            SlotFlag.VERIFY_CRC
            | SlotFlag.VERIFY_DESTINATION_IS_START_ADDRESS
            | SlotFlag.VERIFY_FUNCTION
        )
        if m.flags & ModuleFlag.DROP_MODULE_INFO:
            flags |= SlotFlag.DROP_MODULE_INFO
        if m.flags & ModuleFlag.COMPRESSED:
            flags |= SlotFlag.COMPRESSED
        slot = ModuleSlot(
            source_device=self._layout.ota.device,
            destination_device=FlashDevice.INTERNAL,
            source_address=self._layout.ota.start + m.offset,
            destination_address=m.prefix.start_address,
            length=m.length,
            flags=int(flags),
            function=m.prefix.function,
            reserved=0,
        )
        index = self._dct.add_pending(slot)
        if index is None:
            raise DeviceOsError(SystemErrorCode.NO_MEMORY, "no module slot available")
        return index

    def store_asset(self, m: FetchedModule) -> str:
        """``AssetManager::storeAsset`` (§2.3): validate, clear unused assets (first store
        of a boot only), remount (a corrupt storage is formatted), remove a file of the
        same name, write the module. Each removal and the write is one operation.

        Returns the asset's name.

        Raises:
            DeviceOsError: BAD_DATA / NOT_ENOUGH_DATA for an invalid module,
                FILESYSTEM_CORRUPT when unused assets must be removed from a clobbered
                storage, FILESYSTEM_NOSPC when the module does not fit.
        """
        module = validate_asset_module(m.data)
        name = module.asset_name
        assert name is not None
        data = m.data
        safe = self._layout.ota_safe_length
        if safe is not None and m.offset + len(data) > safe:
            # The asset file system lives in the OTA tail: formatting it and writing the file
            # overwrite the module's own source bytes past the safe length while they are read.
            keep = max(0, safe - m.offset)
            data = data[:keep] + b"\xff" * (len(data) - keep)
        self._clear_unused_assets()
        self._ram.available = None
        self._save_ram()
        if self._assets.corrupt:
            self._assets.format()
        self._assets.remove(name)
        self._assets.write(name, data)
        return name

    def _clear_unused_assets(self) -> None:
        """``clearUnusedAssets``: delete every asset valid at boot that the installed
        application does not require (nothing once the boot's list has been cleared)."""
        if self._ram.available is None:
            return
        unused = [a for a in self._ram.available if a not in self._ram.required]
        if unused and self._assets.corrupt:
            raise DeviceOsError(SystemErrorCode.FILESYSTEM_CORRUPT, "asset storage is corrupt")
        for asset_name, _ in unused:
            self._assets.remove(asset_name)


def _describe(
    m: FetchedModule, outcome: Outcome, *, slot: int | None = None, asset_name: str | None = None
) -> UpdateModule:
    p = m.prefix
    return UpdateModule(
        p.function, p.index, p.module_version, m.offset, m.length, outcome, slot, asset_name
    )
