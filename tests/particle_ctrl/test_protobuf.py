"""The protobuf wire codec: varints at their limits, proto3 defaults, unknown fields
skipped, every malformed input a MessageError (also fuzzed)."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl.errors import MessageError
from bluemule.particle_ctrl.protobuf import (
    Fields,
    WireType,
    Writer,
    decode_varint,
    encode_varint,
    iter_fields,
)

FUZZ = settings(
    max_examples=int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400")),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (0xFFFF_FFFF, "ffffffff0f"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_varint_known_values(value: int, hex_: str) -> None:
    assert encode_varint(value).hex() == hex_
    assert decode_varint(bytes.fromhex(hex_)) == (value, len(hex_) // 2)


def test_varint_refusals() -> None:
    with pytest.raises(MessageError, match="truncated"):
        decode_varint(b"\x80\x80")
    with pytest.raises(MessageError, match="longer than 10"):
        decode_varint(b"\xff" * 11)
    with pytest.raises(MessageError, match="64 bits"):
        decode_varint(b"\xff" * 9 + b"\x7f")
    with pytest.raises(ValueError, match="64 bits"):
        encode_varint(2**64)


def test_negative_int32_takes_ten_bytes_and_comes_back() -> None:
    encoded = Writer().int32(1, -130).finish()
    assert encoded.hex() == "08fefeffffffffffffff01"
    assert Fields.parse(encoded).int32(1) == -130


def test_proto3_defaults_are_left_out_but_optional_and_submessages_are_not() -> None:
    w = Writer().uint(1, 0).int32(2, 0).boolean(3, False).fixed32(4, 0).fixed64(5, 0)
    assert w.blob(6, b"").string(7, "").finish() == b""
    assert Writer().blob(8, b"", optional=True).finish().hex() == "4200"
    assert Writer().message(9, b"").finish().hex() == "4a00"


@pytest.mark.parametrize(
    ("method", "number", "value"),
    [
        ("uint", 1, -1),
        ("uint", 1, 2**32),
        ("int32", 1, 2**31),
        ("fixed32", 1, 2**32),
        ("fixed64", 1, -1),
        ("uint", 0, 1),
    ],
)
def test_writer_refuses_values_out_of_range(method: str, number: int, value: int) -> None:
    with pytest.raises(ValueError, match=r"range|not a"):
        getattr(Writer(), method)(number, value)


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    known = Writer().uint(1, 7).string(2, "x").finish()
    unknown = (
        Writer().uint(20, 5).fixed32(21, 9).fixed64(22, 10).blob(23, b"zz").finish()
        + Writer().message(24, Writer().uint(1, 1).finish()).finish()
    )
    f = Fields.parse(unknown + known + unknown)
    assert (f.uint32(1), f.string(2)) == (7, "x")
    assert f.fixed64(22) == 10 and f.fixed32(21) == 9


def test_last_scalar_wins_and_varints_truncate_to_32_bits() -> None:
    data = Writer().uint(1, 1).finish() + Writer().uint(1, 2).finish()
    assert Fields.parse(data).uint32(1) == 2
    big = bytes([0x08]) + encode_varint(2**32 + 5)
    assert Fields.parse(big).uint32(1) == 5


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x0a\x05abc", "truncated"),
        (b"\x0d\x01\x00", "truncated"),
        (b"\x09\x01", "truncated"),
        (b"\x0b", "wire type 3"),
        (b"\x0c", "wire type 4"),
        (b"\x0e\x00", "wire type 6"),
        (b"\x00\x01", "field number 0"),
        (b"\x08", "truncated"),
    ],
)
def test_malformed_messages(data: bytes, match: str) -> None:
    with pytest.raises(MessageError, match=match):
        list(iter_fields(data))


def test_known_field_with_wrong_wire_type_and_bad_utf8() -> None:
    f = Fields.parse(Writer().uint(1, 3).blob(2, b"\xff").finish())
    with pytest.raises(MessageError, match="wire type"):
        f.blob(1)
    with pytest.raises(MessageError, match="UTF-8"):
        f.string(2)


def test_every_prefix_of_a_message_parses_or_fails_cleanly() -> None:
    data = (
        Writer().uint(1, 300).fixed32(2, 7).blob(3, b"abcdef").fixed64(4, 1).int32(5, -1).finish()
    )
    complete = [(f.number, f.wire) for f in iter_fields(data)]
    assert complete == [
        (1, WireType.VARINT),
        (2, WireType.I32),
        (3, WireType.LEN),
        (4, WireType.I64),
        (5, WireType.VARINT),
    ]
    for cut in range(len(data)):
        try:
            got = list(iter_fields(data[:cut]))
        except MessageError:
            continue
        assert [(f.number, f.wire) for f in got] == complete[: len(got)]


@pytest.mark.fuzz
@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_parse_raises_only_message_errors(data: bytes) -> None:
    try:
        f = Fields.parse(data)
    except MessageError:
        return
    for number in f.by_number:
        for getter in (f.uint32, f.int32, f.boolean, f.fixed32, f.fixed64, f.blob, f.string):
            with contextlib.suppress(MessageError):
                getter(number)


@pytest.mark.fuzz
@FUZZ
@given(
    st.integers(0, 2**32 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=64),
    st.text(max_size=20),
)
def test_fuzz_round_trip(u: int, i: int, q: int, blob: bytes, text: str) -> None:
    data = Writer().uint(1, u).int32(2, i).fixed64(3, q).blob(4, blob).string(5, text).finish()
    f = Fields.parse(data)
    assert (f.uint32(1), f.int32(2), f.fixed64(3), f.blob(4), f.string(5)) == (
        u,
        i,
        q,
        blob,
        text,
    )
