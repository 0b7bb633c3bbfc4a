"""Benchmark: verify CRC-32 and SHA-256 of a 1.5 MB module and parse it.

The module is an M-SoM (35) user part at the platform's maximum application size
(1,572,864 bytes), laid out like Particle's ``tinker-6.3.4-msom.bin``: fixed end address
0x08600000, DYNAMIC_LOCATION and PRODUCT_DATA suffix extensions (suffix of 62 bytes).

Measured, as the median of ``--repeat`` rounds (``time.perf_counter``):

* raw: ``zlib.crc32`` over all but the last 4 bytes plus ``hashlib.sha256`` over all but
  the last 38, through memoryviews (no copies): the floor any parser pays;
* ``parse_module(data)`` then ``crc_ok`` and ``sha256_ok`` on a fresh ``Module`` each
  round (the checksums are cached per instance, so reusing one would not measure them);
* ``parse_module`` alone and ``inspect_image`` (the whole ``bluemule image inspect`` report).

Target: parse + verify within 1.5x of raw. ``--check`` exits 1 when it is not.
MB/s counts 10^6 bytes. Usage: ``.venv/bin/python bench/image.py [--check] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import platform
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable

from bluemule.image import (
    Dependency,
    DynamicLocationExtension,
    ModuleFunction,
    ModulePrefix,
    ProductDataExtension,
    build_module,
    inspect_image,
    parse_module,
)

SIZE = 1_572_864
"""M-SoM maximum application size (device-constants ``userPart.maxSize``)."""
TARGET = 1.5
_MSOM = 35
_APP_END = 0x08600000
_OVERHEAD = 24 + 62 + 4  # prefix, suffix, CRC


def msom_app(size: int = SIZE) -> bytes:
    """An M-SoM user part of exactly ``size`` bytes with a deterministic body."""
    prefix = ModulePrefix(
        start_address=0,
        end_address=_APP_END,
        function=ModuleFunction.USER_PART,
        index=1,
        platform_id=_MSOM,
        module_version=6,
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, 6305),
    )
    data = build_module(
        prefix=prefix,
        body=random.Random(0).randbytes(size - _OVERHEAD),
        suffix_extensions=[
            DynamicLocationExtension(0, 0x023FC000, _APP_END - 0x1000),
            ProductDataExtension(_MSOM, 4),
        ],
        anchor="end",
    )
    if len(data) != size:
        raise SystemExit(f"built {len(data)} bytes instead of {size}")
    return data


def median_seconds(fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(times)


def run(repeat: int) -> float:
    """Print the table; return the parse+verify / raw ratio."""
    data = msom_app()
    view = memoryview(data)
    module = parse_module(data)
    if not (module.crc_ok and module.sha256_ok and inspect_image(data).ok):
        raise SystemExit("the benchmark module does not verify: the benchmark is broken")

    def raw() -> bool:
        crc = zlib.crc32(view[:-4]) == int.from_bytes(view[-4:], "big")
        sha = hashlib.sha256(view[:-38]).digest() == view[-38:-6]
        return crc and sha

    def parse_and_verify() -> bool:
        m = parse_module(data)
        return m.crc_ok and m.sha256_ok

    rows: list[tuple[str, float]] = [
        ("raw zlib.crc32 + hashlib.sha256", median_seconds(raw, repeat)),
        ("  zlib.crc32 alone", median_seconds(lambda: zlib.crc32(view[:-4]), repeat)),
        ("  hashlib.sha256 alone", median_seconds(lambda: hashlib.sha256(view[:-38]), repeat)),
        ("parse_module + crc_ok + sha256_ok", median_seconds(parse_and_verify, repeat)),
        ("  parse_module alone", median_seconds(lambda: parse_module(data), repeat)),
        ("inspect_image (full report)", median_seconds(lambda: inspect_image(data), repeat)),
    ]
    base = rows[0][1]
    print(
        f"bluemule image benchmark: M-SoM user part, {len(data):,} bytes, median of {repeat} runs"
    )
    print(f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, {sys.platform}")
    print()
    print(f"{'':36} {'ms':>8} {'MB/s':>8} {'vs raw':>7}")
    for label, seconds in rows:
        mbps = len(data) / seconds / 1e6
        print(f"{label:36} {seconds * 1e3:8.3f} {mbps:8.0f} {seconds / base:6.2f}x")
    ratio = rows[3][1] / base
    verdict = "OK" if ratio <= TARGET else "OVER TARGET"
    print()
    print(f"parse + verify is {ratio:.2f}x raw (target <= {TARGET}x): {verdict}")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if over {TARGET}x raw")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per row (30)")
    args = parser.parse_args(argv)
    ratio = run(max(1, args.repeat))
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
