"""``bluemule emulator run`` serves a device over a real Bumble HCI transport; a separate
``bluemule flash bumble:…`` process finds it by its advertisement and updates it.

Two virtual controllers on one link are exposed as HCI over TCP on 127.0.0.1 (as
``bumble-controllers`` does), run by an event loop in a thread of this test.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from bluemule.emulator import make_app

BLUEMULE = str(Path(sys.executable).parent / "bluemule")


@contextmanager
def linked_controllers(count: int) -> Iterator[list[str]]:
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        link = LocalLink()  # type: ignore[no-untyped-call]
        transports = []
        for index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            transport = await open_tcp_server_transport_with_socket(sock)
            transports.append(transport)
            controller = Controller(
                f"C{index}", host_source=transport.source, host_sink=transport.sink, link=link
            )
            controller.le_acl_data_packet_length = 251
            ready.append(f"tcp-client:127.0.0.1:{sock.getsockname()[1]}")
        started.set()
        await stop.wait()
        for transport in transports:
            server = transport.server  # type: ignore[attr-defined]
            server.close()
            await server.wait_closed()
            await transport.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield ready
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_emulator_run_serves_a_relay(tmp_path: Path) -> None:
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}
    app = tmp_path / "app.bin"
    app.write_bytes(make_app("boron", tag="over-hci"))
    with linked_controllers(2) as (device_hci, relay_hci):
        server = subprocess.Popen(
            [BLUEMULE, "emulator", "run", str(tmp_path / "dev"), "--transport", device_hci],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            serving = json.loads(line)["serving"]
            flashed = subprocess.run(
                [BLUEMULE, "flash", f"bumble:{relay_hci}", str(app), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert flashed.returncode == 0, flashed.stderr
            report = json.loads(flashed.stdout)
            assert (report["result"], report["device_id"]) == ("applied", serving)
        finally:
            server.terminate()
            server.communicate(timeout=10)
