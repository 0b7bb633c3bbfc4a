"""A cap on request bodies, enforced while they stream in (pure ASGI middleware).

Release uploads (``application/octet-stream``) may be as large as ``max_upload_bytes``
and their route checks that itself; every other body (JSON, forms) is capped at
``max_request_bytes``: a relay's largest honest batch (500 events of ≤ 1 KiB data) is
about 1 MiB even with JSON escaping. A declared ``Content-Length`` over the cap is
refused before anything is read; otherwise the body (small by then) is read here and
refused as soon as it passes the cap. Either way the answer is a 413 problem document
and the route never runs, so nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bluemule.server.problems import PROBLEM_JSON

UPLOAD_CONTENT_TYPE = b"application/octet-stream"


class BodyLimit:
    """Refuse request bodies over their cap with ``413 Content Too Large``."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = _content_type(headers) == UPLOAD_CONTENT_TYPE
        limit = self.max_upload_bytes if upload else self.max_request_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(scope, send, limit)
            return
        if upload:  # streamed: its route enforces the limit itself while it reads
            await self.app(scope, receive, send)
            return
        # read a small body whole (its route would anyway), refusing it past the cap
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await _refuse(scope, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _content_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";")[0].strip().lower()


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"the request body exceeds the limit of {limit} bytes",
        "instance": scope.get("path", ""),
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
