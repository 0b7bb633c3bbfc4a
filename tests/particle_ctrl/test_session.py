"""The sans-IO sessions: Particle's own client test vector, golden records, any chunking,
wrong secrets, tampering, replay and reordering, and fuzzing (particle.md §5.3–5.5)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl.ecjpake import EcJpake, Role
from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    PayloadTooLargeError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.session import (
    ClientSession,
    HandshakeComplete,
    IncomingRequest,
    Reply,
    Send,
    ServerSession,
)
from tests.particle_ctrl.helpers import (
    OTHER_SECRET,
    SECRET,
    DeterministicRng,
    ScriptedRng,
    chunked,
    feed,
    open_pair,
    others,
    sends,
)

GOLDEN = Path(__file__).parent / "golden"
JAVA: dict[str, Any] = json.loads((GOLDEN / "java_channel_vector.json").read_text())
SESSION_GOLDEN = GOLDEN / "session.json"
EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))


def hx(value: str) -> bytes:
    return bytes.fromhex(value)


# ------------------------------------------------------------------ independent decoding


def client_secret(
    password: bytes, rng: Any, server_round_one: bytes, server_round_two: bytes
) -> bytes:
    """The shared secret, recomputed with EcJpake alone (no session code)."""
    jpake = EcJpake(Role.CLIENT, password, rng=rng)
    jpake.write_round_one()
    jpake.read_round_one(server_round_one)
    jpake.write_round_two()
    jpake.read_round_two(server_round_two)
    return jpake.derive_secret()


def open_record(secret: bytes, record: bytes, counter: int, *, reply: bool) -> tuple[int, bytes]:
    """Decrypt a record straight from §5.5 with ``cryptography``: (size field, plaintext)."""
    (size,) = struct.unpack_from("<H", record)
    fixed = secret[24:32] if reply else secret[16:24]
    nonce = struct.pack("<I", counter | (0x80000000 if reply else 0)) + fixed
    plain = AESCCM(secret[:16], tag_length=8).decrypt(nonce, record[2:], record[:2])
    assert len(record) == size + 16
    return size, plain


# ------------------------------------------------------------------ Particle's Java vector


def java_client() -> tuple[ClientSession, ScriptedRng]:
    rng = ScriptedRng([hx(c) for c in JAVA["rng"]])
    client = ClientSession(
        JAVA["mobile_secret"].encode(), rng=rng, first_request_id=JAVA["first_request_id"]
    )
    return client, rng


def test_client_reproduces_particles_java_client_byte_for_byte() -> None:
    client, rng = java_client()
    assert sends(client.start()) == hx(JAVA["client_round_one"])
    events = client.receive(hx(JAVA["server_round_one"]) + hx(JAVA["server_round_two"]))
    assert events == [Send(hx(JAVA["client_round_two"])), Send(hx(JAVA["client_confirm"]))]
    assert rng.exhausted
    assert client.receive(hx(JAVA["server_confirm"])) == [HandshakeComplete()]
    request_id, frames = client.request(
        JAVA["request"]["type"], JAVA["request"]["payload_ascii"].encode()
    )
    assert request_id == JAVA["request"]["id"]
    assert sends(frames) == hx(JAVA["request"]["record"])
    assert client.receive(hx(JAVA["reply"]["record"])) == [
        Reply(JAVA["reply"]["id"], JAVA["reply"]["result"], JAVA["reply"]["payload_ascii"].encode())
    ]


def test_java_vector_records_decode_by_the_letter_of_the_spec() -> None:
    rng = ScriptedRng([hx(c) for c in JAVA["rng"]])
    secret = client_secret(
        JAVA["mobile_secret"].encode(),
        rng,
        hx(JAVA["server_round_one"])[2:],
        hx(JAVA["server_round_two"])[2:],
    )
    size, plain = open_record(secret, hx(JAVA["request"]["record"]), 1, reply=False)
    request_id, type_, reserved = struct.unpack_from("<HHH", plain)
    assert (size, request_id, type_, reserved) == (200, 41197, 1, 0)
    assert plain[6:] == JAVA["request"]["payload_ascii"].encode()
    size, plain = open_record(secret, hx(JAVA["reply"]["record"]), 1, reply=True)
    assert struct.unpack_from("<Hi", plain) == (41197, 0)
    assert plain[6:] == JAVA["reply"]["payload_ascii"].encode()


def test_client_refuses_a_reply_to_a_request_it_never_sent() -> None:
    client, _ = java_client()
    client.start()
    client.receive(hx(JAVA["server_round_one"]) + hx(JAVA["server_round_two"]))
    client.receive(hx(JAVA["server_confirm"]))
    # The device's genuine reply (authentic, counter 1) to a request we did not send.
    with pytest.raises(ChannelError, match="not pending"):
        client.receive(hx(JAVA["reply"]["record"]))
    assert not client.is_open


def test_client_refuses_a_wrong_server_confirmation() -> None:
    client, _ = java_client()
    client.start()
    client.receive(hx(JAVA["server_round_one"]) + hx(JAVA["server_round_two"]))
    forged = bytearray(hx(JAVA["server_confirm"]))
    forged[-1] ^= 1
    with pytest.raises(WrongMobileSecretError):
        client.receive(bytes(forged))
    with pytest.raises(ChannelError, match="closed"):
        client.request(1, b"")


# ------------------------------------------------------------------ golden records


def golden_transcript() -> dict[str, Any]:
    """One deterministic conversation: handshake, a request, its reply, a refusal."""
    client = ClientSession(SECRET, rng=DeterministicRng(b"golden/client"))
    server = ServerSession(SECRET, rng=DeterministicRng(b"golden/server"))
    cli_r1 = sends(client.start())
    srv = server.receive(cli_r1)
    srv_r1, srv_r2 = (e.data for e in srv if isinstance(e, Send))
    cli = client.receive(srv_r1 + srv_r2)
    cli_r2, cli_confirm = (e.data for e in cli if isinstance(e, Send))
    srv_confirm = sends(server.receive(cli_r2 + cli_confirm))
    assert client.receive(srv_confirm) == [HandshakeComplete()]
    request_id, frames = client.request(250, bytes.fromhex("08a01f"))
    assert server.receive(sends(frames)) == [IncomingRequest(request_id, 250, hx("08a01f"))]
    reply = sends(server.reply(request_id, 0, hx("088008")))
    assert client.receive(reply) == [Reply(request_id, 0, hx("088008"))]
    refused_id, refused_frames = client.request(40)
    server.receive(sends(refused_frames))
    refusal = sends(server.reply(refused_id, -130))
    assert client.receive(refusal) == [Reply(refused_id, -130, b"")]
    return {
        "mobile_secret": SECRET.decode(),
        "rng": "SHA-256 counter mode over 'golden/client' and 'golden/server' (helpers.py)",
        "client_round_one": cli_r1.hex(),
        "server_round_one": srv_r1.hex(),
        "server_round_two": srv_r2.hex(),
        "client_round_two": cli_r2.hex(),
        "client_confirm": cli_confirm.hex(),
        "server_confirm": srv_confirm.hex(),
        "request": {
            "id": request_id,
            "type": 250,
            "payload": "08a01f",
            "record": sends(frames).hex(),
        },
        "reply": {"id": request_id, "result": 0, "payload": "088008", "record": reply.hex()},
        "refusal_request": {
            "id": refused_id,
            "type": 40,
            "payload": "",
            "record": sends(refused_frames).hex(),
        },
        "refusal": {"id": refused_id, "result": -130, "payload": "", "record": refusal.hex()},
    }


def test_golden_conversation_is_stable() -> None:
    assert golden_transcript() == json.loads(SESSION_GOLDEN.read_text())


def test_golden_records_decode_by_the_letter_of_the_spec() -> None:
    g = json.loads(SESSION_GOLDEN.read_text())
    for name in ("client_round_one", "server_round_one", "server_round_two", "client_round_two"):
        packet = hx(g[name])
        assert struct.unpack_from("<H", packet)[0] == len(packet) - 2 <= 512
    assert hx(g["server_round_two"])[2:5] == hx("030017")  # ECParameters, server only
    assert len(hx(g["client_confirm"])) == len(hx(g["server_confirm"])) == 34
    # The client's EcJpake, replayed alone with the same randomness, gives the secret.
    secret = client_secret(
        SECRET,
        DeterministicRng(b"golden/client"),
        hx(g["server_round_one"])[2:],
        hx(g["server_round_two"])[2:],
    )
    size, plain = open_record(secret, hx(g["request"]["record"]), 1, reply=False)
    assert (size, *struct.unpack_from("<HHH", plain), plain[6:]) == (3, 1, 250, 0, hx("08a01f"))
    size, plain = open_record(secret, hx(g["reply"]["record"]), 1, reply=True)
    assert (size, *struct.unpack_from("<Hi", plain), plain[6:]) == (3, 1, 0, hx("088008"))
    size, plain = open_record(secret, hx(g["refusal_request"]["record"]), 2, reply=False)
    assert (size, *struct.unpack_from("<HHH", plain)) == (0, 2, 40, 0)
    size, plain = open_record(secret, hx(g["refusal"]["record"]), 2, reply=True)
    assert (size, plain) == (0, struct.pack("<Hi", 2, -130))


# ------------------------------------------------------------------ chunking


def converse(client: ClientSession, server: ServerSession, sizes: list[int]) -> None:
    """Handshake and three requests, every byte stream cut at ``sizes``."""
    to_server = sends(client.start())
    to_client = sends(feed(server, to_server, sizes))
    to_server = sends(feed(client, to_client, sizes))
    server_events = feed(server, to_server, sizes)
    assert others(server_events) == [HandshakeComplete()]
    assert feed(client, sends(server_events), sizes) == [HandshakeComplete()]
    payloads = [b"", b"x" * 300, bytes(range(256)) * 5]
    ids = []
    stream = b""
    for n, payload in enumerate(payloads):
        request_id, frames = client.request(100 + n, payload)
        ids.append(request_id)
        stream += sends(frames)
    incoming = feed(server, stream, sizes)
    assert incoming == [
        IncomingRequest(i, 100 + n, p) for n, (i, p) in enumerate(zip(ids, payloads, strict=True))
    ]
    replies = b"".join(
        sends(server.reply(i, -n, p[::-1]))
        for n, (i, p) in enumerate(zip(ids, payloads, strict=True))
    )
    assert feed(client, replies, sizes) == [
        Reply(i, -n, p[::-1]) for n, (i, p) in enumerate(zip(ids, payloads, strict=True))
    ]
    assert client.pending_requests == 0


def test_byte_by_byte() -> None:
    converse(
        ClientSession(SECRET, rng=DeterministicRng(b"c")),
        ServerSession(SECRET, rng=DeterministicRng(b"s")),
        [1] * 100_000,
    )


@settings(
    max_examples=min(EXAMPLES, 60), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_any_chunking(sizes: list[int]) -> None:
    converse(
        ClientSession(SECRET, rng=DeterministicRng(b"c")),
        ServerSession(SECRET, rng=DeterministicRng(b"s")),
        sizes * 200,
    )


def test_replies_may_come_in_any_order() -> None:
    client, server = open_pair()
    first, f1 = client.request(1, b"a")
    second, f2 = client.request(2, b"b")
    server.receive(sends(f1) + sends(f2))
    assert client.receive(sends(server.reply(second, 0, b"B"))) == [Reply(second, 0, b"B")]
    assert client.receive(sends(server.reply(first, 0, b"A"))) == [Reply(first, 0, b"A")]


def test_request_ids_wrap_after_65535() -> None:
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"), first_request_id=0xFFFF)
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    converse_ids = []
    client_events = client.receive(sends(server.receive(sends(client.start()))))
    client.receive(sends(server.receive(sends(client_events))))
    for _ in range(2):
        request_id, frames = client.request(7)
        converse_ids.append(request_id)
        server.receive(sends(frames))
    assert converse_ids == [0xFFFF, 0]


# ------------------------------------------------------------------ wrong secret


def test_wrong_secret_the_server_detects_it_and_the_client_learns_it_from_the_hang_up() -> None:
    client = ClientSession(OTHER_SECRET, rng=DeterministicRng(b"c"))
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    to_client = sends(server.receive(sends(client.start())))
    to_server = sends(client.receive(to_client))  # round two and the client's confirm
    with pytest.raises(WrongMobileSecretError):
        server.receive(to_server)
    with pytest.raises(ChannelError, match="closed"):
        server.receive(b"\x00")
    # Device OS disconnects; the driver tells the client session so.
    error = client.connection_lost()
    assert isinstance(error, WrongMobileSecretError)
    assert "mobile secret" in str(error)
    with pytest.raises(ChannelError):
        client.request(1)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(0, HandshakeError), (1, HandshakeError), (2, WrongMobileSecretError), (4, ChannelError)],
)
def test_connection_lost_names_the_stage(steps: int, expected: type[ParticleCtrlError]) -> None:
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    data = sends(client.start())
    for step in range(steps):
        data = sends((server if step % 2 == 0 else client).receive(data))
    error = client.connection_lost()
    assert type(error) is expected
    assert client.connection_lost() is error


def test_a_short_or_long_confirmation_is_refused() -> None:
    for confirm in (b"\x01" * 31, b"\x01" * 33):
        client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
        server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
        client.receive(sends(server.receive(sends(client.start()))))
        with pytest.raises(HandshakeError, match="32 expected"):
            client.receive(struct.pack("<H", len(confirm)) + confirm)


# ------------------------------------------------------------------ tampering


def test_every_tampered_byte_of_a_request_kills_the_server_session() -> None:
    _, frames = open_pair()[0].request(250, b"payload")
    record = sends(frames)
    for index in range(len(record)):
        if index == 0:
            continue  # a larger size only makes the server wait for more bytes
        client, server = open_pair()
        _, genuine = client.request(250, b"payload")
        assert sends(genuine) == record
        tampered = bytearray(record)
        tampered[index] ^= 0x40
        if index == 1:  # size high byte: the record is complete only with more bytes
            tampered += bytes(0x40 << 8)
        with pytest.raises(ChannelError, match="does not authenticate"):
            server.receive(bytes(tampered))
        with pytest.raises(ChannelError, match="closed"):
            server.receive(b"")
        with pytest.raises(ChannelError, match="closed"):
            server.reply(1, 0)


def test_a_smaller_size_field_is_caught() -> None:
    client, server = open_pair()
    _, frames = client.request(250, b"payload")
    record = bytearray(sends(frames))
    record[0] -= 1
    with pytest.raises(ChannelError):
        server.receive(bytes(record))


def test_tampered_reply_kills_the_client_session() -> None:
    client, server = open_pair()
    request_id, frames = client.request(1, b"q")
    server.receive(sends(frames))
    reply = bytearray(sends(server.reply(request_id, 0, b"answer")))
    reply[-1] ^= 1  # the tag
    with pytest.raises(ChannelError):
        client.receive(bytes(reply))
    with pytest.raises(ChannelError, match="closed"):
        client.request(1)


def test_a_replayed_request_is_refused() -> None:
    client, server = open_pair()
    request_id, frames = client.request(1, b"once")
    record = sends(frames)
    assert server.receive(record) == [IncomingRequest(request_id, 1, b"once")]
    with pytest.raises(ChannelError):
        server.receive(record)


def test_reordered_requests_are_refused() -> None:
    client, server = open_pair()
    _, first = client.request(1, b"first")
    _, second = client.request(1, b"second")
    with pytest.raises(ChannelError):
        server.receive(sends(second) + sends(first))


def test_a_replayed_reply_is_refused() -> None:
    client, server = open_pair()
    first_id, frames = client.request(1)
    _, more = client.request(1)
    server.receive(sends(frames) + sends(more))
    reply = sends(server.reply(first_id, 0))
    client.receive(reply)
    with pytest.raises(ChannelError):
        client.receive(reply)  # pending id 2 exists, but counter 1 is spent


def test_a_replayed_handshake_message_after_opening_is_garbage() -> None:
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    round_one = sends(client.start())
    client_events = client.receive(sends(server.receive(round_one)))
    client.receive(sends(server.receive(sends(client_events))))
    assert server.receive(round_one) == []  # read as a record of 330 + 16 bytes: incomplete
    with pytest.raises(ChannelError):
        server.receive(round_one)


# ------------------------------------------------------------------ limits and misuse


@pytest.mark.parametrize("length", [0, 513, 0xFFFF])
def test_handshake_packet_lengths_outside_1_to_512_are_refused(length: int) -> None:
    server = ServerSession(SECRET)
    with pytest.raises(HandshakeError, match="1–512"):
        server.receive(struct.pack("<H", length))
    client = ClientSession(SECRET)
    client.start()
    with pytest.raises(HandshakeError):
        client.receive(struct.pack("<H", length) + b"\x00" * 10)


def test_garbage_handshake_payload_is_a_handshake_error() -> None:
    server = ServerSession(SECRET)
    with pytest.raises(HandshakeError):
        server.receive(struct.pack("<H", 4) + b"junk")


def test_misuse_raises_without_killing_the_session() -> None:
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
    with pytest.raises(HandshakeError, match="start"):
        client.receive(b"\x00")
    with pytest.raises(ChannelError, match="not open"):
        client.request(1)
    client.start()
    with pytest.raises(HandshakeError, match="already"):
        client.start()
    client, server = open_pair()
    with pytest.raises(PayloadTooLargeError):
        client.request(1, bytes(65536))
    with pytest.raises(ValueError, match="u16"):
        client.request(65536)
    with pytest.raises(ValueError, match="not pending"):
        server.reply(1, 0)
    request_id, frames = client.request(1, bytes(65535))  # the largest payload fits
    server.receive(sends(frames))
    with pytest.raises(ValueError, match="i32"):
        server.reply(request_id, 2**31)
    with pytest.raises(PayloadTooLargeError):
        server.reply(request_id, 0, bytes(65536))
    assert client.receive(sends(server.reply(request_id, 0, bytes(65535)))) == [
        Reply(request_id, 0, bytes(65535))
    ]
    assert client.is_open and server.is_open


@pytest.mark.parametrize("secret", [b"", b"short", b"sixteen bytes!!!"])
def test_a_mobile_secret_has_15_characters(secret: bytes) -> None:
    with pytest.raises(ValueError, match="15"):
        ClientSession(secret)
    with pytest.raises(ValueError, match="15"):
        ServerSession(secret)


def test_secrets_stay_out_of_reprs() -> None:
    client, server = open_pair()
    for session in (client, server):
        text = repr(session) + repr(vars(session).get("_cipher"))
        assert SECRET.decode() not in text
        assert "open" in repr(session)


def test_close_kills() -> None:
    client, server = open_pair()
    client.close()
    server.close()
    with pytest.raises(ChannelError):
        client.request(1)
    with pytest.raises(ChannelError):
        server.receive(b"")


# ------------------------------------------------------------------ fuzz


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=600), max_size=6))
def test_fuzz_server_receive(chunks: list[bytes]) -> None:
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    try:
        for chunk in chunks:
            server.receive(chunk)
    except ParticleCtrlError:
        pass


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=600), max_size=6))
def test_fuzz_client_receive(chunks: list[bytes]) -> None:
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
    client.start()
    try:
        for chunk in chunks:
            client.receive(chunk)
    except ParticleCtrlError:
        pass


@pytest.mark.fuzz
@settings(
    max_examples=min(EXAMPLES, 150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=400), st.integers(0, 3))
def test_fuzz_after_a_valid_prefix(garbage: bytes, stage: int) -> None:
    """Garbage after a genuine prefix of the conversation, at every stage."""
    client = ClientSession(SECRET, rng=DeterministicRng(b"c"))
    server = ServerSession(SECRET, rng=DeterministicRng(b"s"))
    data = sends(client.start())
    sessions: list[ClientSession | ServerSession] = [server, client, server, client]
    try:
        for session in sessions[:stage]:
            data = sends(session.receive(data))
        sessions[stage].receive(garbage)
    except ParticleCtrlError:
        pass


@pytest.mark.fuzz
@settings(
    max_examples=min(EXAMPLES, 80), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # each example needs a full handshake (about 50 ms)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 2**16))
def test_fuzz_flipped_bits_in_open_channel(data: bytes, position: int) -> None:
    client, server = open_pair()
    request_id, frames = client.request(3, data)
    record = bytearray(sends(frames))
    record[2 + position % (len(record) - 2)] ^= 1 << (position % 8)
    with pytest.raises(ChannelError):
        server.receive(bytes(record))
    assert not server.is_open
    assert request_id == 1


def test_chunked_helper_covers_everything() -> None:
    data = bytes(range(50))
    assert b"".join(chunked(data, [3, 0, 7])) == data
