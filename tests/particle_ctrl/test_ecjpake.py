"""EC-JPAKE against mbedTLS's self-test vectors and against itself; call order; inputs.

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

import hashlib
import json
import string
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
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
    Role,
    UnusablePasswordError,
    parse_round_one,
    parse_round_two,
)
from bluemule.particle_ctrl.errors import HandshakeError
from tests.particle_ctrl.ecjpake_support import (
    MOBILE_SECRET,
    PASSWORD,
    VECTORS,
    X1,
    X2,
    X3,
    X4,
    S,
    handshake,
    nonce_of,
    point,
    replay,
    seeded,
    vector_client,
    vector_server,
)

GOLDEN = Path(__file__).parent / "golden" / "ecjpake-handshake.json"


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


JAVA = json.loads((Path(__file__).parent / "golden" / "ecjpake-java-vectors.json").read_text())


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
def test_ecjpake_java_vectors_are_reproduced_byte_for_byte(role: Role) -> None:
    """Particle's own client library, fed the same random bytes, wrote the same messages.

    Java draws x1, v1, x2, v2; we draw x1, x2, v1, v2, so the replay reorders them. Its
    round two and derivation also draw 16-byte blinding values (mbedTLS's
    ``ecjpake_mul_secret``), which change nothing in the result; we do not draw them.
    """
    vectors = JAVA[role.value]
    draws = [vectors["random"][name] for name in ("x1", "x2", "v1", "v2", "v_round_two")]
    handshake = EcJpake(role, bytes.fromhex(JAVA["password"]), rng=replay(draws))
    if role is Role.CLIENT:
        assert handshake.write_round_one().hex() == vectors["own_round_one"]
        handshake.read_round_one(bytes.fromhex(vectors["peer_round_one"]))
        assert handshake.write_round_two().hex() == vectors["own_round_two"]
        handshake.read_round_two(bytes.fromhex(vectors["peer_round_two"]))
    else:
        handshake.read_round_one(bytes.fromhex(vectors["peer_round_one"]))
        assert handshake.write_round_one().hex() == vectors["own_round_one"]
        handshake.read_round_two(bytes.fromhex(vectors["peer_round_two"]))
        assert handshake.write_round_two().hex() == vectors["own_round_two"]
    assert handshake.derive_secret().hex() == vectors["secret"]


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
    with pytest.raises(HandshakeStateError, match="before reading round two"):
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
    early = client.derive_secret()  # allowed before writing round two, as mbedTLS
    server.read_round_two(client.write_round_two())
    assert early == client.derive_secret() == server.derive_secret()
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


def write_golden() -> None:
    """Rewrite ``golden/ecjpake-handshake.json`` from the current implementation."""
    records = [golden_record(name, password) for name, password in GOLDEN_CASES.items()]
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--write-golden"]:
    write_golden()
