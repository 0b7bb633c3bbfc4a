"""``bluemule admin webhook …``: Particle-style webhooks and their delivery log."""

from __future__ import annotations

from typing import Any

import click

from bluemule.cli.admin import json_option, remote
from bluemule.cli.common import emit_json, fail


def _pairs(values: tuple[str, ...], sep: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, found, rest = value.partition(sep)
        if not found or not key.strip():
            fail(f"{what} {value!r}: expected NAME{sep}VALUE")
        out[key.strip()] = rest.strip() if sep == ":" else rest
    return out


def _line(h: dict[str, Any]) -> str:
    extra = f" template={h['template']!r}" if h["template"] is not None else ""
    headers = "".join(f" -H {k}:{v}" for k, v in h["headers"].items())
    return (
        f"{h['id']:>4}  {h['event']:<20} {h['request_type']} {h['url']}  "
        f"format={h['format']}{extra}{headers}"
    )


@click.group()
def webhook() -> None:
    """Webhooks: deliver relayed events as Particle's webhooks would."""


@webhook.command("add")
@click.option("--event", "prefix", required=True, help="Event-name prefix (case-sensitive).")
@click.option("--url", required=True, help="Destination; may contain mustache variables.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["form", "json", "body"]),
    help="form (default), json, or body (raw --body).",
)
@click.option("--header", "headers", multiple=True, help="NAME:VALUE (repeatable).")
@click.option("--query", "query", multiple=True, help="NAME=VALUE query parameter (repeatable).")
@click.option("--field", "fields", multiple=True, help="NAME=TEMPLATE form/JSON field.")
@click.option("--body", "body", help="JSON template (--format json) or raw body template.")
@click.option(
    "--request-type",
    type=click.Choice(["GET", "POST", "PUT", "DELETE"], case_sensitive=False),
    default="POST",
    show_default=True,
)
@click.option("--no-defaults", is_flag=True, help="Omit event, data, coreid, published_at.")
@json_option
@click.pass_context
def webhook_add(
    ctx: click.Context,
    prefix: str,
    url: str,
    fmt: str | None,
    headers: tuple[str, ...],
    query: tuple[str, ...],
    fields: tuple[str, ...],
    body: str | None,
    request_type: str,
    no_defaults: bool,
    as_json: bool,
) -> None:
    """Add a webhook for events whose name starts with PREFIX."""
    if body is not None and fields:
        fail("give either --body or --field, not both")
    if fmt is None:
        fmt = "body" if body is not None else "form"
    if fmt == "form" and body is not None:
        fail("--body needs --format json or body (form fields: --field NAME=TEMPLATE)")
    template: str | dict[str, str] | None = body
    if fields:
        template = _pairs(fields, "=", "--field")
    request = {
        "event": prefix,
        "url": url,
        "request_type": request_type.upper(),
        "format": fmt,
        "template": template,
        "headers": _pairs(headers, ":", "--header"),
        "query": _pairs(query, "=", "--query"),
        "no_defaults": no_defaults,
    }
    created = remote(ctx).call("POST", "/webhooks", json=request)
    if as_json:
        emit_json(created)
    else:
        click.echo(f"added {_line(created)}")


@webhook.command("list")
@json_option
@click.pass_context
def webhook_list(ctx: click.Context, as_json: bool) -> None:
    """List webhooks."""
    hooks = remote(ctx).call("GET", "/webhooks")
    if as_json:
        emit_json(hooks)
        return
    for h in hooks:
        click.echo(_line(h))


@webhook.command("remove")
@click.argument("webhook_id", metavar="ID", type=int)
@json_option
@click.pass_context
def webhook_remove(ctx: click.Context, webhook_id: int, as_json: bool) -> None:
    """Remove a webhook (queued deliveries are dropped; the log is kept)."""
    remote(ctx).call("DELETE", f"/webhooks/{webhook_id}")
    if as_json:
        emit_json({"removed": webhook_id})
    else:
        click.echo(f"removed webhook {webhook_id}")


@webhook.command("log")
@click.option("--webhook", "webhook_id", type=int, help="Only this webhook.")
@click.option("--event", "event_id", help="Only this event id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@click.pass_context
def webhook_log(
    ctx: click.Context, webhook_id: int | None, event_id: str | None, limit: int, as_json: bool
) -> None:
    """Show delivery attempts, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if webhook_id is not None:
        params["webhook"] = webhook_id
    if event_id is not None:
        params["event"] = event_id
    entries = remote(ctx).call("GET", "/deliveries", params=params)
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        status = e["status_code"] if e["status_code"] is not None else "-"
        took = f" {e['duration_ms']} ms" if e["duration_ms"] is not None else ""
        error = f"  {e['error']}" if e["error"] and e["outcome"] != "delivered" else ""
        click.echo(
            f"{e['at']}  webhook {e['webhook_id']}  {e['event_id']}  attempt {e['attempt']}  "
            f"{e['outcome']} {status}{took} ({e['state']}){error}"
        )
