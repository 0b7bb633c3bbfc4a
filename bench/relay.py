"""Benchmark: the relay's durable outbox, stored and uploaded to a server on loopback.

Stores ``--events`` events in batches of 16 (what one EVENTS_READ drain hands over; each
batch is one committed SQLite transaction, WAL, ``synchronous=FULL``), then uploads them
with :meth:`RelayAgent.upload` (batches of 500, each acknowledged in the journal) to the
real server app on 127.0.0.1 (uvicorn in a thread, SQLite, webhooks off), and counts what
the server stored. Figures: events/s stored, events/s uploaded (stored on the server).

Target: storing outpaces BLE by far (≥ 2,000 events/s; a drain delivers a few hundred per
second at best) and an upload of a day's events of 100 devices (10,000) takes < 30 s.
``--check`` exits 1 when missed.

Usage: ``.venv/bin/python bench/relay.py [--events N] [--json] [--check]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bluemule.relay.agent import RelayAgent
from bluemule.relay.config import RelayConfig
from bluemule.relay.scan import Sighting
from bluemule.server.app import create_app
from bluemule.server.config import Settings
from bluemule.server.files import bootstrap
from bluemule.server.models import Event
from bluemule.transport.base import Connector, PeerNotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/support
from tests.support.live_server import live_server

DEVICES = [f"e00fce68{n:016x}" for n in range(100)]
DRAIN_BATCH = 16
TARGET_STORE = 2_000.0
TARGET_UPLOAD_SECONDS = 30.0


class NoRadio:
    """A scanner that hears nothing (this benchmark has no BLE side)."""

    async def sweep(self, seconds: float) -> list[Sighting]:
        return []

    def connector(self, address: str) -> Connector:
        raise PeerNotFoundError(address)


def admin(url: str, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/api/admin/v1/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    out: dict[str, Any] = response.json()
    return out


def run(events: int, tmp: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp / "server", webhook_worker=False)
    bootstrap(settings)
    app = create_app(settings)
    admin_token = settings.admin_token_path.read_text().strip()
    with live_server(app) as server:
        relay_token = admin(server.url, admin_token, "relays", {"name": "gw", "site": "s"})["token"]
        for device_id in DEVICES:
            admin(
                server.url,
                admin_token,
                "devices",
                {"id": device_id, "platform": "boron", "site": "s"},
            )
        config = RelayConfig(server_url=server.url, token=relay_token, cache_dir=tmp / "relay")

        async def go() -> tuple[float, float]:
            radio = NoRadio()
            agent = RelayAgent(config, radio, radio.connector)
            try:
                items = [
                    {
                        "id": f"{DEVICES[n % len(DEVICES)]}:{n}",
                        "device_id": DEVICES[n % len(DEVICES)],
                        "name": "reading",
                        "data": f"{n}",
                        "captured_at": None,
                    }
                    for n in range(events)
                ]
                started = time.perf_counter()
                for first in range(0, events, DRAIN_BATCH):
                    agent.journal.add_events(items[first : first + DRAIN_BATCH])
                stored = time.perf_counter() - started
                started = time.perf_counter()
                _, uploaded = await agent.upload()
                assert uploaded == events
                return stored, time.perf_counter() - started
            finally:
                await agent.aclose()

        store_seconds, upload_seconds = asyncio.run(go())
    with app.state.bluemule.sessions() as session:
        on_server = session.scalar(select(func.count()).select_from(Event)) or 0
    app.state.bluemule.engine.dispose()
    return {
        "events": events,
        "stored_per_second": round(events / store_seconds),
        "upload_seconds": round(upload_seconds, 2),
        "uploaded_per_second": round(events / upload_seconds),
        "on_server": on_server,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.events, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['events']} events: stored {result['stored_per_second']:,}/s "
            f"(batches of {DRAIN_BATCH}, fsync'd); uploaded in {result['upload_seconds']} s "
            f"({result['uploaded_per_second']:,}/s); on the server: {result['on_server']}"
        )
    missed = result["on_server"] != args.events or result["stored_per_second"] < TARGET_STORE
    missed |= result["upload_seconds"] * 10_000 / args.events > TARGET_UPLOAD_SECONDS
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
