"""``bluemule demo``: server, relay, devices and a webhook on this machine, then a summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from types import FrameType

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bluemule.cli.common import ExitCode, emit_json, fail, quiet_bumble
from bluemule.demo import (
    DEFAULT_DEVICES,
    MAX_DEVICES,
    DemoError,
    DemoOptions,
    DemoStatus,
    DemoSummary,
    run_demo,
)  # light: the demo's machinery is imported when it runs

INTERRUPTED = 130
TABLE_WIDTH = 120
STATES = {
    "confirmed_running": ("running v2", "green"),
    "installed": ("installed", "green"),
    "transferring": ("transferring", "cyan"),
    "cached_on_relay": ("cached", ""),
    "failed": ("failed", "bold red"),
}
"""How the table shows the rollout's update states (``docs/server.md``)."""


def render(status: DemoStatus) -> Table:
    """The live table: one row per device, the phase above, the rollouts below."""
    table = Table(
        title=status.phase,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption_justify="left",
        pad_edge=False,
    )
    table.add_column("device id", no_wrap=True, overflow="ellipsis")
    table.add_column("model", no_wrap=True)
    table.add_column("stage", justify="right")
    table.add_column("state", no_wrap=True)
    table.add_column("update", no_wrap=True)
    table.add_column("events", justify="right", no_wrap=True)
    for row in status.devices:
        label, style = STATES.get(row.state, (row.state, ""))
        table.add_row(
            row.device_id,
            "M-SoM" if row.platform == "msom" else row.platform.capitalize(),
            str(row.stage),
            Text(label, style=style),
            _progress(row.progress),
            f"{row.published}/{row.delivered}",
        )
    notes = ["events column: published/delivered to the webhook"]
    if status.rollouts:
        notes.insert(0, "rollouts: " + ", ".join(f"{p} {s}" for p, s in status.rollouts.items()))
    table.caption = "\n".join(notes)
    return table


def _progress(fraction: float) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=1.0, completed=fraction, width=8), f"{fraction:4.0%}")
    return grid


class CliUI:
    """The live table on a terminal (the final table otherwise; nothing with ``--json``),
    and the summary."""

    def __init__(self, as_json: bool, keep: bool) -> None:
        self.as_json = as_json
        self.keep_running = keep
        self.console = Console()
        if not self.console.is_terminal:
            self.console = Console(width=TABLE_WIDTH)  # a log file gets the whole table
        self.live: Live | None = None
        self.last: DemoStatus | None = None
        self.summary: DemoSummary | None = None

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """The live table while the demo runs (on a terminal)."""
        if self.as_json or not self.console.is_terminal:
            yield
            return
        with Live(console=self.console, refresh_per_second=8) as live:
            self.live = live
            try:
                yield
            finally:
                self._stop_live()

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def show(self, status: DemoStatus) -> None:
        """See :meth:`bluemule.demo.DemoUI.show`."""
        self.last = status
        if self.live is not None:
            self.live.update(render(status))

    async def keep(self, summary: DemoSummary) -> None:
        """Report now, then run until Ctrl-C (or SIGTERM)."""
        self._stop_live()
        self.report(summary)
        click.echo(
            f"running until Ctrl-C; admin API: BLUEMULE_SERVER={summary.server_url} "
            f"BLUEMULE_TOKEN=$(cat {summary.admin_token_path}) bluemule admin …",
            err=self.as_json,
        )
        await asyncio.Event().wait()

    def report(self, summary: DemoSummary) -> None:
        """The summary: the JSON object, or the final table and a few lines."""
        self.summary = summary
        if self.as_json:
            emit_json(summary.to_json())
            return
        if self.live is None and self.last is not None and not self.console.is_terminal:
            self.console.print(render(self.last))
        s = summary
        click.echo(
            f"{'ok' if s.ok else 'FAILED'}: {s.updated} of {s.devices} devices updated, "
            f"{s.failed} failed; {s.seconds:.1f} s"
        )
        click.echo(
            f"events: {s.events_published} published, {s.events_delivered} delivered, "
            f"{s.duplicate_deliveries} duplicate deliveries"
        )
        if s.updated < s.devices:
            click.echo(f"{s.devices - s.updated} devices did not update (see the rollouts)")
        if s.events_delivered < s.events_published:
            missing = s.events_published - s.events_delivered
            click.echo(f"{missing} events did not reach the webhook (see its delivery log)")
        if self.keep_running:
            click.echo(
                f"dashboard: {s.dashboard_url} (log in with the admin token in "
                f"{s.admin_token_path})"
            )
        else:
            click.echo(f"dashboard: {s.dashboard_url} (stopped; --keep leaves it running)")


def _as_ctrl_c(_signum: int, frame: FrameType | None) -> None:
    """Whatever SIGINT does now (asyncio's handler cancels the running demo)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does (everything cleaned up)."""
    previous = signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option(
    "--devices",
    type=click.IntRange(1, MAX_DEVICES),
    default=DEFAULT_DEVICES,
    show_default=True,
    help="Emulated devices (alternately Boron and M-SoM).",
)
@click.option(
    "--webhook-url",
    metavar="URL",
    help="Deliver the events here instead of to the demo's own receiver on 127.0.0.1.",
)
@click.option("--keep", is_flag=True, help="Leave everything running until Ctrl-C.")
@click.option("--seed", type=int, default=0, show_default=True, help="Device ids and readings.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print only {"devices", "updated", "failed", "events_published", "events_delivered", '
    '"duplicate_deliveries", "seconds", "dashboard_url"}.',
)
def demo(devices: int, webhook_url: str | None, keep: bool, seed: int, as_json: bool) -> None:
    """Run the whole system on this machine, with nothing to set up.

    Starts the fleet server (SQLite in a temporary directory), a webhook receiver, a relay
    and emulated devices on Bumble's virtual link; uploads a release with assets and rolls
    it out in two stages while the devices publish events; shows each device's progress;
    prints a summary. Nothing is left behind, also on Ctrl-C or failure.

    Exit status: 0 every device updated and every event delivered exactly once, 1 not,
    2 it could not be set up.
    """
    try:
        options = DemoOptions(devices=devices, webhook_url=webhook_url, keep=keep, seed=seed)
    except DemoError as exc:
        fail(str(exc))
    quiet_bumble()
    if not os.environ.get("BLUEMULE_DEBUG"):  # the summary says what went wrong
        for name in ("bluemule", "asyncio", "uvicorn"):
            logging.getLogger(name).addHandler(logging.NullHandler())
            logging.getLogger(name).propagate = False
    ui = CliUI(as_json, keep)
    try:
        with sigterm_interrupts(), ui.showing():
            summary = run_demo(options, ui)
    except DemoError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        if ui.summary is None:
            click.echo("bluemule: interrupted; the demo stopped and removed its files", err=True)
            raise SystemExit(INTERRUPTED) from None
        summary = ui.summary
    if ui.summary is None:
        ui.report(summary)
    raise SystemExit(ExitCode.OK if summary.ok else ExitCode.CHECK_FAILED)
