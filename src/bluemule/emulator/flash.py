"""NOR flash with numbered operations, power-loss injection and write-through files.

Each backed region (OTA region, user-part window) is a file in ``<state>/flash/``
holding the region's bytes. NOR rules (``shared/reference/particle.md`` §3.6: 4 KB
sectors on both MCUs): erasing sets a whole 4 KB sector to 0xFF; programming can only
clear bits (new = old AND data), so data written over unerased bytes comes out
corrupted, as on the chip.

Every sector erase, every program call and every file-system commit (see
:mod:`bluemule.emulator.storage`) is one numbered *flash operation*. Numbers start
at 0 for each :class:`Flash` object; :attr:`Flash.ops` is how many have started, so
the next one is number ``ops``. :meth:`Flash.power_loss_at` arms a fault: that
operation is torn (an erase erases only the first half of its sector, a program writes
only the first half of its bytes, a file-system commit does not happen), then
:class:`~bluemule.emulator.errors.PowerLoss` is raised and the device stays off until
:meth:`Flash.power_on`. Writes go straight to the file (no buffering between
operations), so another process opening the state directory sees the same bits; the
power state is kept in a marker file for the same reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bluemule.emulator.errors import PoweredOff, PowerLoss, StateDirError, UsageError
from bluemule.emulator.layout import SECTOR_SIZE, Area

ERASED: Final = 0xFF
_OFF_MARKER: Final = "powered-off"


@dataclass(frozen=True)
class _Watch:
    region: str
    start: int
    end: int
    callback: Callable[[], None]


def nor_program(old: bytes, data: bytes) -> bytes:
    """What a NOR program of ``data`` over ``old`` leaves: bits can only go from 1 to 0."""
    width = len(data)
    return (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(
        width, "little"
    )


class Flash:
    """The emulated device's flash regions and power supply.

    Args:
        directory: where the region files live (``<state>/flash``).
        regions: region name → the :class:`Area` it backs.
        sleep: called with ``seconds_per_op`` before every operation once :meth:`slow`
            has set a delay (inject a fake to keep tests fast).
    """

    def __init__(
        self,
        directory: Path,
        regions: Mapping[str, Area],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dir = directory
        self._regions = dict(regions)
        for name, area in self._regions.items():
            path = self.path(name)
            if not path.is_file() or path.stat().st_size != area.length:
                raise StateDirError(f"flash region file {path} is missing or has the wrong size")
        self._ops = 0
        self._fail_at: int | None = None
        self._delay = 0.0
        self._sleep = sleep
        self._watches: list[_Watch] = []

    @staticmethod
    def format(directory: Path, regions: Mapping[str, Area]) -> None:
        """Create erased region files (manufacturing: not a flash operation)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, area in regions.items():
            (directory / f"{name}.bin").write_bytes(bytes([ERASED]) * area.length)
        (directory / _OFF_MARKER).unlink(missing_ok=True)

    # -- geometry -------------------------------------------------------------------------

    def path(self, region: str) -> Path:
        """File backing ``region``."""
        return self._dir / f"{region}.bin"

    def area(self, region: str) -> Area:
        """The flash area ``region`` backs."""
        try:
            return self._regions[region]
        except KeyError:
            raise UsageError(f"no flash region {region!r}") from None

    def locate(self, device: int, address: int, length: int) -> tuple[str, int] | None:
        """(region, offset) holding ``[address, address + length)`` of ``device``, if backed."""
        for name, area in self._regions.items():
            if area.contains(device, address, length):
                return name, address - area.start
        return None

    # -- power and fault injection --------------------------------------------------------

    @property
    def ops(self) -> int:
        """Flash operations started so far by this object; the next one has this number."""
        return self._ops

    @property
    def powered(self) -> bool:
        """Whether the device has power."""
        return not (self._dir / _OFF_MARKER).exists()

    @property
    def armed_fault(self) -> int | None:
        """The operation number that will lose power, if one is armed."""
        return self._fail_at

    def power_loss_at(self, op: int | None) -> None:
        """Make operation number ``op`` lose power (None disarms)."""
        if op is not None and op < self._ops:
            raise UsageError(f"operation {op} has already happened (next is {self._ops})")
        self._fail_at = op

    def slow(self, seconds_per_op: float, *, sleep: Callable[[float], None] | None = None) -> None:
        """Sleep ``seconds_per_op`` before every operation (0 turns it off)."""
        if seconds_per_op < 0:
            raise UsageError("seconds_per_op must not be negative")
        self._delay = seconds_per_op
        if sleep is not None:
            self._sleep = sleep

    def power_off(self) -> None:
        """Cut power between operations (nothing is torn)."""
        (self._dir / _OFF_MARKER).touch()

    def power_on(self) -> None:
        """Restore power (the device then boots; see ``EmulatedDevice.power_on``)."""
        (self._dir / _OFF_MARKER).unlink(missing_ok=True)

    def require_power(self) -> None:
        """Raise :class:`PoweredOff` unless the device has power."""
        if not self.powered:
            raise PoweredOff("the device is off; call power_on()")

    def watch(self, region: str, start: int, end: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` before any erase or program touching ``region[start:end)``
        (also when that operation is torn). Used for the Boron asset/OTA overlap."""
        self.area(region)
        self._watches.append(_Watch(region, start, end, callback))

    def _begin(self, region: str, offset: int, length: int) -> tuple[int, bool]:
        self.require_power()
        number = self._ops
        self._ops += 1
        if self._delay > 0:
            self._sleep(self._delay)
        for w in self._watches:
            if w.region == region and offset < w.end and offset + length > w.start:
                w.callback()
        torn = self._fail_at == number
        if torn:
            self._fail_at = None
        return number, torn

    def _lose_power(self, number: int, description: str) -> PowerLoss:
        self.power_off()
        return PowerLoss(number, description)

    # -- byte access -----------------------------------------------------------------------

    def _check(self, region: str, offset: int, length: int) -> None:
        area = self.area(region)
        if offset < 0 or length < 0 or offset + length > area.length:
            raise UsageError(
                f"{region}[{offset:#x}:{offset + length:#x}] is outside the region "
                f"({area.length:#x} bytes)"
            )

    def _pread(self, region: str, offset: int, length: int) -> bytes:
        fd = os.open(self.path(region), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _pwrite(self, region: str, offset: int, data: bytes) -> None:
        fd = os.open(self.path(region), os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def read(self, region: str, offset: int, length: int) -> bytes:
        """Read bytes (not a flash operation, but needs power)."""
        self.require_power()
        self._check(region, offset, length)
        return self._pread(region, offset, length)

    def erase_sector(self, region: str, offset: int) -> None:
        """Erase the 4 KB sector at ``offset`` (one operation)."""
        self._check(region, offset, SECTOR_SIZE)
        if offset % SECTOR_SIZE:
            raise UsageError(f"erase at {offset:#x} is not sector aligned")
        number, torn = self._begin(region, offset, SECTOR_SIZE)
        length = SECTOR_SIZE // 2 if torn else SECTOR_SIZE
        self._pwrite(region, offset, bytes([ERASED]) * length)
        if torn:
            raise self._lose_power(number, f"erase {region}[{offset:#x}]")

    def erase_range(self, region: str, offset: int, length: int) -> None:
        """Erase every sector overlapping ``[offset, offset + length)`` (one op per sector)."""
        first = offset - offset % SECTOR_SIZE
        for sector in range(first, offset + length, SECTOR_SIZE):
            self.erase_sector(region, sector)

    def program(self, region: str, offset: int, data: bytes) -> None:
        """Program ``data`` at ``offset`` (one operation); bits only go from 1 to 0."""
        self._check(region, offset, len(data))
        if not data:
            return
        number, torn = self._begin(region, offset, len(data))
        part = data[: len(data) // 2] if torn else data
        if part:
            old = self._pread(region, offset, len(part))
            self._pwrite(region, offset, nor_program(old, part))
        if torn:
            raise self._lose_power(number, f"program {region}[{offset:#x}:+{len(data)}]")

    def commit(self, description: str, apply: Callable[[], None]) -> None:
        """One file-system commit as one operation: ``apply`` runs unless power is lost."""
        self.require_power()
        number = self._ops
        self._ops += 1
        if self._delay > 0:
            self._sleep(self._delay)
        if self._fail_at == number:
            self._fail_at = None
            raise self._lose_power(number, description)
        apply()

    def install(self, region: str, offset: int, data: bytes) -> None:
        """Write bytes as a programmer would at manufacturing (not an operation, no NOR)."""
        self._check(region, offset, len(data))
        self._pwrite(region, offset, data)
