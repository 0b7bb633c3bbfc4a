"""Target moniker parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluemule.transport.monikers import (
    BleTarget,
    BumbleTarget,
    EmulatorTarget,
    MonikerError,
    Target,
    parse_target,
)


@pytest.mark.parametrize(
    ("moniker", "expected"),
    [
        ("emu:devices/boron-1", EmulatorTarget(Path("devices/boron-1"))),
        ("emu:/srv/x y", EmulatorTarget(Path("/srv/x y"))),
        ("EMU:dir", EmulatorTarget(Path("dir"))),
        ("bumble:usb:0", BumbleTarget("usb:0")),
        ("bumble:usb:[driver=rtk]0", BumbleTarget("usb:[driver=rtk]0")),
        (
            "bumble:hci-socket:0@c0:11:22:33:44:55",
            BumbleTarget("hci-socket:0", "C0:11:22:33:44:55"),
        ),
        ("bumble:serial:/dev/ttyACM0,1000000", BumbleTarget("serial:/dev/ttyACM0,1000000")),
        (
            "bumble:tcp-client:127.0.0.1:9000@F0-00-00-00-00-01",
            BumbleTarget("tcp-client:127.0.0.1:9000", "F0:00:00:00:00:01"),
        ),
        ("bumble:android-netsim", BumbleTarget("android-netsim")),
        (" ble:aa:bb:cc:dd:ee:ff ", BleTarget("AA:BB:CC:DD:EE:FF")),
        (
            "ble:1F2E3D4C-5B6A-7980-8A9B-ACBDCEDFE0F1",
            BleTarget("1f2e3d4c-5b6a-7980-8a9b-acbdcedfe0f1"),
        ),
    ],
)
def test_parses(moniker: str, expected: Target) -> None:
    assert parse_target(moniker) == expected


@pytest.mark.parametrize(
    ("moniker", "message"),
    [
        ("", "no scheme"),
        ("usb0", "no scheme"),
        ("wifi:foo", "unknown scheme 'wifi'"),
        ("emu:", "missing the emulator directory"),
        ("bumble:", "missing the Bumble transport"),
        ("bumble:@C0:11:22:33:44:55", "missing the Bumble transport"),
        ("bumble:bluetooth:0", "unknown Bumble transport 'bluetooth'"),
        ("bumble:usb:0@nope", "after '@' must look like"),
        ("bumble:usb:0@", "after '@' must look like"),
        ("ble:", "missing the device address"),
        ("ble:AA:BB:CC:DD:EE", "neither a MAC address"),
        ("ble:AA:BB-CC:DD:EE:FF", "neither a MAC address"),
    ],
)
def test_rejects(moniker: str, message: str) -> None:
    with pytest.raises(MonikerError, match=message):
        parse_target(moniker)


def test_round_trip_and_error_type() -> None:
    for text in (
        "emu:d",
        "bumble:usb:0@C0:11:22:33:44:55",
        "bumble:usb:0",
        "ble:AA:BB:CC:DD:EE:FF",
    ):
        assert str(parse_target(text)) == text
    assert issubclass(MonikerError, ValueError)
