"""Wire format of every bluemule message (pure; little-endian; see ``docs/protocol.md``).

Each BLE write, notification or read value is one whole message; ``decode_*`` take the
value and raise :class:`~bluemule.protocol.errors.DecodeError` on anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from bluemule.protocol.constants import (
    ADVERTISING_MAGIC,
    ASSETS_PER_PAGE,
    DATA_HEADER_SIZE,
    DEVICE_ID_SIZE,
    MANUFACTURER_ID,
    MAX_NAME_SIZE,
    PROTOCOL_VERSION,
    SHA256_SIZE,
    Opcode,
    Status,
)
from bluemule.protocol.errors import DecodeError

_DATA: Final = struct.Struct("<BI")  # stream, offset
assert _DATA.size == DATA_HEADER_SIZE
_PROGRESS: Final = struct.Struct("<BIB")  # stream, next expected offset, flags
_REQUEST: Final = struct.Struct("<BB")  # opcode, seq
_RESPONSE: Final = struct.Struct("<BBB")  # opcode, seq, status
_DETAIL: Final = struct.Struct("<i")  # error detail (e.g. a Device OS system error code)


def _exact(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise DecodeError(f"{what} is {len(value)} bytes, expected {size}")


# --------------------------------------------------------------------------- DATA


@dataclass(frozen=True)
class DataWrite:
    """DATA: ``stream u8, offset u32, payload``. Stream 0 is the manifest, i + 1 part i."""

    stream: int
    offset: int
    payload: bytes

    def encode(self) -> bytes:
        """Header and payload."""
        return _DATA.pack(self.stream, self.offset) + self.payload


def decode_data(value: bytes) -> DataWrite:
    """Decode a DATA write (a payload may be empty only in theory; it is refused)."""
    if len(value) <= DATA_HEADER_SIZE:
        raise DecodeError(f"DATA write of {len(value)} bytes carries no payload")
    stream, offset = _DATA.unpack_from(value)
    return DataWrite(stream, offset, bytes(value[DATA_HEADER_SIZE:]))


# ----------------------------------------------------------------------- PROGRESS


@dataclass(frozen=True)
class Progress:
    """PROGRESS: cumulative ack: ``stream u8, next expected offset u32, flags u8``."""

    stream: int
    offset: int
    flags: int = 0

    def encode(self) -> bytes:
        """6 bytes."""
        return _PROGRESS.pack(self.stream, self.offset, self.flags)


def decode_progress(value: bytes) -> Progress:
    """Decode a PROGRESS value."""
    _exact(value, _PROGRESS.size, "PROGRESS")
    return Progress(*_PROGRESS.unpack(value))


# ------------------------------------------------------------------------ CONTROL

_REQUEST_PAYLOAD: Final = {
    Opcode.GET_ASSETS: struct.Struct("<B"),  # page
    Opcode.MANIFEST_BEGIN: struct.Struct(f"<H{SHA256_SIZE}s"),  # size, sha256
    Opcode.MANIFEST_COMMIT: struct.Struct("<"),
    Opcode.PART_BEGIN: struct.Struct("<B"),  # part index
    Opcode.PART_END: struct.Struct("<B"),  # part index
    Opcode.APPLY: struct.Struct("<"),
    Opcode.ABORT: struct.Struct("<"),
    Opcode.EVENTS_READ: struct.Struct("<IH"),  # from sequence, offset in the record
    Opcode.EVENTS_ACK: struct.Struct("<I"),  # up to sequence
}


@dataclass(frozen=True)
class Request:
    """CONTROL: ``opcode u8, seq u8`` and the opcode's fixed arguments."""

    opcode: Opcode
    seq: int
    args: tuple[int | bytes, ...] = ()

    def encode(self) -> bytes:
        """Encode header and arguments."""
        return _REQUEST.pack(self.opcode, self.seq) + _REQUEST_PAYLOAD[self.opcode].pack(*self.args)


def decode_request(value: bytes) -> Request:
    """Decode a CONTROL write."""
    if len(value) < _REQUEST.size:
        raise DecodeError("CONTROL write shorter than its header")
    raw_op, seq = _REQUEST.unpack_from(value)
    try:
        opcode = Opcode(raw_op)
    except ValueError:
        raise DecodeError(f"unknown opcode 0x{raw_op:02x}", offset=0) from None
    layout = _REQUEST_PAYLOAD[opcode]
    _exact(value, _REQUEST.size + layout.size, f"{opcode.name} request")
    return Request(opcode, seq, tuple(layout.unpack_from(value, _REQUEST.size)))


# ----------------------------------------------------------------------- RESPONSE

_RESPONSE_OK_PAYLOAD: Final = {
    Opcode.MANIFEST_BEGIN: struct.Struct("<I"),  # offset the device holds for this manifest
    Opcode.MANIFEST_COMMIT: struct.Struct("<HB"),  # needed parts (bit i = part i), up to date
    Opcode.PART_BEGIN: struct.Struct("<II"),  # offset, size
    Opcode.PART_END: struct.Struct("<"),
    Opcode.APPLY: struct.Struct("<"),
    Opcode.ABORT: struct.Struct("<"),
    Opcode.EVENTS_ACK: struct.Struct("<H"),  # records still queued
}
_EVENT_CHUNK: Final = struct.Struct("<IHHB")  # sequence (0: none), total, offset, chunk length
_ASSET_PAGE: Final = struct.Struct("<BBB")  # total, page, count
_ASSET_ENTRY: Final = struct.Struct(f"<{SHA256_SIZE}sB")  # sha256, name length (+ name)


@dataclass(frozen=True)
class AssetEntry:
    """An installed asset: name and SHA-256 of its raw content."""

    name: str
    sha256: bytes


@dataclass(frozen=True)
class Response:
    """RESPONSE: ``opcode u8, seq u8, status u8`` then the OK payload or an i32 detail.

    ``values`` holds the opcode's OK fields; ``assets`` the GET_ASSETS page entries;
    ``chunk`` the EVENTS_READ record bytes (``values``: sequence, total, offset).
    """

    opcode: Opcode
    seq: int
    status: Status
    values: tuple[int, ...] = ()
    detail: int = 0
    assets: tuple[AssetEntry, ...] = ()
    chunk: bytes = b""

    @property
    def ok(self) -> bool:
        """Status is OK."""
        return self.status == Status.OK

    def encode(self) -> bytes:
        """Encode header and payload."""
        head = _RESPONSE.pack(self.opcode, self.seq, self.status)
        if not self.ok:
            return head + _DETAIL.pack(self.detail)
        if self.opcode == Opcode.GET_ASSETS:
            total, page = self.values
            body = b"".join(
                _ASSET_ENTRY.pack(a.sha256, len(a.name.encode())) + a.name.encode()
                for a in self.assets
            )
            return head + _ASSET_PAGE.pack(total, page, len(self.assets)) + body
        if self.opcode == Opcode.EVENTS_READ:
            return head + _EVENT_CHUNK.pack(*self.values, len(self.chunk)) + self.chunk
        return head + _RESPONSE_OK_PAYLOAD[self.opcode].pack(*self.values)


def _decode_assets(value: bytes, at: int) -> tuple[tuple[int, ...], tuple[AssetEntry, ...]]:
    if len(value) < at + _ASSET_PAGE.size:
        raise DecodeError("GET_ASSETS response shorter than its page header")
    total, page, count = _ASSET_PAGE.unpack_from(value, at)
    if count > ASSETS_PER_PAGE:
        raise DecodeError(f"GET_ASSETS page claims {count} entries", offset=at)
    pos = at + _ASSET_PAGE.size
    entries = []
    for _ in range(count):
        if len(value) < pos + _ASSET_ENTRY.size:
            raise DecodeError("GET_ASSETS entry truncated", offset=pos)
        sha, n = _ASSET_ENTRY.unpack_from(value, pos)
        pos += _ASSET_ENTRY.size
        if n > MAX_NAME_SIZE or len(value) < pos + n:
            raise DecodeError("GET_ASSETS name truncated or too long", offset=pos)
        try:
            name = value[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("GET_ASSETS name is not UTF-8", offset=pos) from None
        entries.append(AssetEntry(name, sha))
        pos += n
    if pos != len(value):
        raise DecodeError(f"{len(value) - pos} bytes after the GET_ASSETS page", offset=pos)
    return (total, page), tuple(entries)


def _decode_event_chunk(value: bytes, seq: int, at: int) -> Response:
    if len(value) < at + _EVENT_CHUNK.size:
        raise DecodeError("EVENTS_READ response shorter than its header")
    sequence, total, offset, length = _EVENT_CHUNK.unpack_from(value, at)
    _exact(value, at + _EVENT_CHUNK.size + length, "EVENTS_READ response")
    chunk = bytes(value[at + _EVENT_CHUNK.size :])
    if offset + length > total or (sequence == 0 and total):
        raise DecodeError(f"EVENTS_READ chunk {offset}+{length} outside a {total}-byte record")
    return Response(Opcode.EVENTS_READ, seq, Status.OK, (sequence, total, offset), chunk=chunk)


def decode_response(value: bytes) -> Response:
    """Decode a RESPONSE value."""
    if len(value) < _RESPONSE.size:
        raise DecodeError("RESPONSE shorter than its header")
    raw_op, seq, raw_status = _RESPONSE.unpack_from(value)
    try:
        opcode, status = Opcode(raw_op), Status(raw_status)
    except ValueError:
        raise DecodeError(f"unknown opcode 0x{raw_op:02x} or status 0x{raw_status:02x}") from None
    at = _RESPONSE.size
    if status != Status.OK:
        _exact(value, at + _DETAIL.size, f"{opcode.name} error response")
        return Response(opcode, seq, status, detail=_DETAIL.unpack_from(value, at)[0])
    if opcode == Opcode.GET_ASSETS:
        values, assets = _decode_assets(value, at)
        return Response(opcode, seq, status, values, assets=assets)
    if opcode == Opcode.EVENTS_READ:
        return _decode_event_chunk(value, seq, at)
    layout = _RESPONSE_OK_PAYLOAD[opcode]
    _exact(value, at + layout.size, f"{opcode.name} response")
    return Response(opcode, seq, status, tuple(layout.unpack_from(value, at)))


# ------------------------------------------------------------------------- STATUS

# version, flags, capabilities, device id, platform, Device OS version,
# app: module version, product id, product version, sha256; release counter,
# max write, window, ack interval, asset count,
# transfer: manifest sha256, part index (0xFF none), offset, needed parts
_STATUS: Final = struct.Struct(f"<BBB{DEVICE_ID_SIZE}sHHHHH{SHA256_SIZE}sIHHHB{SHA256_SIZE}sBIH")
# appended by devices with Capability.EVENTS: queued u16, first u32, last u32, dropped u32
_STATUS_EVENTS: Final = struct.Struct("<HIII")


@dataclass(frozen=True)
class EventSummary:
    """STATUS's event fields (appended after the 107-byte v1.0 record)."""

    queued: int
    """Records waiting for a relay."""
    first_sequence: int
    """The oldest queued record's sequence (0: none queued)."""
    last_sequence: int
    """The highest sequence the device ever assigned (0: none yet); acks may go up to it."""
    dropped: int
    """Publishes refused because the queue was full, since the queue was created."""


@dataclass(frozen=True)
class DeviceStatus:
    """STATUS: everything a relay needs on connect (fits one 244-byte value)."""

    device_id: bytes
    platform_id: int
    device_os_version: int
    app_module_version: int
    product_id: int
    product_version: int
    app_sha256: bytes
    release_counter: int
    max_write: int
    window: int
    ack_interval: int
    asset_count: int
    flags: int = 0
    capabilities: int = 0
    manifest_sha256: bytes = bytes(SHA256_SIZE)
    part_index: int = 0xFF
    part_offset: int = 0
    needed_parts: int = 0
    protocol_version: int = PROTOCOL_VERSION
    events: EventSummary | None = None
    """Present when the device queues events (then STATUS is 121 bytes)."""

    @property
    def device_id_hex(self) -> str:
        """Particle's 24-hex-digit form."""
        return self.device_id.hex()

    def encode(self) -> bytes:
        """Encode the fixed record."""
        return _STATUS.pack(
            self.protocol_version, self.flags, self.capabilities, self.device_id,
            self.platform_id, self.device_os_version, self.app_module_version,
            self.product_id, self.product_version, self.app_sha256, self.release_counter,
            self.max_write, self.window, self.ack_interval, self.asset_count,
            self.manifest_sha256, self.part_index, self.part_offset, self.needed_parts,
        ) + (b"" if self.events is None else _STATUS_EVENTS.pack(
            self.events.queued, self.events.first_sequence, self.events.last_sequence,
            self.events.dropped,
        ))  # fmt: skip


def decode_status(value: bytes) -> DeviceStatus:
    """Decode STATUS: the 107-byte v1.0 record, or 121 bytes with the event fields. A newer
    minor layout may append more fields; they are ignored."""
    if len(value) < _STATUS.size or _STATUS.size < len(value) < STATUS_WITH_EVENTS_SIZE:
        raise DecodeError(
            f"STATUS is {len(value)} bytes, expected {_STATUS.size} or at least "
            f"{STATUS_WITH_EVENTS_SIZE}"
        )
    (version, flags, caps, device_id, platform, dos, app_version, pid, pver, app_sha,
     counter, max_write, window, ack, assets, manifest, part, offset, needed,
     ) = _STATUS.unpack_from(value)  # fmt: skip
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"device speaks protocol version {version}, this is {PROTOCOL_VERSION}")
    return DeviceStatus(
        device_id, platform, dos, app_version, pid, pver, app_sha, counter, max_write,
        window, ack, assets, flags, caps, manifest, part, offset, needed, version,
        None if len(value) == _STATUS.size
        else EventSummary(*_STATUS_EVENTS.unpack_from(value, _STATUS.size)),
    )  # fmt: skip


STATUS_SIZE: Final = _STATUS.size
STATUS_WITH_EVENTS_SIZE: Final = _STATUS.size + _STATUS_EVENTS.size

# -------------------------------------------------------------------- ADVERTISING

_ADVERT: Final = struct.Struct(f"<H2sBB{DEVICE_ID_SIZE}sHI")


@dataclass(frozen=True)
class Advertisement:
    """Manufacturer data in the scan response: enough to decide whether to connect.

    ``company u16, "BM", protocol version u8, flags u8, device id[12], platform u16,
    release counter u32`` (24 bytes).
    """

    device_id: bytes
    platform_id: int
    release_counter: int
    flags: int = 0
    protocol_version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """The manufacturer-specific data value (company id first)."""
        return _ADVERT.pack(
            MANUFACTURER_ID, ADVERTISING_MAGIC, self.protocol_version, self.flags,
            self.device_id, self.platform_id, self.release_counter,
        )  # fmt: skip


def decode_advertisement(value: bytes) -> Advertisement | None:
    """Decode manufacturer data; ``None`` when it is not a bluemule advertisement."""
    if len(value) != _ADVERT.size:
        return None
    company, magic, version, flags, device_id, platform, counter = _ADVERT.unpack(value)
    if company != MANUFACTURER_ID or magic != ADVERTISING_MAGIC:
        return None
    return Advertisement(device_id, platform, counter, flags, version)


def max_payload(mtu: int) -> int:
    """DATA payload bytes per write for an ATT MTU (write value is ``mtu - 3``)."""
    return mtu - 3 - DATA_HEADER_SIZE
