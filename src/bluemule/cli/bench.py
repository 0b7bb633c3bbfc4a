"""``bluemule bench …``: modelled performance (no radio, no device: virtual time)."""

from __future__ import annotations

from typing import Any

import click

from bluemule.cli.common import emit_json, fail
from bluemule.linkmodel.baseline import BaselineParams
from bluemule.linkmodel.control_channel import ControlChannelParams
from bluemule.linkmodel.device import DeviceParams, NotifyMode
from bluemule.linkmodel.model import MIN_MTU, SimulationError
from bluemule.linkmodel.radio import LinkParams, Phy
from bluemule.linkmodel.scenario import APP_SIZE, Scenario, render, render_sweep, report, sweep
from bluemule.protocol.constants import DEFAULT_ACK_INTERVAL, DEFAULT_WINDOW, MAX_ATT_MTU

SWEEP_WINDOWS = (2048, 4096, 8192, 16384)
SWEEP_ACK_INTERVALS = (512, 1024, 2048, 4096, 8192)


@click.group()
def bench() -> None:
    """Modelled performance: the BLE link and the device in virtual time."""


@bench.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--interval-ms",
    type=click.FloatRange(7.5, 4000),
    default=15.0,
    show_default=True,
    help="Connection interval.",
)
@click.option("--phy", type=click.Choice(["1M", "2M"]), default="2M", show_default=True)
@click.option("--dle/--no-dle", default=True, show_default=True, help="Data length extension.")
@click.option(
    "--mtu",
    type=click.IntRange(MIN_MTU, MAX_ATT_MTU),
    default=MAX_ATT_MTU,
    show_default=True,
    help="ATT MTU.",
)
@click.option(
    "--event-length-ms",
    type=click.FloatRange(1.25, 4000),
    default=7.5,
    show_default=True,
    help="Radio time per connection event (Boron: 7.5).",
)
@click.option(
    "--central-max-packets",
    type=click.IntRange(1, 100),
    default=None,
    help="The phone's own cap on packets per event (default: none).",
)
@click.option(
    "--notifications-per-event",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Notifications the device sends per connection event.",
)
@click.option(
    "--app-size",
    type=click.IntRange(4096, APP_SIZE),
    default=APP_SIZE,
    show_default=True,
    help="Application bytes.",
)
@click.option(
    "--window",
    type=click.IntRange(256, 65535),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Bytes in flight beyond the last acknowledgement.",
)
@click.option(
    "--ack-interval",
    type=click.IntRange(64, 65535),
    default=DEFAULT_ACK_INTERVAL,
    show_default=True,
    help="The device acknowledges every this many bytes.",
)
@click.option(
    "--notify",
    type=click.Choice([m.value for m in NotifyMode]),
    default="coalesced",
    show_default=True,
    help="blocking: the worker waits for each notification to go out; coalesced: a sender "
    "thread sends the latest PROGRESS.",
)
@click.option(
    "--rx-buffer",
    type=click.IntRange(64, 1 << 20),
    default=None,
    help="Receive ring bytes (default: one window).",
)
@click.option(
    "--erase-ms",
    type=click.FloatRange(0, 10_000),
    default=50.0,
    show_default=True,
    help="Erase time of one 4 KB sector.",
)
@click.option(
    "--program-ms",
    type=click.FloatRange(0, 1000),
    default=1.0,
    show_default=True,
    help="Program time of one 256-byte page.",
)
@click.option(
    "--baseline-write-requests",
    is_flag=True,
    help="The baseline sends requests as write requests (with response).",
)
@click.option(
    "--jpake-mult-ms",
    type=click.FloatRange(0, 10_000),
    default=590.0,
    show_default=True,
    help="Control channel: one P-256 scalar multiplication on the device (EC-JPAKE).",
)
@click.option(
    "--system-latency-ms",
    type=click.FloatRange(0, 1000),
    default=5.0,
    show_default=True,
    help="Control channel: system-thread latency per request.",
)
@click.option("--no-assets", is_flag=True, help="Skip the app + 1 MiB of assets scenario.")
@click.option("--sweep", "do_sweep", is_flag=True, help="Also sweep windows and ack intervals.")
def link(
    as_json: bool,
    interval_ms: float,
    phy: str,
    dle: bool,
    mtu: int,
    event_length_ms: float,
    central_max_packets: int | None,
    notifications_per_event: int,
    app_size: int,
    window: int,
    ack_interval: int,
    notify: str,
    rx_buffer: int | None,
    erase_ms: float,
    program_ms: float,
    baseline_write_requests: bool,
    jpake_mult_ms: float,
    system_latency_ms: float,
    no_assets: bool,
    do_sweep: bool,
) -> dict[str, Any]:
    """Model an update of a Boron: bluemule against a stop-and-wait baseline and against
    Particle's control channel as a stock device takes it (handshake, reset per module).

    Deterministic: the same options give the same numbers. Defaults are what a Boron
    allows (7.5 ms connection events: 5 full writes per event on 2M, 3 on 1M).
    Returns the report (for ``bench/link.py``).
    """
    if ack_interval > window:
        fail("--ack-interval must not exceed --window")
    try:
        scenario = Scenario(
            link=LinkParams(
                interval_us=round(interval_ms * 1000),
                phy=Phy(phy),
                dle=dle,
                att_mtu=mtu,
                event_length_us=round(event_length_ms * 1000),
                central_max_packets=central_max_packets,
                notifications_per_event=notifications_per_event,
            ),
            device=DeviceParams(
                sector_erase_us=round(erase_ms * 1000),
                page_program_us=round(program_ms * 1000),
                rx_buffer=rx_buffer if rx_buffer is not None else window,
                notify=NotifyMode(notify),
                window=window,
                ack_interval=ack_interval,
            ),
            baseline=BaselineParams(write_with_response=baseline_write_requests),
            control=ControlChannelParams(
                scalar_mult_us=round(jpake_mult_ms * 1000),
                system_thread_latency_us=round(system_latency_ms * 1000),
            ),
            app_size=app_size,
        )
        doc = report(scenario, with_assets=not no_assets)
        rows = sweep(scenario, SWEEP_WINDOWS, SWEEP_ACK_INTERVALS) if do_sweep else None
    except (ValueError, SimulationError) as exc:
        fail(str(exc))
    if rows is not None:
        doc["sweep"] = rows
    if as_json:
        emit_json(doc)
        return doc
    click.echo(render(doc))
    if rows is not None:
        click.echo()
        click.echo(render_sweep(rows))
    return doc
