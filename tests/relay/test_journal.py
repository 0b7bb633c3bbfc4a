"""The journal: what was stored survives a crash; a repeated upload is a duplicate, once."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bluemule.relay.journal import SCHEMA_VERSION, Journal, JournalError
from bluemule.relay.server_client import Accepted, ServerClient
from bluemule.server.models import Event, Report
from tests.relay.helpers import DEVICE
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device
from tests.support.live_server import LiveServer

CRASHING_RELAY = textwrap.dedent(
    """
    import os, sys
    from bluemule.relay.journal import SCHEMA_VERSION, Journal, JournalError
    journal = Journal(__import__("pathlib").Path(sys.argv[1]))
    journal.add_report({"device_id": sys.argv[2], "kind": "sighting",
                        "at": "2026-05-01T10:00:00+00:00", "rssi": -60})
    journal.add_events([
        {"id": f"{sys.argv[2]}:{n}", "device_id": sys.argv[2], "name": "temp",
         "data": str(n), "captured_at": None}
        for n in (1, 2)
    ])
    os._exit(9)  # no close, no cleanup: the process dies here
    """
)


def rows(api: Api) -> tuple[int, int]:
    with api.state.sessions() as session:
        reports = session.scalar(select(func.count()).select_from(Report)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
    return reports, events


def test_crash_between_store_and_upload_then_a_repeated_upload(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICE)
    path = tmp_path / "journal.sqlite3"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RELAY, str(path), DEVICE], check=False, timeout=60
    )
    assert crashed.returncode == 9
    journal = Journal(path)
    assert journal.counts() == {"report": 1, "event": 2}
    # a device re-sending events the relay already holds adds nothing
    assert journal.add_events([journal.pending("event")[0].body]) == 0
    reports, events = journal.pending("report"), journal.pending("event")
    assert [e.item_id for e in events] == [f"{DEVICE}:1", f"{DEVICE}:2"]

    async def post() -> tuple[Accepted, Accepted]:
        client = ServerClient(server.url, token)
        try:
            return (
                await client.post_reports([r.body for r in reports]),
                await client.post_events([e.body for e in events]),
            )
        finally:
            await client.aclose()

    # uploaded, but the relay dies before it records the acknowledgement …
    assert asyncio.run(post()) == (Accepted(1, 0), Accepted(2, 0))
    journal.close()
    journal = Journal(path)
    assert journal.counts() == {"report": 1, "event": 2}
    # … so it uploads again after the restart: the server counts duplicates, stores once
    assert asyncio.run(post()) == (Accepted(0, 1), Accepted(0, 2))
    journal.acknowledge(reports + events)
    assert journal.counts() == {"report": 0, "event": 0}
    assert rows(api) == (1, 2)
    journal.close()


def test_sync_state_and_checkpoints_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    assert journal.load_sync() == (None, None, None)
    journal.save_sync('"etag-1"', {"site": "north", "devices": []}, 1234.5)
    journal.set_checkpoint(DEVICE, 7, "transferring", progress=0.25)
    journal.set_checkpoint(DEVICE, 7, "failed", failed=True, retry_at=99.0, reason="FLASH_ERROR")
    journal.set_checkpoint(DEVICE, 7, "failed", failed=True, retry_at=199.0, reason="FLASH_ERROR")
    journal.close()
    journal = Journal(path)
    assert journal.load_sync() == ('"etag-1"', {"site": "north", "devices": []}, 1234.5)
    checkpoint = journal.checkpoint(DEVICE, 7)
    assert checkpoint is not None
    assert (checkpoint.stage, checkpoint.failures, checkpoint.retry_at) == ("failed", 2, 199.0)
    assert journal.checkpoint(DEVICE, 8) is None and len(journal.checkpoints()) == 1
    journal.close()


def test_a_journal_that_is_not_one_or_is_newer_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(JournalError, match="garbage"):
        Journal(garbage)
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="newer bluemule"):
        Journal(newer)
    Journal(tmp_path / "fresh.sqlite3").close()
    with sqlite3.connect(tmp_path / "fresh.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
