"""The data directory: first-start bootstrap, secrets at rest and the blob store."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from bluemule.fsutil import write_atomically
from bluemule.home import KeyFileError, load_signing_key
from bluemule.protocol.manifest import SigningKey
from bluemule.server.config import Settings
from bluemule.server.db import make_engine, migrate

NONCE_SIZE = 12


class DataDirError(Exception):
    """The data directory or one of its files is unusable."""


def _write_new_private(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) with ``data``, atomically; never replaces a file."""
    write_atomically(path, data, mode=0o600, replace=False)


@dataclass
class Bootstrap:
    """What :func:`bootstrap` found or created."""

    settings: Settings
    created: list[Path] = field(default_factory=list)


def bootstrap(settings: Settings) -> Bootstrap:
    """Create the data directory, keys and admin token if missing; migrate the database."""
    result = Bootstrap(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.blob_dir.mkdir(exist_ok=True, mode=0o700)
        if not settings.admin_token_path.exists():
            _write_new_private(settings.admin_token_path, secrets.token_urlsafe(32).encode())
            result.created.append(settings.admin_token_path)
        if not settings.signing_key_path.exists():
            key = SigningKey.generate().private
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            _write_new_private(settings.signing_key_path, pem)
            result.created.append(settings.signing_key_path)
        if not settings.secret_key_path.exists():
            _write_new_private(settings.secret_key_path, AESGCM.generate_key(bit_length=256))
            result.created.append(settings.secret_key_path)
    except OSError as exc:
        raise DataDirError(f"cannot set up {settings.data_dir}: {exc.strerror or exc}") from None
    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return result


def read_admin_token(settings: Settings) -> str:
    """The admin bearer token."""
    try:
        token = settings.admin_token_path.read_text().strip()
    except OSError as exc:
        raise DataDirError(f"cannot read {settings.admin_token_path}: {exc.strerror}") from None
    if not token:
        raise DataDirError(f"{settings.admin_token_path} is empty")
    return token


def read_signing_key(settings: Settings) -> SigningKey:
    """The release-signing key."""
    try:
        return load_signing_key(settings.signing_key_path)
    except KeyFileError as exc:
        raise DataDirError(str(exc)) from None


class SecretBox:
    """AES-GCM with the data directory's key; the device id is the associated data."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise DataDirError("the secrets key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, settings: Settings) -> SecretBox:
        """The box for ``settings``' secrets key."""
        try:
            return cls(settings.secret_key_path.read_bytes())
        except OSError as exc:
            raise DataDirError(f"cannot read {settings.secret_key_path}: {exc.strerror}") from None

    def seal(self, plaintext: str, context: str) -> bytes:
        """Nonce followed by ciphertext and tag."""
        nonce = secrets.token_bytes(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        """The plaintext of :meth:`seal`'s output."""
        try:
            plain = self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], context.encode())
        except InvalidTag:
            raise DataDirError("a stored secret does not decrypt with the secrets key") from None
        return plain.decode()


class BlobStore:
    """Files named by the SHA-256 of their content: ``blobs/ab/cdef…``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives."""
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` atomically; returns its hash and whether the file is new."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path.exists():
            return digest, False
        write_atomically(path, data, mode=0o600)
        return digest, True

    def remove(self, sha256: str) -> None:
        """Delete a blob file (used to undo a failed upload)."""
        with contextlib.suppress(OSError):
            self.path(sha256).unlink()

    def read(self, sha256: str) -> bytes:
        """A blob's bytes."""
        return self.path(sha256).read_bytes()
