"""The protobuf wire format, as much as Device OS's control requests use (pure).

Control-request payloads are nanopb-encoded proto3 messages (``particle.md`` §5.3). This
codec covers the wire types they use: varint (``uint32``, ``int32``, ``bool``, enums),
length-delimited (``bytes``, ``string``, sub-messages) and ``fixed32``/``fixed64``.

Encoding follows proto3: scalar fields at their default (0, false, empty) are left out,
fields go out in the order written (callers write them by field number), and an
``optional`` field is written whenever it is set. Decoding follows the protobuf rules a
conforming parser must: unknown fields of any valid wire type are skipped, the last
value of a repeated scalar wins, a ``uint32``/``int32`` varint is truncated to 32 bits.
Everything else — a truncated field, a varint longer than 10 bytes, field number 0,
groups (wire types 3 and 4), a known field with the wrong wire type, bad UTF-8 in a
string — raises :class:`~bluemule.particle_ctrl.errors.MessageError`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from bluemule.particle_ctrl.errors import MessageError

MAX_VARINT_BYTES: Final = 10
_U32: Final = 0xFFFF_FFFF
_U64: Final = 0xFFFF_FFFF_FFFF_FFFF
_MAX_FIELD: Final = (1 << 29) - 1


class WireType(enum.IntEnum):
    """Protobuf wire types (groups, 3 and 4, are refused)."""

    VARINT = 0
    I64 = 1
    LEN = 2
    I32 = 5


def encode_varint(value: int) -> bytes:
    """Base-128 varint of an unsigned 64-bit value (a negative value is sign-extended to
    64 bits, as protobuf writes a negative ``int32``: ten bytes)."""
    if value < 0:
        value &= _U64
    if value > _U64:
        raise ValueError(f"{value} does not fit in 64 bits")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it.

    Raises:
        MessageError: truncated, or longer than 10 bytes / 64 bits.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise MessageError(f"varint at {pos} is truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > _U64:
                raise MessageError(f"varint at {pos} exceeds 64 bits")
            return value, pos + i + 1
    raise MessageError(f"varint at {pos} is longer than {MAX_VARINT_BYTES} bytes")


def _tag(number: int, wire: WireType) -> bytes:
    if not 1 <= number <= _MAX_FIELD:
        raise ValueError(f"field number {number} is out of range")
    return encode_varint(number << 3 | wire)


class Writer:
    """Builds one message, field by field (proto3: defaults are omitted)."""

    def __init__(self) -> None:
        self._out = bytearray()

    def uint(self, number: int, value: int, *, bits: int = 32) -> Writer:
        """``uint32``/``uint64``/enum (non-negative)."""
        if not 0 <= value < 1 << bits:
            raise ValueError(f"field {number}: {value} is not a uint{bits}")
        if value:
            self._out += _tag(number, WireType.VARINT) + encode_varint(value)
        return self

    def int32(self, number: int, value: int) -> Writer:
        """``int32`` (negative values take ten bytes, as protobuf writes them)."""
        if not -(1 << 31) <= value < 1 << 31:
            raise ValueError(f"field {number}: {value} is not an int32")
        if value:
            self._out += _tag(number, WireType.VARINT) + encode_varint(value)
        return self

    def boolean(self, number: int, value: bool) -> Writer:
        """``bool``."""
        return self.uint(number, int(value))

    def fixed32(self, number: int, value: int) -> Writer:
        """``fixed32``."""
        if not 0 <= value <= _U32:
            raise ValueError(f"field {number}: {value} is not a fixed32")
        if value:
            self._out += _tag(number, WireType.I32) + struct.pack("<I", value)
        return self

    def fixed64(self, number: int, value: int) -> Writer:
        """``fixed64``."""
        if not 0 <= value <= _U64:
            raise ValueError(f"field {number}: {value} is not a fixed64")
        if value:
            self._out += _tag(number, WireType.I64) + struct.pack("<Q", value)
        return self

    def blob(self, number: int, value: bytes | None, *, optional: bool = False) -> Writer:
        """``bytes``: left out when empty, unless ``optional`` (then only None is left out)."""
        if value is None or (not value and not optional):
            return self
        self._out += _tag(number, WireType.LEN) + encode_varint(len(value)) + value
        return self

    def string(self, number: int, value: str) -> Writer:
        """``string`` (UTF-8)."""
        return self.blob(number, value.encode("utf-8"))

    def message(self, number: int, encoded: bytes) -> Writer:
        """A sub-message (also an element of a repeated one): always written, even empty."""
        self._out += _tag(number, WireType.LEN) + encode_varint(len(encoded)) + encoded
        return self

    def finish(self) -> bytes:
        """The encoded message."""
        return bytes(self._out)


@dataclass(frozen=True)
class RawField:
    """One field as it appears on the wire."""

    number: int
    wire: WireType
    value: int | bytes
    """The integer of a varint/fixed field, the payload of a length-delimited one."""


def iter_fields(data: bytes) -> Iterator[RawField]:
    """Every field of ``data`` in order.

    Raises:
        MessageError: a malformed tag or field, a group, field number 0.
    """
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or number > _MAX_FIELD:
            raise MessageError(f"field number {number} at {start} is invalid")
        match wire:
            case WireType.VARINT:
                value, pos = decode_varint(data, pos)
                yield RawField(number, WireType.VARINT, value)
            case WireType.I64 | WireType.I32:
                size = 8 if wire == WireType.I64 else 4
                if pos + size > len(data):
                    raise MessageError(f"field {number} at {start} is truncated")
                value = int.from_bytes(data[pos : pos + size], "little")
                pos += size
                yield RawField(number, WireType(wire), value)
            case WireType.LEN:
                length, pos = decode_varint(data, pos)
                if length > len(data) - pos:
                    raise MessageError(f"field {number} at {start} is truncated")
                yield RawField(number, WireType.LEN, bytes(data[pos : pos + length]))
                pos += length
            case _:
                raise MessageError(f"field {number} at {start} has unsupported wire type {wire}")


@dataclass
class Fields:
    """A decoded message: field number → its values in order, for typed access."""

    by_number: dict[int, list[RawField]] = field(default_factory=dict)
    what: str = ""
    """The message's name, put before every error."""

    @classmethod
    def parse(cls, data: bytes, what: str = "") -> Fields:
        """Parse ``data`` (unknown fields are kept and simply never asked for)."""
        fields = cls(what=what)
        try:
            for f in iter_fields(data):
                fields.by_number.setdefault(f.number, []).append(f)
        except MessageError as exc:
            raise fields._error(str(exc)) from None
        return fields

    def _error(self, message: str) -> MessageError:
        return MessageError(f"{self.what}: {message}" if self.what else message)

    def _all(self, number: int, wire: WireType) -> list[RawField]:
        found = self.by_number.get(number, [])
        for f in found:
            if f.wire != wire:
                raise self._error(f"field {number} has wire type {f.wire}, expected {wire}")
        return found

    def _last_int(self, number: int, wire: WireType) -> int:
        found = self._all(number, wire)
        value = found[-1].value if found else 0
        assert isinstance(value, int)
        return value

    def uint32(self, number: int) -> int:
        """``uint32`` or enum (0 when absent; truncated to 32 bits)."""
        return self._last_int(number, WireType.VARINT) & _U32

    def int32(self, number: int) -> int:
        """``int32`` (0 when absent; truncated to 32 bits, two's complement)."""
        value = self._last_int(number, WireType.VARINT) & _U32
        return value - (1 << 32) if value & 0x8000_0000 else value

    def boolean(self, number: int) -> bool:
        """``bool`` (any non-zero varint is true)."""
        return self._last_int(number, WireType.VARINT) != 0

    def fixed32(self, number: int) -> int:
        """``fixed32``."""
        return self._last_int(number, WireType.I32)

    def fixed64(self, number: int) -> int:
        """``fixed64``."""
        return self._last_int(number, WireType.I64)

    def blob(self, number: int) -> bytes:
        """``bytes`` (empty when absent)."""
        return self.optional_blob(number) or b""

    def optional_blob(self, number: int) -> bytes | None:
        """``optional bytes``: None when absent."""
        found = self._all(number, WireType.LEN)
        if not found:
            return None
        value = found[-1].value
        assert isinstance(value, bytes)
        return value

    def string(self, number: int) -> str:
        """``string`` (must be UTF-8)."""
        try:
            return self.blob(number).decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(f"field {number} is not UTF-8") from None

    def messages(self, number: int) -> list[bytes]:
        """The encoded elements of a repeated sub-message field."""
        return [f.value for f in self._all(number, WireType.LEN) if isinstance(f.value, bytes)]


def parse(data: bytes, what: str = "") -> Fields:
    """Shorthand for :meth:`Fields.parse`."""
    return Fields.parse(data, what)
