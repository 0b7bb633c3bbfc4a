"""Benchmark: a whole EC-JPAKE handshake (client and server) in pure Python.

Runs ``--repeat`` handshakes with fresh random keys and a 15-character mobile secret, in
Particle's message order (client round one; server round one and two; client round two),
both sides in this process, and prints the median of:

* the whole handshake, both sides, including ``derive_secret`` on each;
* the client's share alone (what the phone or gateway pays; the device's share runs in
  mbedTLS on the device);
* one P-256 multiplication of an arbitrary point, and one of the base point (table).

Target: a handshake under 1 s (``--check`` exits 1 when it is over).
Usage: ``.venv/bin/python bench/ecjpake.py [--check] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from bluemule.particle_ctrl import p256
from bluemule.particle_ctrl.ecjpake import EcJpake, Role

TARGET_SECONDS = 1.0
MOBILE_SECRET = b"7KQ3ZD9PXMRW2HT"


def handshake() -> tuple[float, float]:
    """One handshake; return (total seconds, seconds spent in the client's calls)."""
    client_time = 0.0

    def on_client(call: Callable[[], bytes | None]) -> bytes | None:
        nonlocal client_time
        start = time.perf_counter()
        result = call()
        client_time += time.perf_counter() - start
        return result

    start = time.perf_counter()
    client = EcJpake(Role.CLIENT, MOBILE_SECRET)
    server = EcJpake(Role.SERVER, MOBILE_SECRET)
    cli_one = on_client(client.write_round_one)
    assert cli_one is not None
    server.read_round_one(cli_one)
    srv_one = server.write_round_one()
    srv_two = server.write_round_two()
    on_client(lambda: client.read_round_one(srv_one))
    on_client(lambda: client.read_round_two(srv_two))
    cli_two = on_client(client.write_round_two)
    assert cli_two is not None
    server.read_round_two(cli_two)
    secret = on_client(client.derive_secret)
    if secret != server.derive_secret():
        raise SystemExit("the two sides derived different secrets")
    return time.perf_counter() - start, client_time


def median_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="handshakes to time (20)")
    parser.add_argument("--check", action="store_true", help="exit 1 if over the target")
    args = parser.parse_args(argv)

    handshake()  # warm-up: builds the base-point table once per process
    gc.disable()
    try:
        runs = [handshake() for _ in range(args.repeat)]
        point = p256.multiply_generator(12345)

        def arbitrary() -> object:
            return p256.multiply(int.from_bytes(os.urandom(32), "big"), point)

        def base() -> object:
            return p256.multiply_generator(int.from_bytes(os.urandom(32), "big"))

        arbitrary_point = median_of(args.repeat * 5, arbitrary)
        base_point = median_of(args.repeat * 5, base)
    finally:
        gc.enable()

    total = statistics.median(run[0] for run in runs)
    client = statistics.median(run[1] for run in runs)
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.repeat} runs")
    print(f"  handshake, client + server  {total * 1000:8.1f} ms   (target < {TARGET_SECONDS} s)")
    print(f"  client's share              {client * 1000:8.1f} ms")
    print(f"  k·P (arbitrary point)       {arbitrary_point * 1000:8.2f} ms")
    print(f"  k·G (base-point table)      {base_point * 1000:8.2f} ms")
    return 1 if args.check and total > TARGET_SECONDS else 0


if __name__ == "__main__":
    sys.exit(main())
