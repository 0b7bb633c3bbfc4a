"""A webhook receiver on 127.0.0.1: records every request, counts duplicates.

It stands for the customer's backend. Each request is Particle's form POST (``event``,
``data``, ``coreid``, ``published_at``); the demo's webhook also sends the event's id
(``PARTICLE_EVENT_ID``, the dedupe key) in :data:`EVENT_ID_HEADER`. An event is known by
that id, or by ``coreid`` + ``published_at`` + ``data`` for a webhook that does not send
it; a second request for a known event is a duplicate delivery.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from bluemule.demo.model import DemoError

EVENT_ID_HEADER: Final = "X-Particle-Event-Id"
MAX_BODY: Final = 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    """One request the receiver answered."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]

    @property
    def key(self) -> str:
        """What identifies the event (see the module notes)."""
        event_id = self.headers.get(EVENT_ID_HEADER.lower())
        if event_id:
            return event_id
        f = self.form
        return f"{f.get('coreid', '')}|{f.get('published_at', '')}|{f.get('data', '')}"


@dataclass
class ReceiverLog:
    """What arrived (thread-safe)."""

    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, delivery: Delivery) -> None:
        """Record one request."""
        with self.lock:
            self.deliveries.append(delivery)

    def snapshot(self) -> list[Delivery]:
        """Every request so far, in arrival order."""
        with self.lock:
            return list(self.deliveries)

    def distinct(self) -> int:
        """Events received at least once."""
        return len({d.key for d in self.snapshot()})

    def duplicates(self) -> int:
        """Requests beyond the first for each event."""
        got = self.snapshot()
        return len(got) - len({d.key for d in got})

    def per_device(self) -> Counter[str]:
        """Distinct events per ``coreid``."""
        seen: dict[str, str] = {}
        for d in self.snapshot():
            seen.setdefault(d.key, d.form.get("coreid", ""))
        return Counter(seen.values())


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 (a free port) answering 200 to every request."""

    def __init__(self) -> None:
        self.log = ReceiverLog()
        log = self.log

        class Handler(BaseHTTPRequestHandler):
            timeout = 5.0  # a client that stalls cannot hold the shutdown

            def _handle(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length) if length > 0 else b""
                path, _, query = self.path.partition("?")
                text = body.decode("utf-8", "replace") if body else query
                form = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
                headers = {k.lower(): v for k, v in self.headers.items()}
                log.add(Delivery(self.command, path, headers, form))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        except OSError as exc:
            raise DemoError(f"cannot listen on 127.0.0.1: {exc.strerror or exc}") from None
        self._server.daemon_threads = False  # close() joins every request thread
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="demo-webhook-receiver"
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
