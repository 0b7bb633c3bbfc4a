"""``bluemule emulator …``: emulated Particle devices for tests, demos and relays."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import click

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.emulator import EmulatedDevice, EmulatorError
from bluemule.home import KeyFileError, load_or_create_signing_key
from bluemule.protocol.events import EventQueueFullError, InvalidEventError
from bluemule.relay.targets import EmulatorOptions, is_emulator_dir, open_or_create_emulator

_PLATFORMS = click.Choice(["boron", "bsom", "msom", "p2"])


def emulator_options(f: click.decorators.FC) -> click.decorators.FC:
    """``--platform``, ``--device-id``, ``--device-os`` and ``--stock``, for new devices."""
    f = click.option("--stock", is_flag=True, help="New device's app has no bluemule library.")(f)
    f = click.option(
        "--device-os",
        type=int,
        default=6200,
        show_default=True,
        help="New device's Device OS (system part module version).",
    )(f)
    f = click.option("--device-id", help="New device's 24-hex-digit id (random if omitted).")(f)
    return click.option(
        "--platform",
        type=_PLATFORMS,
        default="boron",
        show_default=True,
        help="New device's platform.",
    )(f)


def open_device(directory: Path, options: EmulatorOptions) -> EmulatedDevice:
    """Open or create an emulated device trusting the development key; errors exit 2."""
    try:
        key, created = load_or_create_signing_key()
    except KeyFileError as exc:
        fail(str(exc))
    if created is not None:
        click.echo(f"created the development signing key {created}", err=True)
    try:
        return open_or_create_emulator(directory, options, [key.public_key])
    except (EmulatorError, ValueError) as exc:
        fail(f"{directory}: {exc}")


@click.group()
def emulator() -> None:
    """Emulated Particle devices (state in a directory; flash persists across runs)."""


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@emulator_options
@click.option("--json", "as_json", is_flag=True, help="Print the device as JSON.")
def create(
    directory: Path,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
    as_json: bool,
) -> None:
    """Create an emulated device in DIRECTORY (it trusts the development key)."""
    if is_emulator_dir(directory):
        fail(f"{directory} already holds an emulated device")
    device = open_device(directory, EmulatorOptions(platform, device_id, device_os, stock))
    if as_json:
        emit_json(device.show())
    else:
        click.echo(f"created {platform} {device.device_id} in {directory}")


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(directory: Path, as_json: bool) -> None:
    """Show an emulated device: id, platform, Device OS, mode, app and assets."""
    if not is_emulator_dir(directory):
        fail(f"{directory} holds no emulated device")
    try:
        shown = EmulatedDevice.open(directory).show()
    except EmulatorError as exc:
        fail(f"{directory}: {exc}")
    if as_json:
        emit_json(shown)
        return
    app = shown["app"] or {}
    click.echo(
        f"device   {shown['device_id']} (platform {shown['platform_id']}, "
        f"Device OS {shown['device_os_version']}, {shown['mode']} mode)"
    )
    click.echo(f"app      v{app.get('product_version')} sha256 {app.get('sha256')}")
    for asset in shown["assets"]:
        click.echo(f"asset    {asset['name']} sha256 {asset['sha256']}")


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--transport",
    required=True,
    help="Bumble transport to serve on, e.g. tcp-client:127.0.0.1:9001, usb:0.",
)
@emulator_options
def run(
    directory: Path,
    transport: str,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
) -> None:
    """Serve an emulated device over a Bumble transport until interrupted."""
    from bluemule.emulator.peripheral import EmulatedPeripheral  # noqa: PLC0415
    from bluemule.transport.base import TransportError  # noqa: PLC0415
    from bluemule.transport.bumble_link import serve  # noqa: PLC0415

    quiet_bumble()
    device = open_device(directory, EmulatorOptions(platform, device_id, device_os, stock))
    handler = EmulatedPeripheral(device)

    async def main() -> None:
        async with serve(transport, handler.gatt_spec(), handler) as server:
            handler.advertising_changed = server.start  # events published meanwhile
            fresh = asyncio.create_task(handler.keep_advertising_fresh())
            click.echo(json.dumps({"serving": device.device_id, "transport": transport}))
            try:
                await asyncio.Event().wait()
            finally:
                fresh.cancel()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except TransportError as exc:
        fail(f"{transport}: {exc}")


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("name")
@click.argument("data")
@click.option(
    "--at",
    "captured_at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    help="Capture time (ISO 8601; UTC unless an offset is given). Default: now.",
)
@click.option("--no-clock", is_flag=True, help="The device's clock is not set: time unknown.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued event as JSON.")
def publish(
    directory: Path,
    name: str,
    data: str,
    captured_at: datetime | None,
    no_clock: bool,
    as_json: bool,
) -> None:
    """Publish event NAME with DATA while offline: queued durably for relays to drain.

    Exit 1 when the queue is full (the refusal is counted), 2 for a name or data the
    fleet server would refuse.
    """
    if not is_emulator_dir(directory):
        fail(f"{directory} holds no emulated device")
    if captured_at is not None and captured_at.tzinfo is None:
        captured_at = captured_at.replace(tzinfo=UTC)
    try:
        event = EmulatedDevice.open(directory).publish(
            name, data, captured_at, clock_set=not no_clock
        )
    except EventQueueFullError as exc:
        fail(str(exc), ExitCode.CHECK_FAILED)
    except (InvalidEventError, EmulatorError) as exc:
        fail(f"{directory}: {exc}")
    if as_json:
        emit_json(dataclasses.asdict(event))
    else:
        click.echo(f"queued {event.event_id} ({event.queued} waiting for a relay)")
