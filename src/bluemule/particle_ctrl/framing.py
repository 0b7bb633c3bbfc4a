"""Wire framing of the control channel's byte stream (pure; particle.md §5.3).

RX writes (phone → device) and TX notifications (device → phone) each form one byte
stream; message boundaries do not follow BLE packets. Two kinds of message travel on it,
all integers little-endian:

* handshake packet: ``u16 payload_len ‖ payload`` with ``1 ≤ payload_len ≤ 512`` (the
  device refuses 0 and anything above 512 with SYSTEM_ERROR_TOO_LARGE and disconnects);
* record, once the handshake is done: ``u16 payload_size`` (the CCM additional data,
  not encrypted) ‖ CCM ciphertext of ``header ‖ payload`` ‖ an 8-byte CCM tag, where the
  header is ``u16 request_id, u16 type, u16 reserved = 0`` in a request and
  ``u16 request_id, i32 result`` in a reply. Both headers are 6 bytes, so every record
  is ``payload_size + 16`` bytes long. Device OS ignores ``reserved``; so does
  :class:`RequestPlaintext` (it keeps the value).

:class:`StreamReader` reassembles either kind from arbitrary chunks; the session tells
it which kind comes next, because the last handshake packet and the first record can
arrive in the same chunk.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from bluemule.particle_ctrl.errors import HandshakeError, PayloadTooLargeError

MAX_HANDSHAKE_PAYLOAD: Final = 512
"""Largest handshake payload the device accepts (``MAX_HANDSHAKE_PAYLOAD_SIZE``)."""
MAX_RECORD_PAYLOAD: Final = 0xFFFF
"""Largest request or reply payload: the size field is a u16."""
SIZE_FIELD: Final = 2
REQUEST_HEADER_SIZE: Final = 6
REPLY_HEADER_SIZE: Final = 6
TAG_SIZE: Final = 8
RECORD_OVERHEAD: Final = SIZE_FIELD + REQUEST_HEADER_SIZE + TAG_SIZE
"""Bytes a record adds to its payload (16, for requests and replies alike)."""

_U16: Final = struct.Struct("<H")
_REQUEST_HEADER: Final = struct.Struct("<HHH")
_REPLY_HEADER: Final = struct.Struct("<Hi")
assert REPLY_HEADER_SIZE == _REPLY_HEADER.size == _REQUEST_HEADER.size == REQUEST_HEADER_SIZE


def encode_handshake_packet(payload: bytes) -> bytes:
    """``u16 len ‖ payload``; ``ValueError`` outside 1–512 bytes (our own messages fit)."""
    if not 1 <= len(payload) <= MAX_HANDSHAKE_PAYLOAD:
        raise ValueError(f"handshake payload of {len(payload)} bytes (1–512 allowed)")
    return _U16.pack(len(payload)) + payload


def size_field(payload_size: int) -> bytes:
    """The 2-byte size field of a record: its CCM additional data (§5.5)."""
    if not 0 <= payload_size <= MAX_RECORD_PAYLOAD:
        raise PayloadTooLargeError(
            f"payload of {payload_size} bytes does not fit a record (at most 65,535)"
        )
    return _U16.pack(payload_size)


@dataclass(frozen=True)
class RequestPlaintext:
    """What a request record encrypts: its header fields and the payload."""

    request_id: int
    type: int
    payload: bytes
    reserved: int = 0

    def encode(self) -> bytes:
        """``u16 request_id ‖ u16 type ‖ u16 reserved ‖ payload``."""
        return _REQUEST_HEADER.pack(self.request_id, self.type, self.reserved) + self.payload

    @classmethod
    def decode(cls, plaintext: bytes) -> RequestPlaintext:
        """Split a decrypted request; ``ValueError`` if shorter than its header."""
        if len(plaintext) < REQUEST_HEADER_SIZE:
            raise ValueError(f"request of {len(plaintext)} bytes has no header")
        request_id, type_, reserved = _REQUEST_HEADER.unpack_from(plaintext)
        return cls(request_id, type_, bytes(plaintext[REQUEST_HEADER_SIZE:]), reserved)


@dataclass(frozen=True)
class ReplyPlaintext:
    """What a reply record encrypts: the request id, the ``system_error_t`` result, payload."""

    request_id: int
    result: int
    payload: bytes

    def encode(self) -> bytes:
        """``u16 request_id ‖ i32 result ‖ payload``."""
        return _REPLY_HEADER.pack(self.request_id, self.result) + self.payload

    @classmethod
    def decode(cls, plaintext: bytes) -> ReplyPlaintext:
        """Split a decrypted reply; ``ValueError`` if shorter than its header."""
        if len(plaintext) < REPLY_HEADER_SIZE:
            raise ValueError(f"reply of {len(plaintext)} bytes has no header")
        request_id, result = _REPLY_HEADER.unpack_from(plaintext)
        return cls(request_id, result, bytes(plaintext[REPLY_HEADER_SIZE:]))


@dataclass(frozen=True)
class SealedRecord:
    """One record as read off the stream, not yet decrypted."""

    aad: bytes
    """The 2-byte size field (CCM additional data)."""
    sealed: bytes
    """Ciphertext of header ‖ payload, then the 8-byte tag."""

    @property
    def payload_size(self) -> int:
        """The payload length the size field announces."""
        return int(_U16.unpack(self.aad)[0])

    def encode(self) -> bytes:
        """The record's bytes on the stream."""
        return self.aad + self.sealed


class StreamReader:
    """Reassembles handshake packets and records from a byte stream fed in any chunks.

    :meth:`feed` appends bytes; :meth:`next_handshake_payload` and :meth:`next_record`
    each take one complete message off the front, or return ``None`` until enough bytes
    have arrived. Garbage is refused as soon as a length field shows it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet taken as a message."""
        return len(self._buffer)

    def next_handshake_payload(self) -> bytes | None:
        """The next handshake packet's payload, or ``None`` if incomplete.

        Raises :class:`HandshakeError` for a length of 0 or above 512 (the device's
        limits) as soon as the length field is in.
        """
        if len(self._buffer) < SIZE_FIELD:
            return None
        (length,) = _U16.unpack_from(self._buffer)
        if not 1 <= length <= MAX_HANDSHAKE_PAYLOAD:
            raise HandshakeError(f"handshake packet of {length} bytes (1–512 allowed)")
        end = SIZE_FIELD + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[SIZE_FIELD:end])
        del self._buffer[:end]
        return payload

    def next_record(self) -> SealedRecord | None:
        """The next record, or ``None`` if incomplete (every u16 size is well-formed)."""
        if len(self._buffer) < SIZE_FIELD:
            return None
        (size,) = _U16.unpack_from(self._buffer)
        end = size + RECORD_OVERHEAD
        if len(self._buffer) < end:
            return None
        record = SealedRecord(bytes(self._buffer[:SIZE_FIELD]), bytes(self._buffer[SIZE_FIELD:end]))
        del self._buffer[:end]
        return record
