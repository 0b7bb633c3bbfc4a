"""Key confirmation, key and nonce derivation, AES-128-CCM per direction (particle.md §5.4–5.5)."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from bluemule.particle_ctrl.cipher import (
    CLIENT_ID,
    MAX_COUNTER,
    SERVER_ID,
    ChannelCipher,
    DirectionCipher,
    SessionKeys,
    confirmation,
    nonce,
)
from bluemule.particle_ctrl.errors import ChannelError

JAVA = json.loads((Path(__file__).parent / "golden" / "java_channel_vector.json").read_text())
SECRET = bytes(range(32))


def payloads(*names: str) -> bytes:
    return b"".join(bytes.fromhex(JAVA[name])[2:] for name in names)


def test_confirmation_is_an_hmac_of_the_transcript_under_the_kc_key() -> None:
    """§5.4 by hand over the Java vector's transcript with a known secret (the session test
    checks the Java vector's confirms byte for byte with the real secret)."""
    transcript = hashlib.sha256(
        payloads("client_round_one", "server_round_one", "server_round_two", "client_round_two")
    ).digest()
    kc_key = hashlib.sha256(SECRET + b"JPAKE_KC").digest()
    expected = hmac.new(kc_key, b"KC_1_U" + b"client" + b"server" + transcript, "sha256").digest()
    assert confirmation(SECRET, CLIENT_ID, SERVER_ID, transcript) == expected
    server = confirmation(SECRET, SERVER_ID, CLIENT_ID, transcript)
    assert server != expected
    assert len(payloads("client_confirm")) == len(payloads("server_confirm")) == 32


def test_keys_are_cut_from_the_secret() -> None:
    keys = SessionKeys.from_secret(SECRET)
    assert keys.key == SECRET[:16]
    assert keys.request_nonce == SECRET[16:24]
    assert keys.reply_nonce == SECRET[24:32]
    assert SECRET.hex() not in repr(keys) and "00010203" not in repr(keys)
    with pytest.raises(ValueError, match="32"):
        SessionKeys.from_secret(bytes(31))


def test_nonce_layout() -> None:
    fixed = bytes.fromhex("1011121314151617")
    assert nonce(fixed, 1, reply=False) == bytes.fromhex("01000000") + fixed
    assert nonce(fixed, 1, reply=True) == bytes.fromhex("01000080") + fixed
    assert nonce(fixed, 0x01020304, reply=True) == bytes.fromhex("04030281") + fixed
    with pytest.raises(ValueError, match="8"):
        nonce(bytes(7), 1, reply=False)


def test_seal_matches_ccm_by_hand_and_counts_from_one() -> None:
    channel = ChannelCipher(SECRET)
    aad = b"\x03\x00"
    plain = b"header" + b"abc"
    by_hand = AESCCM(SECRET[:16], tag_length=8)
    for counter in (1, 2, 3):
        sealed = channel.requests.seal(aad, plain)
        assert sealed == by_hand.encrypt(struct.pack("<I", counter) + SECRET[16:24], plain, aad)
        assert len(sealed) == len(plain) + 8
        reply = channel.replies.seal(aad, plain)
        assert reply == by_hand.encrypt(
            struct.pack("<I", counter | 0x80000000) + SECRET[24:32], plain, aad
        )
    assert channel.requests.counter == channel.replies.counter == 3


def pair() -> tuple[DirectionCipher, DirectionCipher]:
    keys = SessionKeys.from_secret(SECRET)
    return (
        DirectionCipher(keys.key, keys.request_nonce, reply=False),
        DirectionCipher(keys.key, keys.request_nonce, reply=False),
    )


def test_open_in_order() -> None:
    sender, receiver = pair()
    for n in range(5):
        assert (
            receiver.open(b"\x01\x00", sender.seal(b"\x01\x00", bytes([n]) * 7)) == bytes([n]) * 7
        )


@pytest.mark.parametrize("part", ["aad", "ciphertext", "tag"])
def test_tampering_is_a_channel_error(part: str) -> None:
    sender, receiver = pair()
    aad = b"\x01\x00"
    sealed = bytearray(sender.seal(aad, b"header+x"))
    if part == "aad":
        aad = b"\x02\x00"
    elif part == "ciphertext":
        sealed[0] ^= 1
    else:
        sealed[-1] ^= 1
    with pytest.raises(ChannelError, match="does not authenticate"):
        receiver.open(aad, bytes(sealed))


def test_replay_and_skip_are_channel_errors() -> None:
    sender, receiver = pair()
    first = sender.seal(b"", b"one")
    second = sender.seal(b"", b"two")
    assert receiver.open(b"", first) == b"one"
    with pytest.raises(ChannelError):
        receiver.open(b"", first)  # replay: counter 2 expected
    sender, receiver = pair()
    sender.seal(b"", b"one")  # lost
    with pytest.raises(ChannelError):
        receiver.open(b"", sender.seal(b"", b"two"))  # skip
    sender, receiver = pair()
    first, second = sender.seal(b"", b"one"), sender.seal(b"", b"two")
    with pytest.raises(ChannelError):
        receiver.open(b"", second)  # reorder


def test_request_and_reply_directions_differ() -> None:
    channel = ChannelCipher(SECRET)
    sealed = channel.requests.seal(b"", b"same")
    with pytest.raises(ChannelError):
        ChannelCipher(SECRET).replies.open(b"", sealed)


def test_counter_exhaustion_ends_the_channel() -> None:
    sender, _ = pair()
    sender._counter = MAX_COUNTER  # white-box: 2^31 - 1 records are not sent in a test
    with pytest.raises(ChannelError, match="exhausted"):
        sender.seal(b"", b"x")


def test_reprs_hold_no_key_material() -> None:
    channel = ChannelCipher(SECRET)
    assert "counter=0" in repr(channel)
    assert SECRET[:16].hex() not in repr(channel)
