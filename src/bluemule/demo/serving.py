"""The fleet server in this process: uvicorn on a thread, on a socket bound before it starts.

Binding the socket first (``127.0.0.1``, port 0) means the port is known and held before
the server runs, so nothing can take it in between; uvicorn closes it on shutdown.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Final

import uvicorn
from fastapi import FastAPI

from bluemule.demo.model import DemoError

STARTUP_SECONDS: Final = 30.0
SHUTDOWN_SECONDS: Final = 30.0


class ServerThread:
    """``app`` served on ``url`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(("127.0.0.1", 0))
            self._socket.listen(128)
        except OSError as exc:
            self._socket.close()
            raise DemoError(f"cannot listen on 127.0.0.1: {exc.strerror or exc}") from None
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,  # a library leaves the process's logging alone
            log_level="error",
            lifespan="on",
            timeout_graceful_shutdown=5,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, args=([self._socket],), name="demo-fleet-server"
        )

    def start(self) -> None:
        """Serve; returns once the server answers (raises :class:`DemoError` otherwise)."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise DemoError("the fleet server stopped while starting")
            if time.monotonic() > deadline:
                raise DemoError(f"the fleet server did not start in {STARTUP_SECONDS:g} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving, wait for the thread, release the port."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(SHUTDOWN_SECONDS)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(SHUTDOWN_SECONDS)
        self._socket.close()
