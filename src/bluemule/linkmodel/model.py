"""Drive the real protocol cores over the modelled link, in virtual time.

The sender is :class:`~bluemule.protocol.client_session.UpdateSession`, executed the way
``bluemule.relay.update.push_update`` executes it: before each action, deliver every
notification that arrived; DATA writes are queued without response; a CONTROL write
waits for its ATT write response; a read waits for its value; a wait for a notification
gives up after ``notification_timeout_us`` and tells the session (which then polls).
One difference: when the delivery before a WaitForNotification delivered something, the
model asks the session again instead of waiting for a further notification
(``push_update`` waits, which costs a full timeout when a request's answer arrives
together with its ATT write response).
The phone acts at the end of each connection event, so what it queues goes out in the
next one. The device is :class:`~bluemule.linkmodel.device.BluemuleDevice`.

Nothing here reads a clock: the same inputs give the same numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bluemule.linkmodel.device import BluemuleDevice, DeviceParams, FlashDevice
from bluemule.linkmodel.engine import AttKind, AttPdu, Link, LinkStats, Peer
from bluemule.linkmodel.radio import LinkParams, kbps
from bluemule.protocol.client_session import (
    Outcome,
    Phase,
    Read,
    ReconnectAfterReset,
    UpdateSession,
    WaitForNotification,
    Write,
)
from bluemule.protocol.release import Release

NOTIFICATION_TIMEOUT_US = 2_000_000
"""``bluemule.relay.update.UpdatePolicy.notification_timeout``."""
MIN_MTU = 39
"""The largest CONTROL write (MANIFEST_BEGIN: opcode, seq, size u16, SHA-256) plus 3."""
MAX_VIRTUAL_US = 3_600_000_000
"""Give up after an hour of virtual time (a stuck model, not a slow link)."""


class SimulationError(RuntimeError):
    """The model did not finish: a bug in the model or a protocol deadlock."""


class Central(Peer, Protocol):
    """What the event loop needs from the phone."""

    done_us: int | None

    def wake(self, now_us: int) -> None:
        """Let the host act at ``now_us``."""

    def reconnected(self, now_us: int) -> None:
        """A new connection is up."""


class Device(Peer, Protocol):
    """What the event loop needs from the device."""

    def advance(self, until_us: int) -> None:
        """Run the device up to ``until_us``."""

    def reboot(self, at_us: int) -> None:
        """The device reset at ``at_us``."""


def run_events(
    link: Link,
    central: Central,
    device: Device,
    resets: list[int],
    *,
    reboot_us: int = 0,
    max_us: int = MAX_VIRTUAL_US,
) -> None:
    """Connection events until the central is done. ``resets`` is filled by the device."""
    interval = link.params.interval_us
    anchor = 0
    k = 0
    central.wake(0)
    while central.done_us is None:
        start = anchor + k * interval
        if start > max_us:
            raise SimulationError(f"no result after {max_us / 1e6:.0f} s of virtual time")
        device.advance(start)
        end = link.run_event(start, central, device)
        central.wake(end)
        k += 1
        if resets:
            at = resets.pop()
            link.clear()
            device.reboot(at)
            anchor, k = max(at, end) + reboot_us, 0
            central.reconnected(anchor)


class BluemuleCentral:
    """Executes an :class:`UpdateSession`'s actions on the link (like ``push_update``)."""

    def __init__(
        self, session: UpdateSession, link: Link, timeout_us: int = NOTIFICATION_TIMEOUT_US
    ) -> None:
        self.session = session
        self.link = link
        self.timeout_us = timeout_us
        self.inbox: deque[tuple[str, bytes]] = deque()
        self.done_us: int | None = None
        self.phases: list[tuple[Phase, int]] = [(session.phase, 0)]
        self.timeouts = 0
        self._wait: str | None = None
        self._deadline = 0
        self._read: tuple[str, bytes] | None = None
        self._read_buf = b""
        self._write_done = False

    # ------------------------------------------------------------------ link side

    def receive(self, pdu: AttPdu, at_us: int) -> None:
        if pdu.kind is AttKind.NOTIFY:
            self.inbox.append((pdu.uuid, pdu.value))
        elif pdu.kind is AttKind.READ_RSP:
            self._read_buf += pdu.value
            if len(pdu.value) == self.link.params.att_mtu - 1:  # maybe more: read blob
                offset = len(self._read_buf).to_bytes(2, "little")
                self.link.central_send(AttPdu(AttKind.READ_BLOB_REQ, pdu.uuid, offset, at_us))
            else:
                self._read, self._read_buf = (pdu.uuid, self._read_buf), b""
        elif pdu.kind is AttKind.WRITE_RSP:
            self._write_done = True

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        pass

    # ------------------------------------------------------------------ host side

    def wake(self, now_us: int) -> None:
        while self._resolve(now_us):
            action = self.session.next_action()
            self._note(now_us)
            if action is None:
                self.done_us = now_us
                return
            delivered = bool(self.inbox)
            while self.inbox:  # push_update delivers what arrived before each action
                self.session.on_notification(*self.inbox.popleft())
                self._note(now_us)
            if delivered and isinstance(action, WaitForNotification):
                continue  # what was just delivered may be what the session waited for
            self._perform(action, now_us)

    def reconnected(self, now_us: int) -> None:
        if self._wait != "reconnect":
            self.session.on_disconnected()
        self._wait = None
        self.inbox.clear()
        self._read = None
        self._read_buf = b""
        self._write_done = False
        self.session.on_reconnected()
        self._note(now_us)
        self.wake(now_us)

    def _resolve(self, now_us: int) -> bool:
        """True when the host is free to take the next action."""
        match self._wait:
            case None:
                return True
            case "read" if self._read is not None:
                value, self._read = self._read, None
                self.session.on_read(*value)
            case "write" if self._write_done:
                self._write_done = False
            case "notify" if self.inbox:
                self.session.on_notification(*self.inbox.popleft())
            case "notify" if now_us >= self._deadline:
                self.timeouts += 1
                self.session.on_timeout()
            case _:
                return False
        self._wait = None
        self._note(now_us)
        return True

    def _perform(
        self, action: Write | Read | WaitForNotification | ReconnectAfterReset, now_us: int
    ) -> None:
        match action:
            case Write(uuid=uuid, value=value, response=response):
                kind = AttKind.WRITE_REQ if response else AttKind.WRITE_CMD
                self.link.central_send(AttPdu(kind, uuid, value, now_us))
                self._wait = "write" if response else None
            case Read(uuid=uuid):
                self.link.central_send(AttPdu(AttKind.READ_REQ, uuid, b"", now_us))
                self._wait = "read"
            case WaitForNotification():
                self._wait = "notify"
                self._deadline = now_us + self.timeout_us
            case ReconnectAfterReset():
                self._wait = "reconnect"

    def _note(self, now_us: int) -> None:
        if self.session.phase != self.phases[-1][0]:
            self.phases.append((self.session.phase, now_us))


@dataclass(frozen=True)
class TransferReport:
    """One modelled transfer."""

    protocol: str
    outcome: str
    payload_bytes: int
    """Bytes of the parts (modules) that were transferred."""
    seconds: float
    """From the first action to the device's answer to the last request (APPLY or
    FINISH): erases, checks and all round trips included; the reset after it is not."""
    streaming_seconds: float
    """Time spent streaming part bytes: from the answer that opened a part (after its
    erase) to the acknowledgement of its last byte, summed over parts."""
    erase_seconds: float
    bytes_sent: int
    bytes_resent: int
    dropped_writes: int
    link: LinkStats
    gaps: int = 0
    """Gap reports (PROGRESS with GAP) the device sent."""
    timeouts: int = 0
    """Waits for a notification that ran out (each followed by a poll)."""

    @property
    def throughput_kBps(self) -> float:  # noqa: N802 - the unit is kB/s
        """Payload throughput while streaming (erase excluded)."""
        return kbps(self.payload_bytes, self.streaming_seconds)

    @property
    def end_to_end_kBps(self) -> float:  # noqa: N802
        """Payload bytes over :attr:`seconds` (erase and requests included)."""
        return kbps(self.payload_bytes, self.seconds)


def streaming_us(phases: list[tuple[Phase, int]]) -> tuple[int, int | None]:
    """(Σ PART_DATA → PART_END time, when APPLY was answered) from the phase log."""
    total = 0
    opened: int | None = None
    applied: int | None = None
    for phase, at in phases:
        if phase == Phase.PART_DATA:
            opened = at
        elif opened is not None:
            total += at - opened
            opened = None
        if phase == Phase.REBOOT and applied is None:
            applied = at
    return total, applied


def run_bluemule(
    release: Release,
    device: FlashDevice,
    link_params: LinkParams,
    device_params: DeviceParams,
    *,
    reboot_us: int = 0,
    timeout_us: int = NOTIFICATION_TIMEOUT_US,
    on_session: Callable[[UpdateSession], None] | None = None,
) -> TransferReport:
    """Push ``release`` to ``device`` through the model; the device ends up updated."""
    if link_params.att_mtu < MIN_MTU:
        raise ValueError(
            f"bluemule needs an ATT MTU of at least {MIN_MTU}: MANIFEST_BEGIN is a "
            f"{MIN_MTU - 3}-byte write and Device OS takes no long writes"
        )
    link = Link(link_params)
    session = UpdateSession(release)
    if on_session is not None:
        on_session(session)
    resets: list[int] = []
    dev = BluemuleDevice(link, device, device_params, resets.append)
    central = BluemuleCentral(session, link, timeout_us)
    device.erase_us = 0
    run_events(link, central, dev, resets, reboot_us=reboot_us)
    assert session.result is not None
    assert central.done_us is not None
    streaming, applied = streaming_us(central.phases)
    end = applied if applied is not None else central.done_us
    return TransferReport(
        protocol="bluemule",
        outcome=session.result.outcome.value,
        payload_bytes=release.total_bytes,
        seconds=end / 1e6,
        streaming_seconds=streaming / 1e6,
        erase_seconds=device.erase_us / 1e6,
        bytes_sent=session.result.bytes_sent,
        bytes_resent=session.result.resent_bytes,
        dropped_writes=dev.dropped_writes,
        link=link.stats,
        gaps=dev.gaps,
        timeouts=central.timeouts,
    )


__all__ = [
    "BluemuleCentral",
    "Outcome",
    "SimulationError",
    "TransferReport",
    "run_bluemule",
    "run_events",
]
