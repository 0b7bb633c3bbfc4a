"""``bluemule emulator …``: emulated Particle devices for tests, demos and relays."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.emulator import EmulatedDevice, EmulatorError, UsageError
from bluemule.emulator.setup import (
    channel_report,
    check_mobile_secret,
    load_settings,
    update_settings,
)
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


_MOBILE_SECRET = click.option(
    "--mobile-secret",
    metavar="S",
    help="The device's mobile secret (15 printable characters; random for a new device).",
)


def configure_channel(
    device: EmulatedDevice, mobile_secret: str | None, listening: bool = False
) -> None:
    """Set the mobile secret (like ``hal_set_device_secret``) and listening mode; exit 2."""
    try:
        if mobile_secret is not None:
            update_settings(device.state_dir, mobile_secret=mobile_secret)
        if listening:
            device.set_listening(True)
    except EmulatorError as exc:
        fail(f"{device.state_dir}: {exc}")


def device_report(device: EmulatedDevice, *, show_secret: bool = False) -> dict[str, Any]:
    """``EmulatedDevice.show()`` plus the control channel's state (secret only on request)."""
    report = device.show()
    report["control"] = channel_report(
        load_settings(device.state_dir),
        listening=device.listening,
        device_os=device.device_os_version,
        show_secret=show_secret,
    )
    return report


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@emulator_options
@_MOBILE_SECRET
@click.option("--listening", is_flag=True, help="Start the new device in listening mode.")
@click.option("--protected", is_flag=True, help="Device Protection: refuse most control requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the device as JSON.")
def create(
    directory: Path,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
    mobile_secret: str | None,
    listening: bool,
    protected: bool,
    as_json: bool,
) -> None:
    """Create an emulated device in DIRECTORY (it trusts the development key)."""
    if is_emulator_dir(directory):
        fail(f"{directory} already holds an emulated device")
    if mobile_secret is not None:
        try:
            check_mobile_secret(mobile_secret)
        except UsageError as exc:
            fail(str(exc))
    device = open_device(directory, EmulatorOptions(platform, device_id, device_os, stock))
    configure_channel(device, mobile_secret, listening)
    if protected:
        update_settings(device.state_dir, protected=True)
    if as_json:
        emit_json(device_report(device))
    else:
        click.echo(f"created {platform} {device.device_id} in {directory}")


@emulator.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--show-secret", is_flag=True, help="Also print the mobile secret.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(directory: Path, show_secret: bool, as_json: bool) -> None:
    """Show an emulated device: id, platform, Device OS, mode, app, assets, control channel."""
    if not is_emulator_dir(directory):
        fail(f"{directory} holds no emulated device")
    try:
        shown = device_report(EmulatedDevice.open(directory), show_secret=show_secret)
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
    control = shown["control"]
    modes = [k for k in ("listening", "provisioning_mode", "protected") if control[k]]
    secret = control.get("mobile_secret_value", "set" if control["mobile_secret"] else "none")
    click.echo(f"control  mobile secret {secret}; {', '.join(modes) or 'not listening'}")


def _host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 0xFFFF:
        fail(f"--listen {listen!r} is not HOST:PORT")
    return host, int(port)


@emulator.command("control-stream")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Where to accept the byte stream, e.g. 127.0.0.1:9010 (port 0: any free port).",
)
@_MOBILE_SECRET
@emulator_options
def control_stream(
    directory: Path,
    listen: str,
    mobile_secret: str | None,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
) -> None:
    """Expose the device's control channel (EC-JPAKE, then encrypted requests) as a raw
    byte stream on TCP, one client at a time, a new handshake per connection.

    Prints {"control_stream": HOST:PORT, "device_id": …} once listening; Ctrl-C stops.
    """
    from bluemule.emulator.control import DeviceOsControl  # noqa: PLC0415
    from bluemule.emulator.control_link import serve_control_stream  # noqa: PLC0415

    host, port = _host_port(listen)
    device = open_device(directory, EmulatorOptions(platform, device_id, device_os, stock))
    configure_channel(device, mobile_secret)
    control = DeviceOsControl(device)

    def ended(why: str) -> None:
        click.echo(f"connection ended: {why}", err=True)

    async def main() -> None:
        async with serve_control_stream(control, host, port, on_end=ended) as server:
            bound = server.sockets[0].getsockname()
            where = f"{bound[0]}:{bound[1]}"
            click.echo(json.dumps({"control_stream": where, "device_id": device.device_id}))
            sys.stdout.flush()
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"--listen {listen}: {exc.strerror or exc}")


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
