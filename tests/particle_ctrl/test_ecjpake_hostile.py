"""EC-JPAKE against hostile input: every truncation and single-byte corruption of the
mbedTLS vector messages (each with the error its field must give), crafted points, proof
scalars and ECParameters, messages of the wrong kind or sender, peers that choose their keys
to cancel a round-two generator or the shared point K, and hypothesis fuzz (marker
``fuzz``; ``BLUEMULE_FUZZ_EXAMPLES`` examples per test, 400 by default).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl import p256
from bluemule.particle_ctrl.ecjpake import (
    ECPARAMETERS_P256,
    ROUND_ONE_MAX_SIZE,
    EcJpake,
    InvalidPointError,
    InvalidProofError,
    KeyProof,
    MalformedMessageError,
    Role,
    parse_round_one,
)
from bluemule.particle_ctrl.errors import HandshakeError
from tests.particle_ctrl.ecjpake_support import (
    MESSAGES,
    PASSWORD,
    VECTORS,
    X1,
    X2,
    X3,
    X4,
    S,
    point,
    prepared,
    prove,
    vector_client,
    vector_server,
)


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
