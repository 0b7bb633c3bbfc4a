"""``bluemule admin rollout …``: staged rollouts of a release."""

from __future__ import annotations

import re
from typing import Any

import click

from bluemule.cli.admin import json_option, remote
from bluemule.cli.common import emit_json

STAGE = re.compile(r"^(?:group:(?P<groups>[^%]+)|(?P<percent>\d{1,3})%)$")


def parse_stage(text: str) -> dict[str, Any]:
    """``group:NAME[,NAME…]`` or ``N%`` as a request body's stage."""
    match = STAGE.match(text.strip())
    if match is not None and match["groups"] is not None:
        groups = [g.strip() for g in match["groups"].split(",") if g.strip()]
        if groups:
            return {"groups": groups}
    elif match is not None and 1 <= int(match["percent"]) <= 100:
        return {"percent": int(match["percent"])}
    raise click.BadParameter(f"{text!r}: expected group:NAME[,NAME…] or N% (1–100)")


def _show(r: dict[str, Any]) -> None:
    reason = f" ({r['reason']})" if r["reason"] else ""
    click.echo(
        f"rollout {r['id']}: release {r['release_id']} {r['status']}{reason}, "
        f"stage {r['stage'] + 1} of {len(r['stages'])} open"
    )
    for s in r["stages"]:
        what = f"groups {','.join(s['groups'])}" if s["groups"] else f"{s['percent']}%"
        counts = " ".join(f"{k}={v}" for k, v in s["counts"].items() if v)
        mark = "open" if s["open"] else "waiting"
        click.echo(f"  stage {s['index'] + 1} ({what}, {mark}): {s['total']} device(s) {counts}")
    for d in r["devices"]:
        extra = f" {d['progress']:.0%}" if d["progress"] is not None else ""
        why = f" — {d['reason']}" if d["reason"] else ""
        click.echo(f"    {d['device_id']} stage {d['stage'] + 1}: {d['state']}{extra}{why}")


def _done(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        _show(result)


@click.group()
def rollout() -> None:
    """Staged rollouts: stages of groups or percentages, success and error thresholds."""


@rollout.command("start")
@click.argument("release_id", metavar="RELEASE", type=int)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    required=True,
    callback=lambda _ctx, _param, values: [parse_stage(v) for v in values],
    help="group:NAME[,NAME…] or N% of the devices left (repeatable, in order).",
)
@click.option("--success", type=float, default=0.9, show_default=True, help="Success threshold.")
@click.option("--error", type=float, default=0.1, show_default=True, help="Error threshold.")
@json_option
@click.pass_context
def rollout_start(
    ctx: click.Context,
    release_id: int,
    stages: list[dict[str, Any]],
    success: float,
    error: float,
    as_json: bool,
) -> None:
    """Start a staged rollout of RELEASE to the devices that want it."""
    body = {
        "release_id": release_id,
        "stages": stages,
        "success_threshold": success,
        "error_threshold": error,
    }
    _done(remote(ctx).call("POST", "/rollouts", json=body), as_json)


@rollout.command("status")
@click.argument("rollout_id", metavar="ID", type=int)
@json_option
@click.pass_context
def rollout_status(ctx: click.Context, rollout_id: int, as_json: bool) -> None:
    """Per-stage counts and per-device update states."""
    _done(remote(ctx).call("GET", f"/rollouts/{rollout_id}"), as_json)


def _command(action: str, help_text: str) -> None:
    @rollout.command(action, help=help_text)
    @click.argument("rollout_id", metavar="ID", type=int)
    @json_option
    @click.pass_context
    def command(ctx: click.Context, rollout_id: int, as_json: bool) -> None:
        _done(remote(ctx).call("POST", f"/rollouts/{rollout_id}/{action}"), as_json)


_command("pause", "Offer the release to no new device (updates under way may finish).")
_command("resume", "Continue (pauses again at once if errors are still above the threshold).")
_command("next", "Open the next stage now, whatever the thresholds say.")
_command(
    "abort",
    "Stop for good: devices not yet updated are no longer offered the release "
    "(a new rollout of it may then be started).",
)


@rollout.command("retry")
@click.argument("rollout_id", metavar="ID", type=int)
@click.argument("device_id", metavar="DEVICE")
@json_option
@click.pass_context
def rollout_retry(ctx: click.Context, rollout_id: int, device_id: str, as_json: bool) -> None:
    """Clear a failed DEVICE's failure: it is offered the release again."""
    path = f"/rollouts/{rollout_id}/devices/{device_id}/retry"
    _done(remote(ctx).call("POST", path), as_json)
