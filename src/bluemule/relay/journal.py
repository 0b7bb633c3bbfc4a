"""The relay's durable state in one SQLite file (WAL): what it owes the server, and why.

* **outbox**: reports and events to upload, in the order they were stored. Every item
  carries its id (reports: chosen here once, at store time; events: the device's own
  ``event_id``), so an upload repeated after a crash is a duplicate the server counts and
  ignores. An item leaves the outbox only after the server acknowledged it; storing an id
  twice keeps the first (a device re-sending events the relay already stored). An item
  the server refuses outright moves to **refused** (kept, with the reason, for an
  operator) so it cannot hold up the items behind it.
* **sync state**: the last ETag and desired-state body, so a restarted relay works through
  its devices without reaching the server.
* **updates**: per device and release, how far the relay got (cached, transferring with
  progress, installed, confirmed, failed) and the retry backoff after failures.

Every write is its own committed transaction: a crash loses nothing already returned.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

ItemKind = Literal["report", "event"]
SCHEMA_VERSION: Final = 1
"""Stored as SQLite's ``user_version``; a journal from a newer release is not opened."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('report', 'event')),
    item_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    item_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS updates (
    device_id TEXT NOT NULL,
    release_id INTEGER NOT NULL,
    stage TEXT NOT NULL,
    progress REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at REAL NOT NULL DEFAULT 0,
    reason TEXT,
    PRIMARY KEY (device_id, release_id)
);
"""


class JournalError(Exception):
    """The journal file cannot be opened or is not a relay journal."""


@dataclass(frozen=True)
class OutboxItem:
    """One stored report or event (``body`` is the JSON the server API takes)."""

    seq: int
    kind: ItemKind
    item_id: str
    device_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class UpdateCheckpoint:
    """How far the relay got with one device's release."""

    device_id: str
    release_id: int
    stage: str
    """``cached_on_relay``, ``transferring``, ``installed``, ``confirmed_running``, ``failed``."""
    progress: float | None
    failures: int
    retry_at: float
    """Unix time before which no new attempt is made (backoff after failures)."""
    reason: str | None


class Journal:
    """The journal at ``path`` (created). Not shared between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                self._db.close()
                raise JournalError(f"{path} was written by a newer bluemule (schema {version})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path}: {exc}") from exc

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # --- outbox ----------------------------------------------------------------------

    def add_report(self, body: dict[str, Any]) -> str:
        """Store a report (an ``id`` is assigned here unless present); returns its id."""
        body = {**body, "id": body.get("id") or f"r-{uuid.uuid4().hex}"}
        self._add("report", [(str(body["id"]), str(body["device_id"]), body)])
        return str(body["id"])

    def add_events(self, events: Sequence[dict[str, Any]]) -> int:
        """Store events (each with its ``id``), in order; returns how many were new."""
        return self._add("event", [(str(e["id"]), str(e["device_id"]), e) for e in events])

    def _add(self, kind: ItemKind, items: list[tuple[str, str, dict[str, Any]]]) -> int:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany(
                "INSERT INTO outbox (kind, item_id, device_id, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (item_id) DO NOTHING",
                [(kind, i, d, json.dumps(b, sort_keys=True)) for i, d, b in items],
            )
            return self._db.total_changes - before

    def pending(self, kind: ItemKind, limit: int = 500) -> list[OutboxItem]:
        """The oldest ``limit`` items of ``kind`` not yet acknowledged."""
        rows = self._db.execute(
            "SELECT seq, kind, item_id, device_id, body FROM outbox WHERE kind = ? "
            "ORDER BY seq LIMIT ?",
            (kind, limit),
        ).fetchall()
        return [OutboxItem(s, k, i, d, json.loads(b)) for s, k, i, d, b in rows]

    def acknowledge(self, items: Iterable[OutboxItem]) -> None:
        """The server stored these: forget them."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(i.seq,) for i in items])

    def refuse(self, item: OutboxItem, reason: str) -> None:
        """The server will never take this item: keep it aside with the reason."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO refused (seq, kind, item_id, device_id, body, reason) "
                "SELECT seq, kind, item_id, device_id, body, ? FROM outbox WHERE seq = ? "
                "ON CONFLICT (item_id) DO NOTHING",
                (reason, item.seq),
            )
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))

    def refused(self) -> list[tuple[OutboxItem, str]]:
        """Items the server refused, with its reason, oldest first."""
        rows = self._db.execute(
            "SELECT seq, kind, item_id, device_id, body, reason FROM refused ORDER BY seq"
        ).fetchall()
        return [(OutboxItem(s, k, i, d, json.loads(b)), r) for s, k, i, d, b, r in rows]

    def counts(self) -> dict[str, int]:
        """Items waiting for upload, per kind."""
        rows = self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall()
        return {"report": 0, "event": 0} | dict(rows)

    # --- sync state ------------------------------------------------------------------

    def save_sync(self, etag: str | None, body: dict[str, Any], synced_at: float) -> None:
        """Remember the server's desired state (and its ETag) for offline work."""
        values = {
            "etag": etag or "",
            "desired": json.dumps(body, sort_keys=True),
            "synced_at": repr(synced_at),
        }
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO sync_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def load_sync(self) -> tuple[str | None, dict[str, Any] | None, float | None]:
        """``(etag, desired body, synced_at)`` of the last sync, or Nones."""
        rows = dict(self._db.execute("SELECT key, value FROM sync_state").fetchall())
        if "desired" not in rows:
            return None, None, None
        body: dict[str, Any] = json.loads(rows["desired"])
        return rows.get("etag") or None, body, float(rows.get("synced_at", "0"))

    def pinned_release_key(self) -> bytes | None:
        """The server's manifest key as first seen (trust on first sync), if pinned."""
        row = self._db.execute("SELECT value FROM sync_state WHERE key = 'release_key'").fetchone()
        return None if row is None else bytes.fromhex(row[0])

    def pin_release_key(self, key: bytes) -> None:
        """Pin the server's manifest key; a key already pinned is never replaced here."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO sync_state (key, value) VALUES ('release_key', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key.hex(),),
            )

    # --- update checkpoints ----------------------------------------------------------

    def checkpoint(self, device_id: str, release_id: int) -> UpdateCheckpoint | None:
        """Where the relay is with this device's release."""
        row = self._db.execute(
            "SELECT device_id, release_id, stage, progress, failures, retry_at, reason "
            "FROM updates WHERE device_id = ? AND release_id = ?",
            (device_id, release_id),
        ).fetchone()
        return None if row is None else UpdateCheckpoint(*row)

    def set_checkpoint(
        self,
        device_id: str,
        release_id: int,
        stage: str,
        *,
        progress: float | None = None,
        failed: bool = False,
        retry_at: float = 0.0,
        reason: str | None = None,
    ) -> UpdateCheckpoint:
        """Record a stage; ``failed`` counts one more failed attempt."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO updates (device_id, release_id, stage, progress, failures, "
                "retry_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id, release_id) DO UPDATE SET stage = excluded.stage, "
                "progress = excluded.progress, failures = updates.failures + excluded.failures, "
                "retry_at = excluded.retry_at, reason = excluded.reason",
                (device_id, release_id, stage, progress, int(failed), retry_at, reason),
            )
        found = self.checkpoint(device_id, release_id)
        assert found is not None
        return found

    def checkpoints(self) -> list[UpdateCheckpoint]:
        """Every recorded update."""
        rows = self._db.execute(
            "SELECT device_id, release_id, stage, progress, failures, retry_at, reason "
            "FROM updates ORDER BY device_id, release_id"
        ).fetchall()
        return [UpdateCheckpoint(*row) for row in rows]
