"""``bluemule particle``: stock devices over Device OS's own BLE control channel.

``info`` reads Device OS version, modules, assets, mode and capabilities; ``flash`` plans
and installs modules and bundles (bootloader, system parts, application, then assets),
one firmware-update session and one reset per module. The mobile secret comes from
``--mobile-secret`` or ``BLUEMULE_MOBILE_SECRET`` and is never printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.cli.emulator import configure_channel, emulator_options, open_device
from bluemule.emulator import EmulatorError
from bluemule.image import ImageError, platform_by_id, read_file
from bluemule.particle_ctrl.client import (
    DeviceInfo,
    DeviceUnreachableError,
    FlashEvent,
    FlashResult,
    NotAppliedError,
    StepDone,
    StepProgress,
    StepStarted,
    UpdateRefusedError,
    WaitingForDevice,
    device_info,
    flash,
)
from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    RequestError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.plan import (
    BadFileError,
    InputFile,
    Plan,
    PlanError,
    ProtectedDeviceError,
    make_plan,
)
from bluemule.particle_ctrl.targets import (
    ControlMoniker,
    ControlTarget,
    open_control_target,
    parse_control_target,
)
from bluemule.relay.targets import EmulatorOptions, is_emulator_dir
from bluemule.transport.base import TransportError
from bluemule.transport.monikers import EmulatorTarget, MonikerError

T = TypeVar("T")
SECRET_ENV = "BLUEMULE_MOBILE_SECRET"  # noqa: S105 - the name of the variable
SECRET_LENGTH = 15
_REACH_ERRORS = (TransportError, ChannelError, HandshakeError, DeviceUnreachableError, OSError)


def _secret_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--mobile-secret",
        "mobile_secret",
        metavar="S",
        envvar=SECRET_ENV,
        show_envvar=True,
        help="The device's 15-character mobile secret (2nd line of its sticker).",
    )(f)


def _check_secret(secret: str | None) -> bytes:
    if not secret:
        fail(f"no mobile secret: pass --mobile-secret or set {SECRET_ENV}")
    if len(secret) != SECRET_LENGTH or not all(33 <= ord(c) <= 126 for c in secret):
        fail(f"a mobile secret is {SECRET_LENGTH} printable ASCII characters without spaces")
    return secret.encode("ascii")


def _parse(target: str) -> ControlMoniker:
    try:
        return parse_control_target(target)
    except MonikerError as exc:
        fail(str(exc))


def _prepare_emulator(parsed: ControlMoniker, options: EmulatorOptions, secret: str) -> None:
    """Create ``emu:DIR`` on first use (as ``bluemule flash emu:``) with this mobile secret."""
    if isinstance(parsed, EmulatorTarget) and not is_emulator_dir(parsed.directory):
        device = open_device(parsed.directory, options)
        configure_channel(device, secret)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    quiet_bumble()
    return asyncio.run(coro)


def _refused(target: str, exc: Exception, as_json: bool) -> NoReturn:
    """The operation ran and the device refused it: exit 1 with the named error."""
    name = getattr(exc, "name", None) or getattr(exc, "reason", None) or type(exc).__name__
    if as_json:
        emit_json({"outcome": "refused", "error": name, "message": str(exc)})
        raise SystemExit(ExitCode.CHECK_FAILED)
    fail(f"{target}: {exc}", ExitCode.CHECK_FAILED)


@click.group()
def particle() -> None:
    """Stock Particle devices through Device OS's own BLE control channel.

    TARGET: emu:DIR (an emulated device in this process, on Bumble's virtual link; created
    on first use with --platform/--device-id/--device-os/--stock and the given mobile
    secret, put in listening mode before each connection), bumble:TRANSPORT[@ADDR],
    ble:ADDRESS, or tcp:HOST:PORT (``bluemule emulator control-stream``).

    Exit status: 0 done, 1 the device refused (its Device OS error is named), 2 bad
    input, wrong mobile secret or device unreachable.
    """


@particle.command()
@click.argument("target")
@_secret_option
@emulator_options
@click.option("--json", "as_json", is_flag=True, help="Print the device as JSON.")
def info(
    target: str,
    mobile_secret: str | None,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
    as_json: bool,
) -> None:
    """Show Device OS version, modules, assets, mode and capabilities of TARGET.

    TARGET: emu:DIR, bumble:TRANSPORT[@ADDR], ble:ADDRESS or tcp:HOST:PORT (see
    ``bluemule particle --help``); the emulator options apply to a new emu:DIR only.
    """
    parsed = _parse(target)
    secret = _check_secret(mobile_secret)
    options = EmulatorOptions(platform, device_id, device_os, stock)
    _prepare_emulator(parsed, options, secret.decode())

    async def go() -> DeviceInfo:
        async with (
            open_control_target(parsed, secret, emulator=options) as where,
            where.opener() as ch,
        ):
            return await device_info(ch)

    try:
        shown = _run(go())
    except WrongMobileSecretError:
        fail(f"{target}: wrong mobile secret (the device's key confirmation does not match)")
    except RequestError as exc:
        _refused(target, exc, as_json)
    except (*_REACH_ERRORS, EmulatorError) as exc:
        fail(f"{target}: {exc}")
    if as_json:
        emit_json(shown.to_json())
        return
    _print_info(shown)


def _print_info(shown: DeviceInfo) -> None:
    doc = shown.to_json()
    click.echo(f"device     {doc['device_id'] or '?'}")
    if shown.protected:
        click.echo("protected  yes: Device OS refuses firmware updates over BLE")
        return
    click.echo(f"device os  {doc['device_os'] or '?'}")
    click.echo(f"mode       {doc['mode'] or '?'}")
    compressed = "yes" if doc["capabilities"]["compressed_ota"] else "no"
    click.echo(f"compressed OTA {compressed}")
    for module in doc["modules"]:
        sha = f" sha256 {module['sha256'][:16]}…" if module["sha256"] else ""
        valid = "" if module["valid"] else " INVALID"
        click.echo(
            f"module     {module['kind']} {module['index']} v{module['version']}{sha}{valid}"
        )
    for asset in doc["assets"]["available"]:
        click.echo(f"asset      {asset['name']} sha256 {asset['sha256'][:16]}…")
    for asset in doc["assets"]["required"]:
        have = any(
            a["name"] == asset["name"] and a["sha256"] == asset["sha256"]
            for a in doc["assets"]["available"]
        )
        click.echo(f"requires   {asset['name']} ({'present' if have else 'MISSING'})")


@particle.command("flash")
@click.argument("target")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_secret_option
@click.option(
    "--come-back-timeout",
    type=click.FloatRange(1, 3600),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the device after each reset.",
)
@click.option("--dry-run", is_flag=True, help="Read the device and print the plan; send nothing.")
@emulator_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the result as JSON.")
def flash_command(
    target: str,
    files: tuple[Path, ...],
    mobile_secret: str | None,
    come_back_timeout: float,
    dry_run: bool,
    platform: str,
    device_id: str | None,
    device_os: int,
    stock: bool,
    as_json: bool,
) -> None:
    """Install FILES (modules, combined modules, bundles) on TARGET over its control channel.

    The files are ordered as particle-cli does: bootloader, system parts by dependency,
    application, then assets (those the device has are skipped). Anything that cannot
    work is refused before a byte is sent. Each module is one session and one reset;
    after each reset the device is reconnected and checked. TARGET as for
    ``bluemule particle info``.
    """
    parsed = _parse(target)
    secret = _check_secret(mobile_secret)
    inputs = []
    for path in files:
        try:
            inputs.append(InputFile(path.name, read_file(path)))
        except ImageError as exc:
            fail(str(exc))
    options = EmulatorOptions(platform, device_id, device_os, stock)
    _prepare_emulator(parsed, options, secret.decode())
    bar = (
        None
        if as_json
        else Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
        )
    )

    async def go() -> tuple[Plan, FlashResult | None]:
        async with open_control_target(parsed, secret, emulator=options) as where:
            async with where.opener() as ch:
                before = await device_info(ch)
            plan = make_plan(inputs, before.state(_platform_of(where, inputs)))
            if dry_run or not plan.steps:
                return plan, None
            if bar is None:
                return plan, await flash(plan, where.opener, come_back_timeout=come_back_timeout)
            with bar:
                on_event = _progress(bar, plan)
                return plan, await flash(
                    plan, where.opener, on_event, come_back_timeout=come_back_timeout
                )

    try:
        plan, result = _run(go())
    except WrongMobileSecretError:
        fail(f"{target}: wrong mobile secret (the device's key confirmation does not match)")
    except ProtectedDeviceError as exc:
        _refused(target, exc, as_json)
    except PlanError as exc:
        fail(f"refused before sending anything ({exc.reason}): {exc}")
    except (UpdateRefusedError, NotAppliedError, RequestError) as exc:
        _refused(target, exc, as_json)
    except (*_REACH_ERRORS, EmulatorError, ParticleCtrlError) as exc:
        fail(f"{target}: {exc}")
    _report(plan, result, as_json)


def _platform_of(where: ControlTarget, inputs: list[InputFile]) -> int:
    """The device's platform: from the target, else from the modules (the device checks
    it again at FINISH and refuses another platform with OTA_INVALID_PLATFORM)."""
    if where.platform_id is not None:
        return where.platform_id
    from bluemule.image import looks_like_zip, parse_combined, read_bundle  # noqa: PLC0415

    found: set[int] = set()
    for file in inputs:
        try:
            data = read_bundle(file.data).app if looks_like_zip(file.data) else file.data
            found.update(m.prefix.platform_id for m in parse_combined(data) if not m.is_asset)
        except ImageError as exc:
            raise BadFileError(f"{file.name}: {exc}") from None
    known = {p for p in found if platform_by_id(p) is not None}
    if len(known) == 1:
        return known.pop()
    if not known:
        raise PlanError("the files hold no module that names the device's platform")
    raise PlanError(f"the files are built for several platforms: {sorted(known)}")


def _progress(bar: Progress, plan: Plan) -> Callable[[FlashEvent], None]:
    tasks: dict[int, TaskID] = {
        i: bar.add_task(f"{s.kind} {s.name}"[:34], total=s.size, start=False)
        for i, s in enumerate(plan.steps)
    }

    def on_event(event: FlashEvent) -> None:
        match event:
            case StepStarted(index=i):
                bar.start_task(tasks[i])
            case StepProgress(index=i, sent=sent):
                bar.update(tasks[i], completed=sent)
            case WaitingForDevice(index=i):
                bar.update(tasks[i], description="waiting for the device to reset")
            case StepDone(index=i, result=result):
                step = plan.steps[i]
                bar.update(tasks[i], description=f"{result.outcome} {step.name}"[:34])
                bar.stop_task(tasks[i])

    return on_event


def _report(plan: Plan, result: FlashResult | None, as_json: bool) -> None:
    doc: dict[str, Any] = {
        "platform": plan.platform.name,
        "plan": [s.describe() for s in plan.steps],
        "skipped_assets": [a.name for a in plan.skipped],
    }
    if result is None:
        doc["outcome"] = "planned" if plan.steps else "up_to_date"
    else:
        doc.update(result.to_json())
    if as_json:
        emit_json(doc)
        return
    for name in doc["skipped_assets"]:
        click.echo(f"skipped   asset {name}: the device has it")
    if result is None:
        for s in plan.steps:
            click.echo(f"would send {s.kind} {s.name} ({s.size} B, reset: {s.reset.value})")
        if not plan.steps:
            click.echo("nothing to send: the device has everything")
        return
    device = result.device
    os_version = device.device_os if device is not None else "?"
    click.echo(
        f"done: {len(result.steps)} module(s) in {result.seconds:.1f} s, "
        f"{result.resets} reset(s); Device OS {os_version}"
    )
