"""The device in the model: Device OS's update API with flash timing, and a worker thread.

:class:`FlashDevice` implements :class:`~bluemule.protocol.device_services.DeviceServices`
for a Boron and charges virtual time for what the flash does (``busy_us``). Module contents
are checked the way Device OS does at finish (``bluemule.image.parse_module`` and CRC-32),
so a wrong release fails in the model as on the device.

:class:`BluemuleDevice` runs the real :class:`~bluemule.protocol.device_session.DeviceSession`
behind the BLE stack: writes land in a receive buffer of ``rx_buffer`` bytes (a DATA write
that does not fit is dropped, as Boron's pool drops writes, ``device-library.md`` §3.2);
one worker takes them in arrival order and is busy while it hashes, programs or erases.
Reads go through the same queue (answered after the writes before them: the barrier the
sender relies on). With ``notify="blocking"`` the worker waits after each notification until
it has been sent (``notify()`` blocks until TX complete on the nRF52840, §3.5).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bluemule.image import (
    ImageError,
    ModuleFunction,
    parse_module,
    platform_by_id,
    unwrap_asset_module,
)
from bluemule.linkmodel.engine import AttKind, AttPdu, Link
from bluemule.protocol.constants import (
    CONTROL_UUID,
    DATA_UUID,
    DEFAULT_ACK_INTERVAL,
    DEFAULT_WINDOW,
    PROGRESS_UUID,
    Opcode,
    ProgressFlag,
)
from bluemule.protocol.device_services import DeviceLimits, DeviceOsError, RunningApp
from bluemule.protocol.device_session import DeviceSession, Notify, Output

SECTOR: int = 4096
PAGE: int = 256
BORON_PLATFORM: int = 13
BORON_OTA_SAFE: int = 606_208
"""The first 606,208 B of the Boron's OTA region do not overlap asset storage (particle.md §3.6)."""


class NotifyMode(enum.Enum):
    """How the device library sends its notifications."""

    BLOCKING = "blocking"
    """The worker calls ``notify()`` and waits for TX complete (device-library.md §3.2, §3.5)."""
    COALESCED = "coalesced"
    """A separate sender; a PROGRESS still queued is replaced by the newer one."""


@dataclass(frozen=True)
class DeviceParams:
    """Device timing and buffers (defaults and sources: ``docs/linkmodel.md``)."""

    sector_erase_us: int = 50_000
    """One 4 KB QSPI sector erase ("tens of ms", device-library.md §3.6; 4 KB erases of serial
    NOR parts are typically 45–60 ms)."""
    page_program_us: int = 1_000
    """Programming one 256-byte page, charged per byte (serial NOR: typically 0.5–1.4 ms)."""
    hash_ns_per_byte: int = 1_250
    """SHA-256 on the nRF52840: 65–92 cycles/byte at 64 MHz (device-library.md §0.3)."""
    write_overhead_us: int = 50
    """Hand-off from the BLE callback to the worker, per write (an assumption)."""
    validate_ns_per_byte: int = 200
    """Device OS reading back and CRC-checking the module at finish (an assumption)."""
    verify_us: int = 40_000
    """Ed25519 verification of the manifest on a Boron: 28–44 ms (device-library.md §0.2)."""
    rx_buffer: int = DEFAULT_WINDOW
    """Bytes of write values the receive ring holds (protocol.md §9: one window)."""
    notify: NotifyMode = NotifyMode.COALESCED
    """docs/protocol.md §9: a notifier thread sends the newest PROGRESS; the worker never waits."""
    window: int = DEFAULT_WINDOW
    ack_interval: int = DEFAULT_ACK_INTERVAL

    def describe(self) -> dict[str, object]:
        """For reports."""
        return {
            "sector_erase_ms": self.sector_erase_us / 1000,
            "page_program_ms": self.page_program_us / 1000,
            "hash_us_per_kB": self.hash_ns_per_byte,
            "write_overhead_us": self.write_overhead_us,
            "validate_us_per_kB": self.validate_ns_per_byte,
            "verify_ms": self.verify_us / 1000,
            "rx_buffer": self.rx_buffer,
            "notify": self.notify.value,
            "window": self.window,
            "ack_interval": self.ack_interval,
        }


@dataclass
class FlashDevice:
    """A Boron's update API in memory, charging flash time to ``busy_us``."""

    device_id: bytes
    app: bytes
    trusted_keys: tuple[bytes, ...]
    params: DeviceParams = field(default_factory=DeviceParams)
    platform_id: int = BORON_PLATFORM
    device_os_version: int = 6200
    safe_mode: bool = False
    assets: dict[str, bytes] = field(default_factory=dict)
    kv: dict[str, bytes] = field(default_factory=dict)
    ota: bytearray | None = None
    staged_app: bytes | None = None
    busy_us: int = 0
    saved_bytes: int = 0
    erase_us: int = 0
    _installed: dict[str, tuple[bytes, int]] | None = None
    _running: tuple[bytes, RunningApp] | None = None

    @property
    def limits(self) -> DeviceLimits:
        platform = platform_by_id(self.platform_id)
        assert platform is not None
        assert platform.max_app_size is not None
        assert platform.ota_region_size is not None
        return DeviceLimits(
            platform.ota_region_size,
            BORON_OTA_SAFE,
            platform.max_app_size,
            platform.assets,
            platform.supports_compressed_ota,
        )

    def running_app(self) -> RunningApp | None:
        if self._running is None or self._running[0] is not self.app:
            m = parse_module(self.app)
            app = RunningApp(
                m.prefix.module_version,
                m.suffix.product_id if m.suffix.product_id is not None else 0xFFFF,
                m.suffix.product_version or 0,
                m.suffix.sha256,
                tuple((d.name, d.hash) for d in m.asset_dependencies),
            )
            self._running = (self.app, app)
        return self._running[1]

    def installed_assets(self) -> dict[str, tuple[bytes, int]]:
        if self._installed is None:
            limits = self.limits.assets
            assert limits is not None
            self._installed = {
                name: (
                    unwrap_asset_module(parse_module(data)).sha256,
                    limits.storage_size(len(data)),
                )
                for name, data in self.assets.items()
            }
        return dict(self._installed)

    def _erase(self, size: int) -> None:
        cost = math.ceil(size / SECTOR) * self.params.sector_erase_us
        self.busy_us += cost
        self.erase_us += cost

    def _program(self, size: int) -> None:
        self.busy_us += size * self.params.page_program_us // PAGE

    def prepare_update(self, size: int) -> None:
        """Erase ``size`` bytes of the OTA region in 4 KB sectors before returning."""
        self._erase(size)
        self.ota = bytearray(b"\xff" * size)
        self.staged_app = None

    def save_chunk(self, offset: int, data: bytes) -> None:
        assert self.ota is not None
        self._program(len(data))
        self.saved_bytes += len(data)
        self.ota[offset : offset + len(data)] = data

    def finish_update(self, *, validate_only: bool) -> None:
        """Validate as Device OS does; an asset is then copied into the asset file system."""
        assert self.ota is not None
        self.busy_us += len(self.ota) * self.params.validate_ns_per_byte // 1000
        try:
            module = parse_module(bytes(self.ota))
        except ImageError:
            raise DeviceOsError(-1000, "OTA_INVALID_FORMAT") from None
        if not module.crc_ok:
            raise DeviceOsError(-1001, "OTA_INTEGRITY_CHECK_FAILED")
        if validate_only:
            return
        if module.function == ModuleFunction.ASSET:
            # storeAsset copies the module into the asset LittleFS (particle.md §2.3)
            self._erase(len(module.data))
            self._program(len(module.data))
            self.assets[unwrap_asset_module(module).name] = module.data
            self._installed = None
        else:
            self.staged_app = module.data
        self.ota = None

    def cancel_update(self) -> None:
        self.ota = None

    def kv_get(self, key: str) -> bytes | None:
        return self.kv.get(key)

    def kv_put(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.kv.pop(key, None)
        else:
            self.kv[key] = value

    def reset(self) -> None:
        """The bootloader installs a staged app; the boot checks the app's assets."""
        if self.staged_app is not None:
            self.app = self.staged_app
            self.staged_app = None
        have = {n: s for n, (s, _) in self.installed_assets().items()}
        deps = parse_module(self.app).asset_dependencies
        self.safe_mode = any(have.get(d.name) != d.hash for d in deps)


@dataclass
class _Item:
    pdu: AttPdu
    arrived_us: int


class Worker:
    """One thread taking received PDUs in order; subclasses say what each one costs."""

    def __init__(self, link: Link, rx_buffer: int) -> None:
        self.link = link
        self.rx_buffer = rx_buffer
        self.queue: deque[_Item] = deque()
        self.queued_bytes = 0
        self.free_us = 0
        self.busy_us = 0
        self.blocked_on: AttPdu | None = None
        self.dropped_writes = 0
        self.read_values: dict[str, bytes] = {}
        self.read_chunk = link.params.att_mtu - 1
        """A read response carries at most ATT_MTU − 1 bytes; the rest needs read blobs."""

    def receive(self, pdu: AttPdu, at_us: int) -> None:
        """The BLE stack got ``pdu``: answer write requests and the rest of a long read
        (from the value the read returned), queue everything else for the worker."""
        self.advance(at_us)
        if pdu.kind is AttKind.READ_BLOB_REQ:
            offset = int.from_bytes(pdu.value, "little")
            value = self.read_values.get(pdu.uuid, b"")[offset : offset + self.read_chunk]
            self.link.peripheral_send(AttPdu(AttKind.READ_RSP, pdu.uuid, value, at_us))
            return
        if pdu.kind is AttKind.WRITE_REQ:
            self.link.peripheral_send(AttPdu(AttKind.WRITE_RSP, pdu.uuid, ready_us=at_us))
        if pdu.kind in (AttKind.WRITE_CMD, AttKind.WRITE_REQ):
            if self.droppable(pdu) and self.queued_bytes + len(pdu.value) > self.rx_buffer:
                self.dropped_writes += 1
                return
            self.queued_bytes += len(pdu.value)
        self.queue.append(_Item(pdu, at_us))

    def droppable(self, pdu: AttPdu) -> bool:
        """Whether ``pdu`` competes for the receive buffer (or has a reserved slot)."""
        return True

    def advance(self, until_us: int) -> None:
        """Run the worker on everything it can start before ``until_us``."""
        while self.queue and self.blocked_on is None:
            item = self.queue[0]
            start = max(self.free_us, item.arrived_us)
            if start >= until_us:
                return
            self.queue.popleft()
            if item.pdu.kind is not AttKind.READ_REQ:
                self.queued_bytes -= len(item.pdu.value)
            cost, outputs = self.process(item.pdu)
            self.busy_us += cost
            self.free_us = start + cost
            for out in outputs:
                out.ready_us = self.free_us
                self.emit(out)

    def emit(self, pdu: AttPdu) -> None:
        """Queue an output on the link."""
        self.link.peripheral_send(pdu)

    def process(self, pdu: AttPdu) -> tuple[int, list[AttPdu]]:
        """Handle one PDU: (microseconds it takes, what to send)."""
        raise NotImplementedError

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        """A PDU left: a worker blocked on it continues from the end of that event."""
        if pdu is self.blocked_on:
            self.blocked_on = None
            self.free_us = max(self.free_us, at_us)


class BluemuleDevice(Worker):
    """The device library: a :class:`DeviceSession` on a :class:`FlashDevice`."""

    def __init__(
        self,
        link: Link,
        services: FlashDevice,
        params: DeviceParams,
        on_reset: Callable[[int], None],
    ) -> None:
        super().__init__(link, params.rx_buffer)
        self.services = services
        self.params = params
        self.on_reset = on_reset
        self.reset_pending = False
        self.reset_signalled = False
        self.gaps = 0
        self.session = self._new_session()
        self.session.on_connect(link.params.att_mtu)

    def _new_session(self) -> DeviceSession:
        return DeviceSession(
            self.services, window=self.params.window, ack_interval=self.params.ack_interval
        )

    def droppable(self, pdu: AttPdu) -> bool:
        return pdu.uuid == DATA_UUID  # requests come one at a time, after the data drained

    def process(self, pdu: AttPdu) -> tuple[int, list[AttPdu]]:
        dev, p = self.services, self.params
        dev.busy_us = 0
        saved = dev.saved_bytes
        outputs: list[Output] = []
        extra = p.write_overhead_us
        if pdu.kind is AttKind.READ_REQ:
            value = self.read_values[pdu.uuid] = self.session.read(pdu.uuid)
            return extra, [AttPdu(AttKind.READ_RSP, pdu.uuid, value[: self.read_chunk])]
        if pdu.uuid == CONTROL_UUID:
            if pdu.value[:1] == bytes([Opcode.MANIFEST_COMMIT]):
                extra += p.verify_us
            outputs = self.session.handle_control(pdu.value)
        elif pdu.uuid == DATA_UUID:
            outputs = self.session.handle_data(pdu.value)
            extra += (dev.saved_bytes - saved) * p.hash_ns_per_byte // 1000  # new bytes only
        result: list[AttPdu] = []
        for out in outputs:
            if isinstance(out, Notify):
                if out.uuid == PROGRESS_UUID and out.value[5] & ProgressFlag.GAP:
                    self.gaps += 1
                result.append(AttPdu(AttKind.NOTIFY, out.uuid, out.value))
            else:
                self.reset_pending = True
        return dev.busy_us + extra, result

    def emit(self, pdu: AttPdu) -> None:
        if pdu.kind is AttKind.NOTIFY and self.params.notify is NotifyMode.COALESCED:
            if self._coalesce(pdu):
                return
        elif pdu.kind is AttKind.NOTIFY:
            self.blocked_on = pdu
        self.link.peripheral_send(pdu)

    def _coalesce(self, pdu: AttPdu) -> bool:
        """Replace a queued PROGRESS of the same stream (never a gap report) by ``pdu``."""
        if pdu.uuid != PROGRESS_UUID:
            return False
        for queued in self.link.pending_notifications():
            if (
                queued.uuid == PROGRESS_UUID
                and queued.value[0] == pdu.value[0]
                and not queued.value[5] & ProgressFlag.GAP
                and not pdu.value[5] & ProgressFlag.GAP
            ):
                queued.value = pdu.value
                return True
        return False

    def sent(self, pdu: AttPdu, at_us: int) -> None:
        super().sent(pdu, at_us)
        if (
            self.reset_pending
            and not self.reset_signalled
            and not self.link.notifications_outstanding()
        ):
            self.reset_signalled = True  # reset once the answer to APPLY is out
            self.on_reset(at_us)

    def reboot(self, at_us: int) -> None:
        """The device reset: the bootloader installs the app; a new session boots."""
        self.services.reset()
        self.queue.clear()
        self.queued_bytes = 0
        self.blocked_on = None
        self.reset_pending = self.reset_signalled = False
        self.free_us = at_us
        self.session = self._new_session()
        self.session.on_boot(app_healthy=True)
        self.session.on_connect(self.link.params.att_mtu)
