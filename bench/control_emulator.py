"""Device OS's control channel on the emulated device, over Bumble's virtual link (real
GATT client and server, the 512-byte write window of GattByteStream) and over the TCP
byte stream, in one process: START, DATA × ⌈size/1024⌉, FINISH of a stock application,
then the reset. Prints the handshake time and payload kB/s for each transport.

    python bench/control_emulator.py [--app-kb 200] [--repeat 3]

No floor is asserted: a real radio with Device OS's system-thread latency is much slower
(particle.md §8); this shows the emulator and the Python channel are not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.emulator.control import DeviceOsControl
from bluemule.emulator.control_link import serve_control_stream
from bluemule.emulator.peripheral import EmulatedPeripheral
from bluemule.emulator.setup import load_settings
from bluemule.particle_ctrl import gatt
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.stream import (
    ByteStream,
    open_channel,
    open_gatt_stream,
    open_tcp_stream,
)
from bluemule.transport.bumble_link import VirtualLink

T = m.RequestType


async def update(stream: ByteStream, phrase: bytes, app: bytes) -> tuple[float, float]:
    """(handshake seconds, transfer seconds from START to FINISH's reply)."""
    t0 = time.perf_counter()
    async with open_channel(stream, phrase) as ch:
        t1 = time.perf_counter()
        start = m.StartFirmwareUpdateRequest(len(app)).encode()
        chunk = m.StartFirmwareUpdateReply.decode(
            await ch.request(T.START_FIRMWARE_UPDATE, start)
        ).chunk_size
        for offset in range(0, len(app), chunk):
            data = m.FirmwareUpdateDataRequest(app[offset : offset + chunk]).encode()
            await ch.request(T.FIRMWARE_UPDATE_DATA, data)
        await ch.request(T.FINISH_FIRMWARE_UPDATE)
        return t1 - t0, time.perf_counter() - t1


@contextlib.asynccontextmanager
async def gatt_stream(
    device: EmulatedDevice,
) -> AsyncIterator[tuple[ByteStream, EmulatedPeripheral]]:
    handler = EmulatedPeripheral(device)
    async with VirtualLink() as link:
        vp = await link.add_peripheral(handler.gatt_spec(), handler)
        central = await link.central.connect(vp.address, gatt.SERVICE_UUID)
        yield await open_gatt_stream(central), handler
        await handler.aclose()


async def one_run(root: Path, kind: str, app_kb: int, seed: int) -> tuple[float, float, int]:
    device = EmulatedDevice.create(root / f"{kind}{seed}", "msom", stock=True)
    phrase = load_settings(device.state_dir).mobile_secret.encode()
    app = make_app("msom", library=False, tag=f"b{seed}", body_size=app_kb * 1024)
    if kind == "gatt":
        async with gatt_stream(device) as (stream, handler):
            hs, took = await update(stream, phrase, app)
            await asyncio.wait_for(handler.reset_done.wait(), 30)
    else:
        async with serve_control_stream(DeviceOsControl(device), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            hs, took = await update(await open_tcp_stream("127.0.0.1", port), phrase, app)
    assert EmulatedDevice.open(device.state_dir).installed_app.data == app  # type: ignore[union-attr]
    return hs, took, len(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-kb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("gatt", "tcp"):
            runs = [
                asyncio.run(one_run(Path(tmp), kind, args.app_kb, i)) for i in range(args.repeat)
            ]
            hs = statistics.median(r[0] for r in runs) * 1000
            kbps = statistics.median(r[2] / r[1] / 1000 for r in runs)
            print(
                f"{kind:5} handshake {hs:6.1f} ms   transfer {kbps:7.1f} kB/s  ({runs[0][2]} B app)"
            )


if __name__ == "__main__":
    main()
