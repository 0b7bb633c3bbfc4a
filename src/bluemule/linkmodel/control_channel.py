"""Particle's control channel as a stock device really uses it, on the modelled link.

Unlike :mod:`bluemule.linkmodel.baseline` (the request pattern alone, kind to Particle),
this is the whole path ``bluemule particle flash`` takes (``shared/reference/particle.md``
§3.7, §5): per module one session:

1. **EC-JPAKE** on the stream: the phone writes round 1 (``u16`` length + 330 B), the
   device computes and notifies its round 1 (330 B) and round 2 (168 B) back to back, the
   phone writes round 2 (165 B) and its confirmation (32 B), the device answers its
   confirmation (32 B). The device's cost is counted in P-256 scalar multiplications
   (:attr:`ControlChannelParams.scalar_mult_us`);
2. **records**: START(size) → the device erases, replies ``chunk_size`` 1024 →
   DATA × ⌈size / 1024⌉ → FINISH, one request in flight; each record is ``u16`` size +
   encrypted (``u16`` id, ``u16`` type, ``u16`` reserved, payload) + 8-byte tag
   (2 + 6 + 8 bytes around the protobuf payload); replies are ``u16`` size + encrypted
   (``u16`` id, ``i32`` result, payload) + tag. Every request waits for the system thread
   (:attr:`~ControlChannelParams.system_thread_latency_us`) and is decrypted in software;
3. **reset**: Device OS resets after every applied FINISH; the bootloader copies a staged
   module into internal flash, the device boots and advertises, the phone reconnects and
   starts the next session with a new handshake.

``seconds`` runs from the first write to the reply to the last FINISH (the last reset is
not counted, as for bluemule); resets *between* modules are counted.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bluemule.image import ModuleFunction, parse_module
from bluemule.linkmodel.baseline import RX_UUID, TX_UUID, frame, requests
from bluemule.linkmodel.baseline import _read_varint as read_varint
from bluemule.linkmodel.device import FlashDevice, Worker
from bluemule.linkmodel.engine import AttKind, AttPdu, Link
from bluemule.linkmodel.model import TransferReport, run_events
from bluemule.linkmodel.radio import LinkParams
from bluemule.protocol.device_services import DeviceOsError
from bluemule.protocol.release import Release

START, FINISH, DATA = 250, 251, 253
TAG_SIZE = 8
RECORD_OVERHEAD = 2 + 6 + TAG_SIZE
"""Size field, encrypted id/type/reserved header, CCM tag (particle.md §5.3)."""
ROUND1 = 2 * (66 + 66 + 33)
"""Two (point, ZKP) pairs: 1 + 65 B point, ZKP point V 1 + 65 B, r 1 + 32 B (§5.4)."""
SERVER_ROUND2 = 3 + 66 + 66 + 33
"""``03 00 17`` curve id, the point, its ZKP."""
CLIENT_ROUND2 = 66 + 66 + 33
CONFIRM = 32
_LEN = struct.Struct("<H")
_REPLY = struct.Struct("<HHi")  # size, then (encrypted) id, result
_START_REPLY_PAYLOAD = b"\x08\x80\x08"  # StartFirmwareUpdateReply { chunk_size = 1024 }


@dataclass(frozen=True)
class ControlChannelParams:
    """How Device OS serves the control channel. Sources: ``docs/linkmodel.md``."""

    chunk: int = 1024
    """``StartFirmwareUpdateReply.chunk_size``: Device OS always answers 1024 (§3.7)."""
    scalar_mult_us: int = 590_000
    """One P-256 scalar multiplication in software mbedTLS on a 64 MHz nRF52 Cortex-M4F:
    mbedTLS's benchmark there gives 603 ms per ECDSA-P256 sign and 1180 ms per verify
    (two multiplications). Whether Device OS uses the nRF52840's CC310 for EC-JPAKE is
    UNCONFIRMED; with it this would be about ten times less."""
    server_round_mults: int = 10
    """Device, before it answers round 1: two key pairs and their two proofs (4), verifying
    the phone's two proofs (4), its round-2 point and proof (2)."""
    server_finish_mults: int = 4
    """Device, on the phone's round 2: verifying its proof (2) and deriving K (2)."""
    client_handshake_us: int = 30_000
    """The phone's EC-JPAKE work between the device's round 2 and its own (an assumption)."""
    system_thread_latency_us: int = 5_000
    """Until the system thread (``Spark_Idle`` → ``SystemControl::run``) picks a complete
    request up, per request (§5.2; an assumption, UNCONFIRMED)."""
    crypt_ns_per_byte: int = 2_725
    """AES-128-CCM in software mbedTLS on a 64 MHz nRF52: 367 KB/s in the same benchmark."""
    bootloader_us_per_4k: int = 127_000
    """The bootloader copying a staged module into internal flash, per 4 KB page: nRF52840
    page erase 85 ms + 1024 word writes of 41 µs (datasheet maxima)."""
    boot_us: int = 1_500_000
    """From the copy's end until the device advertises again (an assumption)."""
    reconnect_us: int = 1_000_000
    """Scan, connect, discover the service, enable notifications (an assumption)."""

    @property
    def handshake_device_us(self) -> int:
        """Device compute time of one handshake."""
        return (self.server_round_mults + self.server_finish_mults) * self.scalar_mult_us

    def describe(self) -> dict[str, object]:
        """For reports."""
        return {
            "chunk": self.chunk,
            "requests_in_flight": 1,
            "record_overhead": RECORD_OVERHEAD,
            "scalar_mult_ms": self.scalar_mult_us / 1000,
            "handshake_device_ms": self.handshake_device_us / 1000,
            "system_thread_latency_ms": self.system_thread_latency_us / 1000,
            "crypt_us_per_kB": self.crypt_ns_per_byte,
            "bootloader_ms_per_4k": self.bootloader_us_per_4k / 1000,
            "boot_ms": self.boot_us / 1000,
            "reconnect_ms": self.reconnect_us / 1000,
        }


def handshake_frame(size: int) -> bytes:
    """A handshake message on the stream: ``u16`` length + payload (zeros: not real keys)."""
    return _LEN.pack(size) + bytes(size)


@dataclass
class _Session:
    """One module: its requests, and when things happened."""

    index: int
    todo: deque[tuple[int, int, bytes, int]]
    started_us: int = 0
    handshake_done_us: int = 0
    opened_us: int = 0
    streamed_us: int = 0


class ControlChannelCentral:
    """The phone: handshake, then one request at a time, then wait for the reset."""

    def __init__(self, link: Link, release: Release, params: ControlChannelParams) -> None:
        self.link = link
        self.params = params
        by_part: dict[int, deque[tuple[int, int, bytes, int]]] = {}
        for item in requests(release, params.chunk):
            by_part.setdefault(item[0], deque()).append(item)
        app = len(release.payloads) - 1
        # the application first, then its assets, as particle-cli does (particle.md §3.7):
        # with the old application running, each asset's store would delete the last one
        order = [app, *(i for i in sorted(by_part) if i != app)]
        self.sessions = [_Session(i, by_part[i]) for i in order]
        self.done_us: int | None = None
        self.failed: int | None = None
        self.bytes_sent = 0
        self.handshake_us = 0
        self.reset_us = 0
        self._next = 0
        self._session: _Session | None = None
        self._state = "idle"
        self._inbox = bytearray()
        self._id = 0
        self._finished_us = 0
        self._wait_until = 0

    # -- link events ------------------------------------------------------------------------

    def receive(self, pdu: AttPdu, at_us: int) -> None:
        if pdu.kind is AttKind.NOTIFY:
            self._inbox += pdu.value

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        pass

    def reconnected(self, now_us: int) -> None:
        if self.done_us is None:  # the reset after the last module is not counted
            self.reset_us += now_us - self._finished_us
        self._state = "idle"
        self._inbox.clear()

    def wake(self, now_us: int) -> None:
        while self.done_us is None:
            if not self._step(now_us):
                return

    # -- the script ---------------------------------------------------------------------------

    def _write(self, data: bytes, now_us: int) -> None:
        step = self.link.params.max_value
        for i in range(0, len(data), step):
            self.link.central_send(AttPdu(AttKind.WRITE_CMD, RX_UUID, data[i : i + step], now_us))

    def _take(self, size: int) -> bytes | None:
        if len(self._inbox) < size:
            return None
        out = bytes(self._inbox[:size])
        del self._inbox[:size]
        return out

    def _step(self, now_us: int) -> bool:  # noqa: PLR0911 - one return per state
        match self._state:
            case "idle":
                if self.failed is not None or self._next == len(self.sessions):
                    self.done_us = now_us
                    return False
                self._session = self.sessions[self._next]
                self._next += 1
                self._session.started_us = now_us
                self._write(handshake_frame(ROUND1), now_us)
                self._state = "round1"
                return True
            case "round1":
                if self._take(2 + ROUND1 + 2 + SERVER_ROUND2) is None:
                    return False
                self._wait_until = now_us + self.params.client_handshake_us
                self._state = "thinking"
                return True
            case "thinking":
                if now_us < self._wait_until:
                    return False
                self._write(handshake_frame(CLIENT_ROUND2) + handshake_frame(CONFIRM), now_us)
                self._state = "confirm"
                return True
            case "confirm":
                if self._take(2 + CONFIRM) is None:
                    return False
                assert self._session is not None
                self._session.handshake_done_us = now_us
                self.handshake_us += now_us - self._session.started_us
                self._state = "request"
                return self._request(now_us)
            case "reply":
                return self._reply(now_us)
            case _:  # "reset": the engine calls reconnected()
                return False

    def _request(self, now_us: int) -> bool:
        assert self._session is not None
        _, kind, payload, module_bytes = self._session.todo[0]
        self._id += 1
        self._write(frame(self._id, kind, payload), now_us)
        self.bytes_sent += module_bytes
        self._state = "reply"
        return True

    def _reply(self, now_us: int) -> bool:
        assert self._session is not None
        if len(self._inbox) < 2:
            return False
        size = _REPLY.size + int.from_bytes(self._inbox[:2], "little") + TAG_SIZE
        raw = self._take(size)
        if raw is None:
            return False
        _, kind, _, _ = self._session.todo.popleft()
        result = _REPLY.unpack(raw[: _REPLY.size])[2]
        if result != 0:
            self.failed = result
            self._state = "idle"
            return True
        if kind == START:
            self._session.opened_us = now_us
        elif kind == DATA:
            self._session.streamed_us = now_us
        if self._session.todo:
            return self._request(now_us)
        self._finished_us = now_us
        if self._next == len(self.sessions):
            self.done_us = now_us
            return False
        self._state = "reset"
        return False


class ControlChannelDevice(Worker):
    """Device OS's system thread serving the channel over a :class:`FlashDevice`."""

    def __init__(
        self,
        link: Link,
        services: FlashDevice,
        params: ControlChannelParams,
        on_reset: list[int],
    ) -> None:
        super().__init__(link, rx_buffer=1 << 30)
        self.services = services
        self.params = params
        self.on_reset = on_reset
        self.stream = bytearray()
        self.offset = 0
        self.handshake_messages = 0
        self.copy_us = 0
        self._finish_reply: AttPdu | None = None
        self._staged_size = 0

    def droppable(self, pdu: AttPdu) -> bool:
        return False

    def _notify(self, data: bytes) -> list[AttPdu]:
        step = self.link.params.max_value
        return [
            AttPdu(AttKind.NOTIFY, TX_UUID, data[i : i + step]) for i in range(0, len(data), step)
        ]

    def process(self, pdu: AttPdu) -> tuple[int, list[AttPdu]]:
        self.stream += pdu.value
        cost = 0
        out: list[AttPdu] = []
        while len(self.stream) >= 2:
            if self.handshake_messages < 3:
                size = 2 + int.from_bytes(self.stream[:2], "little")
                if len(self.stream) < size:
                    break
                del self.stream[:size]
                cost += self._handshake(out)
                continue
            size = RECORD_OVERHEAD + int.from_bytes(self.stream[:2], "little")
            if len(self.stream) < size:
                break
            raw = bytes(self.stream[:size])
            del self.stream[:size]
            cost += self._record(raw, out)
        return cost, out

    def _handshake(self, out: list[AttPdu]) -> int:
        p = self.params
        self.handshake_messages += 1
        if self.handshake_messages == 1:
            out += self._notify(handshake_frame(ROUND1) + handshake_frame(SERVER_ROUND2))
            return p.server_round_mults * p.scalar_mult_us
        if self.handshake_messages == 2:
            return p.server_finish_mults * p.scalar_mult_us
        out += self._notify(handshake_frame(CONFIRM))
        return 1_000  # HMAC-SHA256 over the transcript hash

    def _record(self, raw: bytes, out: list[AttPdu]) -> int:
        p = self.params
        _, request_id, kind, _ = struct.unpack_from("<HHHH", raw)
        self.services.busy_us = 0
        result, payload = self._handle(kind, raw[8:-TAG_SIZE])
        cost = (
            p.system_thread_latency_us
            + self.services.busy_us
            + (len(raw) + len(payload)) * p.crypt_ns_per_byte // 1000
        )
        reply = _REPLY.pack(len(payload), request_id, result) + payload + bytes(TAG_SIZE)
        pdus = self._notify(reply)
        if kind == FINISH and result == 0:
            self._finish_reply = pdus[-1]
        out += pdus
        return cost

    def _handle(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        dev = self.services
        try:
            if kind == START:
                size, _ = read_varint(payload, 1)
                dev.prepare_update(size)
                self.offset = 0
                return 0, _START_REPLY_PAYLOAD
            if kind == DATA:
                length, pos = read_varint(payload, 1)
                dev.save_chunk(self.offset, payload[pos : pos + length])
                self.offset += length
            elif kind == FINISH:
                assert dev.ota is not None
                module = parse_module(bytes(dev.ota))
                dev.finish_update(validate_only=True)
                dev.finish_update(validate_only=False)
                staged = module.function != ModuleFunction.ASSET
                self._staged_size = len(module.data) if staged else 0
        except DeviceOsError as exc:
            return exc.code, b""
        return 0, b""

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        """After FINISH's reply has gone out Device OS resets (§3.7); the bootloader copies a
        staged module, then the device boots."""
        super().sent(pdu, at_us)
        if pdu is self._finish_reply:
            self._finish_reply = None
            p = self.params
            copy = math.ceil(self._staged_size / 4096) * p.bootloader_us_per_4k
            self.copy_us += copy
            self.on_reset.append(at_us + copy + p.boot_us)

    def reboot(self, at_us: int) -> None:
        self.services.reset()
        self.stream.clear()
        self.queue.clear()
        self.queued_bytes = 0
        self.handshake_messages = 0
        self.free_us = at_us


@dataclass(frozen=True)
class ControlChannelReport:
    """A modelled stock-device update and where its time went."""

    transfer: TransferReport
    sessions: int
    handshake_seconds: float
    """Σ from each session's first write to the device's confirmation."""
    reset_seconds: float
    """Σ from a FINISH reply to the next connection (bootloader copy, boot, reconnect)."""
    bootloader_copy_seconds: float
    params: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The extra figures (the transfer's own are rendered like the other paths)."""
        return {
            "sessions": self.sessions,
            "handshake_seconds": round(self.handshake_seconds, 3),
            "reset_seconds": round(self.reset_seconds, 3),
            "bootloader_copy_seconds": round(self.bootloader_copy_seconds, 3),
        }


def run_control_channel(
    release: Release, device: FlashDevice, link_params: LinkParams, params: ControlChannelParams
) -> ControlChannelReport:
    """Send ``release``'s parts as a stock device takes them: one session and one reset each."""
    link = Link(link_params)
    central = ControlChannelCentral(link, release, params)
    resets: list[int] = []
    dev = ControlChannelDevice(link, device, params, resets)
    device.erase_us = 0
    run_events(link, central, dev, resets, reboot_us=params.reconnect_us)
    assert central.done_us is not None
    streaming = sum(s.streamed_us - s.opened_us for s in central.sessions if s.streamed_us)
    device.reset()
    ok = central.failed is None and device.app == release.payloads[-1]
    transfer = TransferReport(
        protocol="control_channel",
        outcome="installed" if ok else f"failed ({central.failed})",
        payload_bytes=release.total_bytes,
        seconds=central.done_us / 1e6,
        streaming_seconds=streaming / 1e6,
        erase_seconds=device.erase_us / 1e6,
        bytes_sent=central.bytes_sent,
        bytes_resent=0,
        dropped_writes=0,
        link=link.stats,
    )
    return ControlChannelReport(
        transfer,
        len(central.sessions),
        central.handshake_us / 1e6,
        central.reset_us / 1e6,
        dev.copy_us / 1e6,
        params.describe(),
    )
