"""Drive an :class:`~bluemule.protocol.client_session.UpdateSession` over any BLE link.

The session decides; this only performs its actions on a
:class:`~bluemule.transport.base.CentralLink`, feeds back what comes in, and
reconnects when the link drops (the session then resumes from the device's offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from bluemule.protocol.client_session import (
    Outcome,
    Phase,
    Read,
    ReconnectAfterReset,
    TransferProgress,
    UpdateResult,
    UpdateSession,
    WaitForNotification,
    Write,
)
from bluemule.protocol.constants import PROGRESS_UUID, RESPONSE_UUID
from bluemule.protocol.release import Release
from bluemule.relay.link_actions import Inbox, perform_link_action
from bluemule.transport.base import CentralLink, Connector, TransportError

ProgressCallback = Callable[[TransferProgress], None]


@dataclass(frozen=True)
class UpdatePolicy:
    """Timeouts and retry limits of one update."""

    notification_timeout: float = 2.0
    """Wait this long for an acknowledgement before polling the device."""
    reboot_timeout: float = 60.0
    """How long the device may take to come back after APPLY."""
    max_reconnects: int = 20
    reconnect_delay: float = 0.2


@dataclass(frozen=True)
class UpdateReport:
    """The result plus link-level figures."""

    result: UpdateResult
    seconds: float
    reconnects: int


class _Connection:
    """One live link and the notifications it has delivered."""

    def __init__(self, link: CentralLink) -> None:
        self.link = link
        self.inbox: Inbox = asyncio.Queue()

    async def subscribe(self) -> None:
        for uuid in (RESPONSE_UUID, PROGRESS_UUID):
            await self.link.subscribe(uuid, self._receiver(uuid))

    def _receiver(self, uuid: str) -> Callable[[bytes], None]:
        def receive(value: bytes) -> None:
            self.inbox.put_nowait((uuid, value))

        return receive


async def push_update(
    connect: Connector,
    release: Release,
    *,
    policy: UpdatePolicy | None = None,
    on_progress: ProgressCallback | None = None,
    use_notifications: bool = True,
) -> UpdateReport:
    """Install ``release`` on the device ``connect`` reaches; never raises for link trouble."""
    policy = policy or UpdatePolicy()
    session = UpdateSession(release)
    started = time.monotonic()
    reconnects = 0
    conn: _Connection | None = None

    async def open_link(deadline: float) -> _Connection | None:
        nonlocal reconnects
        while time.monotonic() < deadline:
            try:
                c = _Connection(await connect())
                if use_notifications:
                    await c.subscribe()
                return c
            except (TransportError, OSError, TimeoutError):
                await asyncio.sleep(policy.reconnect_delay)
        return None

    conn = await open_link(time.monotonic() + policy.reboot_timeout)
    if conn is None:
        return UpdateReport(session.interrupted("could not connect to the device"), 0.0, 0)
    while True:
        # Deliver what arrived meanwhile before deciding: a response or a gap report
        # changes what comes next.
        while not conn.inbox.empty():
            session.on_notification(*conn.inbox.get_nowait())
        if (action := session.next_action()) is None:
            break
        try:
            await _perform(action, session, conn, policy, use_notifications)
            if isinstance(action, ReconnectAfterReset):
                with contextlib.suppress(TransportError, OSError):
                    await asyncio.wait_for(conn.link.wait_disconnected(), policy.reboot_timeout)
                raise TransportError("device reset")
        except (TransportError, OSError, TimeoutError):
            session.on_disconnected()
            rebooting = session.phase in (Phase.REBOOT, Phase.VERIFY)
            reconnects += 0 if rebooting else 1
            if reconnects > policy.max_reconnects:
                session.interrupted("too many reconnects")
                break
            with contextlib.suppress(TransportError, OSError):
                await conn.link.disconnect()
            wait = policy.reboot_timeout if rebooting else policy.notification_timeout * 5
            conn = await open_link(time.monotonic() + wait)
            if conn is None:
                session.interrupted("the device did not come back")
                break
            session.on_reconnected()
        if on_progress is not None:
            on_progress(session.progress())
    if conn is not None:
        with contextlib.suppress(TransportError, OSError):
            await conn.link.disconnect()
    assert session.result is not None
    return UpdateReport(session.result, time.monotonic() - started, reconnects)


async def _perform(
    action: Write | Read | WaitForNotification | ReconnectAfterReset,
    session: UpdateSession,
    conn: _Connection,
    policy: UpdatePolicy,
    use_notifications: bool,
) -> None:
    if not isinstance(action, ReconnectAfterReset):
        wait = policy.notification_timeout if use_notifications else 0.0
        await perform_link_action(action, conn.link, session, conn.inbox, wait)


__all__ = ["Outcome", "UpdatePolicy", "UpdateReport", "push_update"]
