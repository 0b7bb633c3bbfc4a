"""Scenarios: a Boron, a signed release of a given size, and the report of both protocols.

Module bodies are deterministic pseudo-random bytes (they do not compress, so parts are
sent uncompressed and their sizes are exactly what was asked for).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bluemule.image import (
    AssetDependencyExtension,
    Dependency,
    ModuleFunction,
    ModulePrefix,
    asset_dependency,
    build_module,
)
from bluemule.linkmodel.baseline import BaselineParams, run_stop_and_wait
from bluemule.linkmodel.control_channel import (
    ControlChannelParams,
    ControlChannelReport,
    run_control_channel,
)
from bluemule.linkmodel.device import BORON_PLATFORM, DeviceParams, FlashDevice, NotifyMode
from bluemule.linkmodel.model import TransferReport, run_bluemule
from bluemule.linkmodel.radio import LinkParams
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.release import Release, build_release

KEY = SigningKey.from_seed(bytes(range(32)))
DEVICE_ID = bytes.fromhex("e00fce68a1b2c3d4e5f60718")
APP_SIZE = 262_144
"""A Boron's largest application (256 KiB, the user part at 0xB4000, particle.md §3.6)."""
ASSETS_SIZE = 1 << 20
ASSET_PARTS = 2
"""1 MiB of assets as two 512 KiB assets: a Boron takes at most 606,208 B per asset and
1,138,688 B of asset storage (particle.md §2.3)."""
TARGET_UTILIZATION = 0.85
TARGET_SPEEDUP = 5.0


def boron_app(size: int, *, version: int, seed: int, deps: list[AssetDependencyExtension]) -> bytes:
    """A Boron user part of exactly ``size`` bytes."""

    def build(body: bytes) -> bytes:
        prefix = ModulePrefix(
            start_address=0xB4000,
            end_address=0,
            function=ModuleFunction.USER_PART,
            index=2,
            platform_id=BORON_PLATFORM,
            module_version=version,
            dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, 6200),
        )
        return build_module(prefix=prefix, body=body, suffix_extensions=deps)

    overhead = len(build(b""))
    if size < overhead:
        raise ValueError(f"an application is at least {overhead} bytes")
    return build(random.Random(seed).randbytes(size - overhead))


def make_release(app_size: int, asset_sizes: tuple[int, ...] = ()) -> Release:
    """A signed release of one app (``app_size`` bytes) and raw assets of these sizes."""
    assets = [
        (f"asset{i}.bin", random.Random(100 + i).randbytes(size))
        for i, size in enumerate(asset_sizes)
    ]
    deps = [asset_dependency(name, data) for name, data in assets]
    app = boron_app(app_size, version=7, seed=1, deps=deps)
    return build_release(
        key=KEY, device_id=DEVICE_ID, app=app, assets=assets, release_counter=1, compress=False
    )


def fresh_boron(params: DeviceParams) -> FlashDevice:
    """A Boron running a small app, trusting the scenario key."""
    running = boron_app(8192, version=6, seed=0, deps=[])
    return FlashDevice(DEVICE_ID, running, (KEY.public_key,), params)


def check_installed(device: FlashDevice, release: Release) -> None:
    """Raise unless the device runs the release's app with all its assets."""
    app = release.payloads[-1]
    if device.app != app or device.safe_mode:
        raise AssertionError("the device does not run the new application")
    names = {p.name for p in release.manifest.parts[:-1]}
    if not names <= set(device.assets):
        raise AssertionError("assets are missing on the device")


@dataclass(frozen=True)
class Scenario:
    """Everything a run depends on."""

    link: LinkParams = field(default_factory=LinkParams)
    device: DeviceParams = field(default_factory=DeviceParams)
    baseline: BaselineParams = field(default_factory=BaselineParams)
    control: ControlChannelParams = field(default_factory=ControlChannelParams)
    app_size: int = APP_SIZE

    def with_window(self, window: int, ack_interval: int | None = None) -> Scenario:
        """The same scenario with another window (and ack interval)."""
        ack = ack_interval if ack_interval is not None else self.device.ack_interval
        return replace(self, device=replace(self.device, window=window, ack_interval=ack))


def run_bluemule_on(scenario: Scenario, release: Release) -> TransferReport:
    """bluemule on a fresh Boron; raises unless the device ends up running the release."""
    device = fresh_boron(scenario.device)
    result = run_bluemule(release, device, scenario.link, scenario.device)
    check_installed(device, release)
    return result


def run_baseline_on(scenario: Scenario, release: Release) -> TransferReport:
    """The stop-and-wait baseline on a fresh Boron."""
    return run_stop_and_wait(
        release, fresh_boron(scenario.device), scenario.link, scenario.baseline
    )


def run_control_channel_on(scenario: Scenario, release: Release) -> ControlChannelReport:
    """Particle's control channel as a stock device takes it (handshake, records, a reset
    per module) on a fresh Boron; raises unless the device ends up running the release."""
    device = fresh_boron(scenario.device)
    result = run_control_channel(release, device, scenario.link, scenario.control)
    check_installed(device, release)
    return result


def control_json(result: ControlChannelReport, capacity: float) -> dict[str, Any]:
    """The control-channel path as JSON: a transfer plus where its time went."""
    return {**transfer_json(result.transfer, capacity), **result.to_json()}


def _round(value: float, digits: int = 3) -> float:
    return round(value, digits)


def transfer_json(report: TransferReport, capacity: float) -> dict[str, Any]:
    """A transfer as JSON."""
    return {
        "outcome": report.outcome,
        "payload_bytes": report.payload_bytes,
        "throughput_kBps": _round(report.throughput_kBps, 2),
        "utilization": _round(report.throughput_kBps * 1000 / capacity),
        "end_to_end_kBps": _round(report.end_to_end_kBps, 2),
        "seconds": _round(report.seconds),
        "streaming_seconds": _round(report.streaming_seconds),
        "erase_seconds": _round(report.erase_seconds),
        "bytes_sent": report.bytes_sent,
        "bytes_resent": report.bytes_resent,
        "dropped_writes": report.dropped_writes,
        "gaps": report.gaps,
        "timeouts": report.timeouts,
        "connection_events": report.link.events,
        "notifications": report.link.notifications,
    }


def _other_notify(mode: NotifyMode) -> NotifyMode:
    return NotifyMode.COALESCED if mode is NotifyMode.BLOCKING else NotifyMode.BLOCKING


def report(scenario: Scenario, *, with_assets: bool = True) -> dict[str, Any]:
    """The ``bluemule bench link --json`` document."""
    capacity = scenario.link.capacity_bytes_per_s
    release = make_release(scenario.app_size)
    ours = transfer_json(run_bluemule_on(scenario, release), capacity)
    theirs = transfer_json(run_baseline_on(scenario, release), capacity)
    stock = control_json(run_control_channel_on(scenario, release), capacity)
    speedup = ours["throughput_kBps"] / theirs["throughput_kBps"]
    other = _other_notify(scenario.device.notify)
    alt_device = replace(scenario.device, notify=other)
    alt_ours = run_bluemule_on(replace(scenario, device=alt_device), release)
    flipped = not scenario.baseline.write_with_response
    alt_baseline = replace(scenario.baseline, write_with_response=flipped)
    alt_theirs = run_baseline_on(replace(scenario, baseline=alt_baseline), release)
    doc: dict[str, Any] = {
        "capacity_kBps": _round(capacity / 1000, 2),
        "utilization_basis": (
            "utilization = bluemule.throughput_kBps / capacity_kBps; throughput_kBps is "
            "payload bytes over streaming time (erase, checks and requests excluded); "
            "end_to_end_kBps includes them"
        ),
        "bluemule": ours,
        "stop_and_wait": theirs,
        "control_channel": stock,
        "speedup": _round(speedup, 2),
        "speedup_end_to_end": _round(theirs["seconds"] / ours["seconds"], 2),
        "variants": {
            f"bluemule_notify_{other.value}": transfer_json(alt_ours, capacity),
            (
                "stop_and_wait_write_requests" if flipped else "stop_and_wait_write_commands"
            ): transfer_json(alt_theirs, capacity),
        },
        "targets": {
            "utilization": TARGET_UTILIZATION,
            "speedup": TARGET_SPEEDUP,
            "utilization_met": ours["utilization"] >= TARGET_UTILIZATION,
            "speedup_met": speedup >= TARGET_SPEEDUP,
        },
        "scenario": {
            "platform": "boron",
            "app_size": scenario.app_size,
            "link": scenario.link.describe(),
            "device": scenario.device.describe(),
            "baseline": scenario.baseline.describe(),
            "control_channel": scenario.control.describe(),
        },
    }
    if with_assets:
        sizes = (ASSETS_SIZE // ASSET_PARTS,) * ASSET_PARTS
        big = make_release(scenario.app_size, sizes)
        big_ours = run_bluemule_on(scenario, big)
        doc["app_plus_1MB_assets_seconds"] = _round(big_ours.seconds, 2)
        doc["app_plus_1MB_assets"] = {
            "description": (
                f"{scenario.app_size} B app + {ASSET_PARTS} assets of "
                f"{ASSETS_SIZE // ASSET_PARTS} B (1 MiB) in one session, uncompressed; "
                "erase_seconds includes Device OS copying each asset into asset storage"
            ),
            "bluemule": transfer_json(big_ours, capacity),
            "stop_and_wait": transfer_json(run_baseline_on(scenario, big), capacity),
            "control_channel": control_json(run_control_channel_on(scenario, big), capacity),
        }
    return doc


def sweep(
    scenario: Scenario, windows: Sequence[int], ack_intervals: Sequence[int]
) -> list[dict[str, Any]]:
    """bluemule's utilisation for each window and ack interval (ack ≤ window), both
    notification modes; the receive ring is made at least one window long."""
    release = make_release(scenario.app_size)
    capacity = scenario.link.capacity_bytes_per_s
    rows = []
    for mode in NotifyMode:
        for window in windows:
            for ack in ack_intervals:
                if ack > window:
                    continue
                device = replace(
                    scenario.device,
                    window=window,
                    ack_interval=ack,
                    notify=mode,
                    rx_buffer=max(scenario.device.rx_buffer, window),
                )
                result = run_bluemule_on(replace(scenario, device=device), release)
                rows.append(
                    {
                        "notify": mode.value,
                        "window": window,
                        "ack_interval": ack,
                        "throughput_kBps": _round(result.throughput_kBps, 2),
                        "utilization": _round(result.throughput_kBps * 1000 / capacity),
                        "bytes_resent": result.bytes_resent,
                    }
                )
    return rows


def _row(label: str, t: dict[str, Any]) -> str:
    return (
        f"{label:42} {t['throughput_kBps']:8.2f} {t['utilization']:6.3f} "
        f"{t['end_to_end_kBps']:8.2f} {t['seconds']:8.2f} {t['erase_seconds']:6.2f} "
        f"{t['bytes_resent']:7d}"
    )


def render(doc: dict[str, Any]) -> str:
    """The report as a readable table."""
    link = doc["scenario"]["link"]
    dev = doc["scenario"]["device"]
    lines = [
        f"bluemule link model: Boron, {doc['scenario']['app_size']:,} B app, "
        f"{link['phy']} PHY, DLE {'on' if link['dle'] else 'off'}, MTU {link['att_mtu']}, "
        f"interval {link['interval_ms']} ms, event {link['event_length_ms']} ms "
        f"({link['packets_per_event']} packets/event)",
        f"device: window {dev['window']}, ack interval {dev['ack_interval']}, "
        f"notify {dev['notify']}, rx ring {dev['rx_buffer']} B, "
        f"erase {dev['sector_erase_ms']} ms/4 KB, program {dev['page_program_ms']} ms/256 B",
        f"modelled capacity: {doc['capacity_kBps']:.2f} kB/s (kB = 1000 B)",
        "",
        f"{'':42} {'kB/s':>8} {'util':>6} {'e2e kB/s':>8} {'seconds':>8} {'erase':>6} "
        f"{'resent':>7}",
        _row("bluemule", doc["bluemule"]),
        _row("stop-and-wait (1 KB requests)", doc["stop_and_wait"]),
        _row("Particle control channel (stock device)", doc["control_channel"]),
    ]
    lines += [_row(f"  variant: {name}", t) for name, t in doc["variants"].items()]
    targets = doc["targets"]
    lines += [
        "",
        "kB/s and util: payload bytes over streaming time (erase excluded); "
        "e2e: over the whole update",
        _control_line(doc["control_channel"]),
        f"speedup {doc['speedup']:.2f}x streaming, {doc['speedup_end_to_end']:.2f}x end to end",
        f"targets: utilisation >= {targets['utilization']} "
        f"{'met' if targets['utilization_met'] else 'NOT met'}; "
        f"speedup >= {targets['speedup']}x {'met' if targets['speedup_met'] else 'NOT met'}",
    ]
    if "app_plus_1MB_assets" in doc:
        big = doc["app_plus_1MB_assets"]
        lines += [
            "",
            f"app + 1 MiB of assets: {doc['app_plus_1MB_assets_seconds']:.1f} s with bluemule, "
            f"{big['stop_and_wait']['seconds']:.1f} s stop-and-wait, "
            f"{big['control_channel']['seconds']:.1f} s over the control channel "
            f"(erase and asset copies {big['bluemule']['erase_seconds']:.1f} s of bluemule's)",
            f"  {_control_line(big['control_channel'])}",
            f"  {big['description']}",
        ]
    return "\n".join(lines)


def _control_line(t: dict[str, Any]) -> str:
    return (
        f"control channel: {t['sessions']} session(s), handshakes {t['handshake_seconds']:.1f} s, "
        f"resets between modules {t['reset_seconds']:.1f} s "
        f"(bootloader copies {t['bootloader_copy_seconds']:.1f} s, last one not counted)"
    )


def render_sweep(rows: list[dict[str, Any]]) -> str:
    """Sweep rows as a table."""
    lines = [f"{'notify':10} {'window':>7} {'ack':>6} {'kB/s':>8} {'util':>6} {'resent':>7}"]
    lines += [
        f"{r['notify']:10} {r['window']:7d} {r['ack_interval']:6d} "
        f"{r['throughput_kBps']:8.2f} {r['utilization']:6.3f} {r['bytes_resent']:7d}"
        for r in rows
    ]
    return "\n".join(lines)
