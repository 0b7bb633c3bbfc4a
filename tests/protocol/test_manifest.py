"""The signed manifest: exact bytes, signature checks, and every way to break it."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluemule.protocol.constants import PartKind, Status
from bluemule.protocol.errors import ManifestError, SignatureError
from bluemule.protocol.manifest import (
    AssetRequirement,
    Manifest,
    ManifestPart,
    SigningKey,
    decode_manifest,
    key_id,
    sign_manifest,
    verify_manifest,
)

KEY = SigningKey.from_seed(bytes(range(32)))
SHA = hashlib.sha256(b"part").digest()
MANIFEST = Manifest(
    device_id=bytes.fromhex("e00fce68a1b2c3d4e5f60718"),
    platform_id=13,
    release_counter=7,
    parts=(
        ManifestPart(PartKind.ASSET, "cat.txt", 141, SHA, SHA, 150, 1),
        ManifestPart(PartKind.APPLICATION, "app.bin", 4000, SHA, SHA, 7171, 1),
    ),
    app_assets=(AssetRequirement("cat.txt", SHA),),
    product_id=13,
    product_version=3,
    min_device_os=4006,
)
# Hand-assembled from docs/protocol.md §6 (the signature is deterministic: Ed25519).
HEAD = (
    "424d4d46"
    "01"
    "01" + key_id(KEY.public_key).hex() + "e00fce68a1b2c3d4e5f60718"
    "0d00"
    "0d00"
    "0300"
    "07000000"
    "00"
    "a60f"
    "02"
    "01"
)
PART1 = "01018d00000096000000" + SHA.hex() + SHA.hex() + "07" + b"cat.txt".hex()
PART2 = "0201a00f0000031c0000" + SHA.hex() + SHA.hex() + "07" + b"app.bin".hex()
ASSET = SHA.hex() + "07" + b"cat.txt".hex()


def test_golden_layout_and_signature() -> None:
    signed = sign_manifest(MANIFEST, KEY)
    raw = signed.encode()
    assert raw[:-64].hex() == HEAD + PART1 + PART2 + ASSET
    assert decode_manifest(raw) == signed
    assert verify_manifest(raw, [KEY.public_key]) == signed
    assert signed.sha256 == hashlib.sha256(raw).digest()


def test_every_single_bit_flip_is_refused() -> None:
    raw = sign_manifest(MANIFEST, KEY).encode()
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            bad = bytearray(raw)
            bad[i] ^= bit
            with pytest.raises(ManifestError):
                verify_manifest(bytes(bad), [KEY.public_key])


def test_unknown_key_and_bad_signature_are_named() -> None:
    raw = sign_manifest(MANIFEST, KEY).encode()
    other = SigningKey.from_seed(bytes(32))
    with pytest.raises(SignatureError) as unknown:
        verify_manifest(raw, [other.public_key])
    assert unknown.value.status == Status.UNKNOWN_KEY
    forged = sign_manifest(MANIFEST, other).encode()
    forged = forged[: 4 + 2] + key_id(KEY.public_key) + forged[14:]  # claim the trusted key
    with pytest.raises(SignatureError) as bad:
        verify_manifest(forged, [KEY.public_key])
    assert bad.value.status == Status.BAD_SIGNATURE


def test_every_truncation_is_refused() -> None:
    raw = sign_manifest(MANIFEST, KEY).encode()
    for cut in range(len(raw)):
        with pytest.raises(ManifestError):
            verify_manifest(raw[:cut], [KEY.public_key])


def test_limits() -> None:
    with pytest.raises(ManifestError, match="1–16 parts"):
        sign_manifest(Manifest(bytes(12), 13, 1, ()), KEY)
    many = tuple(
        ManifestPart(PartKind.ASSET, f"asset-{i:02}-" + "x" * 50, 1, SHA, SHA, 1) for i in range(16)
    )
    with pytest.raises(ManifestError, match="exceeds 2048") as info:
        sign_manifest(
            Manifest(
                bytes(12),
                13,
                1,
                many,
                app_assets=tuple(AssetRequirement(p.name, SHA) for p in many),
            ),
            KEY,
        )
    assert info.value.status == Status.TOO_LARGE


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2100))
def test_fuzz_only_manifest_errors(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        verify_manifest(data, [KEY.public_key])
