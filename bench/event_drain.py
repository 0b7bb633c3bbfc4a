"""Drain an emulated device's event queue over Bumble's virtual link, in one process.

Real code end to end: the relay's drain session and ``drain_events``, a real GATT
client and server, the device role and its queue in the emulator's LittleFS model.
Prints events/s and data KiB/s for a full queue of small events (100 × 200 B) and of
full-size ones (31 × 1,024 B, the 32 KiB limit). On a real radio each EVENTS_READ is one
request/response (about two connection events), so the radio, not Python, bounds it.

    python bench/event_drain.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.relay.events import RelayedEvent, drain_events
from bluemule.transport.bumble_link import VirtualLink

CASES = ((100, 200), (31, 1024))


async def one_run(count: int, size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        device = EmulatedDevice.create(Path(tmp) / "dev", "boron")
        for i in range(count):
            device.publish(f"bench/{i % 4}", "x" * size)
        stored: list[RelayedEvent] = []

        async def store(batch: Sequence[RelayedEvent]) -> None:
            stored.extend(batch)

        handler = EmulatedPeripheral(device)
        async with VirtualLink() as link:
            peripheral = await link.add_peripheral(handler.gatt_spec(), handler)
            central = await link.connector(peripheral.address)()
            started = time.perf_counter()
            drained = await drain_events(central, store)
            seconds = time.perf_counter() - started
            await central.disconnect()
        await handler.aclose()
        assert drained == count == len(stored)
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("bumble").setLevel(logging.WARNING)
    for count, size in CASES:
        runs = [asyncio.run(one_run(count, size)) for _ in range(args.repeat)]
        seconds = statistics.median(runs)
        print(
            f"{count:4d} events × {size:5d} B: {seconds:5.2f} s, {count / seconds:6.0f} events/s, "
            f"{count * size / seconds / 1024:6.1f} KiB/s of data (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
