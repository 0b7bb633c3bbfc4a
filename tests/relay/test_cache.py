"""The blob cache: Range resume against the real server, verification, LRU eviction."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bluemule.relay.cache import BlobCache, CacheError, CacheFullError, CorruptBlobError
from bluemule.relay.server_client import Offline, ServerClient
from tests.relay.helpers import offer_release
from tests.server.conftest import Api
from tests.support.live_server import LiveServer


def download(url: str, token: str, cache: BlobCache, sha: str, size: int) -> int:
    async def go() -> int:
        client = ServerClient(url, token)
        try:
            return await client.download(cache, sha, size)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_truncated_download_resumes_with_range(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    offered = offer_release(api)
    data, sha = offered.blob_bytes, offered.blob
    cache = BlobCache(tmp_path / "blobs")
    partial = cache.partial(sha, len(data))
    partial.write(data[:20_000])  # what an interrupted download leaves
    partial.close()
    assert cache.partial(sha, len(data)).offset == 20_000 and not cache.has(sha)
    assert download(server.url, token, cache, sha, len(data)) == len(data) - 20_000
    assert cache.read(sha) == data and not list(cache.root.glob("*.partial"))
    assert download(server.url, token, cache, sha, len(data)) == 0  # downloaded once


def test_a_corrupt_partial_is_refused_then_fetched_whole(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    offered = offer_release(api)
    data, sha = offered.blob_bytes, offered.blob
    cache = BlobCache(tmp_path / "blobs")
    partial = cache.partial(sha, len(data))
    partial.write(bytes(1000))  # not the blob's first bytes
    partial.close()
    with pytest.raises(CorruptBlobError, match="expected"):
        download(server.url, token, cache, sha, len(data))
    assert not cache.has(sha) and not list(cache.root.glob("*.partial"))
    assert download(server.url, token, cache, sha, len(data)) == len(data)
    assert cache.read(sha) == data


def put(cache: BlobCache, data: bytes, used_at: float) -> str:
    sha = hashlib.sha256(data).hexdigest()
    partial = cache.partial(sha, len(data))
    partial.write(data)
    partial.commit()
    os.utime(cache.root / sha, (used_at, used_at))
    return sha


def test_eviction_is_lru_and_spares_what_pending_devices_need(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "blobs", max_bytes=300)
    oldest, middle, newest = (put(cache, bytes([n]) * 100, 1000.0 + n) for n in range(3))
    assert cache.used_bytes == 300
    assert cache.make_room(100, keep={oldest}) == [middle]
    assert {b.sha256 for b in cache.blobs()} == {oldest, newest}
    cache.read(oldest)  # used now: the newest of all
    assert cache.make_room(200, keep=set()) == [newest]
    with pytest.raises(CacheFullError, match="pending devices need"):
        cache.make_room(250, keep={oldest})
    with pytest.raises(CacheFullError, match="exceeds"):
        cache.make_room(301, keep=set())
    assert cache.has(oldest)


def test_a_corrupt_blob_is_refused_and_a_partial_cannot_grow(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "blobs")
    sha = put(cache, b"good bytes", 1.0)
    (cache.root / sha).write_bytes(b"bad bytes!")
    with pytest.raises(CorruptBlobError, match="corrupt"):
        cache.read(sha)
    assert not cache.has(sha)
    partial = cache.partial(sha, 4)
    with pytest.raises(CorruptBlobError, match="longer"):
        partial.write(b"12345")
    assert partial.offset == 0
    with pytest.raises(CacheError, match="not a SHA-256"):
        cache.has("../../etc/passwd")


@contextmanager
def cut_after(data: bytes, cut: int) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that announces all of ``data`` and hangs up after ``cut``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                conn.sendall(head + data[:cut])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(5)


def test_a_download_cut_mid_stream_keeps_its_bytes_and_resumes(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    offered = offer_release(api)
    data, sha = offered.blob_bytes, offered.blob
    cache = BlobCache(tmp_path / "blobs")
    with cut_after(data, 25_000) as flaky, pytest.raises(Offline, match="interrupted"):
        download(flaky, token, cache, sha, len(data))
    assert cache.partial(sha, len(data)).offset == 25_000 and not cache.has(sha)
    assert download(server.url, token, cache, sha, len(data)) == len(data) - 25_000
    assert cache.read(sha) == data
