"""Handshake packets, record layout and the stream reassembler (particle.md §5.3)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl.errors import HandshakeError, ParticleCtrlError, PayloadTooLargeError
from bluemule.particle_ctrl.framing import (
    MAX_HANDSHAKE_PAYLOAD,
    RECORD_OVERHEAD,
    ReplyPlaintext,
    RequestPlaintext,
    SealedRecord,
    StreamReader,
    encode_handshake_packet,
    size_field,
)
from tests.particle_ctrl.helpers import chunked

EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))


def test_handshake_packet_golden() -> None:
    assert encode_handshake_packet(b"\xaa\xbb\xcc") == bytes.fromhex("0300aabbcc")
    assert encode_handshake_packet(bytes(512))[:2] == bytes.fromhex("0002")


@pytest.mark.parametrize("size", [0, 513])
def test_handshake_packet_we_would_send_must_fit(size: int) -> None:
    with pytest.raises(ValueError, match="1–512"):
        encode_handshake_packet(bytes(size))


def test_request_and_reply_plaintext_golden() -> None:
    request = RequestPlaintext(0xA0ED, 250, b"\x08\x01")
    assert request.encode() == bytes.fromhex("eda0fa0000000801")
    assert RequestPlaintext.decode(request.encode()) == request
    reply = ReplyPlaintext(7, -130, b"")
    assert reply.encode() == bytes.fromhex("07007effffff")  # i32 LE
    assert ReplyPlaintext.decode(reply.encode()) == reply
    assert RequestPlaintext.decode(bytes.fromhex("010002000500")).reserved == 5
    with pytest.raises(ValueError, match="no header"):
        RequestPlaintext.decode(bytes(5))
    with pytest.raises(ValueError, match="no header"):
        ReplyPlaintext.decode(bytes(5))


def test_size_field_limits() -> None:
    assert size_field(0) == b"\x00\x00"
    assert size_field(65535) == b"\xff\xff"
    with pytest.raises(PayloadTooLargeError):
        size_field(65536)
    assert issubclass(PayloadTooLargeError, ValueError)
    assert RECORD_OVERHEAD == 16


def test_reader_hands_out_one_message_at_a_time_byte_by_byte() -> None:
    stream = encode_handshake_packet(b"one") + encode_handshake_packet(b"two!")
    record = size_field(3) + bytes(range(3 + 6)) + b"T" * 8
    stream += record
    reader = StreamReader()
    payloads = []
    for byte in stream[: -len(record)]:
        reader.feed(bytes([byte]))
        payload = reader.next_handshake_payload()
        if payload is not None:
            payloads.append(payload)
    assert payloads == [b"one", b"two!"]
    for index, byte in enumerate(record):
        assert reader.next_record() is None, index
        reader.feed(bytes([byte]))
    sealed = reader.next_record()
    assert sealed == SealedRecord(record[:2], record[2:])
    assert sealed.payload_size == 3
    assert sealed.encode() == record
    assert reader.buffered == 0


@pytest.mark.parametrize("length", [0, MAX_HANDSHAKE_PAYLOAD + 1, 0xFFFF])
def test_reader_refuses_bad_handshake_lengths_as_soon_as_it_sees_them(length: int) -> None:
    reader = StreamReader()
    reader.feed(struct.pack("<H", length)[:1])
    assert reader.next_handshake_payload() is None
    reader.feed(struct.pack("<H", length)[1:])
    with pytest.raises(HandshakeError):
        reader.next_handshake_payload()


def test_largest_record_is_accepted() -> None:
    reader = StreamReader()
    reader.feed(size_field(65535) + bytes(65535 + 14))
    record = reader.next_record()
    assert record is not None
    assert record.payload_size == 65535
    assert len(record.sealed) == 65535 + 14


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=MAX_HANDSHAKE_PAYLOAD), max_size=6),
    st.lists(st.binary(max_size=700), max_size=4),
    st.lists(st.integers(1, 300), min_size=1, max_size=30),
)
def test_reader_reassembles_any_chunking(
    handshakes: list[bytes], records: list[bytes], sizes: list[int]
) -> None:
    """Handshake packets then records, in arbitrary chunks, come out whole and in order."""
    framed_records = [size_field(len(r)) + r + bytes(14) for r in records]
    stream = b"".join(encode_handshake_packet(h) for h in handshakes) + b"".join(framed_records)
    reader = StreamReader()
    got_handshakes: list[bytes] = []
    got_records: list[bytes] = []
    for piece in chunked(stream, sizes * 100):
        reader.feed(piece)
        while len(got_handshakes) < len(handshakes):
            payload = reader.next_handshake_payload()
            if payload is None:
                break
            got_handshakes.append(payload)
        if len(got_handshakes) == len(handshakes):
            while (record := reader.next_record()) is not None:
                got_records.append(record.encode())
    assert got_handshakes == handshakes
    assert got_records == framed_records
    assert reader.buffered == 0


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_fuzz_reader_raises_only_typed_errors(data: bytes, records: bool) -> None:
    reader = StreamReader()
    reader.feed(data)
    try:
        while (reader.next_record() if records else reader.next_handshake_payload()) is not None:
            pass
    except ParticleCtrlError:
        assert not records  # record sizes are all well-formed u16 values
