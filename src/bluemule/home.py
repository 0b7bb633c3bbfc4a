"""Where bluemule keeps local state: ``$BLUEMULE_HOME``, default ``~/.bluemule``.

``keys/release-signing.pem``  the development release-signing key (Ed25519, PKCS#8, 0600)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from bluemule.fsutil import write_atomically
from bluemule.protocol.manifest import SigningKey

SIGNING_KEY_NAME: Final = "release-signing.pem"


class KeyFileError(Exception):
    """The signing key is missing, unreadable or not an Ed25519 key."""


def home() -> Path:
    """The bluemule home directory (not created)."""
    return Path(os.environ.get("BLUEMULE_HOME") or Path.home() / ".bluemule").expanduser()


def signing_key_path() -> Path:
    """Where the development signing key lives."""
    return home() / "keys" / SIGNING_KEY_NAME


def generate_signing_key(*, force: bool = False) -> tuple[Path, SigningKey]:
    """Create the development key (0600). Refuses to overwrite unless ``force``."""
    path = signing_key_path()
    if path.exists() and not force:
        raise KeyFileError(f"{path} exists; use --force to replace it")
    key = SigningKey.generate()
    pem = key.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, pem, mode=0o600)
    return path, key


def load_signing_key(path: Path | None = None) -> SigningKey:
    """Load the development (or given) signing key."""
    path = path or signing_key_path()
    try:
        loaded = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyFileError(f"no signing key at {path}; run `bluemule keys generate`") from None
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot load the signing key {path}: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return SigningKey(loaded)


def load_or_create_signing_key() -> tuple[SigningKey, Path | None]:
    """The development key, created on first use (returns the path when it was created)."""
    try:
        return load_signing_key(), None
    except KeyFileError:
        if signing_key_path().exists():
            raise
    path, key = generate_signing_key()
    return key, path
