"""NOR flash: bit rules, numbered operations, torn operations, persistence (flash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluemule.emulator import SECTOR_SIZE, Area, Flash, FlashDevice, PoweredOff, PowerLoss
from bluemule.emulator.errors import StateDirError, UsageError
from bluemule.emulator.flash import nor_program

REGIONS = {"r": Area(FlashDevice.INTERNAL, 0x1000, 2 * SECTOR_SIZE)}


def make_flash(tmp_path: Path, **kwargs: object) -> Flash:
    Flash.format(tmp_path / "flash", REGIONS)
    return Flash(tmp_path / "flash", REGIONS, **kwargs)  # type: ignore[arg-type]


def test_new_flash_is_erased(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    assert flash.read("r", 0, 2 * SECTOR_SIZE) == b"\xff" * (2 * SECTOR_SIZE)
    assert flash.ops == 0
    assert flash.powered


def test_program_can_only_clear_bits(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.program("r", 10, b"\x0f\xf0")
    flash.program("r", 10, b"\x3c\x3c")
    assert flash.read("r", 10, 2) == b"\x0c\x30"
    assert nor_program(b"\xff\x00", b"\x55\xff") == b"\x55\x00"


def test_erase_sets_a_whole_sector_to_ff(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.program("r", 0, b"\x00" * (2 * SECTOR_SIZE))
    flash.erase_sector("r", SECTOR_SIZE)
    assert flash.read("r", 0, SECTOR_SIZE) == b"\x00" * SECTOR_SIZE
    assert flash.read("r", SECTOR_SIZE, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE


def test_every_erase_program_and_commit_is_one_numbered_operation(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.erase_range("r", 100, SECTOR_SIZE)  # touches two sectors
    assert flash.ops == 2
    flash.program("r", 0, b"abc")
    flash.program("r", 0, b"")  # nothing to write: no operation
    done: list[int] = []
    flash.commit("note", lambda: done.append(1))
    assert flash.ops == 4
    assert done == [1]
    flash.read("r", 0, 3)
    assert flash.ops == 4


def test_torn_erase_erases_half_the_sector_and_powers_off(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.program("r", 0, b"\x00" * SECTOR_SIZE)
    flash.power_loss_at(flash.ops)
    with pytest.raises(PowerLoss) as info:
        flash.erase_sector("r", 0)
    assert info.value.op == 1
    assert "erase" in info.value.description
    assert not flash.powered
    with pytest.raises(PoweredOff):
        flash.read("r", 0, 1)
    with pytest.raises(PoweredOff):
        flash.program("r", 0, b"x")
    flash.power_on()
    half = SECTOR_SIZE // 2
    assert flash.read("r", 0, SECTOR_SIZE) == b"\xff" * half + b"\x00" * half
    assert flash.armed_fault is None


def test_torn_program_writes_only_its_first_half(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.power_loss_at(0)
    with pytest.raises(PowerLoss):
        flash.program("r", 0, b"\x00" * 8)
    flash.power_on()
    assert flash.read("r", 0, 8) == b"\x00" * 4 + b"\xff" * 4


def test_torn_commit_does_not_happen(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.power_loss_at(0)
    done: list[int] = []
    with pytest.raises(PowerLoss):
        flash.commit("write a file", lambda: done.append(1))
    assert done == []
    assert flash.ops == 1


def test_power_loss_at_refuses_the_past(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.program("r", 0, b"a")
    with pytest.raises(UsageError):
        flash.power_loss_at(0)
    flash.power_loss_at(5)
    flash.power_loss_at(None)
    assert flash.armed_fault is None


def test_slow_sleeps_before_every_operation_with_the_injected_sleep(tmp_path: Path) -> None:
    slept: list[float] = []
    flash = make_flash(tmp_path, sleep=slept.append)
    flash.program("r", 0, b"a")
    assert slept == []
    flash.slow(0.25)
    flash.program("r", 1, b"b")
    flash.erase_sector("r", 0)
    flash.commit("c", lambda: None)
    assert slept == [0.25, 0.25, 0.25]
    other: list[float] = []
    flash.slow(0.5, sleep=other.append)
    flash.program("r", 2, b"c")
    assert other == [0.5]
    with pytest.raises(UsageError):
        flash.slow(-1)


def test_writes_and_power_state_are_seen_by_a_new_object(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    flash.program("r", 7, b"\x12\x34")
    flash.power_off()
    again = Flash(tmp_path / "flash", REGIONS)
    assert not again.powered
    again.power_on()
    assert flash.powered
    assert again.read("r", 7, 2) == b"\x12\x34"


def test_watch_fires_for_operations_touching_the_range(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    hits: list[int] = []
    flash.watch("r", SECTOR_SIZE, 2 * SECTOR_SIZE, lambda: hits.append(flash.ops))
    flash.program("r", 0, b"x" * 16)
    flash.erase_sector("r", 0)
    assert hits == []
    flash.program("r", SECTOR_SIZE - 2, b"yyyy")
    flash.power_loss_at(flash.ops)
    with pytest.raises(PowerLoss):
        flash.erase_sector("r", SECTOR_SIZE)  # a torn operation still touched the range
    assert len(hits) == 2


def test_bad_arguments(tmp_path: Path) -> None:
    flash = make_flash(tmp_path)
    with pytest.raises(UsageError):
        flash.erase_sector("r", 100)
    with pytest.raises(UsageError):
        flash.program("r", 2 * SECTOR_SIZE - 1, b"ab")
    with pytest.raises(UsageError):
        flash.read("nope", 0, 1)
    assert flash.locate(FlashDevice.INTERNAL, 0x1000 + 5, 10) == ("r", 5)
    assert flash.locate(FlashDevice.SERIAL, 0x1000, 1) is None
    assert flash.locate(FlashDevice.INTERNAL, 0x1000 + 2 * SECTOR_SIZE - 1, 2) is None
    (tmp_path / "flash" / "r.bin").write_bytes(b"short")
    with pytest.raises(StateDirError):
        Flash(tmp_path / "flash", REGIONS)
