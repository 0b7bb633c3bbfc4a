"""Connection events in virtual time: ATT PDUs cut into LL packets, one event at a time.

The central (phone) and the peripheral (device) each own a transmit queue of ATT PDUs.
An event is a sequence of packet pairs: a central packet (or an empty poll) and the
device's reply (a fragment of its next PDU, or empty). Pairs continue while the next one
fits in the event budget (``LinkParams.event_budget_us``; no T_IFS after the last reply),
while either side has a PDU that was ready when the event began, and while the phone's own
per-event cap allows. A PDU queued during an event waits for the next one, so an ATT
response or a notification always arrives at least one event after what caused it.
The device sends at most ``notifications_per_event`` notifications per event.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from bluemule.linkmodel.radio import ATT_WRITE_HEADER_BYTES, T_IFS_US, LinkParams


class AttKind(enum.Enum):
    """The ATT PDUs the model moves."""

    WRITE_CMD = "write without response"
    WRITE_REQ = "write request"
    WRITE_RSP = "write response"
    READ_REQ = "read request"
    READ_BLOB_REQ = "read blob request"
    READ_RSP = "read response"
    NOTIFY = "notification"


@dataclass
class AttPdu:
    """One ATT PDU; ``ready_us`` is when its sender queued it."""

    kind: AttKind
    uuid: str
    value: bytes = b""
    ready_us: int = 0

    @property
    def size(self) -> int:
        """Bytes of the ATT PDU (opcode, handle, value)."""
        match self.kind:
            case AttKind.WRITE_RSP:
                return 1
            case AttKind.READ_REQ:
                return 3
            case AttKind.READ_BLOB_REQ:
                return 5
            case AttKind.READ_RSP:
                return 1 + len(self.value)
            case _:
                return ATT_WRITE_HEADER_BYTES + len(self.value)


class Peer(Protocol):
    """An end of the link."""

    def receive(self, pdu: AttPdu, at_us: int) -> None:
        """The last packet of ``pdu`` arrived at ``at_us``."""

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        """``pdu`` left and was acknowledged; ``at_us`` is the end of its event."""


@dataclass
class LinkStats:
    """What crossed the air."""

    events: int = 0
    central_packets: int = 0
    peripheral_packets: int = 0
    notifications: int = 0
    busy_us: int = 0


@dataclass
class _Sender:
    queue: list[AttPdu] = field(default_factory=list)
    current: AttPdu | None = None
    left: deque[int] = field(default_factory=deque)


class Link:
    """The air between one central and one peripheral."""

    def __init__(self, params: LinkParams) -> None:
        self.params = params
        self.stats = LinkStats()
        self._central = _Sender()
        self._peripheral = _Sender()

    # ------------------------------------------------------------------ queues

    def central_send(self, pdu: AttPdu) -> None:
        """The phone queues ``pdu``."""
        self._check(pdu)
        self._central.queue.append(pdu)

    def peripheral_send(self, pdu: AttPdu) -> None:
        """The device queues ``pdu``."""
        self._check(pdu)
        self._peripheral.queue.append(pdu)

    def pending_notifications(self) -> list[AttPdu]:
        """Notifications the device queued that have not started to go out."""
        return [p for p in self._peripheral.queue if p.kind is AttKind.NOTIFY]

    def notifications_outstanding(self) -> bool:
        """The device has a notification queued or going out."""
        current = self._peripheral.current
        return bool(self.pending_notifications()) or (
            current is not None and current.kind is AttKind.NOTIFY
        )

    def central_idle(self) -> bool:
        """The phone has nothing queued."""
        return not self._central.queue and self._central.current is None

    def clear(self) -> None:
        """The connection dropped: whatever was queued is gone."""
        self._central = _Sender()
        self._peripheral = _Sender()

    def _check(self, pdu: AttPdu) -> None:
        if pdu.kind in (AttKind.WRITE_CMD, AttKind.WRITE_REQ, AttKind.NOTIFY) and (
            len(pdu.value) > self.params.max_value
        ):
            raise ValueError(f"a {len(pdu.value)}-byte value exceeds ATT_MTU - 3")

    # ------------------------------------------------------------------- event

    def _next_fragment(self, side: _Sender, start_us: int, *, notify_ok: bool) -> int | None:
        if side.current is None:
            for i, pdu in enumerate(side.queue):
                if pdu.ready_us > start_us:
                    break
                if pdu.kind is AttKind.NOTIFY and not notify_ok:
                    continue
                side.current = side.queue.pop(i)
                side.left = deque(self.params.fragments(pdu.size))
                break
        return side.left[0] if side.current is not None else None

    def run_event(self, start_us: int, central: Peer, peripheral: Peer) -> int:
        """Run the connection event that starts at ``start_us``; return when it ends."""
        p = self.params
        budget = p.event_budget_us + T_IFS_US
        used = 0
        central_packets = 0
        notifications = 0
        done: list[AttPdu] = []
        while True:
            cap_ok = p.central_max_packets is None or central_packets < p.central_max_packets
            c = self._next_fragment(self._central, start_us, notify_ok=True) if cap_ok else None
            if self._peripheral.current is None and notifications >= p.notifications_per_event:
                d = self._next_fragment(self._peripheral, start_us, notify_ok=False)
            else:
                d = self._next_fragment(self._peripheral, start_us, notify_ok=True)
            if c is None and d is None:
                break
            cost = p.pair_us(c or 0, d or 0)
            if used + cost > budget:
                break
            at = start_us + used
            if c is not None:
                central_packets += 1
                arrived = self._advance(self._central)
                if arrived is not None:
                    peripheral.receive(arrived, at + p.air_us(c))
            if d is not None:
                current = self._peripheral.current
                if (
                    current is not None
                    and current.kind is AttKind.NOTIFY
                    and (len(self._peripheral.left) == len(p.fragments(current.size)))
                ):
                    notifications += 1
                arrived = self._advance(self._peripheral)
                if arrived is not None:
                    central.receive(arrived, at + p.air_us(c or 0) + T_IFS_US + p.air_us(d))
                    done.append(arrived)
            used += cost
        end = start_us + max(0, used - T_IFS_US)
        self.stats.events += 1
        self.stats.central_packets += central_packets
        self.stats.notifications += notifications
        self.stats.busy_us += end - start_us
        for pdu in done:
            self.stats.peripheral_packets += len(p.fragments(pdu.size))
            peripheral.sent(pdu, end)
        return end

    @staticmethod
    def _advance(side: _Sender) -> AttPdu | None:
        side.left.popleft()
        if side.left:
            return None
        pdu = side.current
        side.current = None
        return pdu
