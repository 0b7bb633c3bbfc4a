"""Mobile secrets sealed for one relay: format, golden record, refusals, fuzz."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.relay.sealed import (
    KEY_INFO,
    NONCE_LABEL,
    SealedSecretError,
    open_mobile_secret,
    seal_mobile_secret,
    sealing_key,
)

TOKEN = "bmr_golden-token"  # noqa: S105 (a test vector)
DEVICE = "e00fce681234567890abcdef"
SECRET = b"MOBILESECRET123"
GOLDEN = "AX2H/doN4uSuuUVmw6F00yLzDexkkb73nlVj/P1RlWrZXD5V97n/9XptAyg="
"""``seal_mobile_secret(sealing_key(sha256(TOKEN)), DEVICE, SECRET)``; the format is frozen."""
EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))


def key_by_hand(token: str) -> bytes:
    """RFC 5869 HKDF-SHA256 with no salt, written out: extract, then one expand block."""
    prk = hmac.new(b"\0" * 32, hashlib.sha256(token.encode()).digest(), hashlib.sha256).digest()
    return hmac.new(prk, KEY_INFO + b"\x01", hashlib.sha256).digest()


def test_golden_record_and_its_parts() -> None:
    key = sealing_key(hashlib.sha256(TOKEN.encode()).digest())
    assert key == key_by_hand(TOKEN)
    sealed = seal_mobile_secret(key, DEVICE, SECRET)
    assert sealed == GOLDEN
    raw = base64.b64decode(sealed)
    assert raw[0] == 1 and len(raw) == 1 + 12 + len(SECRET) + 16
    nonce = hmac.new(key, NONCE_LABEL + DEVICE.encode() + SECRET, hashlib.sha256).digest()[:12]
    assert raw[1:13] == nonce
    assert AESGCM(key).decrypt(nonce, raw[13:], DEVICE.encode()) == SECRET
    assert open_mobile_secret(TOKEN, DEVICE, sealed) == SECRET
    assert open_mobile_secret(f" {TOKEN}\n", DEVICE.upper(), sealed) == SECRET


def test_deterministic_per_device_and_secret() -> None:
    key = sealing_key(hashlib.sha256(TOKEN.encode()).digest())
    assert seal_mobile_secret(key, DEVICE, SECRET) == seal_mobile_secret(key, DEVICE, SECRET)
    other_device = "e00fce681234567890abcde0"
    assert seal_mobile_secret(key, other_device, SECRET) != GOLDEN
    assert seal_mobile_secret(key, DEVICE, SECRET + b"!") != GOLDEN


@pytest.mark.parametrize(
    ("token", "device", "sealed", "text"),
    [
        ("bmr_other", DEVICE, GOLDEN, "does not open"),  # another relay's token
        (TOKEN, "e00fce681234567890abcde0", GOLDEN, "does not open"),  # another device
        (TOKEN, DEVICE, GOLDEN[:-4] + "AAA=", "does not open"),  # tag altered
        (TOKEN, DEVICE, "not base64!", "base64"),
        (TOKEN, DEVICE, "é", "base64"),
        (TOKEN, DEVICE, base64.b64encode(b"\x01" + b"\0" * 20).decode(), "long"),
        (TOKEN, DEVICE, base64.b64encode(b"\x02" + base64.b64decode(GOLDEN)[1:]).decode(), "ver"),
        (TOKEN, "nope", GOLDEN, "24 hexadecimal"),
    ],
)
def test_refusals_are_typed(token: str, device: str, sealed: str, text: str) -> None:
    with pytest.raises(SealedSecretError, match=text):
        open_mobile_secret(token, device, sealed)


def test_key_needs_a_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sealing_key(b"short")


@pytest.mark.fuzz
@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.binary(max_size=700), text=st.text(max_size=100))
def test_fuzz_opening_garbage_is_a_typed_error(data: bytes, text: str) -> None:
    for candidate in (base64.b64encode(data).decode(), text):
        try:
            open_mobile_secret(TOKEN, DEVICE, candidate)
        except SealedSecretError:
            continue
        raise AssertionError(f"{candidate!r} opened")  # pragma: no cover


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5))
@given(secret=st.binary(min_size=1, max_size=512), token=st.text(min_size=1, max_size=60))
def test_fuzz_round_trip(secret: bytes, token: str) -> None:
    if not token.strip():
        return
    key = sealing_key(hashlib.sha256(token.strip().encode()).digest())
    assert open_mobile_secret(token, DEVICE, seal_mobile_secret(key, DEVICE, secret)) == secret
