"""Benchmark: the fleet server on loopback, SQLite or PostgreSQL.

Starts the real server (``bluemule server --data-dir TMP [--database-url URL] --host
127.0.0.1 --port FREE --no-webhooks``) as a subprocess after seeding its database with a
fleet of ``--devices`` (default 100,000) Boron devices over ``--sites`` (default 1,000)
sites, inserted in bulk with SQLAlchemy Core through the server's own models. Through the
admin API it then uploads one real release (``bluemule.emulator.make_app("boron")``),
publishes it as the product default (so every device needs it), adds a relay for one site
(100 devices) and one webhook for the benchmark's events (pointing at a local receiver that
answers 204; the delivery worker is off, since the target is "ingested and queued").

Measured with ``--clients`` concurrent keep-alive connections (a lean HTTP/1.1 client on
asyncio streams by default, ``--client httpx`` for httpx), each phase bounded by
``--seconds`` and a request count; ``--workers N`` runs ``bluemule server --workers N``:

* ``GET /api/relay/v1/sync`` answered in full (200, 100 signed manifests);
* the same with ``If-None-Match`` of the first answer's ETag (304: what a polling relay
  gets while nothing changed; one indexed query on the server);
* ``POST /api/relay/v1/events``, batches of 100 unique events from the site's devices;
  the outbox rows created are counted afterwards to show that every event was queued.

Server CPU seconds per request come from ``/proc/PID/stat``. An in-process run of
``sync_body`` (no HTTP) shows how much of a sync is the handler itself.

Targets (PostgreSQL, this machine): ≥ 500 syncs/s with p95 < 100 ms, ≥ 5,000 events/s.
``--check`` exits 1 when missed (both the 200 and the 304 phase must meet the sync
target). With ``--database-url postgresql://…`` a fresh database
``bluemule_bench_<pid>`` is created on that server and dropped afterwards.

Usage: ``.venv/bin/python bench/server.py [--database-url URL] [--devices N]
[--seconds S] [--json] [--check]``. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, Table, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from bluemule.emulator import make_app
from bluemule.server.app import create_app
from bluemule.server.config import Settings
from bluemule.server.db import make_engine, normalize_url
from bluemule.server.desired import desired_releases, device_manifest
from bluemule.server.files import bootstrap
from bluemule.server.models import Device, Event, OutboxItem, Relay, Site
from bluemule.server.sync import sync_body
from bluemule.server.sync_cache import SyncCache

HOST = "127.0.0.1"
BORON = 13  # platform id, and make_app's default product id
BATCH = 100
SEED_CHUNK = 5_000
TARGET_SYNCS = 500.0
TARGET_P95_MS = 100.0
TARGET_EVENTS = 5_000.0
MAX_SYNC_REQUESTS = 50_000
MAX_EVENT_BATCHES = 5_000
STARTUP_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    """One measured phase."""

    name: str
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_ms_per_request: float
    client_cpu_ms_per_request: float
    items_per_second: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- infrastructure -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class _NoContent(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that accepts everything with 204."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def webhook_receiver() -> Iterator[str]:
    """A local HTTP server answering 204; yields its URL."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _NoContent)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def fresh_postgres(url: str) -> Iterator[str]:
    """A new database ``bluemule_bench_<pid>`` on ``url``'s server, dropped afterwards."""
    name = f"bluemule_bench_{os.getpid()}"
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            new = make_url(normalize_url(url)).set(database=name)
            yield new.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def device_id(index: int) -> str:
    """The benchmark's 24-hex-digit device id number ``index``."""
    return f"b0b0{index:020x}"


def site_name(index: int) -> str:
    """The name of site number ``index``."""
    return f"site-{index:05d}"


def seed(engine: Engine, devices: int, sites: int) -> float:
    """Insert the sites and devices in bulk; returns the seconds it took."""
    started = time.perf_counter()
    site_table = Site.__table__
    device_table = Device.__table__
    assert isinstance(site_table, Table)
    assert isinstance(device_table, Table)
    with engine.begin() as conn:
        conn.execute(
            insert(site_table), [{"id": s + 1, "name": site_name(s)} for s in range(sites)]
        )
        for start in range(0, devices, SEED_CHUNK):
            rows = [
                {
                    "id": device_id(i),
                    "platform_id": BORON,
                    "product_id": BORON,
                    "site_id": i // (devices // sites) % sites + 1,
                    "groups": [],
                    "development": False,
                    "state": {},
                }
                for i in range(start, min(start + SEED_CHUNK, devices))
            ]
            conn.execute(insert(device_table), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (uvicorn workers), Linux."""
    total = 0.0
    for proc in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        if proc != pid:
            total += sum(server_cpu_seconds(c) for c in _children(proc))
    return total


@contextlib.contextmanager
def running_server(
    data_dir: Path, database_url: str | None, port: int, log: Path, workers: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """``bluemule server`` on 127.0.0.1:``port`` until the block ends."""
    argv = [
        sys.executable,
        "-c",
        "from bluemule.cli.main import main; main()",
        "server",
        "--data-dir",
        str(data_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-webhooks",
        "--workers",
        str(workers),
    ]
    if database_url:
        argv += ["--database-url", database_url]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# --- measurement ----------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def make_phase(
    name: str,
    latencies: list[float],
    seconds: float,
    cpu: tuple[float, float],
    items: int | None = None,
) -> Phase:
    """Summarise one phase's latencies (seconds)."""
    ms = sorted(x * 1000 for x in latencies)
    count = len(ms)
    return Phase(
        name=name,
        requests=count,
        seconds=seconds,
        per_second=count / seconds if seconds else 0.0,
        p50_ms=percentile(ms, 0.50),
        p95_ms=percentile(ms, 0.95),
        p99_ms=percentile(ms, 0.99),
        max_ms=ms[-1] if ms else float("nan"),
        server_cpu_ms_per_request=cpu[0] * 1000 / count if count else float("nan"),
        client_cpu_ms_per_request=cpu[1] * 1000 / count if count else float("nan"),
        items_per_second=None if items is None else items / seconds if seconds else 0.0,
    )


async def run_clients(
    clients: int, seconds: float, max_requests: int, one: Any
) -> tuple[list[float], float]:
    """``clients`` loops calling ``await one(loop_index, n)`` until time or count runs out."""
    latencies: list[float] = []
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + seconds

    async def loop(index: int) -> None:
        for n in counter:
            if time.perf_counter() >= deadline:
                return
            began = time.perf_counter()
            await one(index, n)
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    return latencies, time.perf_counter() - started


class LeanConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load generator's client.

    httpx spends about 1.3 ms of CPU per request here, as much as the server; on a 2-core
    machine that caps what can be measured, so the load phases speak plain HTTP/1.1
    (``Content-Length`` bodies only, which is all the server sends) at a fraction of it.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> LeanConnection:
        """Connect."""
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, lower-cased headers and body of one request."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got = {}
        for line in header_lines:
            if line:
                key, _, value = line.partition(":")
                got[key.strip().lower()] = value.strip()
        if "chunked" in got.get("transfer-encoding", ""):
            raise RuntimeError("chunked responses are not supported by the lean client")
        length = int(got.get("content-length", "0"))
        return status, got, await self.reader.readexactly(length) if length else b""

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class HttpxConnection:
    """The same interface over an ``httpx.AsyncClient`` (``--client httpx``), for comparison."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    async def open(cls, host: str, port: int) -> HttpxConnection:
        """One client with one keep-alive connection."""
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return cls(httpx.AsyncClient(base_url=f"http://{host}:{port}", limits=limits, timeout=30))

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, lower-cased headers and body of one request."""
        response = await self.client.request(method, path, headers=headers, content=body or None)
        return response.status_code, dict(response.headers), response.content

    async def close(self) -> None:
        """Close the client."""
        await self.client.aclose()


async def measure(
    base: str, relay_token: str, site_devices: list[str], args: argparse.Namespace, pid: int
) -> tuple[list[Phase], dict[str, Any]]:
    """The sync and events phases against a running server."""
    headers = {"Authorization": f"Bearer {relay_token}"}
    phases: list[Phase] = []
    info: dict[str, Any] = {}
    port = int(base.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as client:
        first = await client.get("/api/relay/v1/sync")
        first.raise_for_status()
    etag = first.headers["etag"]
    info["sync_body_bytes"] = len(first.content)
    info["sync_devices"] = len(first.json()["devices"])
    kind = HttpxConnection if args.client == "httpx" else LeanConnection
    connections: list[Any] = [await kind.open(HOST, port) for _ in range(args.clients)]
    try:
        for index in range(20):  # warm-up
            await connections[index % args.clients].request("GET", "/api/relay/v1/sync", headers)

        async def full(index: int, _n: int) -> None:
            status, got, body = await connections[index].request(
                "GET", "/api/relay/v1/sync", headers
            )
            if status != 200 or got["etag"] != etag or len(body) != len(first.content):
                raise RuntimeError(f"sync: {status} {body[:200]!r}")

        poll = {**headers, "If-None-Match": etag}

        async def not_modified(index: int, _n: int) -> None:
            status, _got, body = await connections[index].request("GET", "/api/relay/v1/sync", poll)
            if status != 304:
                raise RuntimeError(f"sync 304: {status} {body[:200]!r}")

        for name, one in (("sync 200", full), ("sync 304", not_modified)):
            cpu = server_cpu_seconds(pid), time.process_time()
            latencies, took = await run_clients(args.clients, args.seconds, MAX_SYNC_REQUESTS, one)
            used = server_cpu_seconds(pid) - cpu[0], time.process_time() - cpu[1]
            phases.append(make_phase(name, latencies, took, used))

        captured = datetime.now(UTC).isoformat()
        run = os.getpid()
        post = {**headers, "Content-Type": "application/json"}

        async def post_batch(index: int, n: int) -> None:
            events = [
                {
                    "id": f"{run}-{n}-{k}",
                    "device_id": site_devices[k % len(site_devices)],
                    "name": "bench/temp",
                    "data": json.dumps({"t": 21.5, "n": n, "k": k}),
                    "captured_at": captured,
                }
                for k in range(BATCH)
            ]
            body = json.dumps({"events": events}).encode()
            status, _got, answer = await connections[index].request(
                "POST", "/api/relay/v1/events", post, body
            )
            if status != 200 or json.loads(answer)["accepted"] != BATCH:
                raise RuntimeError(f"events: {status} {answer[:200]!r}")

        cpu = server_cpu_seconds(pid), time.process_time()
        latencies, took = await run_clients(
            args.clients, args.seconds, MAX_EVENT_BATCHES, post_batch
        )
        phase = make_phase(
            "events (100/batch)",
            latencies,
            took,
            (server_cpu_seconds(pid) - cpu[0], time.process_time() - cpu[1]),
            items=len(latencies) * BATCH,
        )
        phases.append(phase)
    finally:
        for connection in connections:
            await connection.close()
    return phases, info


def in_process_sync(settings: Settings, rounds: int) -> dict[str, float]:
    """Median ms of ``sync_body`` and of its parts, without HTTP, in this process."""
    state = create_app(settings).state.bluemule
    out: dict[str, float] = {}
    try:
        with state.sessions() as session:
            relay = session.scalars(select(Relay)).one()
            devices = list(session.scalars(select(Device).where(Device.site_id == relay.site_id)))
            timings: dict[str, list[float]] = {
                "sync_body cold": [],
                "sync_body warm": [],
                "load+target": [],
                "sign": [],
            }
            for _ in range(rounds):
                for label in ("sync_body cold", "sync_body warm"):
                    if label.endswith("cold"):
                        state.sync_cache = SyncCache()  # no signed manifest cached
                    session.expunge_all()
                    relay = session.scalars(select(Relay)).one()
                    began = time.perf_counter()
                    sync_body(session, state, relay)
                    timings[label].append(time.perf_counter() - began)
                session.expunge_all()
                began = time.perf_counter()
                devices = list(
                    session.scalars(select(Device).where(Device.site_id == relay.site_id))
                )
                desired = desired_releases(session, devices)
                timings["load+target"].append(time.perf_counter() - began)
                began = time.perf_counter()
                for device in devices:
                    release = desired[device.id]
                    assert release is not None
                    device_manifest(state.signing_key, device, release)
                timings["sign"].append(time.perf_counter() - began)
            for name, values in timings.items():
                out[f"{name}_ms"] = statistics.median(values) * 1000
    finally:
        state.engine.dispose()
    return out


# --- main -----------------------------------------------------------------------------


def run(args: argparse.Namespace, database_url: str | None, tmp: Path) -> dict[str, Any]:
    """Bootstrap, seed, start the server, measure."""
    settings = Settings(data_dir=tmp / "data", database_url=database_url)
    bootstrap(settings)
    engine = make_engine(settings.db_url)
    try:
        seed_seconds = seed(engine, args.devices, args.sites)
    finally:
        engine.dispose()
    port = free_port()
    admin = {"Authorization": f"Bearer {settings.admin_token_path.read_text().strip()}"}
    base = f"http://{HOST}:{port}"
    with (
        webhook_receiver() as hook_url,
        running_server(
            settings.data_dir, database_url, port, tmp / "server.log", args.workers
        ) as proc,
        httpx.Client(base_url=base, headers=admin, timeout=120.0) as api,
    ):
        app = make_app("boron", tag="bench", product_version=2)
        started = time.perf_counter()
        uploaded = api.post(
            "/api/admin/v1/releases",
            content=app,
            params={"filename": "bench.bin"},
            headers={"Content-Type": "application/octet-stream"},
        )
        uploaded.raise_for_status()
        release_id = uploaded.json()["id"]
        published = api.post(
            f"/api/admin/v1/releases/{release_id}/publish", json={"product_default": True}
        )
        published.raise_for_status()
        publish_seconds = time.perf_counter() - started
        relay = api.post("/api/admin/v1/relays", json={"name": "bench", "site": site_name(0)})
        relay.raise_for_status()
        hook = api.post(
            "/api/admin/v1/webhooks", json={"event": "bench/", "url": hook_url, "format": "json"}
        )
        hook.raise_for_status()
        per_site = args.devices // args.sites
        site_devices = [device_id(i) for i in range(per_site)]
        phases, info = asyncio.run(
            measure(base, relay.json()["token"], site_devices, args, proc.pid)
        )
    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            events = conn.scalar(select(func.count()).select_from(Event)) or 0
            outbox = conn.scalar(select(func.count()).select_from(OutboxItem)) or 0
    finally:
        engine.dispose()
    breakdown = in_process_sync(settings, rounds=30)
    return {
        "database": engine.dialect.name,
        "devices": args.devices,
        "sites": args.sites,
        "site_devices": per_site,
        "clients": args.clients,
        "client": args.client,
        "workers": args.workers,
        "seconds": args.seconds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seed_seconds": round(seed_seconds, 2),
        "upload_publish_seconds": round(publish_seconds, 2),
        "impacted_by_publish": published.json()["impacted"]["count"],
        **info,
        "events_stored": events,
        "outbox_rows": outbox,
        "in_process": {k: round(v, 2) for k, v in breakdown.items()},
        "phases": [asdict(p) for p in phases],
    }


def verdict(result: dict[str, Any]) -> list[str]:
    """The targets missed (empty when all are met)."""
    phases = {p["name"]: p for p in result["phases"]}
    missed = []
    for name in ("sync 200", "sync 304"):  # full answers and If-None-Match polls, each
        sync = phases[name]
        if sync["per_second"] < TARGET_SYNCS:
            missed.append(f"{name}: {sync['per_second']:.0f}/s < {TARGET_SYNCS:.0f}/s")
        if sync["p95_ms"] >= TARGET_P95_MS:
            missed.append(f"{name}: p95 {sync['p95_ms']:.1f} ms >= {TARGET_P95_MS:.0f} ms")
    events = phases["events (100/batch)"]
    if (events["items_per_second"] or 0) < TARGET_EVENTS:
        missed.append(f"events: {events['items_per_second']:.0f}/s < {TARGET_EVENTS:.0f}/s")
    if result["outbox_rows"] != result["events_stored"]:
        missed.append(
            f"outbox rows {result['outbox_rows']} != events stored {result['events_stored']}"
        )
    return missed


def print_table(result: dict[str, Any]) -> None:
    """A readable summary."""
    print(
        f"bluemule server on {result['database']}: {result['devices']:,} devices over "
        f"{result['sites']:,} sites, relay site of {result['site_devices']} devices, "
        f"{result['workers']} server process(es), {result['clients']} {result['client']} "
        f"clients, {result['seconds']} s per phase "
        f"(Python {result['python']}, {result['cpus']} CPUs)"
    )
    print(
        f"seed {result['seed_seconds']} s; upload + publish {result['upload_publish_seconds']} s "
        f"({result['impacted_by_publish']:,} devices impacted); sync body "
        f"{result['sync_body_bytes']:,} bytes, {result['sync_devices']} manifests"
    )
    print()
    head = (
        f"{'phase':<20}{'requests':>9}{'req/s':>9}{'items/s':>9}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'srv cpu ms':>12}{'cli cpu ms':>12}"
    )
    print(head)
    print("-" * len(head))
    for p in result["phases"]:
        items = "" if p["items_per_second"] is None else f"{p['items_per_second']:.0f}"
        print(
            f"{p['name']:<20}{p['requests']:>9}{p['per_second']:>9.1f}{items:>9}"
            f"{p['p50_ms']:>9.1f}{p['p95_ms']:>9.1f}{p['p99_ms']:>9.1f}{p['max_ms']:>9.1f}"
            f"{p['server_cpu_ms_per_request']:>12.2f}{p['client_cpu_ms_per_request']:>12.2f}"
        )
    print()
    print(
        f"events stored {result['events_stored']:,}, outbox rows {result['outbox_rows']:,} "
        "(one webhook matches every event)"
    )
    parts = ", ".join(f"{k} {v} ms" for k, v in result["in_process"].items())
    print(f"in process (median, no HTTP): {parts}")
    print("srv/cli cpu ms: CPU time of the server process / of this client per request")
    missed = verdict(result)
    targets = (
        f"targets: >= {TARGET_SYNCS:.0f} syncs/s with p95 < {TARGET_P95_MS:.0f} ms, "
        f">= {TARGET_EVENTS:,.0f} events/s"
    )
    print(f"{targets}: {'met' if not missed else 'MISSED: ' + '; '.join(missed)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to create a fresh database on, e.g. "
        "postgresql://postgres@127.0.0.1:5432/test (default: SQLite in a temp dir)",
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (bluemule server --workers)"
    )
    parser.add_argument(
        "--client",
        choices=["lean", "httpx"],
        default="lean",
        help="load client: plain HTTP/1.1 on asyncio streams (default) or httpx",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.sites < 1 or args.devices < args.sites:
        parser.error("need at least one device per site")
    if not 0 < args.seconds <= 600 or not 1 <= args.clients <= 256:
        parser.error("--seconds must be in (0, 600] and --clients in [1, 256]")
    url = args.database_url
    if url and not url.startswith(("postgres://", "postgresql")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    with (
        tempfile.TemporaryDirectory(prefix="bluemule-bench-") as tmp,
        fresh_postgres(url) if url else contextlib.nullcontext(None) as database_url,
    ):
        result = run(args, database_url, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    missed = verdict(result)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
