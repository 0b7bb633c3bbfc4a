"""Helpers shared by the transport adapters (not part of the public API)."""

from __future__ import annotations

import asyncio
import uuid as _uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from bluemule.transport.base import LinkLostError

T = TypeVar("T")

BLUETOOTH_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def normalize_uuid(value: str) -> str:
    """Lowercase, dashed 128-bit form of a UUID string (16-bit ``"180a"`` is expanded).

    Raises ``ValueError`` for anything else.
    """
    text = value.strip()
    if len(text) in (4, 8) and all(c in "0123456789abcdefABCDEF" for c in text):
        return f"{int(text, 16):08x}{BLUETOOTH_BASE_UUID_SUFFIX}"
    return str(_uuid.UUID(text))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background task's outcome as retrieved (no 'never retrieved' log)."""
    if not task.cancelled():
        task.exception()


async def race_link_loss(lost: asyncio.Future[None], awaitable: Awaitable[T], what: str) -> T:
    """Await ``awaitable`` unless the link drops first; then raise :class:`LinkLostError`.

    ``lost`` completes when the link drops. A pending operation that the stack cancels
    or fails because of the drop (Bumble cancels the pending ATT response future)
    surfaces as ``LinkLostError`` too; other failures propagate unchanged.
    """
    if lost.done():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise LinkLostError(f"{what}: link lost")
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise
    if task.done():
        if task.cancelled():
            raise LinkLostError(f"{what}: link lost")
        error = task.exception()
        if error is None:
            return task.result()
        if lost.done():
            raise LinkLostError(f"{what}: link lost") from error
        raise error
    task.cancel()
    task.add_done_callback(_retrieve)
    raise LinkLostError(f"{what}: link lost")
