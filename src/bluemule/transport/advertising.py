"""Advertising payloads (AD structures): building bluemule's, parsing received ones.

Transport-independent; the Bumble server advertises :func:`advertising_payloads` and the
scanners report :func:`service_uuids` and :func:`local_name` of what they receive.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Iterator

from bluemule.transport._common import normalize_uuid
from bluemule.transport.base import GattServerSpec

__all__ = [
    "LEGACY_ADVERTISING_MAX",
    "advertising_payloads",
    "iter_ad_structures",
    "local_name",
    "service_uuids",
]

LEGACY_ADVERTISING_MAX = 31
"""Bytes in a legacy advertising (or scan response) PDU payload."""

_AD_FLAGS = 0x01
_AD_UUID16 = (0x02, 0x03)
_AD_UUID32 = (0x04, 0x05)
_AD_UUID128 = (0x06, 0x07)
_AD_COMPLETE_UUID128 = 0x07
_AD_SHORT_NAME = 0x08
_AD_COMPLETE_NAME = 0x09
_FLAGS_GENERAL_DISCOVERABLE_LE_ONLY = 0x06


def iter_ad_structures(data: bytes, *, strict: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield ``(ad_type, payload)`` of each AD structure; stops at a ``0`` length byte.

    With ``strict`` a truncated structure raises ``ValueError``; otherwise it ends the walk.
    """
    offset = 0
    while offset < len(data):
        length = data[offset]
        if length == 0:
            return
        end = offset + 1 + length
        if end > len(data):
            if strict:
                raise ValueError(f"AD structure at offset {offset} overruns the data")
            return
        yield data[offset + 1], data[offset + 2 : end]
        offset = end


def _uuid128_le(value: str) -> bytes:
    return _uuid.UUID(normalize_uuid(value)).bytes[::-1]


def advertising_payloads(spec: GattServerSpec) -> tuple[bytes, bytes]:
    """The legacy advertising and scan-response payloads for ``spec``.

    Advertising data: flags, the complete list of 128-bit service UUIDs (the service),
    ``spec.advertising_data``, and the complete local name when it still fits. Otherwise
    the name goes to the scan response (shortened to fit). Legacy PDUs carry 31 bytes and
    flags plus the UUID take 21, so ``advertising_data`` may use at most 10 bytes.
    """
    list(iter_ad_structures(spec.advertising_data))  # validate
    flags = bytes((2, _AD_FLAGS, _FLAGS_GENERAL_DISCOVERABLE_LE_ONLY))
    service = bytes((17, _AD_COMPLETE_UUID128)) + _uuid128_le(spec.service_uuid)
    if spec.service_uuid_in_scan_response:
        adv = flags + spec.advertising_data
        if len(adv) > LEGACY_ADVERTISING_MAX:
            raise ValueError(
                f"advertising_data is {len(spec.advertising_data)} bytes; "
                f"legacy advertising leaves {LEGACY_ADVERTISING_MAX - 3}"
            )
        return adv, service
    adv = flags + service + spec.advertising_data
    if len(adv) > LEGACY_ADVERTISING_MAX:
        room = LEGACY_ADVERTISING_MAX - len(flags) - len(service)
        raise ValueError(
            f"advertising_data is {len(spec.advertising_data)} bytes; legacy advertising "
            f"leaves {room} after the flags and the 128-bit service UUID"
        )
    name = spec.device_name.encode()
    if not name:
        return adv, b""
    if len(adv) + 2 + len(name) <= LEGACY_ADVERTISING_MAX:
        return adv + bytes((len(name) + 1, _AD_COMPLETE_NAME)) + name, b""
    room = LEGACY_ADVERTISING_MAX - 2
    kind = _AD_COMPLETE_NAME if len(name) <= room else _AD_SHORT_NAME
    name = name[:room]
    return adv, bytes((len(name) + 1, kind)) + name


def service_uuids(data: bytes) -> tuple[str, ...]:
    """Service UUIDs listed in AD structures (16- and 32-bit ones expanded), in order."""
    found: list[str] = []
    for ad_type, payload in iter_ad_structures(data, strict=False):
        if ad_type in _AD_UUID16 or ad_type in _AD_UUID32:
            size = 2 if ad_type in _AD_UUID16 else 4
            for i in range(0, len(payload) - size + 1, size):
                short = int.from_bytes(payload[i : i + size], "little")
                found.append(normalize_uuid(f"{short:0{size * 2}x}"))
        elif ad_type in _AD_UUID128:
            for i in range(0, len(payload) - 15, 16):
                found.append(str(_uuid.UUID(bytes=payload[i : i + 16][::-1])))
    return tuple(found)


def local_name(data: bytes) -> str | None:
    """The complete (else shortened) local name, if any."""
    names = {
        t: p
        for t, p in iter_ad_structures(data, strict=False)
        if t in (_AD_SHORT_NAME, _AD_COMPLETE_NAME)
    }
    raw = names.get(_AD_COMPLETE_NAME, names.get(_AD_SHORT_NAME))
    return None if raw is None else raw.decode(errors="replace")
