"""Mobile secrets sealed for one relay (pure; no I/O).

The fleet server puts a device's mobile secret into the relay's ``/sync`` answer only in
this form, so a relay can keep its sync state on disk without the secret in clear. Only
the holder of the relay's bearer token can open it; the server, which stores just the
token's SHA-256, can seal for it.

Format (``mobile_secret_sealed``, standard base64 of)::

    version (1 byte, 0x01) ‖ nonce (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes)

* key = HKDF-SHA256(ikm = SHA-256(relay token), salt = none, info = ``KEY_INFO``, 32 bytes);
* nonce = the first 12 bytes of HMAC-SHA256(key, ``NONCE_LABEL`` ‖ device id ‖ secret):
  deterministic, so the sync answer (and its ETag) stays the same from poll to poll; a
  nonce repeats only for the same device and secret, i.e. the same plaintext;
* associated data = the device id (24 lower-case hex digits, ASCII): a sealed secret
  moved to another device's entry does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
KEY_INFO = b"bluemule mobile secret v1"
NONCE_LABEL = b"bluemule mobile secret nonce v1"
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_SECRET = 512
_DEVICE_ID = re.compile(r"^[0-9a-f]{24}$")


class SealedSecretError(ValueError):
    """A sealed mobile secret that does not open: malformed, another relay's or tampered."""


def sealing_key(token_sha256: bytes) -> bytes:
    """The relay's AES-256 key from the SHA-256 of its bearer token (what the server has)."""
    if len(token_sha256) != 32:
        raise ValueError("token_sha256 must be 32 bytes")
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
    return kdf.derive(token_sha256)


def _device(device_id: str) -> bytes:
    normalized = device_id.lower()
    if not _DEVICE_ID.match(normalized):
        raise SealedSecretError("a device id is 24 hexadecimal digits")
    return normalized.encode("ascii")


def seal_mobile_secret(key: bytes, device_id: str, secret: bytes) -> str:
    """Seal ``secret`` for the relay whose :func:`sealing_key` is ``key`` (server side)."""
    device = _device(device_id)
    nonce = hmac.new(key, NONCE_LABEL + device + secret, hashlib.sha256).digest()[:NONCE_SIZE]
    sealed = bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, secret, device)
    return base64.b64encode(sealed).decode("ascii")


def open_mobile_secret(token: str, device_id: str, sealed: str) -> bytes:
    """The mobile secret in ``sealed``, opened with the relay's bearer ``token``.

    Raises:
        SealedSecretError: malformed, sealed for another relay or device, or altered.
    """
    device = _device(device_id)
    try:
        raw = base64.b64decode(sealed.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SealedSecretError("a sealed mobile secret is base64") from None
    if len(raw) < 1 + NONCE_SIZE + TAG_SIZE or len(raw) > 1 + NONCE_SIZE + MAX_SECRET + TAG_SIZE:
        raise SealedSecretError(f"a sealed mobile secret is not {len(raw)} bytes long")
    if raw[0] != VERSION:
        raise SealedSecretError(f"unknown sealed mobile secret version {raw[0]}")
    key = sealing_key(hashlib.sha256(token.strip().encode()).digest())
    nonce, body = raw[1 : 1 + NONCE_SIZE], raw[1 + NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, body, device)
    except InvalidTag:
        raise SealedSecretError(
            "the sealed mobile secret does not open with this relay's token for this device"
        ) from None
