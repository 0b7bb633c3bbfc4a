"""The control channel's GATT service and advertisement (particle.md §5.1).

Shared by the phone side (:mod:`bluemule.particle_ctrl.stream`) and any emulated device
that serves the channel: :func:`control_service_spec` is a
:class:`~bluemule.transport.base.GattServerSpec` for a Bumble peripheral.
"""

from __future__ import annotations

import struct
from typing import Final

from bluemule.transport.advertising import iter_ad_structures
from bluemule.transport.base import CharacteristicSpec, CharProperty, GattServerSpec

SERVICE_UUID: Final = "6fa90001-5c4e-48a8-94f4-8030546f36fc"
"""The control-request service (primary)."""
VERSION_UUID: Final = "6fa90002-5c4e-48a8-94f4-8030546f36fc"
"""READ: one byte, the protocol version (:data:`PROTOCOL_VERSION`)."""
TX_UUID: Final = "6fa90003-5c4e-48a8-94f4-8030546f36fc"
"""NOTIFY, device → phone. The device sends only once the phone enabled the CCCD."""
RX_UUID: Final = "6fa90004-5c4e-48a8-94f4-8030546f36fc"
"""WRITE and WRITE WITHOUT RESPONSE, phone → device."""

PROTOCOL_VERSION: Final = 0x02
"""Value of the version characteristic Device OS serves."""

PARTICLE_COMPANY_ID: Final = 0x0662
"""Bluetooth SIG company identifier in Particle's manufacturer data."""

SETUP_CODE_LENGTH: Final = 6

CONTROL_CHARACTERISTICS: Final = (
    CharacteristicSpec(VERSION_UUID, CharProperty.READ),
    CharacteristicSpec(TX_UUID, CharProperty.NOTIFY),
    CharacteristicSpec(RX_UUID, CharProperty.WRITE | CharProperty.WRITE_WITHOUT_RESPONSE),
)

_AD_COMPLETE_NAME: Final = 0x09
_AD_MANUFACTURER: Final = 0xFF


def setup_advertising_data(platform_name: str, platform_id: int, setup_code: str) -> bytes:
    """Device OS's listening-mode advertisement besides the flags (§5.1).

    The complete local name ``<Platform>-<setup code>`` and manufacturer data
    ``u16 0x0662 ‖ u16 platform id ‖ 6-character setup code`` (the last six characters
    of the serial number); the 128-bit service UUID goes in the scan response.
    """
    if len(setup_code) != SETUP_CODE_LENGTH or not setup_code.isascii():
        raise ValueError(f"setup code {setup_code!r} is not 6 ASCII characters")
    name = f"{platform_name}-{setup_code}".encode()
    manufacturer = struct.pack("<HH", PARTICLE_COMPANY_ID, platform_id) + setup_code.encode()
    return (
        bytes((len(name) + 1, _AD_COMPLETE_NAME))
        + name
        + bytes((len(manufacturer) + 1, _AD_MANUFACTURER))
        + manufacturer
    )


def decode_setup_manufacturer_data(manufacturer: bytes) -> tuple[int, str] | None:
    """``(platform id, setup code)`` from Particle's manufacturer data (company id first),
    the inverse of what :func:`setup_advertising_data` writes; None for anything else."""
    if len(manufacturer) != 4 + SETUP_CODE_LENGTH:
        return None
    company, platform_id = struct.unpack_from("<HH", manufacturer)
    code = manufacturer[4:]
    if company != PARTICLE_COMPANY_ID or not code.isascii() or not code.isalnum():
        return None
    return platform_id, code.decode("ascii").upper()


def find_setup_advertisement(advertising_data: bytes) -> tuple[int, str] | None:
    """``(platform id, setup code)`` if an advertisement carries Particle's setup data."""
    for ad_type, payload in iter_ad_structures(advertising_data, strict=False):
        if ad_type == _AD_MANUFACTURER and (found := decode_setup_manufacturer_data(payload)):
            return found
    return None


def control_service_spec(
    *, device_name: str = "Particle", advertising_data: bytes = b""
) -> GattServerSpec:
    """The control service as Device OS registers it, the UUID in the scan response.

    ``advertising_data`` is typically :func:`setup_advertising_data`.
    """
    return GattServerSpec(
        service_uuid=SERVICE_UUID,
        characteristics=CONTROL_CHARACTERISTICS,
        device_name=device_name,
        advertising_data=advertising_data,
        service_uuid_in_scan_response=True,
    )
