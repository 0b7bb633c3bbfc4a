"""Benchmark: bluemule against a stop-and-wait baseline on a modelled BLE link, in virtual time.

A deterministic discrete-event model (``bluemule.linkmodel``, assumptions in
``docs/linkmodel.md``): connection events every interval, each carrying as many packet
pairs as the event length allows for the PHY, data length and MTU; the real
``UpdateSession`` on the phone and the real ``DeviceSession`` on a Boron whose flash takes
time (4 KB sector erases at prepare, page programming, SHA-256, validation) and whose
worker is busy while it works. The baseline is Particle's control-request update: 1 KB
requests, one in flight; a third row is that path as a stock device really takes it
(EC-JPAKE per session, 16 bytes of record overhead, system-thread latency, a reset per
module: ``bluemule.linkmodel.control_channel``).

Prints a table, or with ``--json`` the report (``capacity_kBps``, ``bluemule``,
``stop_and_wait``, ``speedup``, ``app_plus_1MB_assets_seconds``, the scenario). It is the
same command as ``bluemule bench link``, with the same options, plus ``--check``: exit 1
when a target is missed (default scenario: 2M PHY, DLE, MTU 247, 15 ms interval, 7.5 ms
events, 256 KiB app; utilisation >= 0.85 and >= 5x the baseline).
Usage: ``.venv/bin/python bench/link.py [--json] [--sweep] [--check] [options]``.
"""

from __future__ import annotations

import sys

import click

from bluemule.cli.bench import link


def main(argv: list[str]) -> int:
    """Run ``bluemule bench link`` with ``argv`` (less ``--check``); return the exit status."""
    args = [a for a in argv if a != "--check"]
    try:
        doc = link.main(args=args, prog_name="bench/link.py", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    if not isinstance(doc, dict):  # --help
        return int(doc or 0)
    targets = doc["targets"]
    missed = not (targets["utilization_met"] and targets["speedup_met"])
    return 1 if "--check" in argv and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
