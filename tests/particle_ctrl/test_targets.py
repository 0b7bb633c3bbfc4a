"""Target monikers of ``bluemule particle`` and the platform in Particle's advertisement."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluemule.particle_ctrl.gatt import find_setup_advertisement, setup_advertising_data
from bluemule.particle_ctrl.targets import TcpTarget, parse_control_target
from bluemule.transport.monikers import BleTarget, BumbleTarget, EmulatorTarget, MonikerError


def test_monikers() -> None:
    assert parse_control_target("tcp:127.0.0.1:9010") == TcpTarget("127.0.0.1", 9010)
    assert str(parse_control_target("tcp:localhost:1")) == "tcp:localhost:1"
    assert parse_control_target("emu:./dev") == EmulatorTarget(Path("dev"))
    assert parse_control_target("bumble:usb:0") == BumbleTarget("usb:0")
    assert parse_control_target("ble:aa:bb:cc:dd:ee:ff") == BleTarget("AA:BB:CC:DD:EE:FF")


@pytest.mark.parametrize(
    ("moniker", "message"),
    [
        ("tcp:nohost", "expected tcp:HOST:PORT"),
        ("tcp:host:0", "expected tcp:HOST:PORT"),
        ("tcp:host:70000", "expected tcp:HOST:PORT"),
        ("tcp::9000", "expected tcp:HOST:PORT"),
        ("serial:/dev/x", "unknown scheme 'serial'; expected emu:DIR, bumble:"),
        ("nothing", "no scheme"),
        ("emu:", "missing the emulator directory"),
    ],
)
def test_bad_monikers_say_what_is_expected(moniker: str, message: str) -> None:
    with pytest.raises(MonikerError, match=message):
        parse_control_target(moniker)


def test_platform_from_listening_mode_advertising() -> None:
    boron = setup_advertising_data("Boron", 13, "ABC123")
    assert find_setup_advertisement(boron) == (13, "ABC123")
    assert find_setup_advertisement(setup_advertising_data("M-SoM", 35, "XYZ789")) == (35, "XYZ789")
    other_company = bytes([7, 0xFF, 0x59, 0x00, 13, 0, 0x41, 0x42])
    assert find_setup_advertisement(other_company) is None
    assert find_setup_advertisement(b"") is None
    assert find_setup_advertisement(b"\x05\xff\x62") is None  # truncated: no crash
