"""The sending role (phone, gateway, ``bluemule flash``) as a sans-IO state machine.

The driver executes the :class:`Action` values the session asks for and feeds back
what it reads or is notified of. The session owns every protocol decision: which
request comes next, how many bytes may be in flight, where to resume.

Resume rule: the sender never trusts what it sent. After a reconnect, a gap report or
a window with no acknowledgement, it takes the device's offset (a PROGRESS read is a
delivery barrier: ATT is ordered) and continues from there.

Sequence (``docs/protocol.md`` §Update)::

    READ STATUS → MANIFEST_BEGIN → DATA(stream 0)… → MANIFEST_COMMIT
    → for each needed part: PART_BEGIN → DATA(stream i+1)… → PART_END
    → APPLY → (device resets) → reconnect → READ STATUS → verify running app
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

from bluemule.protocol.constants import (
    CONTROL_UUID,
    DATA_HEADER_SIZE,
    DATA_UUID,
    MANIFEST_STREAM,
    PROGRESS_UUID,
    PROTOCOL_VERSION,
    RESPONSE_UUID,
    STATUS_UUID,
    Opcode,
    ProgressFlag,
    Status,
    StatusFlag,
)
from bluemule.protocol.errors import DecodeError
from bluemule.protocol.messages import (
    DataWrite,
    DeviceStatus,
    Request,
    Response,
    decode_progress,
    decode_response,
    decode_status,
)
from bluemule.protocol.release import Release

# ----------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Write:
    """Write ``value`` to ``uuid`` (with response for CONTROL, without for DATA)."""

    uuid: str
    value: bytes
    response: bool


@dataclass(frozen=True)
class Read:
    """Read ``uuid`` and pass the value to :meth:`UpdateSession.on_read`."""

    uuid: str


@dataclass(frozen=True)
class WaitForNotification:
    """Wait for a notification (pass it to ``on_notification``) or call ``on_timeout``."""


@dataclass(frozen=True)
class ReconnectAfterReset:
    """The device is resetting: reconnect (allow for the reboot), then ``on_reconnected``."""


Action = Write | Read | WaitForNotification | ReconnectAfterReset

# ----------------------------------------------------------------------- results


class Outcome(enum.StrEnum):
    """How an update ended (the CLI's ``result``)."""

    APPLIED = "applied"
    ALREADY_CURRENT = "already_current"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class UpdateResult:
    """The outcome with its reason and what it cost."""

    outcome: Outcome
    reason: str | None = None
    status: Status | None = None
    detail: int = 0
    bytes_sent: int = 0
    """DATA payload bytes written, resends included."""
    resent_bytes: int = 0
    """Payload bytes written more than once (after gaps, reconnects, lost windows)."""


class Phase(enum.Enum):
    """Where the session is."""

    STATUS = enum.auto()
    MANIFEST_BEGIN = enum.auto()
    MANIFEST_DATA = enum.auto()
    MANIFEST_COMMIT = enum.auto()
    PART_BEGIN = enum.auto()
    PART_DATA = enum.auto()
    PART_END = enum.auto()
    APPLY = enum.auto()
    REBOOT = enum.auto()
    VERIFY = enum.auto()
    DONE = enum.auto()


_MAX_IDLE_POLLS: Final = 50
MAX_PART_RETRIES: Final = 1
_RETRYABLE: Final = frozenset({Status.HASH_MISMATCH, Status.INVALID_MODULE})
_MANIFEST_RETRY: Final = -1


@dataclass
class _Stream:
    stream: int
    data: bytes
    acked: int = 0
    sent: int = 0
    high: int = 0  # highest offset ever sent, for counting resends


class UpdateSession:
    """Push one :class:`Release` to one device."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.phase = Phase.STATUS
        self.result: UpdateResult | None = None
        self.status: DeviceStatus | None = None
        self.bytes_sent = 0
        self.resent_bytes = 0
        self._actions: deque[Action] = deque([Read(STATUS_UUID)])
        self._seq = 0
        self._pending_opcode: Opcode | None = None
        self._stream: _Stream | None = None
        self._parts: list[int] = []
        self._retries: dict[int, int] = {}
        self._highs: dict[int, int] = {}
        self._payload = 20
        self._window = 0
        self._idle_polls = 0
        self._manifest = release.manifest_bytes
        self._manifest_sha = release.manifest.sha256

    # -------------------------------------------------------------- driver API

    @property
    def done(self) -> bool:
        """The session has a result."""
        return self.result is not None

    def next_action(self) -> Action | None:
        """The next thing to do, or None when done."""
        if self.result is not None:
            return None
        if not self._actions:
            self._fill()
        return self._actions.popleft() if self._actions else WaitForNotification()

    def on_read(self, uuid: str, value: bytes) -> None:
        """The value a :class:`Read` returned. A PROGRESS read is a delivery barrier: every
        write sent before it has reached the device, so what it lacks was lost."""
        self._on_value(uuid, value, barrier=True)

    def on_notification(self, uuid: str, value: bytes) -> None:
        """A notification (it may predate writes already sent)."""
        self._on_value(uuid, value, barrier=False)

    def _on_value(self, uuid: str, value: bytes, *, barrier: bool) -> None:
        try:
            if uuid == STATUS_UUID:
                self._on_status(decode_status(value))
            elif uuid == RESPONSE_UUID and value:
                self._on_response(decode_response(value))
            elif uuid == RESPONSE_UUID and self._pending_opcode == Opcode.APPLY:
                self._rebooting()  # a fresh boot has no response yet: the reset happened
            elif uuid == PROGRESS_UUID:
                self._on_progress(value, barrier=barrier)
        except DecodeError as exc:
            self._finish(Outcome.REJECTED, f"device sent a malformed value: {exc}")

    def on_timeout(self) -> None:
        """Nothing arrived while waiting: poll what the device says."""
        self._idle_polls += 1
        if self._idle_polls > _MAX_IDLE_POLLS:
            self._finish(Outcome.INTERRUPTED, "the device stopped answering")
            return
        if self._pending_opcode is not None:
            self._actions.append(Read(RESPONSE_UUID))
        elif self._stream is not None:
            self._actions.append(Read(PROGRESS_UUID))

    def on_disconnected(self) -> None:
        """The link dropped: after reconnecting, start again from the device's state."""
        if self.phase == Phase.APPLY and self._pending_opcode == Opcode.APPLY:
            self._rebooting()  # the device resets right after answering APPLY
        elif self.phase not in (Phase.REBOOT, Phase.VERIFY):
            self._restart()

    def _rebooting(self) -> None:
        self._pending_opcode = None
        self._actions.clear()
        self.phase = Phase.REBOOT
        self._actions.append(ReconnectAfterReset())

    def on_reconnected(self) -> None:
        """A new connection is up (after a drop or after the reset)."""
        self._actions.clear()
        self._actions.append(Read(STATUS_UUID))
        if self.phase == Phase.REBOOT:
            self.phase = Phase.VERIFY
        elif self.phase != Phase.VERIFY:
            self.phase = Phase.STATUS

    def interrupted(self, reason: str) -> UpdateResult:
        """Give up (the driver could not reconnect); the device keeps its offset."""
        self._finish(Outcome.INTERRUPTED, reason)
        assert self.result is not None
        return self.result

    # ---------------------------------------------------------------- internals

    def _restart(self) -> None:
        self._actions.clear()
        self._pending_opcode = None
        self._stream = None
        self.phase = Phase.STATUS

    def _finish(
        self,
        outcome: Outcome,
        reason: str | None = None,
        status: Status | None = None,
        detail: int = 0,
    ) -> None:
        self.phase = Phase.DONE
        self._actions.clear()
        self.result = UpdateResult(
            outcome, reason, status, detail, self.bytes_sent, self.resent_bytes
        )

    def _request(self, opcode: Opcode, *args: int | bytes) -> None:
        self._seq = (self._seq + 1) & 0xFF
        self._pending_opcode = opcode
        self._actions.append(Write(CONTROL_UUID, Request(opcode, self._seq, args).encode(), True))

    def _on_status(self, status: DeviceStatus) -> None:
        self.status = status  # the device, not the sender, judges the manifest's identity
        if status.protocol_version != PROTOCOL_VERSION:
            self._finish(Outcome.REJECTED, "device speaks another protocol version")
            return
        if self.phase == Phase.VERIFY:
            self._verify(status)
            return
        self._payload = max(1, status.max_write - DATA_HEADER_SIZE)
        self._window = max(status.window, self._payload)
        self.phase = Phase.MANIFEST_BEGIN
        self._request(Opcode.MANIFEST_BEGIN, len(self._manifest), self._manifest_sha)

    def _verify(self, status: DeviceStatus) -> None:
        app = self.release.manifest.app
        if status.flags & StatusFlag.SAFE_MODE:
            self._finish(Outcome.REJECTED, "device came back in safe mode")
        elif app is not None and status.app_sha256 != app.content_sha256:
            self._finish(Outcome.REJECTED, "device does not run the new application")
        elif not status.flags & StatusFlag.APP_CONFIRMED:
            self._finish(Outcome.REJECTED, "the new application did not confirm its health")
        else:
            self._finish(Outcome.APPLIED)

    def _on_response(self, r: Response) -> None:
        if r.opcode != self._pending_opcode or r.seq != self._seq:
            return  # stale (a polling read of an older response)
        self._pending_opcode = None
        self._idle_polls = 0
        if not r.ok and self._retry_part(r):
            return
        if not r.ok:
            self._finish(Outcome.REJECTED, f"{r.opcode.name}: {r.status.name}", r.status, r.detail)
            return
        match r.opcode:
            case Opcode.MANIFEST_BEGIN:
                self.phase = Phase.MANIFEST_DATA
                self._start_stream(MANIFEST_STREAM, self._manifest, r.values[0])
            case Opcode.MANIFEST_COMMIT:
                needed, current = r.values
                if current:
                    self._finish(Outcome.ALREADY_CURRENT)
                    return
                count = len(self.release.payloads)
                self._parts = [i for i in range(count) if needed & (1 << i)]
                self._begin_next_part()
            case Opcode.PART_BEGIN:
                index = self._parts[0]
                offset, _ = r.values
                self.phase = Phase.PART_DATA
                self._start_stream(index + 1, self.release.payloads[index], offset)
            case Opcode.PART_END:
                self._parts.pop(0)
                self._begin_next_part()
            case Opcode.APPLY:
                self._rebooting()
            case _:
                pass

    def _retry_part(self, r: Response) -> bool:
        """When the bytes that arrived were not the manifest or part (a corrupted write,
        say), send it again from scratch, once; a second mismatch means tampering."""
        if r.status not in _RETRYABLE:
            return False
        if r.opcode == Opcode.MANIFEST_COMMIT:
            index = _MANIFEST_RETRY
        elif r.opcode == Opcode.PART_END and self._parts:
            index = self._parts[0]
        else:
            return False
        if self._retries.get(index, 0) >= MAX_PART_RETRIES:
            return False
        self._retries[index] = self._retries.get(index, 0) + 1
        if index == _MANIFEST_RETRY:
            self.phase = Phase.MANIFEST_BEGIN
            self._request(Opcode.MANIFEST_BEGIN, len(self._manifest), self._manifest_sha)
        else:
            self._begin_next_part()
        return True

    def _begin_next_part(self) -> None:
        if self._parts:
            self.phase = Phase.PART_BEGIN
            self._request(Opcode.PART_BEGIN, self._parts[0])
        else:
            self.phase = Phase.APPLY
            self._request(Opcode.APPLY)

    def _start_stream(self, stream: int, data: bytes, offset: int) -> None:
        high = max(offset, self._highs.get(stream, 0))  # resends count across restarts
        self._stream = _Stream(stream, data, acked=offset, sent=offset, high=high)
        if offset >= len(data):
            self._stream_complete()

    def _on_progress(self, value: bytes, *, barrier: bool) -> None:
        p = decode_progress(value)
        s = self._stream
        if s is None or p.stream != s.stream or p.offset > len(s.data):
            return
        self._idle_polls = 0
        if p.flags & ProgressFlag.GAP or p.offset < s.acked or (barrier and p.offset < s.sent):
            s.acked = s.sent = p.offset  # resend from the device's offset
        else:
            s.acked = max(s.acked, p.offset)
            s.sent = max(s.sent, s.acked)
        if s.acked >= len(s.data):
            self._stream_complete()

    def _stream_complete(self) -> None:
        s = self._stream
        assert s is not None
        self._stream = None
        if s.stream == MANIFEST_STREAM:
            self.phase = Phase.MANIFEST_COMMIT
            self._request(Opcode.MANIFEST_COMMIT)
        else:
            self.phase = Phase.PART_END
            self._request(Opcode.PART_END, s.stream - 1)

    def _fill(self) -> None:
        """Queue the next DATA write if the window allows (one at a time, so a rewind
        takes effect at once); when the window is full the driver waits or polls."""
        s = self._stream
        if s is None or self._pending_opcode is not None:
            return
        limit = min(len(s.data), s.acked + self._window)
        if s.sent >= limit:
            return
        chunk = s.data[s.sent : min(limit, s.sent + self._payload)]
        self._actions.append(Write(DATA_UUID, DataWrite(s.stream, s.sent, chunk).encode(), False))
        self.bytes_sent += len(chunk)
        self.resent_bytes += max(0, min(s.high, s.sent + len(chunk)) - s.sent)
        s.sent += len(chunk)
        s.high = max(s.high, s.sent)
        self._highs[s.stream] = s.high

    def progress(self) -> TransferProgress:
        """How far the device has acknowledged (for progress bars)."""
        sizes = [len(p) for p in self.release.payloads]
        s = self._stream
        done_before = 0
        current = None
        if s is not None and s.stream != MANIFEST_STREAM:
            current = s.stream - 1
            done_before = sum(sizes[:current]) + s.acked
        elif self.phase in (Phase.APPLY, Phase.REBOOT, Phase.VERIFY, Phase.DONE):
            done_before = sum(sizes)
        elif self._parts:
            done_before = sum(sizes[: self._parts[0]])
        return TransferProgress(self.phase, current, done_before, sum(sizes))


@dataclass(frozen=True)
class TransferProgress:
    """Acknowledged bytes over all parts (skipped parts count as done)."""

    phase: Phase
    part: int | None
    acked: int
    total: int
