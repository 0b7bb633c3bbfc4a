"""Key confirmation and the record cipher of the control channel (pure; particle.md §5.4–5.5).

From EC-JPAKE's 32-byte shared secret:

* key confirmation: ``kc_key = SHA-256(secret ‖ "JPAKE_KC")``; a side's confirm is
  ``HMAC-SHA256(kc_key, "KC_1_U" ‖ own_id ‖ peer_id ‖ transcript_hash)`` (§5.4);
* AES-128-CCM with an 8-byte tag and a 12-byte nonce: ``secret[0:16]`` is the key,
  ``secret[16:24]`` the fixed part of request (client) nonces, ``secret[24:32]`` that of
  reply (server) nonces; a nonce is ``u32 counter LE ‖ fixed part``; the request counter
  counts 1, 2, 3 …, the reply counter too but OR'd with 0x80000000 (§5.5).

Counters are not on the wire: both sides count records. A replayed, dropped or
reordered record is therefore opened with the wrong nonce and fails its tag, which
:class:`DirectionCipher` reports as :class:`ChannelError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from bluemule.particle_ctrl.errors import ChannelError

SECRET_SIZE: Final = 32
KEY_SIZE: Final = 16
FIXED_NONCE_SIZE: Final = 8
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 8
REPLY_COUNTER_FLAG: Final = 0x80000000
MAX_COUNTER: Final = 0x7FFFFFFF
"""Last counter value before the reply flag bit would be reached; the channel then ends."""

CLIENT_ID: Final = b"client"
SERVER_ID: Final = b"server"
CONFIRM_SIZE: Final = 32

_U32: Final = struct.Struct("<I")


def confirmation(secret: bytes, own_id: bytes, peer_id: bytes, transcript_hash: bytes) -> bytes:
    """A side's 32-byte key confirmation (§5.4).

    The client sends ``confirmation(secret, b"client", b"server", T)`` with ``T`` the
    SHA-256 of cli_r1 ‖ srv_r1 ‖ srv_r2 ‖ cli_r2; the server answers with
    ``confirmation(secret, b"server", b"client", T')`` where ``T'`` also covers the
    client's confirm.
    """
    kc_key = hashlib.sha256(secret + b"JPAKE_KC").digest()
    return hmac.new(kc_key, b"KC_1_U" + own_id + peer_id + transcript_hash, "sha256").digest()


def confirmations_match(received: bytes, expected: bytes) -> bool:
    """Constant-time comparison of two confirms."""
    return hmac.compare_digest(received, expected)


def nonce(fixed: bytes, counter: int, *, reply: bool) -> bytes:
    """``u32 counter LE ‖ fixed``, the counter OR'd with 0x80000000 for replies (§5.5)."""
    if len(fixed) != FIXED_NONCE_SIZE:
        raise ValueError(f"fixed nonce part of {len(fixed)} bytes (8 expected)")
    return _U32.pack(counter | REPLY_COUNTER_FLAG if reply else counter) + fixed


@dataclass(frozen=True, repr=False)
class SessionKeys:
    """The AES key and the two fixed nonce parts cut from the shared secret (§5.5)."""

    key: bytes
    request_nonce: bytes
    """Fixed part of client → server (request) nonces: ``secret[16:24]``."""
    reply_nonce: bytes
    """Fixed part of server → client (reply) nonces: ``secret[24:32]``."""

    @classmethod
    def from_secret(cls, secret: bytes) -> SessionKeys:
        """Split EC-JPAKE's 32-byte shared secret."""
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"shared secret of {len(secret)} bytes (32 expected)")
        return cls(
            secret[:KEY_SIZE],
            secret[KEY_SIZE : KEY_SIZE + FIXED_NONCE_SIZE],
            secret[KEY_SIZE + FIXED_NONCE_SIZE :],
        )

    def __repr__(self) -> str:
        return "SessionKeys(<secret>)"


class DirectionCipher:
    """AES-128-CCM for one direction of the channel, with its record counter.

    The sender calls :meth:`seal` and the receiver :meth:`open` once per record, in
    stream order; each call moves the counter on (the first record uses counter 1).
    """

    def __init__(self, key: bytes, fixed_nonce: bytes, *, reply: bool) -> None:
        self._aead = AESCCM(key, tag_length=TAG_SIZE)
        self._fixed = fixed_nonce
        self._reply = reply
        self._counter = 0

    def __repr__(self) -> str:
        direction = "reply" if self._reply else "request"
        return f"DirectionCipher({direction}, counter={self._counter})"

    @property
    def counter(self) -> int:
        """The counter of the last record sealed or opened (0 before the first)."""
        return self._counter

    def _next_nonce(self) -> bytes:
        if self._counter >= MAX_COUNTER:
            raise ChannelError("record counter exhausted: open a new channel")
        self._counter += 1
        return nonce(self._fixed, self._counter, reply=self._reply)

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt the next record's ``plaintext``: ciphertext ‖ 8-byte tag."""
        return self._aead.encrypt(self._next_nonce(), plaintext, aad)

    def open(self, aad: bytes, sealed: bytes) -> bytes:
        """Decrypt the next record; :class:`ChannelError` if the tag does not verify.

        A tampered size, ciphertext or tag, and a replayed, skipped or reordered record
        (opened with the wrong counter) all end here.
        """
        nonce_ = self._next_nonce()
        try:
            return self._aead.decrypt(nonce_, sealed, aad)
        except InvalidTag:
            raise ChannelError(
                f"record {self._counter} does not authenticate: tampered, replayed or out of order"
            ) from None


class ChannelCipher:
    """Both directions of one channel, keyed from the shared secret."""

    def __init__(self, secret: bytes) -> None:
        keys = SessionKeys.from_secret(secret)
        self.requests = DirectionCipher(keys.key, keys.request_nonce, reply=False)
        """Client → server records (requests)."""
        self.replies = DirectionCipher(keys.key, keys.reply_nonce, reply=True)
        """Server → client records (replies)."""

    def __repr__(self) -> str:
        return f"ChannelCipher({self.requests!r}, {self.replies!r})"
