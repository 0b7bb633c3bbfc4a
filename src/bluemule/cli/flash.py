"""``bluemule flash TARGET FILE``: push a bundle or application to one device over BLE."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.cli.emulator import emulator_options
from bluemule.emulator import EmulatorError
from bluemule.home import KeyFileError, load_or_create_signing_key, load_signing_key
from bluemule.image import ImageError, read_file
from bluemule.protocol.client_session import Outcome, TransferProgress
from bluemule.protocol.errors import ProtocolError
from bluemule.relay.flash import FlashReport, flash_firmware, load_firmware
from bluemule.relay.targets import EmulatorOptions, open_target
from bluemule.transport.base import TransportError
from bluemule.transport.monikers import EmulatorTarget, MonikerError, parse_target


@click.command()
@click.argument("target")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--release-counter", type=int, help="Counter to sign (default: device's + 1).")
@click.option("--allow-downgrade", is_flag=True, help="Sign permission to go to an older release.")
@click.option("--no-compress", is_flag=True, help="Send uncompressed modules.")
@emulator_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"result", "reason", "bytes_sent", "seconds", …}.',
)
def flash(
    target: str,
    file: Path,
    release_counter: int | None,
    allow_downgrade: bool,
    no_compress: bool,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
    as_json: bool,
) -> None:
    """Push FILE (a bundle .zip or an application .bin) to the device TARGET.

    TARGET: emu:DIR (an emulated device in this process, over Bumble's virtual link;
    created on first use with --platform/--device-id/--device-os), bumble:TRANSPORT[@ADDR]
    (a Bumble controller), ble:ADDRESS (the OS Bluetooth stack, needs bluemule[ble]).

    Exit status: 0 applied or already current, 1 rejected or interrupted, 2 bad usage
    or input.
    """
    try:
        parsed = parse_target(target)
    except MonikerError as exc:
        fail(str(exc))
    try:
        firmware = load_firmware(read_file(file))
    except ImageError as exc:
        fail(f"{file}: {exc}")
    try:
        if isinstance(parsed, EmulatorTarget):
            key, created = load_or_create_signing_key()
            if created is not None:
                click.echo(f"created the development signing key {created}", err=True)
        else:
            key = load_signing_key()
    except KeyFileError as exc:
        fail(str(exc))
    quiet_bumble()
    options = EmulatorOptions(platform, device_id, device_os, stock)
    total = sum(len(a) for _, a in firmware.assets) + len(firmware.app)

    async def run(progress: Progress | None) -> FlashReport:
        task = progress.add_task("flashing", total=total) if progress else None

        def on_progress(p: TransferProgress) -> None:
            if progress is not None and task is not None:
                progress.update(
                    task,
                    completed=p.acked,
                    total=p.total,
                    description=p.phase.name.lower().replace("_", " "),
                )

        async with open_target(parsed, emulator=options, trusted_keys=[key.public_key]) as conn:
            return await flash_firmware(
                conn,
                firmware,
                key,
                release_counter=release_counter,
                compress=not no_compress,
                allow_downgrade=allow_downgrade,
                on_progress=on_progress,
            )

    try:
        if as_json:
            report = asyncio.run(run(None))
        else:
            with Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            ) as bar:
                report = asyncio.run(run(bar))
    except (TransportError, EmulatorError, ProtocolError, ImageError) as exc:
        fail(f"{target}: {exc}", ExitCode.CHECK_FAILED)
    _report(report, as_json)


def _report(report: FlashReport, as_json: bool) -> None:
    result = report.update.result
    doc = {
        "result": result.outcome.value,
        "reason": result.reason,
        "status": result.status.name if result.status else None,
        "bytes_sent": result.bytes_sent,
        "resent_bytes": result.resent_bytes,
        "seconds": round(report.update.seconds, 3),
        "reconnects": report.update.reconnects,
        "device_id": report.status.device_id_hex,
        "release_counter": report.release.manifest.release_counter,
    }
    if as_json:
        emit_json(doc)
    else:
        line = f"{doc['result']}: {report.status.device_id_hex}"
        if result.reason:
            line += f" ({result.reason})"
        click.echo(f"{line}; {result.bytes_sent} bytes in {doc['seconds']} s")
    if result.outcome not in (Outcome.APPLIED, Outcome.ALREADY_CURRENT):
        raise SystemExit(ExitCode.CHECK_FAILED)
