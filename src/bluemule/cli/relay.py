"""``bluemule relay run``: the relay agent on a phone, gateway or laptop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.relay.agent import RelayAgent, RunSummary
from bluemule.relay.config import (
    ConfigError,
    RelayConfig,
    build_config,
    log_event,
    read_config_file,
    readable_by_others,
    setup_logging,
)
from bluemule.relay.journal import Journal, JournalError
from bluemule.relay.scan import BleakScanner, BumbleScanner
from bluemule.relay.server_client import RejectedError, Unauthorized
from bluemule.transport.base import TransportError

_FAILED = frozenset({"rejected"})


@click.group()
def relay() -> None:
    """The relay: carry firmware to devices and their events back to the server."""


@relay.command()
@click.option("--server", "server_url", help="Fleet server URL (or server_url in --config).")
@click.option(
    "--token",
    envvar="BLUEMULE_RELAY_TOKEN",
    help="Relay token (or BLUEMULE_RELAY_TOKEN, or token in --config).",
)
@click.option(
    "--transport",
    help="ble (the OS Bluetooth stack, needs bluemule[ble]) or bumble:TRANSPORT "
    "(e.g. bumble:usb:0, bumble:tcp-client:127.0.0.1:9001). Default: ble.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Where blobs and the journal live (or cache_dir in --config).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="A .toml or .json file of settings (flags win).",
)
@click.option("--maintenance-window", help="Start updates only in HH:MM-HH:MM (UTC).")
@click.option(
    "--once", is_flag=True, help="Sync, one pass over the devices in range, upload, exit."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Logs as JSON lines; with --once, print the summary as JSON.",
)
def run(
    server_url: str | None,
    token: str | None,
    transport: str | None,
    cache_dir: Path | None,
    config_file: Path | None,
    maintenance_window: str | None,
    once: bool,
    as_json: bool,
) -> None:
    """Keep the server's desired state in a local cache and work through the devices.

    Runs until interrupted (or, with --once, for one round). Exit status: 0 done,
    1 a device refused its update (--once), 2 bad settings or a refused token.
    """
    try:
        values: dict[str, Any] = read_config_file(config_file) if config_file else {}
        flags = {
            "server_url": server_url,
            "token": token,
            "transport": transport,
            "cache_dir": cache_dir,
            "maintenance_window": maintenance_window,
        }
        config = build_config({**values, **{k: v for k, v in flags.items() if v is not None}})
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(as_json=as_json, secrets=(config.token,))
    if config_file and "token" in values and readable_by_others(config_file):
        log_event(
            "config_readable", 30, path=str(config_file), hint="chmod 600 (it holds the token)"
        )
    quiet_bumble()
    try:
        summary = asyncio.run(_main(config, once=once))
    except Unauthorized as exc:
        fail(str(exc))
    except (TransportError, JournalError, RejectedError, OSError, ImportError) as exc:
        fail(f"relay: {exc}")
    if summary is None:
        return
    if as_json:
        emit_json(summary.to_json())
    else:
        for visit in summary.devices:
            click.echo(f"{visit.device_id}: {visit.update or 'visited'} {visit.reason or ''}")
        click.echo(
            f"online={summary.online} desired={summary.desired} "
            f"uploaded={summary.uploaded_reports} reports, {summary.uploaded_events} events; "
            f"pending {summary.pending}"
        )
    if any(v.update in _FAILED for v in summary.devices):
        raise SystemExit(ExitCode.CHECK_FAILED)


@relay.command()
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="The relay's cache directory (as given to run).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(cache_dir: Path, as_json: bool) -> None:
    """What a relay holds: items owed to the server, items it refused, updates, last sync.

    Reads the journal only; safe while the relay runs.
    """
    path = cache_dir / "journal.sqlite3"
    if not path.is_file():
        fail(f"{cache_dir} holds no relay journal")
    try:
        journal = Journal(path)
    except JournalError as exc:
        fail(str(exc))
    try:
        _etag, desired, synced_at = journal.load_sync()
        pending, refused, updates = journal.counts(), journal.refused(), journal.checkpoints()
    finally:
        journal.close()
    if as_json:
        emit_json(
            {
                "pending": pending,
                "refused": [
                    {"kind": i.kind, "id": i.item_id, "device_id": i.device_id, "reason": why}
                    for i, why in refused
                ],
                "updates": [asdict(u) for u in updates],
                "synced_at": synced_at,
                "desired_devices": len(desired["devices"]) if desired else None,
            }
        )
        return
    click.echo(f"pending  {pending['report']} reports, {pending['event']} events")
    click.echo(f"synced   {synced_at if synced_at is not None else 'never'}")
    for u in updates:
        progress = "" if u.progress is None else f" {u.progress:.0%}"
        reason = f" ({u.reason})" if u.reason else ""
        click.echo(f"update   {u.device_id} release {u.release_id}: {u.stage}{progress}{reason}")
    for item, why in refused:
        click.echo(f"refused  {item.kind} {item.item_id}: {why}")


@contextlib.asynccontextmanager
async def _ble(config: RelayConfig) -> AsyncIterator[BumbleScanner | BleakScanner]:
    if config.transport == "ble":
        from bluemule.transport.bleak_link import require_bleak  # noqa: PLC0415

        require_bleak()  # a missing extra is a one-line error now, not in the loop
        yield BleakScanner()
        return
    from bluemule.transport.bumble_link import open_central  # noqa: PLC0415

    async with open_central(config.transport.removeprefix("bumble:")) as central:
        yield BumbleScanner(central)


async def _main(config: RelayConfig, *, once: bool) -> RunSummary | None:
    async with _ble(config) as scanner:
        agent = RelayAgent(
            config,
            scanner,
            scanner.connector,
            control_connector_factory=scanner.control_connector,
        )
        log_event(
            "relay_started", server=config.server_url, transport=config.transport, pid=os.getpid()
        )
        try:
            if once:
                return await agent.run_once()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await agent.run(stop)
            return None
        finally:
            await agent.aclose()
            log_event("relay_stopped")
