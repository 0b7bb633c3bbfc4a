"""Per-process caches behind ``GET /api/relay/v1/sync``.

* **Answers** per relay (they carry mobile secrets sealed for it), tagged with the ETag
  (:func:`bluemule.server.revisions.sync_etag`) they were built under: a poll at an
  unchanged revision is answered from memory.
* **Signed manifests** per (device, release, downgrade flag): Ed25519 is deterministic and a
  release's parts never change, so a manifest signed once is the same bytes forever; when
  one device of a site reports, the site's answer is rebuilt re-signing only that device's.

Both are bounded (least recently used out) and safe to share between threads. Nothing
here is shared between processes: each keys on revisions read from the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")

MAX_RELAYS = 256
MAX_MANIFESTS = 50_000


class Lru(Generic[_K, _V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        """The value, marked as recently used; None if absent."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        """Store, evicting the least recently used entry beyond the capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


ManifestKey = tuple[str, int, str, bool]
"""(device id, release id, release app SHA-256, downgrade allowed)."""


class SyncCache:
    """Sync answers by relay and signed manifests by device and release."""

    def __init__(self, max_relays: int = MAX_RELAYS, max_manifests: int = MAX_MANIFESTS) -> None:
        self.answers: Lru[int, tuple[str, bytes]] = Lru(max_relays)
        self.manifests: Lru[ManifestKey, bytes] = Lru(max_manifests)

    def answer(self, relay_id: int, etag: str) -> bytes | None:
        """The cached answer for ``relay_id`` if it was built under ``etag``."""
        found = self.answers.get(relay_id)
        return found[1] if found is not None and found[0] == etag else None

    def store_answer(self, relay_id: int, etag: str, body: bytes) -> None:
        """Remember the answer built under ``etag`` (replacing the relay's previous one)."""
        self.answers.put(relay_id, (etag, body))
