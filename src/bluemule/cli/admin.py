"""``bluemule admin …``: manage a running fleet server over HTTP."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from bluemule.cli.common import ExitCode, emit_json, fail

TIMEOUT = 60.0


@dataclass
class Remote:
    """Where the server is and how to authenticate."""

    server: str
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; HTTP errors become one-line messages."""
        url = self.server.rstrip("/") + "/api/admin/v1" + path
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        try:
            response = httpx.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.server}: {exc}")
        if response.is_error:
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title")
            except (ValueError, AttributeError):
                detail = response.text.strip()[:200]
            code = ExitCode.BAD_INPUT if response.status_code < 500 else ExitCode.CHECK_FAILED
            fail(f"server said {response.status_code}: {detail}", code)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            fail(
                f"{self.server} did not answer with JSON; is it a bluemule server?",
                ExitCode.CHECK_FAILED,
            )


def json_option(func: Callable[..., None]) -> Callable[..., None]:
    """``--json`` (print the server's answer as JSON), and ``--server``/``--token`` here too."""

    @functools.wraps(func)
    def wrapper(*args: Any, server: str | None, token: str | None, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        group_server, group_token = ctx.obj
        ctx.obj = (server or group_server, token or group_token)
        func(*args, **kwargs)

    wrapper = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(wrapper)
    wrapper = click.option("--token", help="Admin token (default: the admin group's).")(wrapper)
    return click.option("--server", help="Server URL (default: the admin group's).")(wrapper)


@click.group()
@click.option(
    "--server",
    envvar="BLUEMULE_SERVER",
    default="http://127.0.0.1:8700",
    show_default=True,
    help="Server URL (env BLUEMULE_SERVER).",
)
@click.option("--token", envvar="BLUEMULE_TOKEN", help="Admin token (env BLUEMULE_TOKEN).")
@click.pass_context
def admin(ctx: click.Context, server: str, token: str | None) -> None:
    """Manage relays, devices and releases on a running server."""
    ctx.obj = (server, token)


def remote(ctx: click.Context) -> Remote:
    """The server this invocation talks to."""
    server, token = ctx.obj
    if not token:
        fail("no admin token: set BLUEMULE_TOKEN or pass --token (see DATA_DIR/admin-token)")
    return Remote(server, token)


@admin.group()
def relay() -> None:
    """Relays: phones and gateways that carry updates and events."""


@relay.command("add")
@click.argument("name")
@click.option("--site", required=True, help="The site the relay serves.")
@json_option
@click.pass_context
def relay_add(ctx: click.Context, name: str, site: str, as_json: bool) -> None:
    """Register a relay and print its token (shown only this once)."""
    created = remote(ctx).call("POST", "/relays", json={"name": name, "site": site})
    if as_json:
        emit_json({"token": created["token"], "relay": created})
    else:
        click.echo(f"relay {created['name']} (site {created['site']}) added; its token:")
        click.echo(created["token"])


@relay.command("list")
@json_option
@click.pass_context
def relay_list(ctx: click.Context, as_json: bool) -> None:
    """List relays."""
    relays = remote(ctx).call("GET", "/relays")
    if as_json:
        emit_json(relays)
        return
    for r in relays:
        revoked = f" REVOKED {r['revoked_at']}" if r.get("revoked_at") else ""
        click.echo(f"{r['name']:<24} site={r['site']:<16} created={r['created_at']}{revoked}")


@relay.command("revoke")
@click.argument("name")
@json_option
@click.pass_context
def relay_revoke(ctx: click.Context, name: str, as_json: bool) -> None:
    """Revoke relay NAME (a lost phone): its token stops working at once."""
    revoked = remote(ctx).call("POST", f"/relays/{quote(name, safe='')}/revoke")
    if as_json:
        emit_json(revoked)
    else:
        click.echo(f"relay {revoked['name']} revoked at {revoked['revoked_at']}")


@admin.group()
def device() -> None:
    """Devices of the fleet."""


def _device_line(d: dict[str, Any]) -> str:
    groups = ",".join(d["groups"]) or "-"
    flags = " dev" if d["development"] else ""
    secret = " secret" if d["has_mobile_secret"] else ""
    return f"{d['id']}  {d['platform']:<8} site={d['site']:<12} groups={groups}{flags}{secret}"


@device.command("add")
@click.argument("device_id", metavar="ID")
@click.option("--platform", required=True, help="Platform name, e.g. boron, msom.")
@click.option("--site", required=True, help="The site the device is at.")
@click.option("--group", "groups", multiple=True, help="A device group (repeatable).")
@click.option("--product", "product_id", type=int, help="Particle product id.")
@click.option("--development", is_flag=True, help="A development device.")
@click.option("--mobile-secret", help="The device's mobile secret (stored encrypted).")
@click.option(
    "--serial", help="Serial number from the label (its last 6 characters: the setup code)."
)
@json_option
@click.pass_context
def device_add(
    ctx: click.Context,
    device_id: str,
    platform: str,
    site: str,
    groups: tuple[str, ...],
    product_id: int | None,
    development: bool,
    mobile_secret: str | None,
    serial: str | None,
    as_json: bool,
) -> None:
    """Register a device."""
    body = {
        "id": device_id,
        "platform": platform,
        "site": site,
        "groups": list(groups),
        "product_id": product_id,
        "development": development,
        "mobile_secret": mobile_secret,
        "serial": serial,
    }
    created = remote(ctx).call("POST", "/devices", json=body)
    if as_json:
        emit_json(created)
    else:
        click.echo(f"added {_device_line(created)}")


@device.command("list")
@json_option
@click.pass_context
def device_list(ctx: click.Context, as_json: bool) -> None:
    """List devices."""
    devices = remote(ctx).call("GET", "/devices")
    if as_json:
        emit_json(devices)
        return
    for d in devices:
        click.echo(_device_line(d))


@device.command("show")
@click.argument("device_id", metavar="ID")
@json_option
@click.pass_context
def device_show(ctx: click.Context, device_id: str, as_json: bool) -> None:
    """Show one device."""
    d = remote(ctx).call("GET", f"/devices/{device_id}")
    if as_json:
        emit_json(d)
        return
    click.echo(_device_line(d))
    click.echo(f"  product: {d['product_id']}  locked release: {d['locked_release_id']}")
    seen = d["last_seen_at"] or "never"
    if d.get("last_seen_relay"):
        rssi = "" if d.get("last_rssi") is None else f", {d['last_rssi']} dBm"
        seen += f" by {d['last_seen_relay']}{rssi}"
    click.echo(f"  last seen: {seen}  state: {d['state'] or '-'}")


@admin.group()
def release() -> None:
    """Releases: applications and their assets."""


def _release_lines(r: dict[str, Any]) -> list[str]:
    lines = [
        f"release {r['id']}: {r['platform']} product {r['product_id']} version {r['version']} "
        f"min Device OS {r['min_device_os']} ({r['original_name']})"
    ]
    for p in r["parts"]:
        packed = " compressed" if p["compressed"] else ""
        lines.append(f"  {p['index']}: {p['kind']:<11} {p['name']:<24} {p['size']} bytes{packed}")
    return lines


@release.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--notes", default="", help="Release notes.")
@json_option
@click.pass_context
def release_upload(ctx: click.Context, file: Path, notes: str, as_json: bool) -> None:
    """Upload a Particle bundle (.zip) or an application .bin."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    created = remote(ctx).call(
        "POST",
        "/releases",
        content=data,
        params={"filename": file.name, "notes": notes},
        headers={"Content-Type": "application/octet-stream"},
    )
    if as_json:
        emit_json(created)
    else:
        click.echo("\n".join(_release_lines(created)))


@release.command("list")
@json_option
@click.pass_context
def release_list(ctx: click.Context, as_json: bool) -> None:
    """List releases, newest first."""
    releases = remote(ctx).call("GET", "/releases")
    if as_json:
        emit_json(releases)
        return
    for r in releases:
        click.echo(_release_lines(r)[0])


@release.command("publish")
@click.argument("release_id", metavar="ID", type=int)
@click.option("--group", "groups", multiple=True, help="Release to this group (repeatable).")
@click.option(
    "--product-default/--no-product-default",
    default=None,
    help="Make it (or stop it being) the product default.",
)
@click.option("--dry-run", is_flag=True, help="Only show which devices would change.")
@json_option
@click.pass_context
def release_publish(
    ctx: click.Context,
    release_id: int,
    groups: tuple[str, ...],
    product_default: bool | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Release to device groups and/or as the product default; shows the devices moved."""
    body: dict[str, Any] = {"dry_run": dry_run}
    if groups:
        body["groups"] = list(groups)
    if product_default is not None:
        body["product_default"] = product_default
    result = remote(ctx).call("POST", f"/releases/{release_id}/publish", json=body)
    if as_json:
        emit_json(result)
        return
    r, impact = result["release"], result["impacted"]
    verb = "would move" if dry_run else "moves"
    groups_text = ",".join(r["groups"]) or "-"
    default = " product-default" if r["product_default"] else ""
    click.echo(f"release {r['id']}: groups={groups_text}{default}")
    click.echo(f"{verb} {impact['count']} device(s): {' '.join(impact['device_ids']) or '-'}")


@device.command("lock")
@click.argument("device_id", metavar="ID")
@click.argument("release_id", metavar="RELEASE", type=int)
@json_option
@click.pass_context
def device_lock(ctx: click.Context, device_id: str, release_id: int, as_json: bool) -> None:
    """Lock a device to a release."""
    result = remote(ctx).call("PUT", f"/devices/{device_id}/lock", json={"release_id": release_id})
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['device']['id']} locked to release {release_id}")


@device.command("unlock")
@click.argument("device_id", metavar="ID")
@json_option
@click.pass_context
def device_unlock(ctx: click.Context, device_id: str, as_json: bool) -> None:
    """Unlock a device (it follows its groups and the product default again)."""
    result = remote(ctx).call("DELETE", f"/devices/{device_id}/lock")
    if as_json:
        emit_json(result)
    else:
        wanted = result["desired_release_id"]
        click.echo(f"{result['device']['id']} unlocked; desired release: {wanted or 'none'}")


@admin.group()
def deviceos() -> None:
    """Device OS modules (system parts, bootloaders) for stock devices."""


def _deviceos_line(p: dict[str, Any]) -> str:
    return (
        f"{p['platform']:<8} {p['kind']:<11} {p['index']} v{p['version']:<6} "
        f"{p['size']} bytes  {p['name']}"
    )


@deviceos.command("upload")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def deviceos_upload(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Upload system part and bootloader modules (.bin), one by one, in the order given."""
    contents = []
    for file in files:
        try:
            contents.append((file.name, file.read_bytes()))
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
    stored = [
        remote(ctx).call(
            "POST",
            "/deviceos",
            content=data,
            params={"filename": name},
            headers={"Content-Type": "application/octet-stream"},
        )
        for name, data in contents
    ]
    if as_json:
        emit_json(stored)
    else:
        click.echo("\n".join(f"stored {_deviceos_line(p)}" for p in stored))


@deviceos.command("list")
@json_option
@click.pass_context
def deviceos_list(ctx: click.Context, as_json: bool) -> None:
    """List stored Device OS modules."""
    stored = remote(ctx).call("GET", "/deviceos")
    if as_json:
        emit_json(stored)
        return
    for p in stored:
        click.echo(_deviceos_line(p))
