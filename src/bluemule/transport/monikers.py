"""Target monikers shared by the CLI and the relay.

==============================  =====================================================
``emu:DIR``                     an emulated device whose state lives in ``DIR``, on the
                                in-process virtual link
``bumble:TRANSPORT[@ADDRESS]``  a real controller opened by Bumble (``usb:0``,
                                ``serial:/dev/ttyACM0``, ``tcp-client:host:port``,
                                ``hci-socket:0``, …); with ``@ADDRESS`` connect to that
                                device, without it scan for the bluemule service
``ble:ADDRESS``                 the OS Bluetooth stack through bleak; ``ADDRESS`` is a
                                MAC address, or a CoreBluetooth UUID on macOS
==============================  =====================================================

Addresses are returned upper-case (MAC) or lower-case (UUID).
"""

from __future__ import annotations

import re
import uuid as _uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUMBLE_TRANSPORT_SCHEMES",
    "BleTarget",
    "BumbleTarget",
    "EmulatorTarget",
    "MonikerError",
    "Target",
    "parse_target",
]

BUMBLE_TRANSPORT_SCHEMES = frozenset(
    {
        "serial",
        "udp",
        "tcp-client",
        "tcp-server",
        "ws-client",
        "ws-server",
        "pty",
        "file",
        "vhci",
        "hci-socket",
        "usb",
        "pyusb",
        "android-emulator",
        "android-netsim",
        "unix",
        "unix-client",
        "unix-server",
    }
)
"""Schemes ``bumble.transport.open_transport`` accepts (Bumble 0.0.236)."""

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


class MonikerError(ValueError):
    """A target moniker that cannot be parsed; the message says what is expected."""


@dataclass(frozen=True)
class EmulatorTarget:
    """``emu:DIR``."""

    directory: Path

    def __str__(self) -> str:
        return f"emu:{self.directory}"


@dataclass(frozen=True)
class BumbleTarget:
    """``bumble:TRANSPORT[@ADDRESS]``."""

    transport: str
    address: str | None = None

    def __str__(self) -> str:
        suffix = "" if self.address is None else f"@{self.address}"
        return f"bumble:{self.transport}{suffix}"


@dataclass(frozen=True)
class BleTarget:
    """``ble:ADDRESS``."""

    address: str

    def __str__(self) -> str:
        return f"ble:{self.address}"


Target = EmulatorTarget | BumbleTarget | BleTarget

_USAGE = "expected emu:DIR, bumble:TRANSPORT[@ADDRESS] or ble:ADDRESS"


def _mac(text: str) -> str | None:
    if _MAC.match(text):
        return text.replace("-", ":").upper()
    return None


def _ble_address(text: str, moniker: str) -> str:
    if mac := _mac(text):
        return mac
    try:
        return str(_uuid.UUID(text))
    except ValueError:
        raise MonikerError(
            f"{moniker!r}: {text!r} is neither a MAC address (AA:BB:CC:DD:EE:FF) "
            "nor a CoreBluetooth UUID"
        ) from None


def _bumble(rest: str, moniker: str) -> BumbleTarget:
    transport, at, address_text = rest.rpartition("@")
    if not at:
        transport, address_text = rest, ""
    address: str | None = None
    if at:
        address = _mac(address_text)
        if address is None:
            raise MonikerError(
                f"{moniker!r}: the device address after '@' must look like "
                f"AA:BB:CC:DD:EE:FF, got {address_text!r}"
            )
    if not transport:
        raise MonikerError(f"{moniker!r}: missing the Bumble transport, e.g. bumble:usb:0")
    scheme = transport.split(":", 1)[0]
    if scheme not in BUMBLE_TRANSPORT_SCHEMES:
        known = ", ".join(sorted(BUMBLE_TRANSPORT_SCHEMES))
        raise MonikerError(f"{moniker!r}: unknown Bumble transport {scheme!r} (known: {known})")
    return BumbleTarget(transport, address)


def parse_target(moniker: str) -> Target:
    """Parse a target moniker; raises :class:`MonikerError` with the reason."""
    kind, colon, rest = moniker.strip().partition(":")
    if not colon:
        raise MonikerError(f"{moniker!r}: no scheme; {_USAGE}")
    kind = kind.lower()
    if kind == "emu":
        if not rest:
            raise MonikerError(f"{moniker!r}: missing the emulator directory, e.g. emu:./dev1")
        return EmulatorTarget(Path(rest))
    if kind == "bumble":
        return _bumble(rest, moniker)
    if kind == "ble":
        if not rest:
            raise MonikerError(f"{moniker!r}: missing the device address, e.g. ble:AA:BB:…")
        return BleTarget(_ble_address(rest, moniker))
    raise MonikerError(f"{moniker!r}: unknown scheme {kind!r}; {_USAGE}")
