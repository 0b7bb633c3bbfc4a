"""Writing files so that a crash leaves the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(
    path: Path, data: bytes, *, mode: int | None = None, replace: bool = True
) -> None:
    """Write ``data`` to ``path`` through a synced temporary file in the same directory.

    ``mode`` sets the permissions (default: 0600, as :func:`tempfile.mkstemp` creates);
    with ``replace=False`` an existing ``path`` is never overwritten
    (:class:`FileExistsError`). Raises :class:`OSError` on any failure; the temporary
    file is always removed.
    """
    directory = path.parent if str(path.parent) else Path()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the path exists: never overwrite
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
