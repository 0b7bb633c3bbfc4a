"""The relay's content-addressed blob cache: part bytes named by their SHA-256.

A blob is downloaded once (into ``<sha>.partial``, resumable: the partial file's length is
the offset to ask the server for), verified against its name when complete and renamed
into place atomically, then served to every device that needs it. The cache holds at most
``max_bytes``; when room is needed the least recently used blobs go first, never one a
pending device still needs (``keep``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_CHUNK: Final = 1 << 16


class CacheError(Exception):
    """Root of blob cache failures."""


class CorruptBlobError(CacheError):
    """A blob's bytes do not hash to its name (the partial or stored file is discarded)."""


class CacheFullError(CacheError):
    """No room for a blob without evicting one that a pending device needs."""


def _check_sha(sha256: str) -> str:
    sha256 = sha256.lower()
    if not _SHA256.match(sha256):
        raise CacheError(f"{sha256!r} is not a SHA-256 in hex")
    return sha256


@dataclass(frozen=True)
class CachedBlob:
    """One complete blob on disk."""

    sha256: str
    size: int
    last_used: float


class Partial:
    """An unfinished download: append bytes, then :meth:`commit` (verifies) or discard."""

    def __init__(self, cache: BlobCache, sha256: str, size: int) -> None:
        self.cache = cache
        self.sha256 = sha256
        self.size = size
        self.path = cache.root / f"{sha256}.partial"
        self._handle: BinaryIO | None = None

    @property
    def offset(self) -> int:
        """Bytes already on disk: where the download resumes."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def restart(self) -> None:
        """Drop what was downloaded (the server did not honour the range)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; refuses to grow past the announced size."""
        if self._handle is None:
            self._handle = open(self.path, "ab")  # noqa: SIM115  closed by close()/commit()
        if self._handle.tell() + len(chunk) > self.size:
            self.discard()
            raise CorruptBlobError(f"blob {self.sha256} is longer than its {self.size} bytes")
        self._handle.write(chunk)

    def close(self) -> None:
        """Flush and close (the partial stays for a later resume)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Delete the partial download."""
        self.restart()

    def commit(self) -> Path:
        """Verify size and SHA-256, then move the blob into place (atomic rename)."""
        self.close()
        digest = _file_sha256(self.path)
        got = self.offset
        if got != self.size or digest != self.sha256:
            self.discard()
            raise CorruptBlobError(
                f"blob {self.sha256}: got {got} bytes hashing to {digest}, expected {self.size}"
            )
        final = self.cache.root / self.sha256
        os.replace(self.path, final)
        _fsync_dir(self.cache.root)
        return final


class BlobCache:
    """Blobs in ``root`` (created), at most ``max_bytes`` of complete ones."""

    def __init__(self, root: Path, *, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    def blobs(self) -> list[CachedBlob]:
        """Complete blobs, least recently used first."""
        out = []
        for path in self.root.iterdir():
            if _SHA256.match(path.name) and path.is_file():
                stat = path.stat()
                out.append(CachedBlob(path.name, stat.st_size, stat.st_mtime))
        return sorted(out, key=lambda b: (b.last_used, b.sha256))

    @property
    def used_bytes(self) -> int:
        """Bytes of complete blobs."""
        return sum(b.size for b in self.blobs())

    def has(self, sha256: str) -> bool:
        """Whether the complete blob is here."""
        return (self.root / _check_sha(sha256)).is_file()

    def partial(self, sha256: str, size: int) -> Partial:
        """The (possibly empty) partial download of a blob."""
        return Partial(self, _check_sha(sha256), size)

    def read(self, sha256: str) -> bytes:
        """A blob's bytes, verified; a corrupt file is deleted and reported."""
        sha256 = _check_sha(sha256)
        path = self.root / sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CacheError(f"blob {sha256} is not in the cache") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            path.unlink(missing_ok=True)
            raise CorruptBlobError(f"blob {sha256} in the cache is corrupt (deleted)")
        now = time.time()
        os.utime(path, (now, now))  # least-recently-used order
        return data

    def make_room(self, incoming: int, keep: Iterable[str]) -> list[str]:
        """Evict least recently used blobs not in ``keep`` until ``incoming`` more fit.

        Returns the evicted SHA-256s; raises :class:`CacheFullError` if it cannot.
        """
        kept = {k.lower() for k in keep}
        blobs = self.blobs()
        used = sum(b.size for b in blobs)
        if incoming > self.max_bytes:
            raise CacheFullError(f"a {incoming}-byte blob exceeds the cache's {self.max_bytes}")
        evicted: list[str] = []
        for blob in blobs:
            if used + incoming <= self.max_bytes:
                break
            if blob.sha256 in kept:
                continue
            (self.root / blob.sha256).unlink(missing_ok=True)
            used -= blob.size
            evicted.append(blob.sha256)
        if used + incoming > self.max_bytes:
            raise CacheFullError(
                f"{incoming} more bytes do not fit in {self.max_bytes} "
                f"({used} held by blobs pending devices need)"
            )
        return evicted


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        pass
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
