"""The stop-and-wait baseline: Particle's control-request firmware update, one request in flight.

What it models (``shared/reference/particle.md`` §3.7 and §5):

* requests 250 START_FIRMWARE_UPDATE(size) → the device erases ``size`` bytes, then replies;
  253 FIRMWARE_UPDATE_DATA with 1024-byte chunks (the chunk size Device OS always answers),
  written strictly in order; 251 FINISH_FIRMWARE_UPDATE (validate, then stage);
* framing on the BLE control channel: ``u16 size`` + encrypted ``u16 id, u16 type,
  u16 reserved`` + payload + 8-byte CCM tag (16 bytes of overhead); the payload is the
  protobuf message (``bytes data = 1`` adds a tag byte and a length varint). A reply is
  ``u16 size`` + ``u16 id, i32 result`` + tag: 16 bytes, one notification;
* the request travels as ATT writes of at most ATT_MTU − 3 bytes, written without response
  by default (the RX characteristic offers both, §5.1); the client sends the next request
  only after the reply (``DEFAULT_MAX_CONCURRENT_REQUESTS = 1``).

Kind to the baseline: no system-thread latency, no EC-JPAKE handshake, no reset between
modules, and decryption charged like hashing. Frames are not really encrypted here.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from bluemule.linkmodel.device import FlashDevice, Worker
from bluemule.linkmodel.engine import AttKind, AttPdu, Link
from bluemule.linkmodel.model import TransferReport, run_events
from bluemule.linkmodel.radio import LinkParams
from bluemule.protocol.device_services import DeviceOsError
from bluemule.protocol.release import Release

RX_UUID = "6fa90004-5c4e-48a8-94f4-8030546f36fc"
TX_UUID = "6fa90003-5c4e-48a8-94f4-8030546f36fc"
START, FINISH, DATA = 250, 251, 253
TAG_SIZE = 8
_HEADER = struct.Struct("<HHHH")  # size, then (encrypted) id, type, reserved
_REPLY = struct.Struct("<HHi")  # size, then (encrypted) id, result


@dataclass(frozen=True)
class BaselineParams:
    """How the stop-and-wait client and Device OS behave."""

    chunk: int = 1024
    """``StartFirmwareUpdateReply.chunk_size``: always 1024 (particle.md §3.7)."""
    write_with_response: bool = False
    """Send each ATT write of a request as a Write Request and wait for its response."""
    crypt_ns_per_byte: int = 1_250
    """AES-CCM of the request on the device, charged like SHA-256 (an assumption)."""
    request_overhead_us: int = 50

    def describe(self) -> dict[str, object]:
        """For reports."""
        return {
            "chunk": self.chunk,
            "requests_in_flight": 1,
            "write_with_response": self.write_with_response,
            "crypt_us_per_kB": self.crypt_ns_per_byte,
        }


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def frame(request_id: int, kind: int, payload: bytes) -> bytes:
    """A request as the control channel carries it (tag zeroed: not really encrypted)."""
    return _HEADER.pack(len(payload), request_id, kind, 0) + payload + bytes(TAG_SIZE)


def requests(release: Release, chunk: int) -> list[tuple[int, int, bytes, int]]:
    """(part index, type, protobuf payload, module bytes) for every request, in order."""
    out: list[tuple[int, int, bytes, int]] = []
    for index, data in enumerate(release.payloads):
        out.append((index, START, b"\x08" + _varint(len(data)), 0))
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            out.append((index, DATA, b"\x0a" + _varint(len(piece)) + piece, len(piece)))
        out.append((index, FINISH, b"", 0))
    return out


class StopAndWaitCentral:
    """One request at a time; the next goes out after the reply to the last."""

    def __init__(self, link: Link, release: Release, params: BaselineParams) -> None:
        self.link = link
        self.params = params
        self.todo = deque(requests(release, params.chunk))
        self.done_us: int | None = None
        self.failed: int | None = None
        self.bytes_sent = 0
        self.opened: dict[int, int] = {}
        self.streamed: dict[int, int] = {}
        self._replies: deque[bytes] = deque()
        self._values: deque[bytes] = deque()
        self._current: tuple[int, int, bytes, int] | None = None
        self._write_done = False
        self._awaiting_write = False
        self._id = 0

    def receive(self, pdu: AttPdu, at_us: int) -> None:
        if pdu.kind is AttKind.NOTIFY:
            self._replies.append(pdu.value)
        elif pdu.kind is AttKind.WRITE_RSP:
            self._write_done = True

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        pass

    def reconnected(self, now_us: int) -> None:
        raise AssertionError("the baseline device never resets in the model")

    def wake(self, now_us: int) -> None:
        while self.done_us is None:
            if self._awaiting_write:
                if not self._write_done:
                    return
                self._awaiting_write = self._write_done = False
            if self._values:
                self._send(now_us)
                continue
            if self._current is not None:
                if not self._replies:
                    return
                self._on_reply(self._replies.popleft(), now_us)
                continue
            if not self.todo or self.failed is not None:
                self.done_us = now_us
                return
            self._start(now_us)

    def _start(self, now_us: int) -> None:
        self._current = self.todo.popleft()
        _, kind, payload, module_bytes = self._current
        self._id += 1
        data = frame(self._id, kind, payload)
        step = self.link.params.max_value
        self._values = deque(data[i : i + step] for i in range(0, len(data), step))
        self.bytes_sent += module_bytes
        self._send(now_us)

    def _send(self, now_us: int) -> None:
        if self.params.write_with_response:
            value = self._values.popleft()
            self.link.central_send(AttPdu(AttKind.WRITE_REQ, RX_UUID, value, now_us))
            self._awaiting_write = True
            return
        while self._values:
            value = self._values.popleft()
            self.link.central_send(AttPdu(AttKind.WRITE_CMD, RX_UUID, value, now_us))

    def _on_reply(self, value: bytes, now_us: int) -> None:
        assert self._current is not None
        index, kind, _, _ = self._current
        _, _, result = _REPLY.unpack(value[: _REPLY.size])
        self._current = None
        if result != 0:
            self.failed = result
            return
        if kind == START:
            self.opened[index] = now_us
        elif kind == DATA:
            self.streamed[index] = now_us


class StopAndWaitDevice(Worker):
    """Device OS's control-request handler (system thread) over a :class:`FlashDevice`."""

    def __init__(self, link: Link, services: FlashDevice, params: BaselineParams) -> None:
        super().__init__(link, rx_buffer=1 << 30)
        self.services = services
        self.params = params
        self.stream = bytearray()
        self.offset = 0

    def droppable(self, pdu: AttPdu) -> bool:
        return False

    def process(self, pdu: AttPdu) -> tuple[int, list[AttPdu]]:
        self.stream += pdu.value
        cost = self.params.request_overhead_us
        if len(self.stream) < 2:
            return cost, []
        size = _HEADER.size + int.from_bytes(self.stream[:2], "little") + TAG_SIZE
        if len(self.stream) < size:
            return cost, []
        raw = bytes(self.stream[:size])
        del self.stream[:size]
        _, request_id, kind, _ = _HEADER.unpack(raw[: _HEADER.size])
        self.services.busy_us = 0
        result = self._handle(kind, raw[_HEADER.size : -TAG_SIZE])
        cost += self.services.busy_us + len(raw) * self.params.crypt_ns_per_byte // 1000
        reply = _REPLY.pack(0, request_id, result) + bytes(TAG_SIZE)
        return cost, [AttPdu(AttKind.NOTIFY, TX_UUID, reply)]

    def _handle(self, kind: int, payload: bytes) -> int:
        dev = self.services
        try:
            if kind == START:
                size, _ = _read_varint(payload, 1)
                dev.prepare_update(size)
                self.offset = 0
            elif kind == DATA:
                length, pos = _read_varint(payload, 1)
                dev.save_chunk(self.offset, payload[pos : pos + length])
                self.offset += length
            elif kind == FINISH:
                dev.finish_update(validate_only=True)
                dev.finish_update(validate_only=False)
        except DeviceOsError as exc:
            return exc.code
        return 0

    def reboot(self, at_us: int) -> None:
        raise AssertionError("the baseline device never resets in the model")


def run_stop_and_wait(
    release: Release, device: FlashDevice, link_params: LinkParams, params: BaselineParams
) -> TransferReport:
    """Send ``release``'s parts with the stop-and-wait baseline; the device stages them."""
    link = Link(link_params)
    central = StopAndWaitCentral(link, release, params)
    dev = StopAndWaitDevice(link, device, params)
    device.erase_us = 0
    run_events(link, central, dev, [])
    assert central.done_us is not None
    streaming = sum(central.streamed[i] - central.opened[i] for i in central.streamed)
    ok = central.failed is None and device.staged_app == release.payloads[-1]
    return TransferReport(
        protocol="stop_and_wait",
        outcome="staged" if ok else f"failed ({central.failed})",
        payload_bytes=release.total_bytes,
        seconds=central.done_us / 1e6,
        streaming_seconds=streaming / 1e6,
        erase_seconds=device.erase_us / 1e6,
        bytes_sent=central.bytes_sent,
        bytes_resent=0,
        dropped_writes=0,
        link=link.stats,
    )
