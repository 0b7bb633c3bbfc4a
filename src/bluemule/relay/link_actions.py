"""Carry out a sans-IO session's link actions on a :class:`CentralLink`.

Both relay drivers (:mod:`bluemule.relay.update` for transfers, :mod:`bluemule.relay.events`
for event drains) run sessions that ask for the same three things: write a value, read a
characteristic, or wait for a notification (polling once ``wait`` passes). This is the one
place that does them and feeds the answers back.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from bluemule.protocol.client_session import Read, WaitForNotification, Write
from bluemule.transport.base import CentralLink, TransportError

Inbox = asyncio.Queue[tuple[str, bytes]]
"""Notifications as they arrived: (characteristic UUID, value)."""


class LinkSession(Protocol):
    """What a session needs to hear back."""

    def on_read(self, uuid: str, value: bytes) -> None:
        """A read's value."""

    def on_notification(self, uuid: str, value: bytes) -> None:
        """A notification's value."""

    def on_timeout(self) -> None:
        """No notification arrived in time: the session polls instead."""


async def perform_link_action(
    action: Write | Read | WaitForNotification,
    link: CentralLink,
    session: LinkSession,
    inbox: Inbox,
    wait: float,
) -> None:
    """Do ``action`` on ``link``; raises :class:`TransportError` when the link is gone."""
    match action:
        case Write(uuid=uuid, value=value, response=response):
            await link.write(uuid, value, response=response)
        case Read(uuid=uuid):
            session.on_read(uuid, await link.read(uuid))
        case WaitForNotification():
            try:
                uuid, value = await asyncio.wait_for(inbox.get(), wait)
            except TimeoutError:
                if not link.connected:
                    raise TransportError("link lost") from None
                session.on_timeout()
            else:
                session.on_notification(uuid, value)
