"""EC-JPAKE against mbedTLS's self-test vectors, against itself, and against hostile input.

The mbedTLS vectors (``shared/fixtures/ecjpake/mbedtls-selftest.json``) give the private
keys x1..x4, the four wire messages and the PMS. The proof nonces are not given, but
since the keys are, each nonce follows from its proof: ``v = r + x·h mod n``. Replaying
those nonces makes our writers reproduce all four messages byte for byte, which pins the
encoding, the hash input, the round-two generators and the ECParameters prefix.

Golden records (``golden/ecjpake-handshake.json``) pin our own output for seeded random
generators; regenerate them, after a deliberate encoding change only, with
``.venv/bin/python -m tests.particle_ctrl.test_ecjpake --write-golden``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import string
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl import p256
from bluemule.particle_ctrl.ecjpake import (
    CLIENT_ROUND_TWO_MAX_SIZE,
    ECPARAMETERS_P256,
    ROUND_ONE_MAX_SIZE,
    SECRET_SIZE,
    SERVER_ROUND_TWO_MAX_SIZE,
    EcJpake,
    HandshakeStateError,
    InvalidPointError,
    InvalidProofError,
    KeyProof,
    MalformedMessageError,
    Role,
    UnusablePasswordError,
    _challenge,
    parse_round_one,
    parse_round_two,
)
from bluemule.particle_ctrl.errors import HandshakeError

FIXTURE = Path(__file__).parents[2] / "../shared/fixtures/ecjpake/mbedtls-selftest.json"
GOLDEN = Path(__file__).parent / "golden" / "ecjpake-handshake.json"
VECTORS: dict[str, bytes] = {
    name: bytes.fromhex(value) for name, value in json.loads(FIXTURE.read_text())["vectors"].items()
}
PASSWORD = VECTORS["password"]
S = int.from_bytes(PASSWORD, "big")
X1, X2, X3, X4 = (int.from_bytes(VECTORS[f"x{i}"], "big") for i in range(1, 5))
MOBILE_SECRET = b"7KQ3ZD9PXMRW2HT"  # the format of a Particle mobile secret: 15 characters


def replay(nonces: list[int]) -> Callable[[int], bytes]:
    """An rng that hands out the given scalars, in order, as 32-byte strings."""
    queue = iter(nonces)

    def rng(size: int) -> bytes:
        assert size == 32
        return next(queue).to_bytes(32, "big")

    return rng


def seeded(label: str) -> Callable[[int], bytes]:
    """A deterministic rng: SHA-256(label / counter) blocks."""
    counter = itertools.count()

    def rng(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(f"{label}/{next(counter)}".encode()).digest()
        return out[:size]

    return rng


def nonce_of(proof: KeyProof, x: int, generator: p256.Point, prover: Role) -> int:
    """v = r + x·h mod n, checked against V = v·generator."""
    v = (proof.r + x * _challenge(generator, proof.V, proof.X, prover.identity)) % p256.N
    assert p256.multiply(v, generator) == proof.V
    return v


def point(k: int) -> p256.Point:
    product = p256.multiply_generator(k)
    assert product is not None
    return product


def handshake(client: EcJpake, server: EcJpake) -> tuple[bytes, bytes, bytes, bytes]:
    """Run the Particle message order; return cli_one, srv_one, srv_two, cli_two."""
    cli_one = client.write_round_one()
    server.read_round_one(cli_one)
    srv_one = server.write_round_one()
    srv_two = server.write_round_two()
    client.read_round_one(srv_one)
    client.read_round_two(srv_two)
    cli_two = client.write_round_two()
    server.read_round_two(cli_two)
    return cli_one, srv_one, srv_two, cli_two


def vector_client(rng: Callable[[int], bytes] = os.urandom) -> EcJpake:
    return EcJpake.with_private_keys(Role.CLIENT, PASSWORD, X1, X2, rng=rng)


def vector_server(rng: Callable[[int], bytes] = os.urandom) -> EcJpake:
    return EcJpake.with_private_keys(Role.SERVER, PASSWORD, X3, X4, rng=rng)


# ------------------------------------------------------------------ mbedTLS vectors


def test_vector_file_is_self_consistent() -> None:
    shared = VECTORS["shared_key"]
    assert hashlib.sha256(shared[1:33]).digest() == VECTORS["pms"]
    k = (X1 + X3) * X2 * X4 * S % p256.N  # K = (x1 + x3)·x2·x4·s·G
    assert point(k).encode() == shared


def test_client_reads_the_server_vectors_and_derives_the_pms() -> None:
    client = vector_client()
    client.write_round_one()
    client.read_round_one(VECTORS["srv_one"])
    client.read_round_two(VECTORS["srv_two"])
    client.write_round_two()
    assert client.derive_secret() == VECTORS["pms"]
    assert len(VECTORS["pms"]) == SECRET_SIZE


def test_server_reads_the_client_vectors_and_derives_the_pms() -> None:
    server = vector_server()
    server.read_round_one(VECTORS["cli_one"])
    server.write_round_one()
    server.write_round_two()
    server.read_round_two(VECTORS["cli_two"])
    assert server.derive_secret() == VECTORS["pms"]


def test_vector_messages_parse_to_the_vector_keys_and_re_encode_identically() -> None:
    for name, sender, keys in (
        ("cli_one", Role.CLIENT, (X1, X2)),
        ("srv_one", Role.SERVER, (X3, X4)),
    ):
        proofs = parse_round_one(VECTORS[name], sender)
        assert tuple(proof.X for proof in proofs) == tuple(point(x) for x in keys)
        assert b"".join(proof.encode() for proof in proofs) == VECTORS[name]
    srv_two = parse_round_two(VECTORS["srv_two"], Role.SERVER)
    assert ECPARAMETERS_P256 + srv_two.encode() == VECTORS["srv_two"]
    cli_two = parse_round_two(VECTORS["cli_two"], Role.CLIENT)
    assert cli_two.encode() == VECTORS["cli_two"]
    server_key = point(X4 * S * (X1 + X2 + X3))  # Xs = x4·s·(X1 + X2 + X3)
    client_key = point(X2 * S * (X1 + X3 + X4))  # Xc = x2·s·(X1 + X3 + X4)
    assert srv_two.X.encode() == server_key.encode()
    assert cli_two.X.encode() == client_key.encode()


def test_replayed_nonces_reproduce_all_four_vector_messages_byte_for_byte() -> None:
    c1, c2 = parse_round_one(VECTORS["cli_one"], Role.CLIENT)
    s1, s2 = parse_round_one(VECTORS["srv_one"], Role.SERVER)
    cli_two = parse_round_two(VECTORS["cli_two"], Role.CLIENT)
    srv_two = parse_round_two(VECTORS["srv_two"], Role.SERVER)
    client_nonces = [
        nonce_of(c1, X1, p256.G, Role.CLIENT),
        nonce_of(c2, X2, p256.G, Role.CLIENT),
        nonce_of(cli_two, X2 * S, point(X1 + X3 + X4), Role.CLIENT),
    ]
    server_nonces = [
        nonce_of(s1, X3, p256.G, Role.SERVER),
        nonce_of(s2, X4, p256.G, Role.SERVER),
        nonce_of(srv_two, X4 * S, point(X1 + X2 + X3), Role.SERVER),
    ]
    client = vector_client(replay(client_nonces))
    server = vector_server(replay(server_nonces))
    messages = handshake(client, server)
    assert messages == tuple(VECTORS[n] for n in ("cli_one", "srv_one", "srv_two", "cli_two"))
    assert client.derive_secret() == server.derive_secret() == VECTORS["pms"]


# ------------------------------------------------------------------ our two roles


@pytest.mark.parametrize(
    "password",
    [
        MOBILE_SECRET,
        PASSWORD,
        b"a",
        b"\x00\x01",
        bytes(range(256)),
        p256.N.to_bytes(32, "big")[:-1],
    ],
    ids=["mobile-secret", "vector", "one-byte", "leading-zero", "256-bytes", "near-n"],
)
def test_client_and_server_agree(password: bytes) -> None:
    client = EcJpake(Role.CLIENT, password)
    server = EcJpake(Role.SERVER, password)
    cli_one, srv_one, srv_two, cli_two = handshake(client, server)
    assert client.derive_secret() == server.derive_secret()
    assert len(client.derive_secret()) == SECRET_SIZE
    assert client.derive_secret() == client.derive_secret()  # repeatable
    assert srv_two.startswith(ECPARAMETERS_P256)
    assert not cli_two.startswith(ECPARAMETERS_P256)
    assert len(cli_one) <= ROUND_ONE_MAX_SIZE
    assert len(srv_one) <= ROUND_ONE_MAX_SIZE
    assert len(srv_two) <= SERVER_ROUND_TWO_MAX_SIZE
    assert len(cli_two) <= CLIENT_ROUND_TWO_MAX_SIZE


@settings(max_examples=15, deadline=None)
@given(st.text(string.ascii_uppercase + string.digits, min_size=15, max_size=15))
def test_any_mobile_secret_agrees_and_a_wrong_one_does_not(secret: str) -> None:
    password = secret.encode("ascii")
    client = EcJpake(Role.CLIENT, password)
    server = EcJpake(Role.SERVER, password)
    handshake(client, server)
    assert client.derive_secret() == server.derive_secret()

    wrong = password[:-1] + (b"A" if password[-1:] != b"A" else b"B")
    client = EcJpake(Role.CLIENT, wrong)
    server = EcJpake(Role.SERVER, password)
    handshake(client, server)  # EC-JPAKE itself cannot tell: key confirmation does
    assert client.derive_secret() != server.derive_secret()


def test_fresh_keys_give_fresh_messages_and_secrets() -> None:
    first = EcJpake(Role.CLIENT, MOBILE_SECRET), EcJpake(Role.SERVER, MOBILE_SECRET)
    second = EcJpake(Role.CLIENT, MOBILE_SECRET), EcJpake(Role.SERVER, MOBILE_SECRET)
    assert handshake(*first)[0] != handshake(*second)[0]
    assert first[0].derive_secret() != second[0].derive_secret()


# ------------------------------------------------------------------ golden records


def golden_record(name: str, password: bytes) -> dict[str, Any]:
    client = EcJpake(Role.CLIENT, password, rng=seeded(f"{name}/client"))
    server = EcJpake(Role.SERVER, password, rng=seeded(f"{name}/server"))
    messages = handshake(client, server)
    record: dict[str, Any] = {"name": name, "password": password.hex()}
    for label, message in zip(("cli_one", "srv_one", "srv_two", "cli_two"), messages, strict=True):
        record[label] = message.hex()
    record["secret"] = client.derive_secret().hex()
    assert server.derive_secret() == client.derive_secret()
    return record


GOLDEN_CASES = {"mobile-secret": MOBILE_SECRET, "mbedtls-password": PASSWORD}


def test_golden_records() -> None:
    records = json.loads(GOLDEN.read_text())
    assert [r["name"] for r in records] == list(GOLDEN_CASES)
    for record in records:
        password = bytes.fromhex(record["password"])
        assert password == GOLDEN_CASES[record["name"]]
        assert golden_record(record["name"], password) == record


# ------------------------------------------------------------------ call order and inputs


def test_call_order_is_enforced() -> None:
    client = EcJpake(Role.CLIENT, MOBILE_SECRET)
    server = EcJpake(Role.SERVER, MOBILE_SECRET)
    with pytest.raises(HandshakeStateError, match="before writing round one"):
        client.write_round_two()
    with pytest.raises(HandshakeStateError, match="before writing round one"):
        client.read_round_two(b"")
    with pytest.raises(HandshakeStateError, match="before writing round two"):
        client.derive_secret()
    cli_one = client.write_round_one()
    with pytest.raises(HandshakeStateError, match="already written"):
        client.write_round_one()
    with pytest.raises(HandshakeStateError, match="before reading round one"):
        client.write_round_two()
    server.read_round_one(cli_one)
    with pytest.raises(HandshakeStateError, match="already read"):
        server.read_round_one(cli_one)
    srv_one = server.write_round_one()
    srv_two = server.write_round_two()
    with pytest.raises(HandshakeStateError, match="already written"):
        server.write_round_two()
    with pytest.raises(HandshakeStateError, match="before reading round two"):
        server.derive_secret()
    client.read_round_one(srv_one)
    client.read_round_two(srv_two)
    with pytest.raises(HandshakeStateError, match="already read"):
        client.read_round_two(srv_two)
    with pytest.raises(HandshakeStateError, match="before writing round two"):
        client.derive_secret()
    server.read_round_two(client.write_round_two())
    assert client.derive_secret() == server.derive_secret()
    assert issubclass(HandshakeStateError, HandshakeError)


@pytest.mark.parametrize(
    "password", [b"", bytes(3), p256.N.to_bytes(32, "big"), (2 * p256.N).to_bytes(33, "big")]
)
def test_unusable_passwords_are_refused(password: bytes) -> None:
    with pytest.raises(UnusablePasswordError):
        EcJpake(Role.CLIENT, password)


def test_password_must_be_bytes() -> None:
    with pytest.raises(UnusablePasswordError):
        EcJpake(Role.CLIENT, "threadjpaketest")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [0, p256.N, p256.N + 1, -1])
def test_private_keys_out_of_range_are_refused(key: int) -> None:
    with pytest.raises(HandshakeError, match="not in"):
        EcJpake.with_private_keys(Role.CLIENT, PASSWORD, key, X2)
    with pytest.raises(HandshakeError, match="not in"):
        EcJpake.with_private_keys(Role.SERVER, PASSWORD, X3, key)


def test_a_failing_random_generator_is_a_handshake_error() -> None:
    with pytest.raises(HandshakeError, match="did not return 32 bytes"):
        EcJpake(Role.CLIENT, PASSWORD, rng=lambda size: bytes(size - 1)).write_round_one()
    with pytest.raises(HandshakeError, match=r"no scalar in \[1, n-1\]"):
        EcJpake(Role.CLIENT, PASSWORD, rng=bytes).write_round_one()  # all zeros
    with pytest.raises(HandshakeError, match=r"no scalar in \[1, n-1\]"):
        EcJpake(Role.CLIENT, PASSWORD, rng=lambda size: b"\xff" * size).write_round_one()


def test_repr_shows_no_secret() -> None:
    client = vector_client()
    client.write_round_one()
    text = repr(client)
    assert text == "EcJpake(role=CLIENT, stage='wrote round one')"
    for secret in (PASSWORD.hex(), str(S), f"{X1:x}", str(X1), "threadjpaketest"):
        assert secret not in text


# ------------------------------------------------------------------ hostile input

MESSAGES = ("cli_one", "srv_one", "srv_two", "cli_two")


@functools.cache
def prepared(name: str) -> Callable[[bytes], None]:
    """The read method of a handshake waiting for vector message ``name``.

    A refused message leaves a handshake as it was, so one instance serves every test.
    """
    if name == "cli_one":
        return vector_server().read_round_one
    if name == "srv_one":
        return vector_client().read_round_one
    if name == "srv_two":
        client = vector_client()
        client.write_round_one()
        client.read_round_one(VECTORS["srv_one"])
        return client.read_round_two
    server = vector_server()
    server.read_round_one(VECTORS["cli_one"])
    server.write_round_one()
    return server.read_round_two


def expected_refusals(name: str) -> list[type[HandshakeError]]:
    """For each byte of vector message ``name``, the error a corruption there must raise."""
    data = VECTORS[name]
    layout: list[type[HandshakeError]] = []
    if name == "srv_two":
        layout += [MalformedMessageError] * 3  # ECParameters
    while len(layout) < len(data):
        for _ in ("X", "V"):  # length, format byte, x and y
            layout += [MalformedMessageError] * 2 + [InvalidPointError] * 64
        r_length = data[len(layout)]
        layout += [MalformedMessageError] + [InvalidProofError] * r_length
    assert len(layout) == len(data)
    return layout


@pytest.mark.parametrize("name", MESSAGES)
def test_every_truncation_and_extension_is_refused(name: str) -> None:
    read = prepared(name)
    data = VECTORS[name]
    for cut in range(len(data)):
        with pytest.raises(MalformedMessageError):
            read(data[:cut])
    for extra in (b"\x00", b"\x41", data):
        with pytest.raises(MalformedMessageError, match="trailing"):
            read(data + extra)


@pytest.mark.parametrize("name", MESSAGES)
def test_every_single_byte_corruption_is_refused_with_the_right_error(name: str) -> None:
    read = prepared(name)
    data = VECTORS[name]
    for offset, error in enumerate(expected_refusals(name)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(data)
            corrupt[offset] ^= mask
            with pytest.raises(error):
                read(bytes(corrupt))


def test_a_refused_message_leaves_the_handshake_usable() -> None:
    client = vector_client()
    client.write_round_one()
    bad = bytearray(VECTORS["srv_one"])
    bad[-1] ^= 1
    with pytest.raises(InvalidProofError):
        client.read_round_one(bytes(bad))
    client.read_round_one(VECTORS["srv_one"])
    with pytest.raises(MalformedMessageError):
        client.read_round_two(VECTORS["srv_two"][:-1])
    client.read_round_two(VECTORS["srv_two"])
    client.write_round_two()
    assert client.derive_secret() == VECTORS["pms"]


def replace_first_point(message: bytes, encoding: bytes) -> bytes:
    """Swap the first ECPoint (length byte + 65 bytes) of a round-one message."""
    return encoding + message[66:]


def small_x_point() -> p256.Point:
    """A curve point whose x is so small that x + p still fits in 32 bytes."""
    for x in itertools.count(1):
        rhs = (x**3 - 3 * x + p256.B) % p256.P
        y = pow(rhs, (p256.P + 1) // 4, p256.P)  # p = 3 mod 4
        if y * y % p256.P == rhs:
            return p256.Point(x, y)
    raise AssertionError


@pytest.mark.parametrize(
    ("encoding", "error", "message"),
    [
        (b"\x01\x00", MalformedMessageError, "length 1"),  # mbedTLS's infinity
        (b"\x21\x02" + point(X1).encode()[1:33], MalformedMessageError, "length 33"),
        (b"\x41\x02" + point(X1).encode()[1:], MalformedMessageError, "format byte 0x02"),
        (b"\x41\x06" + point(X1).encode()[1:], MalformedMessageError, "format byte 0x06"),
        (b"\x41\x00" + bytes(64), MalformedMessageError, "format byte 0x00"),
        (b"\x41\x04" + bytes(64), InvalidPointError, "not on P-256"),
        (
            b"\x41" + p256.Point(point(X1).x, point(X1).y ^ 1).encode(),
            InvalidPointError,
            "X1 is not on P-256",
        ),
        (
            b"\x41\x04"
            + (small_x_point().x + p256.P).to_bytes(32, "big")
            + small_x_point().y.to_bytes(32, "big"),
            InvalidPointError,
            "not below p",
        ),
    ],
    ids=["infinity", "compressed", "format-02", "hybrid-06", "zero", "origin", "off-curve", "x+p"],
)
def test_bad_points_are_refused(encoding: bytes, error: type[HandshakeError], message: str) -> None:
    with pytest.raises(error, match=message):
        prepared("cli_one")(replace_first_point(VECTORS["cli_one"], encoding))


def with_first_r(message: bytes, r_field: bytes) -> bytes:
    """Replace the first proof's ``r`` (length byte and value) in a round-one message."""
    r_length = message[132]
    return message[:132] + r_field + message[133 + r_length :]


@pytest.mark.parametrize(
    ("r_field", "error", "message"),
    [
        (b"\x00", MalformedMessageError, "r has length 0"),
        (b"\x21\x00" + bytes(32), MalformedMessageError, "r has length 33"),
        (b"\x20" + p256.N.to_bytes(32, "big"), InvalidProofError, "not below n"),
        (b"\x20" + b"\xff" * 32, InvalidProofError, "not below n"),
        (b"\x01\x00", InvalidProofError, "does not verify"),
        (b"\x01\x01", InvalidProofError, "does not verify"),
    ],
    ids=["empty", "33-bytes", "n", "max", "zero", "one"],
)
def test_bad_proof_scalars_are_refused(
    r_field: bytes, error: type[HandshakeError], message: str
) -> None:
    with pytest.raises(error, match=message):
        prepared("cli_one")(with_first_r(VECTORS["cli_one"], r_field))


def test_a_short_r_is_written_minimal_and_read_in_any_length_up_to_32() -> None:
    """mbedTLS writes r in its minimal length and reads any length; we read 1..32 bytes."""
    keys = (X1, X2)
    second = prove(X2, p256.G, Role.CLIENT)
    first = prove(X1, p256.G, Role.CLIENT)
    while first.r >= 2**248:  # about 1 in 256 proofs has a 31-byte r
        first = prove(X1, p256.G, Role.CLIENT)
    minimal = first.encode()
    assert minimal[132] == (first.r.bit_length() + 7) // 8 <= 31
    padded = minimal[:132] + b"\x20" + first.r.to_bytes(32, "big")
    for encoding in (minimal, padded):
        server = vector_server()
        server.read_round_one(encoding + second.encode())
        assert [proof.X for proof in parse_round_one(encoding + second.encode(), Role.CLIENT)] == [
            point(x) for x in keys
        ]
    with pytest.raises(MalformedMessageError, match="length 33"):
        vector_server().read_round_one(
            minimal[:132] + b"\x21" + first.r.to_bytes(33, "big") + second.encode()
        )


@pytest.mark.parametrize(
    "prefix", [b"\x03\x00\x18", b"\x03\x00\x1d", b"\x01\x00\x17", b"\x00\x00\x00", b"\x03\x17\x00"]
)
def test_bad_ecparameters_are_refused(prefix: bytes) -> None:
    with pytest.raises(MalformedMessageError, match="ECParameters"):
        prepared("srv_two")(prefix + VECTORS["srv_two"][3:])


def test_messages_of_the_wrong_kind_or_sender_are_refused() -> None:
    with pytest.raises(MalformedMessageError):
        prepared("srv_two")(VECTORS["cli_two"])  # no ECParameters
    with pytest.raises(MalformedMessageError):
        prepared("cli_two")(VECTORS["srv_two"])  # ECParameters where a point belongs
    with pytest.raises(InvalidProofError, match="does not verify"):
        prepared("srv_one")(VECTORS["cli_one"])  # reflected: proofs carry the id "client"
    with pytest.raises(InvalidProofError, match="does not verify"):
        prepared("cli_one")(VECTORS["srv_one"])
    first_key = VECTORS["cli_one"][: len(VECTORS["cli_two"])]  # a proof made with G, not GA
    with pytest.raises(InvalidProofError, match="does not verify"):
        prepared("cli_two")(first_key)
    with pytest.raises(MalformedMessageError, match="trailing"):
        prepared("srv_two")(VECTORS["srv_two"][:3] + VECTORS["srv_one"])
    for not_bytes in (None, "41", 7):
        with pytest.raises(MalformedMessageError, match="expected bytes"):
            prepared("srv_one")(not_bytes)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    server = vector_server()
    server.read_round_one(bytearray(VECTORS["cli_one"]))  # type: ignore[arg-type]
    server.write_round_one()
    server.write_round_two()
    server.read_round_two(memoryview(VECTORS["cli_two"]))  # type: ignore[arg-type]
    assert server.derive_secret() == VECTORS["pms"]


def prove(x: int, generator: p256.Point, prover: Role) -> KeyProof:
    """A valid Schnorr proof, as a peer that knows ``x`` would make it."""
    v = int.from_bytes(os.urandom(32), "big") % (p256.N - 1) + 1
    public = p256.multiply(x, generator)
    commitment = p256.multiply(v, generator)
    assert public is not None
    assert commitment is not None
    r = (v - x * _challenge(generator, commitment, public, prover.identity)) % p256.N
    return KeyProof(public, commitment, r)


def test_a_peer_cancelling_the_writers_round_two_generator_is_refused() -> None:
    """X3 + X4 = -X1 makes GA = X1 + X3 + X4 infinity; the client must not sign with it."""
    client = vector_client()
    client.write_round_one()
    x3 = 12345
    attacker = EcJpake.with_private_keys(Role.SERVER, PASSWORD, x3, (-X1 - x3) % p256.N)
    client.read_round_one(attacker.write_round_one())  # the proofs themselves are valid
    with pytest.raises(InvalidPointError, match="round-two generator"):
        client.write_round_two()


def test_a_peer_cancelling_the_readers_round_two_generator_is_refused() -> None:
    """X3 = -(X1 + X2) makes GB = X1 + X2 + X3 infinity."""
    client = vector_client()
    client.write_round_one()
    attacker = EcJpake.with_private_keys(Role.SERVER, PASSWORD, (-X1 - X2) % p256.N, X4)
    client.read_round_one(attacker.write_round_one())
    with pytest.raises(InvalidPointError, match="generator"):
        client.read_round_two(VECTORS["srv_two"])


def test_a_round_two_key_forcing_k_to_infinity_is_refused() -> None:
    """Xs = x2·s·X4 (with a valid proof over GB) makes K = x2·(Xs - x2·s·X4) infinity."""
    client = vector_client()
    client.write_round_one()
    client.read_round_one(VECTORS["srv_one"])
    gb_scalar = (X1 + X2 + X3) % p256.N
    xs = X2 * S * X4 * pow(gb_scalar, -1, p256.N) % p256.N
    forged = prove(xs, point(gb_scalar), Role.SERVER)
    client.read_round_two(ECPARAMETERS_P256 + forged.encode())  # the proof is valid
    client.write_round_two()
    with pytest.raises(InvalidPointError, match="K is the point at infinity"):
        client.derive_secret()


# ------------------------------------------------------------------ fuzz

FUZZ = settings(
    max_examples=int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400")),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


def read_or_refuse(name: str, data: bytes) -> None:
    with contextlib.suppress(HandshakeError):
        prepared(name)(data)
        pytest.fail(f"{name}: a fuzzed message was accepted: {data.hex()}")


@pytest.mark.fuzz
@FUZZ
@given(st.sampled_from(MESSAGES), st.binary(max_size=2 * ROUND_ONE_MAX_SIZE))
def test_fuzz_arbitrary_bytes_raise_only_handshake_errors(name: str, data: bytes) -> None:
    read_or_refuse(name, data)


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, bytes]:
    """A vector message with a few flips, insertions, deletions, overwrites or splices."""
    name = draw(st.sampled_from(MESSAGES))
    data = bytearray(VECTORS[name])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["flip", "insert", "delete", "overwrite", "splice"])):
            case "flip" if at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=4))
            case "delete":
                del data[at : at + draw(st.integers(1, 70))]
            case "overwrite":
                boundary = draw(st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x20, 0x21, 0x41, 0xFF]))
                data[at : at + 1] = bytes([boundary])
            case _:
                other = VECTORS[draw(st.sampled_from(MESSAGES))]
                start = draw(st.integers(0, len(other)))
                data[at:] = other[start:]
    return name, bytes(data)


@pytest.mark.fuzz
@FUZZ
@given(mutants())
def test_fuzz_mutated_vectors_raise_only_handshake_errors(mutant: tuple[str, bytes]) -> None:
    name, data = mutant
    if data == VECTORS[name]:
        return
    read_or_refuse(name, data)


@pytest.mark.fuzz
@FUZZ
@given(
    st.lists(st.integers(1, p256.N - 1), min_size=4, max_size=4),
    st.lists(st.integers(0, 2**256 - 1), min_size=2, max_size=2),
)
def test_fuzz_well_formed_messages_with_wrong_proofs_are_refused(
    keys: list[int], rs: list[int]
) -> None:
    """Real curve points in the right layout, but r values nobody computed."""
    proofs = [KeyProof(point(keys[i]), point(keys[i + 1]), rs[i // 2] % p256.N) for i in (0, 2)]
    with pytest.raises(InvalidProofError):
        prepared("cli_one")(proofs[0].encode() + proofs[1].encode())
    with pytest.raises(InvalidProofError):
        prepared("srv_two")(ECPARAMETERS_P256 + proofs[0].encode())


def write_golden() -> None:
    """Rewrite ``golden/ecjpake-handshake.json`` from the current implementation."""
    records = [golden_record(name, password) for name, password in GOLDEN_CASES.items()]
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--write-golden"]:
    write_golden()
