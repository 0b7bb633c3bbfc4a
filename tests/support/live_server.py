"""A real HTTP server on 127.0.0.1 (uvicorn in a thread) for an app built in the test.

The test keeps its in-process view of the app (``tests.server.conftest.Api``: admin calls,
database counts) while the code under test talks HTTP to ``url``. ``stop()`` and
``start()`` again on the same port make the server unreachable for a while.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """``app`` served on ``url`` while started."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve (returns once the socket listens)."""
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "the server thread died"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving (connections are refused until :meth:`start`)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(20)
            self._server = self._thread = None


@contextmanager
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    """A started :class:`LiveServer`, stopped afterwards."""
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()
