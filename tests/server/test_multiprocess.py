"""Several real ``bluemule server`` processes on one database (issue 4 §1).

Two processes on two ports share one data directory and one database, both delivering
webhooks. A relay posts the same events and reports to both at once: every event is
stored once and delivered once, every report is stored once and applied, and both
processes answer sync with the same ETag and body, which moves for both when one of them
takes a report (the revisions live in the database, the caches in each process).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bluemule.emulator import make_app
from bluemule.server.config import Settings
from bluemule.server.db import make_engine
from bluemule.server.files import bootstrap
from bluemule.server.models import Device, Event, OutboxItem, Report
from tests.server.test_server_cli import start_server, stop_server
from tests.server.test_webhooks import Receiver, receiver

__all__ = ["receiver"]
DEVICES = [f"e00fce6800000000000000{n:02x}" for n in range(1, 5)]


@pytest.fixture
def two_servers(settings: Settings) -> Iterator[list[str]]:
    if settings.database_url is None:
        pytest.skip("several server processes: PostgreSQL (the issue's requirement)")
    bootstrap(settings)
    procs: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for _ in range(2):
            url, proc = start_server(settings)
            procs.append(proc)
            urls.append(url)
        yield urls
    finally:
        for proc in procs:
            stop_server(proc)


def test_two_processes_one_database(
    settings: Settings, two_servers: list[str], receiver: Receiver
) -> None:
    token = settings.admin_token_path.read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    first = two_servers[0]
    with httpx.Client(base_url=first, headers=admin, timeout=30) as api:
        relay = api.post("/api/admin/v1/relays", json={"name": "gw", "site": "north"}).json()
        for device_id in DEVICES:
            body = {"id": device_id, "platform": "boron", "site": "north", "product_id": 13}
            assert api.post("/api/admin/v1/devices", json=body).status_code == 201
        hook = {"event": "tick", "url": receiver.url, "headers": {"X-Id": "{{PARTICLE_EVENT_ID}}"}}
        assert api.post("/api/admin/v1/webhooks", json=hook).status_code == 201
        uploaded = api.post(
            "/api/admin/v1/releases",
            content=make_app("boron", tag="mp"),
            params={"filename": "mp.bin"},
            headers={"Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 201, uploaded.text
        release_id = uploaded.json()["id"]
        published = api.post(
            f"/api/admin/v1/releases/{release_id}/publish", json={"product_default": True}
        )
        assert published.status_code == 200
    relay_auth = {"Authorization": f"Bearer {relay['token']}"}
    clients = [httpx.Client(base_url=u, headers=relay_auth, timeout=60) for u in two_servers]
    try:
        syncs = [c.get("/api/relay/v1/sync") for c in clients]
        assert syncs[0].headers["etag"] == syncs[1].headers["etag"]
        assert syncs[0].content == syncs[1].content and len(syncs[0].json()["devices"]) == 4

        events: list[dict[str, Any]] = [
            {"id": f"{d}:{n}", "device_id": d, "name": "tick", "data": str(n)}
            for d in DEVICES
            for n in range(50)
        ]
        reports: list[dict[str, Any]] = [
            {"id": f"rep-{d}-{n}", "device_id": d, "kind": "sighting", "rssi": -n,
             "at": f"2026-01-01T10:00:{n:02d}Z"}
            for d in DEVICES
            for n in range(50)
        ]  # fmt: skip
        results: list[dict[str, Any]] = []
        failures: list[str] = []
        barrier = threading.Barrier(8)
        lock = threading.Lock()

        def post(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
            barrier.wait()
            response = client.post(path, json=body)
            with lock:
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    results.append(response.json())

        jobs: list[tuple[httpx.Client, str, dict[str, Any]]] = []
        for client in clients:  # each process gets every item twice, in both orders
            for order in (1, -1):
                jobs.append((client, "/api/relay/v1/events", {"events": events[::order]}))
                jobs.append((client, "/api/relay/v1/reports", {"reports": reports[::order]}))
        threads = [threading.Thread(target=post, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        assert sum(r["accepted"] for r in results) == len(events) + len(reports)
        assert sum(r["duplicates"] for r in results) == 3 * (len(events) + len(reports))

        # one report through the second process moves the ETag both processes serve
        running = {
            "id": "confirm",
            "device_id": DEVICES[0],
            "kind": "sighting",
            "at": "2026-01-01T11:00:00Z",
            "state": {"app_sha256": published.json()["release"]["app_sha256"]},
        }
        assert clients[1].post("/api/relay/v1/reports", json={"reports": [running]}).is_success
        polls = [
            c.get("/api/relay/v1/sync", headers={"If-None-Match": syncs[0].headers["etag"]})
            for c in clients
        ]
        assert [p.status_code for p in polls] == [200, 200]
        assert polls[0].headers["etag"] == polls[1].headers["etag"] != syncs[0].headers["etag"]
        assert len(polls[0].json()["devices"]) == 3
    finally:
        for client in clients:
            client.close()

    # both processes deliver; each event reaches the receiver exactly once
    engine = make_engine(settings.db_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                pending = conn.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.state != "delivered")
                )
            if pending == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pending == 0
        time.sleep(0.5)  # a duplicate would arrive now
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Event)) == len(events)
            assert conn.scalar(select(func.count()).select_from(Report)) == len(reports) + 1
            seen = conn.scalar(select(Device.last_seen_at).where(Device.id == DEVICES[1]))
            assert seen is not None and seen.minute == 0 and seen.second == 49  # newest applied
    finally:
        engine.dispose()
    counts = Counter(hit.headers["X-Id"] for hit in receiver.hits)
    assert counts == Counter(e["id"] for e in events)


def test_workers_option_serves_from_several_processes(settings: Settings) -> None:
    bootstrap(settings)
    url, proc = start_server(settings, "--workers", "2", "--no-webhooks")
    try:
        token = settings.admin_token_path.read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            for n in range(20):
                body = {"id": f"e00fce68{n:016x}", "platform": "boron", "site": "s"}
                assert api.post("/api/admin/v1/devices", json=body).status_code == 201
            assert len(api.get("/api/admin/v1/devices").json()) == 20
        children = subprocess.run(
            ["ps", "--ppid", str(proc.pid), "-o", "pid="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert len(children) >= 2, children  # uvicorn's worker processes
    finally:
        stop_server(proc)
