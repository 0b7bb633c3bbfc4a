"""How long ``bluemule demo`` takes, as a user runs it (the console script, a fresh process).

Runs ``bluemule demo --devices N --json`` ``--repeat`` times per N and prints the median
wall time (interpreter start to exit, teardown included) and the median of the demo's own
``seconds`` (start to summary). ``--check`` exits 1 if the default device count takes a
minute or more, the promise of the README's first command.

    python bench/demo.py [--devices 6 20] [--repeat 3] [--check]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bluemule.demo import DEFAULT_DEVICES

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
LIMIT_SECONDS = 60.0


def one_run(devices: int) -> tuple[float, float]:
    """(wall seconds, the demo's ``seconds``) of one successful run."""
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603
        [BLUEMULE, "demo", "--devices", str(devices), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bluemule demo --devices {devices} failed: {result.stderr or result.stdout}")
    summary = json.loads(result.stdout)
    return wall, float(summary["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[DEFAULT_DEVICES, 20])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    slow = False
    for devices in args.devices:
        runs = [one_run(devices) for _ in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        own = statistics.median(r[1] for r in runs)
        print(
            f"{devices:3d} devices: {wall:5.1f} s wall, {own:5.1f} s to the summary "
            f"(median of {args.repeat})"
        )
        slow |= devices == DEFAULT_DEVICES and wall >= LIMIT_SECONDS
    if args.check and slow:
        sys.exit(f"the default demo took {LIMIT_SECONDS:g} s or more")


if __name__ == "__main__":
    main()
