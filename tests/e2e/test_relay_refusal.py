"""A manifest altered in the relay's cache: the device refuses it, the relay reports the
refusal, and nothing on the device is erased."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

from bluemule.emulator import EmulatedDevice
from bluemule.relay.agent import RunSummary
from bluemule.relay.config import MaintenanceWindow
from bluemule.server.models import DeviceUpdate
from bluemule.transport.faults import flip_last_byte
from tests.relay.fleet import fleet
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.support.live_server import LiveServer

DEVICE = "e00fce680000000000000d01"


def offline_url() -> str:
    """A loopback URL nothing listens on: the relay is offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def tamper(journal: Path) -> None:
    """Flip the last signature byte of the cached manifest (and its recorded digest)."""
    db = sqlite3.connect(journal)
    try:
        (raw,) = db.execute("SELECT value FROM sync_state WHERE key = 'desired'").fetchone()
        desired = json.loads(raw)
        (item,) = desired["devices"]
        altered = flip_last_byte(base64.b64decode(item["manifest"]))
        item["manifest"] = base64.b64encode(altered).decode()
        item["manifest_sha256"] = hashlib.sha256(altered).hexdigest()
        with db:
            db.execute(
                "UPDATE sync_state SET value = ? WHERE key = 'desired'", (json.dumps(desired),)
            )
    finally:
        db.close()


def test_device_refuses_a_manifest_altered_in_the_relay_cache(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICE, groups=["beta"])
    release_id = upload(api, "v2", 2, {"keep.txt": b"x" * 3000})
    publish(api, release_id, groups=["beta"])
    cache = tmp_path / "relay"
    hour = dt.datetime.now(dt.UTC).hour
    closed = MaintenanceWindow.parse(f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00")

    async def run(devices_root: Path) -> tuple[RunSummary, RunSummary, dict[str, Any]]:
        key = api.state.signing_key.public_key
        async with fleet(devices_root, [DEVICE], key) as devices:
            # first round: outside the maintenance window, the relay only caches
            agent = devices.agent(server.url, token, cache, maintenance_window=closed)
            try:
                cached = await agent.run_once()
            finally:
                await agent.aclose()
            before = devices.shown(DEVICE)
            tamper(cache / "journal.sqlite3")
            # the relay, now offline, works from its altered cache (online, its next sync
            # would replace the cached answer with the server's)
            agent = devices.agent(offline_url(), token, cache)
            try:
                refused = await agent.run_once()
            finally:
                await agent.aclose()
            # back online it uploads what it owes, the refusal included
            agent = devices.agent(server.url, token, cache)
            try:
                reports, _ = await agent.upload()
                assert reports >= 1 and agent.journal.pending("report", 10) == []
            finally:
                await agent.aclose()
            return cached, refused, before

    cached, refused, before = asyncio.run(run(tmp_path / "devices"))
    assert [v.update for v in cached.devices] == [None] and cached.desired == 1
    (visit,) = refused.devices
    assert visit.update == "rejected" and visit.reason == "MANIFEST_COMMIT: BAD_SIGNATURE"
    assert not refused.online and refused.downloaded_bytes == 0
    assert refused.pending["report"] >= 1  # the refusal, owed while offline
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, DEVICE)
        assert row is not None and row.state == "failed" and "BAD_SIGNATURE" in (row.reason or "")
    after = EmulatedDevice.open(tmp_path / "devices" / DEVICE).show()
    assert after == before  # same app, same assets, nothing erased
    assert after["assets"] == [] and after["mode"] == "normal"
