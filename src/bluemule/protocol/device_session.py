"""The device role of the bluemule DFU protocol as a sans-IO state machine.

Writes come in (``handle_control``, ``handle_data``), notifications go out as
:class:`Notify` values, and reads are answered from the current values. The only side
effects are calls on :class:`~bluemule.protocol.device_services.DeviceServices`
(Device OS's update API and a small key-value store), exactly what the C++ library does.

Rules (``docs/protocol.md`` §State machines):

1. Nothing is erased before the manifest verifies: signature, identity, platform,
   product, release counter, Device OS version, sizes and asset requirements.
2. The transfer lives in RAM for the whole boot, across disconnects; every DATA write
   says where it goes, and the device keeps only contiguous bytes (a gap is reported
   once, then ignored until the sender rewinds).
3. A part is checked (size, SHA-256 from the manifest, CRC-32, prefix) and handed to
   Device OS (validate, then stage); assets are stored at once, the application last,
   and the reset waits for APPLY.
4. The release counter advances only when the new app runs and confirms itself.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

from bluemule.image import ModuleFunction, ModulePrefix
from bluemule.protocol.constants import (
    ASSETS_PER_PAGE,
    DEFAULT_ACK_INTERVAL,
    DEFAULT_WINDOW,
    MANIFEST_STREAM,
    MAX_ATT_MTU,
    MAX_MANIFEST_SIZE,
    NO_PART,
    PROGRESS_UUID,
    RESPONSE_UUID,
    SHA256_SIZE,
    STATUS_UUID,
    Capability,
    Opcode,
    PartKind,
    ProgressFlag,
    Status,
    StatusFlag,
)
from bluemule.protocol.device_events import EVENT_OPCODES, answer_event_request
from bluemule.protocol.device_services import DeviceOsError, DeviceServices
from bluemule.protocol.errors import DecodeError, ManifestError
from bluemule.protocol.events import EventError, EventQueue
from bluemule.protocol.manifest import ANY_PRODUCT, Manifest, verify_manifest
from bluemule.protocol.messages import (
    AssetEntry,
    DeviceStatus,
    EventSummary,
    Progress,
    Request,
    Response,
    decode_data,
    decode_request,
)

KV_COUNTER: Final = "counter"
KV_TRANSFER: Final = "transfer"  # manifest sha256, completed parts u16
KV_PENDING: Final = "pending"  # manifest sha256, counter u32, app sha256
_TRANSFER: Final = struct.Struct(f"<{SHA256_SIZE}sH")
_PENDING: Final = struct.Struct(f"<{SHA256_SIZE}sI{SHA256_SIZE}s")
_PREFIX_BYTES: Final = 24
_DEVICE_OS_STATUS: Final = {
    "INVALID_STATE": Status.BUSY,
    "OTA_UPDATES_DISABLED": Status.UPDATES_DISABLED,
}


@dataclass(frozen=True)
class Notify:
    """Send ``value`` as a notification of characteristic ``uuid``."""

    uuid: str
    value: bytes


@dataclass(frozen=True)
class ResetDevice:
    """Reset into the new firmware once the pending notifications are out."""


Output = Notify | ResetDevice


class _RejectedError(Exception):
    def __init__(self, status: Status, detail: int = 0) -> None:
        super().__init__(status.name)
        self.status = status
        self.detail = detail


@dataclass
class _Stream:
    """Bytes of one stream received so far, contiguously."""

    index: int
    size: int
    offset: int = 0
    gap_reported: bool = False
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)
    crc: int = 0
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""


class DeviceSession:
    """One boot's worth of the device role."""

    def __init__(
        self,
        services: DeviceServices,
        *,
        window: int = DEFAULT_WINDOW,
        ack_interval: int = DEFAULT_ACK_INTERVAL,
        app_confirmed: bool = False,
    ) -> None:
        self._dev = services
        self.window = window
        self.ack_interval = ack_interval
        self.mtu = 23
        self.app_confirmed = app_confirmed
        self._manifest_size = 0
        self._manifest_sha = bytes(SHA256_SIZE)
        self._manifest_buf = bytearray()
        self._manifest: Manifest | None = None
        self._needed = 0
        self._done = 0
        self._part: _Stream | None = None
        self._progress = Progress(MANIFEST_STREAM, 0)
        self._response = b""
        self._manifest_gap = False
        self.events = EventQueue(services)
        """The durable event queue relays drain (EVENTS_READ / EVENTS_ACK)."""

    # ------------------------------------------------------------------ values

    @property
    def release_counter(self) -> int:
        """The counter of the release the device runs (advanced on confirmation)."""
        raw = self._dev.kv_get(KV_COUNTER)
        return int.from_bytes(raw, "little") if raw else 0

    def status(self) -> DeviceStatus:
        """The STATUS record."""
        app = self._dev.running_app()
        flags = 0
        if self._dev.safe_mode:
            flags |= StatusFlag.SAFE_MODE
        if self.app_confirmed:
            flags |= StatusFlag.APP_CONFIRMED
        if self._manifest is not None or self._manifest_buf:
            flags |= StatusFlag.TRANSFER_OPEN
        if self._dev.kv_get(KV_PENDING):
            flags |= StatusFlag.UPDATE_PENDING
        caps = Capability.NOTIFICATIONS | Capability.EVENTS
        if self._dev.limits.compressed_modules:
            caps |= Capability.COMPRESSED_MODULES
        part = self._part
        return DeviceStatus(
            device_id=self._dev.device_id,
            platform_id=self._dev.platform_id,
            device_os_version=self._dev.device_os_version,
            app_module_version=app.module_version if app else 0,
            product_id=app.product_id if app else ANY_PRODUCT,
            product_version=app.product_version if app else 0,
            app_sha256=app.sha256 if app else bytes(SHA256_SIZE),
            release_counter=self.release_counter,
            max_write=min(self.mtu, MAX_ATT_MTU) - 3,
            window=self.window,
            ack_interval=self.ack_interval,
            asset_count=len(self._dev.installed_assets()),
            flags=int(flags),
            capabilities=int(caps),
            manifest_sha256=self._manifest_sha,
            part_index=part.index if part else NO_PART,
            part_offset=part.offset if part else len(self._manifest_buf),
            needed_parts=self._needed & ~self._done,
            events=self._event_summary(),
        )

    def _event_summary(self) -> EventSummary:
        try:
            return self.events.summary()
        except EventError:
            return EventSummary(0, 0, 0, 0)  # a damaged queue is not a reason to stop updates

    def read(self, uuid: str) -> bytes:
        """Value of a readable characteristic (what a polling client sees)."""
        if uuid == STATUS_UUID:
            return self.status().encode()
        if uuid == RESPONSE_UUID:
            return self._response
        if uuid == PROGRESS_UUID:
            return self._progress.encode()
        return b""

    # ----------------------------------------------------------------- lifecycle

    def on_connect(self, mtu: int) -> None:
        """A central connected with this ATT MTU."""
        self.mtu = mtu

    def on_boot(self, *, app_healthy: bool) -> None:
        """After a reset: settle a pending release (called once the app ran its self-test)."""
        raw = self._dev.kv_get(KV_PENDING)
        self.app_confirmed = app_healthy and not self._dev.safe_mode
        if not raw:
            return
        _, counter, app_sha = _PENDING.unpack(raw)
        app = self._dev.running_app()
        if self.app_confirmed and app is not None and app.sha256 == app_sha:
            self._dev.kv_put(KV_COUNTER, counter.to_bytes(4, "little"))
            self._dev.kv_put(KV_TRANSFER, None)
        self._dev.kv_put(KV_PENDING, None)

    # ------------------------------------------------------------------ control

    def handle_control(self, value: bytes) -> list[Output]:
        """A CONTROL write: answer on RESPONSE (and maybe reset afterwards)."""
        try:
            request = decode_request(value)
        except DecodeError:
            opcode = Opcode(value[0]) if value and value[0] in Opcode._value2member_map_ else None
            seq = value[1] if len(value) > 1 else 0
            return [self._respond(Response(opcode or Opcode.GET_ASSETS, seq, Status.BAD_REQUEST))]
        if request.opcode in EVENT_OPCODES:
            return [self._respond(answer_event_request(self.events, request, self.mtu))]
        try:
            values, extra = self._dispatch(request)
        except _RejectedError as rej:
            return [
                self._respond(Response(request.opcode, request.seq, rej.status, detail=rej.detail))
            ]
        outputs: list[Output] = [
            self._respond(Response(request.opcode, request.seq, Status.OK, values, assets=extra))
        ]
        if request.opcode == Opcode.APPLY:
            outputs.append(ResetDevice())
        return outputs

    def _respond(self, response: Response) -> Notify:
        self._response = response.encode()
        return Notify(RESPONSE_UUID, self._response)

    def _dispatch(  # noqa: PLR0911 - one return per opcode
        self, r: Request
    ) -> tuple[tuple[int, ...], tuple[AssetEntry, ...]]:
        match r.opcode:
            case Opcode.GET_ASSETS:
                return self._get_assets(int(r.args[0]))
            case Opcode.MANIFEST_BEGIN:
                size, sha = r.args
                assert isinstance(size, int)
                assert isinstance(sha, bytes)
                return (self._manifest_begin(size, sha),), ()
            case Opcode.MANIFEST_COMMIT:
                return self._manifest_commit(), ()
            case Opcode.PART_BEGIN:
                return self._part_begin(int(r.args[0])), ()
            case Opcode.PART_END:
                self._part_end(int(r.args[0]))
                return (), ()
            case Opcode.APPLY:
                self._apply()
                return (), ()
            case Opcode.ABORT:
                self._reset_transfer(forget=True)
                return (), ()
            case _:  # event opcodes are answered by device_events
                raise _RejectedError(Status.BAD_REQUEST)

    def _get_assets(self, page: int) -> tuple[tuple[int, ...], tuple[AssetEntry, ...]]:
        assets = sorted(self._dev.installed_assets().items())
        chunk = assets[page * ASSETS_PER_PAGE : (page + 1) * ASSETS_PER_PAGE]
        return (len(assets), page), tuple(AssetEntry(n, sha) for n, (sha, _) in chunk)

    def _reset_transfer(self, *, forget: bool) -> None:
        if self._part is not None:
            self._dev.cancel_update()
        self._part = None
        self._manifest = None
        self._manifest_buf = bytearray()
        self._manifest_sha = bytes(SHA256_SIZE)
        self._manifest_size = 0
        self._needed = self._done = 0
        self._progress = Progress(MANIFEST_STREAM, 0)
        if forget:
            self._dev.kv_put(KV_TRANSFER, None)

    def _manifest_begin(self, size: int, sha: bytes) -> int:
        if not 0 < size <= MAX_MANIFEST_SIZE:
            raise _RejectedError(Status.TOO_LARGE, size)
        if sha == self._manifest_sha and size == self._manifest_size:
            return len(self._manifest_buf)  # resume (or already complete)
        self._reset_transfer(forget=False)
        self._manifest_sha, self._manifest_size = sha, size
        self._progress = Progress(MANIFEST_STREAM, 0)
        return 0

    def _manifest_commit(self) -> tuple[int, int]:
        buf = bytes(self._manifest_buf)
        if not self._manifest_size or len(buf) != self._manifest_size:
            raise _RejectedError(Status.INCOMPLETE, len(buf))
        if hashlib.sha256(buf).digest() != self._manifest_sha:
            self._reset_transfer(forget=False)
            raise _RejectedError(Status.HASH_MISMATCH)
        if self._manifest is None:
            try:
                manifest = verify_manifest(buf, self._dev.trusted_keys)
            except ManifestError as exc:
                raise _RejectedError(exc.status) from None
            current = self._check(manifest)
            if current:
                return 0, 1
            if self._needed_parts(manifest) == 0 and self._is_current(manifest):
                # Same firmware under a newer release: adopt the counter, no reset needed.
                self._dev.kv_put(KV_COUNTER, manifest.release_counter.to_bytes(4, "little"))
                return 0, 1
            self._manifest = manifest
            self._needed = self._needed_parts(manifest)
            self._done = self._restore_done(manifest)
        return self._needed & ~self._done, 0

    def _restore_done(self, manifest: Manifest) -> int:
        raw = self._dev.kv_get(KV_TRANSFER)
        if not raw:
            return 0
        sha, done = _TRANSFER.unpack(raw)
        if sha != self._manifest_sha:
            return 0
        installed = self._dev.installed_assets()
        keep = 0
        assets_left = any(
            p.kind == PartKind.ASSET and not done & (1 << i) and self._needed & (1 << i)
            for i, p in enumerate(manifest.parts)
        )
        for i, part in enumerate(manifest.parts):
            if not done & (1 << i):
                continue
            stored = installed.get(part.name, (b"", 0))[0] == part.content_sha256
            # Device OS deletes assets the running app does not need at the first store of
            # a boot: a stored asset survives a reset only if no asset is stored again.
            if part.kind == PartKind.ASSET and stored and not assets_left:
                keep |= 1 << i
        return keep

    def _check(self, m: Manifest) -> bool:
        """Refuse the manifest with a named status; True when the device is already current."""
        dev = self._dev
        if m.device_id != dev.device_id:
            raise _RejectedError(Status.WRONG_DEVICE)
        if m.platform_id != dev.platform_id:
            raise _RejectedError(Status.WRONG_PLATFORM, dev.platform_id)
        app = dev.running_app()
        if (
            m.product_id != ANY_PRODUCT
            and app is not None
            and app.product_id not in (ANY_PRODUCT, m.product_id)
        ):
            raise _RejectedError(Status.WRONG_PRODUCT, app.product_id)
        if m.release_counter <= self.release_counter and not m.allow_downgrade:
            if self._is_current(m):
                return True
            raise _RejectedError(Status.OLD_RELEASE, self.release_counter)
        if m.min_device_os > dev.device_os_version:
            raise _RejectedError(Status.DEVICE_OS_TOO_OLD, dev.device_os_version)
        self._check_parts(m)
        return False

    def _is_current(self, m: Manifest) -> bool:
        app, installed = self._dev.running_app(), self._dev.installed_assets()
        target = m.app
        if app is None or self._dev.safe_mode or (target and target.content_sha256 != app.sha256):
            return False
        return all(installed.get(a.name, (b"", 0))[0] == a.sha256 for a in m.app_assets)

    def _check_parts(self, m: Manifest) -> None:
        limits = self._dev.limits
        kinds = [p.kind for p in m.parts]
        if kinds.count(PartKind.APPLICATION) > 1 or (
            PartKind.APPLICATION in kinds and kinds[-1] != PartKind.APPLICATION
        ):
            raise _RejectedError(Status.BAD_MANIFEST)
        names = [p.name for p in m.parts if p.kind == PartKind.ASSET]
        if len(set(names)) != len(names):
            raise _RejectedError(Status.BAD_MANIFEST)
        for i, p in enumerate(m.parts):
            if p.compressed and not limits.compressed_modules:
                raise _RejectedError(Status.UNSUPPORTED_PART, i)
            if p.size > min(limits.ota_region_size, limits.ota_safe_size):
                raise _RejectedError(Status.TOO_LARGE, i)
            if p.kind == PartKind.APPLICATION and p.original_size > limits.max_app_size:
                raise _RejectedError(Status.TOO_LARGE, i)
            if p.kind == PartKind.ASSET and (
                limits.assets is None or p.size > limits.assets.max_single_asset_size
            ):
                raise _RejectedError(Status.TOO_LARGE, i)
        self._check_asset_storage(m)

    def _check_asset_storage(self, m: Manifest) -> None:
        limits = self._dev.limits.assets
        installed = self._dev.installed_assets()
        app = self._dev.running_app()
        kept = {n for n, _ in app.required_assets} if app else set()
        new = {p.name: p for p in m.parts if p.kind == PartKind.ASSET}
        if limits is not None and new:
            used = sum(size for n, (_, size) in installed.items() if n in kept and n not in new)
            used += sum(limits.storage_size(p.size) for p in new.values())
            if used > limits.total_size:
                raise _RejectedError(Status.TOO_LARGE, used)
        for req in m.app_assets:
            part = new.get(req.name)
            if part is not None and part.content_sha256 == req.sha256:
                continue
            survives = req.name in kept and installed.get(req.name, (b"", 0))[0] == req.sha256
            if not survives:
                raise _RejectedError(Status.ASSETS_UNSATISFIED)

    def _needed_parts(self, m: Manifest) -> int:
        app, installed = self._dev.running_app(), self._dev.installed_assets()
        kept = {n for n, _ in app.required_assets} if app else set()
        needed = 0
        for i, p in enumerate(m.parts):
            if p.kind == PartKind.ASSET:
                have = installed.get(p.name, (b"", 0))[0] == p.content_sha256 and p.name in kept
            else:
                have = (
                    app is not None and not self._dev.safe_mode and app.sha256 == p.content_sha256
                )
            if not have:
                needed |= 1 << i
        return needed

    def _next_part(self) -> int | None:
        assert self._manifest is not None
        left = self._needed & ~self._done
        return next((i for i in range(len(self._manifest.parts)) if left & (1 << i)), None)

    def _part_begin(self, index: int) -> tuple[int, int]:
        m = self._manifest
        if m is None:
            raise _RejectedError(Status.BAD_STATE)
        if index != self._next_part():
            raise _RejectedError(Status.BAD_STATE, index)
        part = m.parts[index]
        if self._part is not None and self._part.index == index:
            return self._part.offset, part.size  # resume within this boot
        try:
            self._dev.prepare_update(part.size)
        except DeviceOsError as exc:
            raise _RejectedError(
                _DEVICE_OS_STATUS.get(exc.name, Status.DEVICE_OS_REFUSED), exc.code
            ) from None
        self._part = _Stream(index, part.size)
        self._progress = Progress(index + 1, 0)
        return 0, part.size

    def _part_end(self, index: int) -> None:
        m, s = self._manifest, self._part
        if m is None or s is None or s.index != index:
            raise _RejectedError(Status.BAD_STATE, index)
        if s.offset != s.size:
            raise _RejectedError(Status.INCOMPLETE, s.offset)
        part = m.parts[index]
        try:
            if s.sha.digest() != part.sha256:
                raise _RejectedError(Status.HASH_MISMATCH, index)
            self._check_module(part.kind, s)
            self._dev.finish_update(validate_only=True)
            self._dev.finish_update(validate_only=False)
        except _RejectedError:
            self._fail_part()
            raise
        except DeviceOsError as exc:
            self._fail_part()
            raise _RejectedError(Status.DEVICE_OS_REFUSED, exc.code) from None
        self._part = None
        self._done |= 1 << index
        self._dev.kv_put(KV_TRANSFER, _TRANSFER.pack(self._manifest_sha, self._done))

    def _fail_part(self) -> None:
        self._dev.cancel_update()
        self._part = None

    def _check_module(self, kind: PartKind, s: _Stream) -> None:
        stored = int.from_bytes(s.tail[-4:], "big") if len(s.tail) >= 4 else -1
        if len(s.head) < _PREFIX_BYTES or stored != s.crc:
            raise _RejectedError(Status.INVALID_MODULE, s.index)
        prefix = ModulePrefix.unpack(bytes(s.head))
        want = ModuleFunction.ASSET if kind == PartKind.ASSET else ModuleFunction.USER_PART
        platform_ok = kind == PartKind.ASSET or prefix.platform_id == self._dev.platform_id
        if prefix.function != want or not platform_ok:
            raise _RejectedError(Status.INVALID_MODULE, s.index)

    def _apply(self) -> None:
        m = self._manifest
        if m is None or self._next_part() is not None:
            raise _RejectedError(Status.BAD_STATE)
        app = m.app
        target = app.content_sha256 if app else bytes(SHA256_SIZE)
        self._dev.kv_put(KV_PENDING, _PENDING.pack(self._manifest_sha, m.release_counter, target))

    # --------------------------------------------------------------------- data

    def handle_data(self, value: bytes) -> list[Output]:
        """A DATA write: keep contiguous bytes; acknowledge per interval; report a gap once."""
        try:
            write = decode_data(value)
        except DecodeError:
            return []
        if write.stream == MANIFEST_STREAM:
            return self._manifest_data(write.offset, write.payload)
        s = self._part
        if s is None or write.stream != s.index + 1:
            return []
        return self._part_data(s, write.offset, write.payload)

    def _accept(self, expected: int, size: int, offset: int, payload: bytes) -> bytes | None:
        """The new bytes a write adds at ``expected``, or None for a gap."""
        if offset > expected:
            return None
        new = payload[expected - offset :]
        return new[: size - expected]

    def _manifest_data(self, offset: int, payload: bytes) -> list[Output]:
        if not self._manifest_size or self._manifest is not None:
            return []
        expected = len(self._manifest_buf)
        new = self._accept(expected, self._manifest_size, offset, payload)
        if new is None:
            return self._gap(MANIFEST_STREAM, expected, self._manifest_gap, "_manifest_gap")
        self._manifest_gap = False
        self._manifest_buf += new
        return self._ack(MANIFEST_STREAM, expected, len(self._manifest_buf), self._manifest_size)

    def _part_data(self, s: _Stream, offset: int, payload: bytes) -> list[Output]:
        new = self._accept(s.offset, s.size, offset, payload)
        if new is None:
            if s.gap_reported:
                return []
            s.gap_reported = True
            self._progress = Progress(s.index + 1, s.offset, ProgressFlag.GAP)
            return [Notify(PROGRESS_UUID, self._progress.encode())]
        s.gap_reported = False
        if not new:
            return []
        try:
            self._dev.save_chunk(s.offset, new)
        except DeviceOsError:
            return []  # not acknowledged: the sender resends from the device's offset
        before = s.offset
        s.sha.update(new)
        if len(s.head) < _PREFIX_BYTES:
            s.head += new[: _PREFIX_BYTES - len(s.head)]
        crc_part = new[: max(0, s.size - 4 - before)]
        s.crc = zlib.crc32(crc_part, s.crc)
        s.tail = (s.tail + new)[-4:]
        s.offset += len(new)
        return self._ack(s.index + 1, before, s.offset, s.size)

    def _gap(self, stream: int, expected: int, reported: bool, attr: str) -> list[Output]:
        if reported:
            return []
        setattr(self, attr, True)
        self._progress = Progress(stream, expected, ProgressFlag.GAP)
        return [Notify(PROGRESS_UUID, self._progress.encode())]

    def _ack(self, stream: int, before: int, after: int, size: int) -> list[Output]:
        complete = after >= size
        self._progress = Progress(stream, after, ProgressFlag.COMPLETE if complete else 0)
        if complete or before // self.ack_interval != after // self.ack_interval:
            return [Notify(PROGRESS_UUID, self._progress.encode())]
        return []
