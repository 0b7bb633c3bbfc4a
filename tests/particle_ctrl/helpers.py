"""Shared pieces of the control-channel tests: deterministic randomness and an in-process pair."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from bluemule.particle_ctrl.session import (
    ClientSession,
    Event,
    HandshakeComplete,
    Send,
    ServerSession,
)

SECRET = b"CCLVHNT2GWHVJUB"
"""A 15-character mobile secret (the one in Particle's Java channel test)."""
OTHER_SECRET = b"AAAAAAAAAAAAAAA"


class DeterministicRng:
    """``os.urandom`` stand-in: SHA-256 in counter mode over a seed, reproducible."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._pool = b""

    def __call__(self, size: int) -> bytes:
        while len(self._pool) < size:
            self._counter += 1
            self._pool += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        out, self._pool = self._pool[:size], self._pool[size:]
        return out


class ScriptedRng:
    """Returns the given byte strings in order (each call must ask for the next one's size)."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = list(chunks)

    def __call__(self, size: int) -> bytes:
        chunk = self._chunks.pop(0)
        assert len(chunk) == size, f"asked for {size} bytes, script has {len(chunk)}"
        return chunk

    @property
    def exhausted(self) -> bool:
        return not self._chunks


def sends(events: Iterable[Event]) -> bytes:
    """The bytes of every Send, concatenated."""
    return b"".join(e.data for e in events if isinstance(e, Send))


def others(events: Iterable[Event]) -> list[Event]:
    """Every event that is not a Send."""
    return [e for e in events if not isinstance(e, Send)]


def chunked(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """Split ``data`` at the given chunk sizes (cycled); the rest goes in a last chunk."""
    out: list[bytes] = []
    offset = 0
    for size in sizes:
        if offset >= len(data):
            break
        out.append(data[offset : offset + max(1, size)])
        offset += max(1, size)
    if offset < len(data):
        out.append(data[offset:])
    return out


def feed(session: ClientSession | ServerSession, data: bytes, sizes: Iterable[int]) -> list[Event]:
    """Feed ``data`` to ``session`` in chunks of ``sizes``; return all events."""
    events: list[Event] = []
    for piece in chunked(data, sizes):
        events += session.receive(piece)
    return events


def open_pair(
    client_secret: bytes = SECRET,
    server_secret: bytes = SECRET,
    *,
    seed: bytes = b"pair",
) -> tuple[ClientSession, ServerSession]:
    """A client and a server that completed the handshake in process, whole messages."""
    client = ClientSession(client_secret, rng=DeterministicRng(seed + b"/client"))
    server = ServerSession(server_secret, rng=DeterministicRng(seed + b"/server"))
    to_server = sends(client.start())
    to_client = sends(server.receive(to_server))
    to_server = sends(client.receive(to_client))
    server_events = server.receive(to_server)
    client_events = client.receive(sends(server_events))
    assert others(server_events) == [HandshakeComplete()]
    assert client_events == [HandshakeComplete()]
    return client, server
