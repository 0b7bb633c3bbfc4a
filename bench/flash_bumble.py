"""Real code over Bumble's virtual link: the sender and device sessions, the emulated
device's flash and Device OS path, a real GATT client and server, in one process.

Prints payload kB/s for an application plus assets (streaming only, and end to end
including erase, verification, reset and the post-boot check). The issue's floor: above
350 kB/s, so Python is never the bottleneck behind a real radio (≈ 50–160 kB/s).

    python bench/flash_bumble.py [--assets-kb 1024] [--repeat 3] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.services import set_trusted_keys
from bluemule.protocol.client_session import Outcome, Phase, TransferProgress
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.release import build_release
from bluemule.relay.update import UpdatePolicy, push_update
from bluemule.transport.bumble_link import VirtualLink

FLOOR_KBPS = 350.0


async def one_run(assets_kb: int, seed: int) -> tuple[float, float, int]:
    key = SigningKey.generate()
    rng = random.Random(seed)
    assets = {f"a{i}.bin": rng.randbytes(256 * 1024) for i in range(max(1, assets_kb // 256))}
    app = make_app("msom", tag=f"bench{seed}", assets=assets, body_size=200_000)
    with tempfile.TemporaryDirectory() as tmp:
        device = EmulatedDevice.create(Path(tmp) / "d", "msom")
        set_trusted_keys(device, [key.public_key])
        release = build_release(
            key=key,
            device_id=bytes.fromhex(device.device_id),
            app=app,
            assets=sorted(assets.items()),
            release_counter=1,
            compress=False,
        )  # random data: compression only costs CPU
        handler = EmulatedPeripheral(device)
        streaming: list[float] = []

        def on_progress(p: TransferProgress) -> None:
            began = p.phase in (Phase.PART_DATA, Phase.MANIFEST_DATA) and not streaming
            ended = p.phase == Phase.APPLY and len(streaming) == 1
            if began or ended:
                streaming.append(time.perf_counter())

        async with VirtualLink() as link:
            vp = await link.add_peripheral(handler.gatt_spec(), handler)
            start = time.perf_counter()
            report = await push_update(
                link.connector(vp.address),
                release,
                policy=UpdatePolicy(notification_timeout=1.0),
                on_progress=on_progress,
            )
            total = time.perf_counter() - start
            await handler.aclose()
        assert report.result.outcome == Outcome.APPLIED, report.result
        stream_s = streaming[1] - streaming[0] if len(streaming) == 2 else total
        return (
            release.total_bytes / 1000 / stream_s,
            release.total_bytes / 1000 / total,
            release.total_bytes,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets-kb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {FLOOR_KBPS} kB/s")
    args = parser.parse_args()
    logging.getLogger("bumble").setLevel(logging.ERROR)
    runs = [asyncio.run(one_run(args.assets_kb, i)) for i in range(args.repeat)]
    stream = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    print(
        f"bluemule over Bumble's virtual link (M-SoM emulator), {runs[0][2]:,} bytes, "
        f"median of {args.repeat}"
    )
    print(f"  streaming (first DATA to last part staged): {stream:8.0f} kB/s")
    print(f"  end to end (connect … new app confirmed):   {whole:8.0f} kB/s")
    print(f"  floor {FLOOR_KBPS:.0f} kB/s: {'OK' if stream >= FLOOR_KBPS else 'BELOW'}")
    return 1 if args.check and stream < FLOOR_KBPS else 0


if __name__ == "__main__":
    sys.exit(main())
