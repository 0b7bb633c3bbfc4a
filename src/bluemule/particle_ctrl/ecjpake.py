"""EC-JPAKE as mbedTLS does it, both roles: the handshake of Particle's BLE control channel.

Device OS authenticates its BLE control channel with mbedTLS ``mbedtls_ecjpake``
(``../shared/reference/particle.md`` §5.4): curve P-256, SHA-256, the TLS ECJPAKE wire
encoding, identities ``b"client"`` (the phone) and ``b"server"`` (the device), and as
password the device's 15-character mobile secret, read as one big-endian integer ``s``.

Protocol (Thread 1.0 §7.4 as implemented in Mbed-TLS ``library/ecjpake.c``; ``m`` = mine,
``p`` = the peer's)::

    round one    each side picks xm1, xm2 in [1, n-1] and sends
                 Xm1 = xm1·G, ZKP(xm1; G), Xm2 = xm2·G, ZKP(xm2; G)
    round two    each side sends Xm = (xm2·s)·Gm, ZKP(xm2·s; Gm), Gm = Xm1 + Xp1 + Xp2
                 (the server's message starts with ECParameters 03 00 17)
    secret       K = xm2·(Xp - (xm2·s)·Xp2);  secret = SHA-256(K.x as 32 bytes, big-endian)

Both sides end with the same K = (x1 + x3)·x2·x4·s·G only if they used the same ``s``;
the key confirmation that detects a wrong mobile secret is the next layer's job.

Wire encoding (TLS)::

    ECPoint       u8 length (65) ‖ 04 ‖ x (32) ‖ y (32)
    ECSchnorrZKP  ECPoint V ‖ u8 length (1..32) ‖ r (big-endian)
    ECJPAKEKeyKP  ECPoint X ‖ ECSchnorrZKP
    round one     ECJPAKEKeyKP ‖ ECJPAKEKeyKP
    round two     [03 00 17 from the server] ‖ ECJPAKEKeyKP

A Schnorr proof for ``X = x·Gen`` is ``V = v·Gen`` and ``r = v - x·h mod n`` with
``h = SHA-256(len‖Gen ‖ len‖V ‖ len‖X ‖ len‖id) mod n`` (each length a u32 big-endian, points
uncompressed, ``id`` the prover's identity); the verifier checks ``V == r·Gen + h·X``.

Everything received is checked, as mbedTLS does and more: exact lengths with no trailing
bytes, uncompressed points only (``04``; compressed forms and the 1-byte infinity
encoding are refused), coordinates below p, points on the curve and not at infinity,
``r`` of 1..32 bytes and below n, every proof, the server's ECParameters, and the
round-two generator and the final point K not at infinity. Refusals raise subclasses of
:class:`~bluemule.particle_ctrl.errors.HandshakeError`; a refused message leaves the
handshake as it was. Calls out of order raise :class:`HandshakeStateError` (also a
``HandshakeError``).

Randomness: every draw is ``rng(32)`` read big-endian, redrawn unless in [1, n-1] (as
mbedTLS). Round one draws x1, x2 (not when given to :meth:`EcJpake.with_private_keys`),
then the proof nonces v1, v2; round two draws its proof nonce. mbedTLS and ecjpake-java
draw x1, v1, x2, v2 plus 16-byte blinding values; recorded vectors replay with that reorder.

Side channels: the arithmetic in :mod:`bluemule.particle_ctrl.p256` is pure Python and
not constant time. Every handshake uses fresh random scalars, and the phone's timing is not
observable by the device, which is the exposure model accepted here (see that module).
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from bluemule.particle_ctrl import p256
from bluemule.particle_ctrl.errors import HandshakeError

__all__ = [
    "CLIENT_ROUND_TWO_MAX_SIZE",
    "ECPARAMETERS_P256",
    "ROUND_ONE_MAX_SIZE",
    "SECRET_SIZE",
    "SERVER_ROUND_TWO_MAX_SIZE",
    "EcJpake",
    "HandshakeStateError",
    "InvalidPointError",
    "InvalidProofError",
    "KeyProof",
    "MalformedMessageError",
    "Role",
    "UnusablePasswordError",
    "parse_round_one",
    "parse_round_two",
]

POINT_SIZE = 65
"""An uncompressed point: ``04 ‖ x ‖ y``."""
ECPARAMETERS_P256 = b"\x03\x00\x17"
"""TLS ECParameters: curve_type named_curve (3), NamedCurve secp256r1 (23)."""
_KEY_PROOF_MAX_SIZE = 2 * (1 + POINT_SIZE) + 1 + p256.COORDINATE_SIZE
ROUND_ONE_MAX_SIZE = 2 * _KEY_PROOF_MAX_SIZE
"""330: the size of nearly every round-one message (shorter only when an ``r`` is)."""
CLIENT_ROUND_TWO_MAX_SIZE = _KEY_PROOF_MAX_SIZE
"""165."""
SERVER_ROUND_TWO_MAX_SIZE = len(ECPARAMETERS_P256) + _KEY_PROOF_MAX_SIZE
"""168."""
SECRET_SIZE = 32
"""Bytes returned by :meth:`EcJpake.derive_secret`."""
_RANDOM_SCALAR_ATTEMPTS = 30  # as mbedTLS's key generation


class Role(enum.Enum):
    """Which side of the handshake; the value is the identity hashed into every proof."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def identity(self) -> bytes:
        """The identity string as bytes (``b"client"`` / ``b"server"``)."""
        return self.value.encode("ascii")

    @property
    def peer(self) -> Role:
        """The other role."""
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


class MalformedMessageError(HandshakeError):
    """A handshake message does not have the TLS ECJPAKE layout (length, prefix, format)."""


class InvalidPointError(HandshakeError):
    """A point is off the curve, at infinity, or has a coordinate not below p."""


class InvalidProofError(HandshakeError):
    """A Schnorr zero-knowledge proof does not verify (or its ``r`` is not below n)."""


class HandshakeStateError(HandshakeError):
    """A method was called out of order (e.g. round two before both round ones)."""


class UnusablePasswordError(HandshakeError):
    """The password is empty, or reads as a multiple of n (mbedTLS would fail too)."""


@dataclass(frozen=True, slots=True)
class KeyProof:
    """One ECJPAKEKeyKP as received: public key ``X`` and its proof ``(V, r)``."""

    X: p256.Point
    V: p256.Point
    r: int

    def encode(self) -> bytes:
        """The TLS encoding, ``r`` in its minimal length (at least 1 byte), as mbedTLS."""
        r_bytes = self.r.to_bytes(max(1, (self.r.bit_length() + 7) // 8), "big")
        return _encode_point(self.X) + _encode_point(self.V) + bytes([len(r_bytes)]) + r_bytes


# ------------------------------------------------------------------ wire format


class _Reader:
    """Cursor over one message; every shortfall is a :class:`MalformedMessageError`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, count: int, field: str) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise MalformedMessageError(
                f"{self.what}: truncated in {field} (needs {count} bytes at offset "
                f"{self.offset}, {len(self.data) - self.offset} left)"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def point(self, field: str) -> p256.Point:
        length = self.take(1, f"{field} length")[0]
        if length != POINT_SIZE:
            raise MalformedMessageError(
                f"{self.what}: {field} has length {length}; only 65-byte uncompressed "
                "points are accepted"
            )
        raw = self.take(POINT_SIZE, field)
        if raw[0] != 0x04:
            raise MalformedMessageError(
                f"{self.what}: {field} has format byte 0x{raw[0]:02x}, not 0x04 (uncompressed)"
            )
        x = int.from_bytes(raw[1:33], "big")
        y = int.from_bytes(raw[33:], "big")
        if x >= p256.P or y >= p256.P:
            raise InvalidPointError(f"{self.what}: {field} has a coordinate not below p")
        if not p256.is_on_curve(x, y):
            raise InvalidPointError(f"{self.what}: {field} is not on P-256")
        return p256.Point(x, y)

    def key_proof(self, name: str) -> KeyProof:
        public = self.point(name)
        commitment = self.point(f"{name} proof V")
        length = self.take(1, f"{name} proof r length")[0]
        if not 1 <= length <= p256.COORDINATE_SIZE:
            raise MalformedMessageError(
                f"{self.what}: {name} proof r has length {length}, not 1..32"
            )
        r = int.from_bytes(self.take(length, f"{name} proof r"), "big")
        if r >= p256.N:
            raise InvalidProofError(f"{self.what}: {name} proof r is not below n")
        return KeyProof(public, commitment, r)

    def finish(self) -> None:
        extra = len(self.data) - self.offset
        if extra:
            raise MalformedMessageError(f"{self.what}: {extra} trailing bytes")


def _bytes_of(data: bytes, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessageError(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def parse_round_one(data: bytes, sender: Role) -> tuple[KeyProof, KeyProof]:
    """Decode a round-one message structurally (points checked, proofs not verified)."""
    names = ("X1", "X2") if sender is Role.CLIENT else ("X3", "X4")
    reader = _Reader(_bytes_of(data, f"{sender.value} round one"), f"{sender.value} round one")
    first = reader.key_proof(names[0])
    second = reader.key_proof(names[1])
    reader.finish()
    return first, second


def parse_round_two(data: bytes, sender: Role) -> KeyProof:
    """Decode a round-two message structurally; the server's carries ECParameters first."""
    what = f"{sender.value} round two"
    reader = _Reader(_bytes_of(data, what), what)
    if sender is Role.SERVER:
        parameters = reader.take(len(ECPARAMETERS_P256), "ECParameters")
        if parameters != ECPARAMETERS_P256:
            raise MalformedMessageError(
                f"{what}: ECParameters {parameters.hex()} is not 030017 (named curve secp256r1)"
            )
    proof = reader.key_proof("XB" if sender is Role.SERVER else "XA")
    reader.finish()
    return proof


def _encode_point(point: p256.Point) -> bytes:
    return bytes([POINT_SIZE]) + point.encode()


# ------------------------------------------------------------------ proofs


def _challenge(
    generator: p256.Point, commitment: p256.Point, public: p256.Point, identity: bytes
) -> int:
    """h = SHA-256(len‖G ‖ len‖V ‖ len‖X ‖ len‖id) mod n, lengths u32 big-endian."""
    digest = hashlib.sha256()
    for part in (generator.encode(), commitment.encode(), public.encode(), identity):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return int.from_bytes(digest.digest(), "big") % p256.N


def _verify(proof: KeyProof, generator: p256.Point, identity: bytes, what: str) -> None:
    h = _challenge(generator, proof.V, proof.X, identity)
    if p256.multiply_add(proof.r, generator, h, proof.X) != proof.V:
        raise InvalidProofError(f"{what}: the Schnorr proof does not verify")


def _multiply(k: int, generator: p256.Point) -> p256.Point:
    product = p256.multiply(k, generator)
    if product is None:  # k in [1, n-1] and a generator of order n: cannot happen
        raise HandshakeError("a scalar multiplication gave the point at infinity")
    return product


def _sum(points: tuple[p256.Point, ...], what: str) -> p256.Point:
    total: p256.Point | None = None
    for point in points:
        total = p256.add(total, point)
    if total is None:
        raise InvalidPointError(f"{what} is the point at infinity")
    return total


# ------------------------------------------------------------------ the handshake


class EcJpake:
    """One side of one EC-JPAKE handshake (sans I/O: bytes in, bytes out).

    Order: ``write_round_one`` and ``read_round_one`` (either order), then
    ``write_round_two`` and ``read_round_two`` (either order); ``derive_secret`` once the
    peer's round two is read (before or after writing ours, as mbedTLS; repeatable). Each
    write and read happens once; anything else raises
    :class:`HandshakeStateError`. A refused message changes nothing, so the caller may
    abandon the handshake (the normal reaction) or inspect the error.
    """

    def __init__(
        self,
        role: Role,
        password: bytes,
        *,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(role, Role):
            raise TypeError(f"role must be a Role, not {type(role).__name__}")
        if not isinstance(password, bytes | bytearray):
            raise UnusablePasswordError("the password must be bytes")
        secret = int.from_bytes(password, "big") % p256.N
        if not password or secret == 0:
            raise UnusablePasswordError("the password is empty or reads as a multiple of n")
        self._role = role
        self._s = secret
        self._rng = rng
        self._xm1: int | None = None  # our round-one private keys (x1, x2 or x3, x4)
        self._xm2: int | None = None
        self._mine1: p256.Point | None = None  # Xm1, Xm2: our round-one public keys
        self._mine2: p256.Point | None = None
        self._peer1: p256.Point | None = None  # Xp1, Xp2: the peer's, once verified
        self._peer2: p256.Point | None = None
        self._peer_two: p256.Point | None = None  # Xp: the peer's round-two key, verified
        self._wrote_two = False
        self._secret: bytes | None = None

    @classmethod
    def with_private_keys(
        cls,
        role: Role,
        password: bytes,
        xm1: int,
        xm2: int,
        *,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> EcJpake:
        """A handshake whose round-one keys are given (x1, x2 for a client; x3, x4 for a
        server), to replay test vectors. The rng still draws the proofs' nonces."""
        handshake = cls(role, password, rng=rng)
        for name, key in (("xm1", xm1), ("xm2", xm2)):
            if not 1 <= key < p256.N:
                raise HandshakeError(f"private key {name} is not in [1, n-1]")
        handshake._xm1, handshake._xm2 = xm1, xm2
        return handshake

    @property
    def role(self) -> Role:
        """This side's role."""
        return self._role

    def __repr__(self) -> str:  # never the password or keys
        return f"EcJpake(role={self._role.name}, stage={self._stage()!r})"

    def _stage(self) -> str:
        if self._secret is not None:
            return "derived"
        done = [
            name
            for name, flag in (
                ("wrote round one", self._mine1 is not None),
                ("read round one", self._peer1 is not None),
                ("wrote round two", self._wrote_two),
                ("read round two", self._peer_two is not None),
            )
            if flag
        ]
        return ", ".join(done) or "new"

    # ----------------------------------------------------------- randomness

    def _random_scalar(self) -> int:
        """Uniform in [1, n-1] by rejection, like mbedTLS's key generation."""
        for _ in range(_RANDOM_SCALAR_ATTEMPTS):
            raw = self._rng(p256.COORDINATE_SIZE)
            if not isinstance(raw, bytes | bytearray) or len(raw) != p256.COORDINATE_SIZE:
                raise HandshakeError("the random generator did not return 32 bytes")
            candidate = int.from_bytes(raw, "big")
            if 1 <= candidate < p256.N:
                return candidate
        raise HandshakeError("the random generator gave no scalar in [1, n-1]")

    def _key_proof(self, x: int, public: p256.Point, generator: p256.Point) -> bytes:
        nonce = self._random_scalar()
        commitment = _multiply(nonce, generator)
        h = _challenge(generator, commitment, public, self._role.identity)
        return KeyProof(public, commitment, (nonce - x * h) % p256.N).encode()

    # ----------------------------------------------------------- round one

    def write_round_one(self) -> bytes:
        """Our two public keys with their proofs (TLS ECJPAKEKeyKPPairList)."""
        if self._mine1 is not None:
            raise HandshakeStateError("round one was already written")
        # Draws x1, x2, then the nonces v1, v2 (mbedTLS and ecjpake-java draw x1, v1, x2,
        # v2; other tests' recorded vectors rely on this order, so keep it).
        xm1 = self._xm1 if self._xm1 is not None else self._random_scalar()
        xm2 = self._xm2 if self._xm2 is not None else self._random_scalar()
        mine1 = _multiply(xm1, p256.G)
        mine2 = _multiply(xm2, p256.G)
        message = self._key_proof(xm1, mine1, p256.G) + self._key_proof(xm2, mine2, p256.G)
        self._xm1, self._xm2, self._mine1, self._mine2 = xm1, xm2, mine1, mine2
        return message

    def read_round_one(self, data: bytes) -> None:
        """Check the peer's round one (both proofs, with generator G) and keep its keys."""
        if self._peer1 is not None:
            raise HandshakeStateError("round one was already read")
        peer = self._role.peer
        first, second = parse_round_one(data, peer)
        names = ("X1", "X2") if peer is Role.CLIENT else ("X3", "X4")
        for proof, name in ((first, names[0]), (second, names[1])):
            _verify(proof, p256.G, peer.identity, f"{peer.value} round one, {name}")
        self._peer1, self._peer2 = first.X, second.X

    # ----------------------------------------------------------- round two

    def _round_one_done(self, action: str) -> tuple[p256.Point, p256.Point, p256.Point, int]:
        if self._mine1 is None or self._mine2 is None or self._xm2 is None:
            raise HandshakeStateError(f"cannot {action} before writing round one")
        if self._peer1 is None:
            raise HandshakeStateError(f"cannot {action} before reading round one")
        return self._mine1, self._mine2, self._peer1, self._xm2

    def write_round_two(self) -> bytes:
        """``Xm = (xm2·s)·(Xm1 + Xp1 + Xp2)`` with its proof; the server's has ECParameters."""
        mine1, _, peer1, xm2 = self._round_one_done("write round two")
        if self._wrote_two:
            raise HandshakeStateError("round two was already written")
        assert self._peer2 is not None  # set together with Xp1
        generator = _sum((mine1, peer1, self._peer2), "the round-two generator Xm1 + Xp1 + Xp2")
        xm = xm2 * self._s % p256.N
        message = self._key_proof(xm, _multiply(xm, generator), generator)
        if self._role is Role.SERVER:
            message = ECPARAMETERS_P256 + message
        self._wrote_two = True
        return message

    def read_round_two(self, data: bytes) -> None:
        """Check the peer's round two (its proof uses generator Xm1 + Xm2 + Xp1)."""
        mine1, mine2, peer1, _ = self._round_one_done("read round two")
        if self._peer_two is not None:
            raise HandshakeStateError("round two was already read")
        peer = self._role.peer
        what = f"{peer.value} round two"
        proof = parse_round_two(data, peer)
        generator = _sum((mine1, mine2, peer1), f"{what}: the generator Xm1 + Xm2 + Xp1")
        _verify(proof, generator, peer.identity, what)
        self._peer_two = proof.X

    # ----------------------------------------------------------- secret

    def derive_secret(self) -> bytes:
        """SHA-256 of K.x (32 bytes, big-endian), K = xm2·(Xp - (xm2·s)·Xp2)."""
        if self._secret is not None:
            return self._secret
        if self._peer_two is None:
            raise HandshakeStateError("cannot derive the secret before reading round two")
        assert self._xm2 is not None  # round one was done
        assert self._peer2 is not None
        minus_xm2_s = -self._xm2 * self._s % p256.N
        difference = p256.multiply_add(1, self._peer_two, minus_xm2_s, self._peer2)
        shared = None if difference is None else p256.multiply(self._xm2, difference)
        if shared is None:
            raise InvalidPointError("the shared point K is the point at infinity")
        self._secret = hashlib.sha256(shared.x.to_bytes(p256.COORDINATE_SIZE, "big")).digest()
        return self._secret
