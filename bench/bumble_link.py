"""Benchmark: bluemule's Bumble adapters streaming over the in-process virtual link.

A :class:`VirtualLink` peripheral (``BumbleGattServer`` + a handler that appends to a
buffer) and a ``BumbleCentralLink`` at ATT MTU 247, in one asyncio loop. Each round
streams ``--size`` bytes (default 256 KiB) as 244-byte writes and ends with a read of a
status characteristic, which is a delivery barrier (ATT is ordered): the round is timed
from the first write to the read's answer, so every byte has reached the handler. The
received data's SHA-256 is checked after each round.

Rows: Write Without Response (the DFU data path) and Write Request (with response).
Figures are the median of ``--repeat`` rounds after one warm-up, in kB/s (10^3 bytes/s).
They measure CPU, not radio: the virtual link has no connection events, DLE or PHY.

Target: Write Without Response above 350 kB/s. ``--check`` exits 1 when it is not.
Usage: ``.venv/bin/python bench/bumble_link.py [--check] [--repeat N] [--size BYTES]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import platform
import statistics
import sys
import time
from importlib.metadata import version

from bluemule.transport.base import (
    CentralLink,
    CharacteristicSpec,
    CharProperty,
    GattServerSpec,
    PeripheralLink,
)
from bluemule.transport.bumble_link import VirtualLink

TARGET_KBPS = 350.0
CHUNK = 244
SERVICE = "6fa90001-5c4e-48a8-94f4-8030546f36fc"
DATA = "6fa90002-5c4e-48a8-94f4-8030546f36fc"
STATUS = "6fa90004-5c4e-48a8-94f4-8030546f36fc"
SPEC = GattServerSpec(
    service_uuid=SERVICE,
    characteristics=(
        CharacteristicSpec(DATA, CharProperty.WRITE_WITHOUT_RESPONSE | CharProperty.WRITE),
        CharacteristicSpec(STATUS, CharProperty.READ | CharProperty.NOTIFY),
    ),
    device_name="bench",
)


class Sink:
    """Peripheral handler: appends DATA writes; STATUS reads return the byte count."""

    def __init__(self) -> None:
        self.data = bytearray()

    def on_connect(self, link: PeripheralLink) -> None:
        pass

    def on_disconnect(self) -> None:
        pass

    def on_write(self, uuid: str, value: bytes) -> None:
        self.data += value

    def on_read(self, uuid: str) -> bytes:
        return len(self.data).to_bytes(4, "little")


async def one_round(link: CentralLink, sink: Sink, payload: bytes, *, response: bool) -> float:
    sink.data.clear()
    start = time.perf_counter()
    for offset in range(0, len(payload), CHUNK):
        await link.write(DATA, payload[offset : offset + CHUNK], response=response)
    count = int.from_bytes(await link.read(STATUS), "little")
    elapsed = time.perf_counter() - start
    if (
        count != len(payload)
        or hashlib.sha256(sink.data).digest() != hashlib.sha256(payload).digest()
    ):
        raise SystemExit(f"data mismatch: {count} of {len(payload)} bytes")
    return elapsed


async def measure(size: int, repeat: int) -> dict[str, float]:
    payload = (hashlib.sha256(b"bench").digest() * (size // 32 + 1))[:size]
    results: dict[str, float] = {}
    async with VirtualLink() as vlink:
        sink = Sink()
        await vlink.add_peripheral(SPEC, sink)
        link = await vlink.connect()
        assert link.mtu == 247, link.mtu
        for label, response in (
            ("write without response", False),
            ("write with response", True),
        ):
            await one_round(link, sink, payload, response=response)  # warm-up
            times = [await one_round(link, sink, payload, response=response) for _ in range(repeat)]
            results[label] = size / statistics.median(times) / 1000
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=256 * 1024, help="bytes per round")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per row")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET_KBPS} kB/s")
    args = parser.parse_args(argv)
    # Bumble logs a warning per ACL packet in flight at a disconnect; keep the output clean.
    logging.getLogger("bumble").setLevel(logging.ERROR)

    results = asyncio.run(measure(args.size, args.repeat))
    print(
        f"bumble {version('bumble')}, "
        f"Python {platform.python_version()}, {platform.machine()}; "
        f"{args.size} bytes in {CHUNK}-byte writes, ATT MTU 247, median of {args.repeat}"
    )
    for label, kbps in results.items():
        print(f"{label:<26} {kbps:10.0f} kB/s")
    wwr = results["write without response"]
    verdict = "ok" if wwr >= TARGET_KBPS else "BELOW TARGET"
    print(f"target: write without response >= {TARGET_KBPS:.0f} kB/s: {verdict}")
    return 1 if args.check and wwr < TARGET_KBPS else 0


if __name__ == "__main__":
    sys.exit(main())
