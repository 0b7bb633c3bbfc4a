"""The signed manifest: what a device may install, signed by the fleet server.

Layout (little-endian; ``docs/protocol.md`` §Manifest)::

    magic "BMMF" | format u8 | signature algorithm u8 | key id [8]
    device id [12] | platform u16 | product id u16 | product version u16
    release counter u32 | flags u8 | minimum Device OS u16 | part count u8 | app asset count u8
    part × count:  kind u8 | flags u8 | size u32 | original size u32 | sha256 [32]
                   | content sha256 [32] | name length u8 | name
    app asset × n: sha256 [32] | name length u8 | name
    signature [64]   (Ed25519 over every byte before it)

``sha256`` covers the bytes sent (perhaps a compressed module); ``content_sha256`` is
what the device compares with what it has: for an asset the SHA-256 of its raw bytes,
for the application the SHA-256 stored in the module's suffix. The manifest's own
SHA-256 (signature included) identifies a transfer.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bluemule.protocol.constants import (
    DEVICE_ID_SIZE,
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    KEY_ID_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_NAME_SIZE,
    MAX_PARTS,
    SHA256_SIZE,
    ManifestFlag,
    PartFlag,
    PartKind,
    SignatureAlgorithm,
    Status,
)
from bluemule.protocol.errors import ManifestError, SignatureError

MAGIC: Final = b"BMMF"
FORMAT_VERSION: Final = 1
_HEAD: Final = struct.Struct(f"<4sBB{KEY_ID_SIZE}s{DEVICE_ID_SIZE}sHHHIBHBB")
_PART: Final = struct.Struct(f"<BBII{SHA256_SIZE}s{SHA256_SIZE}sB")
_ASSET: Final = struct.Struct(f"<{SHA256_SIZE}sB")
ANY_PRODUCT: Final = 0xFFFF


def key_id(public_key: bytes) -> bytes:
    """First 8 bytes of the SHA-256 of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class ManifestPart:
    """One thing to install, in order."""

    kind: PartKind
    name: str
    size: int
    sha256: bytes
    content_sha256: bytes
    original_size: int
    flags: int = 0

    @property
    def compressed(self) -> bool:
        """Sent as a compressed module."""
        return bool(self.flags & PartFlag.COMPRESSED)


@dataclass(frozen=True)
class AssetRequirement:
    """An asset the application needs (its ASSET_DEPENDENCY)."""

    name: str
    sha256: bytes


@dataclass(frozen=True)
class Manifest:
    """The signed content; ``signature`` and ``key_id`` are set by :func:`sign_manifest`."""

    device_id: bytes
    platform_id: int
    release_counter: int
    parts: tuple[ManifestPart, ...]
    app_assets: tuple[AssetRequirement, ...] = ()
    product_id: int = ANY_PRODUCT
    product_version: int = 0
    min_device_os: int = 0
    flags: int = 0
    key_id: bytes = bytes(KEY_ID_SIZE)
    signature: bytes = b""
    algorithm: SignatureAlgorithm = SignatureAlgorithm.ED25519

    @property
    def allow_downgrade(self) -> bool:
        """The signer allows a release counter not greater than the device's."""
        return bool(self.flags & ManifestFlag.ALLOW_DOWNGRADE)

    @property
    def app(self) -> ManifestPart | None:
        """The application part, if any."""
        return next((p for p in self.parts if p.kind == PartKind.APPLICATION), None)

    def signed_bytes(self) -> bytes:
        """Everything the signature covers."""
        return _encode_body(self)

    def encode(self) -> bytes:
        """The manifest as sent: body then signature."""
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise ManifestError("manifest is not signed")
        return self.signed_bytes() + self.signature

    @property
    def sha256(self) -> bytes:
        """Identity of this manifest (signature included)."""
        return hashlib.sha256(self.encode()).digest()


def _name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not raw or len(raw) > MAX_NAME_SIZE:
        raise ManifestError(f"part name {name!r} must be 1–{MAX_NAME_SIZE} bytes")
    return raw


def _encode_body(m: Manifest) -> bytes:
    if len(m.device_id) != DEVICE_ID_SIZE:
        raise ManifestError("device id must be 12 bytes (24 hex digits)")
    if not 0 < len(m.parts) <= MAX_PARTS:
        raise ManifestError(f"a manifest has 1–{MAX_PARTS} parts")
    out = [
        _HEAD.pack(
            MAGIC,
            FORMAT_VERSION,
            m.algorithm,
            m.key_id,
            m.device_id,
            m.platform_id,
            m.product_id,
            m.product_version,
            m.release_counter,
            m.flags,
            m.min_device_os,
            len(m.parts),
            len(m.app_assets),
        )
    ]
    for p in m.parts:
        name = _name(p.name)
        out.append(
            _PART.pack(
                p.kind, p.flags, p.size, p.original_size, p.sha256, p.content_sha256, len(name)
            )
            + name
        )
    for a in m.app_assets:
        name = _name(a.name)
        out.append(_ASSET.pack(a.sha256, len(name)) + name)
    body = b"".join(out)
    if len(body) + ED25519_SIGNATURE_SIZE > MAX_MANIFEST_SIZE:
        raise ManifestError(
            f"manifest of {len(body)} bytes exceeds {MAX_MANIFEST_SIZE}", Status.TOO_LARGE
        )
    return body


def decode_manifest(data: bytes) -> Manifest:
    """Parse a manifest (signature not verified; see :func:`verify_manifest`)."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"manifest of {len(data)} bytes exceeds {MAX_MANIFEST_SIZE}")
    if len(data) < _HEAD.size + ED25519_SIGNATURE_SIZE:
        raise ManifestError("manifest too short")
    (magic, version, alg, kid, device_id, platform, pid, pver, counter, flags, min_os,
     n_parts, n_assets) = _HEAD.unpack_from(data)  # fmt: skip
    if magic != MAGIC or version != FORMAT_VERSION:
        raise ManifestError("not a bluemule manifest of a known format version")
    try:
        algorithm = SignatureAlgorithm(alg)
    except ValueError:
        raise ManifestError(f"unknown signature algorithm {alg}") from None
    if not 0 < n_parts <= MAX_PARTS:
        raise ManifestError(f"manifest declares {n_parts} parts")
    end = len(data) - ED25519_SIGNATURE_SIZE
    pos = _HEAD.size

    def take_name(n: int) -> str:
        nonlocal pos
        if not 0 < n <= MAX_NAME_SIZE or pos + n > end:
            raise ManifestError("manifest name runs past its end or is empty")
        try:
            text = data[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("manifest name is not UTF-8") from None
        pos += n
        return text

    parts = []
    for _ in range(n_parts):
        if pos + _PART.size > end:
            raise ManifestError("manifest part list truncated")
        kind, pflags, size, original, sha, content, n = _PART.unpack_from(data, pos)
        pos += _PART.size
        try:
            part_kind = PartKind(kind)
        except ValueError:
            raise ManifestError(f"unknown part kind {kind}", Status.UNSUPPORTED_PART) from None
        parts.append(ManifestPart(part_kind, take_name(n), size, sha, content, original, pflags))
    assets = []
    for _ in range(n_assets):
        if pos + _ASSET.size > end:
            raise ManifestError("manifest asset list truncated")
        sha, n = _ASSET.unpack_from(data, pos)
        pos += _ASSET.size
        assets.append(AssetRequirement(take_name(n), sha))
    if pos != end:
        raise ManifestError(f"{end - pos} unexpected bytes before the signature")
    return Manifest(
        device_id,
        platform,
        counter,
        tuple(parts),
        tuple(assets),
        pid,
        pver,
        min_os,
        flags,
        kid,
        data[end:],
        algorithm,
    )


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 signing key (the fleet server's, or the local development key)."""

    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key with this 32-byte seed (raw private key)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @cached_property
    def public_key(self) -> bytes:
        """Raw 32-byte public key, what devices trust (derived once)."""
        from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
            Encoding,
            PublicFormat,
        )

        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @cached_property
    def key_id(self) -> bytes:
        """8-byte id of the public key."""
        return key_id(self.public_key)


def sign_manifest(manifest: Manifest, key: SigningKey) -> Manifest:
    """The manifest with key id and Ed25519 signature set."""
    unsigned = Manifest(
        **{
            **manifest.__dict__,
            "key_id": key.key_id,
            "signature": b"",
            "algorithm": SignatureAlgorithm.ED25519,
        }
    )
    return Manifest(**{**unsigned.__dict__, "signature": key.private.sign(unsigned.signed_bytes())})


def verify_manifest(data: bytes, trusted_keys: Sequence[bytes]) -> Manifest:
    """Parse and verify a manifest against raw Ed25519 public keys the device trusts.

    Raises:
        ManifestError: malformed (``status`` BAD_MANIFEST or more specific).
        SignatureError: unknown key (UNKNOWN_KEY) or bad signature (BAD_SIGNATURE).
    """
    manifest = decode_manifest(data)
    key = next((k for k in trusted_keys if key_id(k) == manifest.key_id), None)
    if key is None:
        raise SignatureError(
            "manifest is signed by a key this device does not trust", Status.UNKNOWN_KEY
        )
    if len(key) != ED25519_PUBLIC_KEY_SIZE:
        raise SignatureError("trusted key is not a raw Ed25519 public key", Status.UNKNOWN_KEY)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(
            manifest.signature, data[: len(data) - ED25519_SIGNATURE_SIZE]
        )
    except InvalidSignature:
        raise SignatureError("manifest signature does not verify", Status.BAD_SIGNATURE) from None
    return manifest
