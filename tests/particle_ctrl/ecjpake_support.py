"""Shared by the EC-JPAKE tests: mbedTLS's self-test vectors and handshake helpers.

The vectors (``shared/fixtures/ecjpake/mbedtls-selftest.json``, from Mbed-TLS
``library/ecjpake.c``) give the private keys x1..x4, the four wire messages and the PMS.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from bluemule.particle_ctrl import p256
from bluemule.particle_ctrl.ecjpake import (
    EcJpake,
    KeyProof,
    Role,
    _challenge,
)

FIXTURE = Path(__file__).parents[2] / "../shared/fixtures/ecjpake/mbedtls-selftest.json"
VECTORS: dict[str, bytes] = {
    name: bytes.fromhex(value) for name, value in json.loads(FIXTURE.read_text())["vectors"].items()
}
PASSWORD = VECTORS["password"]
S = int.from_bytes(PASSWORD, "big")
X1, X2, X3, X4 = (int.from_bytes(VECTORS[f"x{i}"], "big") for i in range(1, 5))
MOBILE_SECRET = b"7KQ3ZD9PXMRW2HT"  # the format of a Particle mobile secret: 15 characters


def replay(draws: Sequence[int | str]) -> Callable[[int], bytes]:
    """An rng that hands out the given scalars (ints or hex), in order, as 32-byte strings."""
    queue = iter(draws)

    def rng(size: int) -> bytes:
        assert size == 32
        draw = next(queue)
        return draw.to_bytes(32, "big") if isinstance(draw, int) else bytes.fromhex(draw)

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


def prove(x: int, generator: p256.Point, prover: Role) -> KeyProof:
    """A valid Schnorr proof, as a peer that knows ``x`` would make it."""
    v = int.from_bytes(os.urandom(32), "big") % (p256.N - 1) + 1
    public = p256.multiply(x, generator)
    commitment = p256.multiply(v, generator)
    assert public is not None
    assert commitment is not None
    r = (v - x * _challenge(generator, commitment, public, prover.identity)) % p256.N
    return KeyProof(public, commitment, r)


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
