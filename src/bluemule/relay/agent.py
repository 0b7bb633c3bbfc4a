"""The relay agent: keep what the server wants, work through the devices in range.

Two loops share one journal and one blob cache:

* **online** (:meth:`RelayAgent.sync`, :meth:`RelayAgent.upload`): fetch the desired
  state (ETag), download the part blobs it names (resuming partial files), note
  ``cached_on_relay``, and upload what the relay owes (reports, events) in order.
* **BLE** (:meth:`RelayAgent.ble_pass`): sweep for advertisements; for each device with
  work, connect once, read STATUS (a sighting report), drain its queued events, and push
  its pending release when policy allows (maintenance window, backoff after failures),
  reporting ``transferring`` (throttled), ``installed``, ``confirmed_running`` or
  ``failed`` (with the device's reason).

Nothing here knows a BLE stack or a front end: scanning is a
:class:`~bluemule.relay.scan.Scanner`, connecting a ``connector_factory(address)``, time a
:class:`Clock`. Everything owed to the server is in the journal before it is uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bluemule.particle_ctrl.stream import StreamConnector
from bluemule.protocol.client_session import Outcome, Phase, TransferProgress
from bluemule.protocol.constants import STATUS_UUID, AdvertisingFlag
from bluemule.protocol.errors import ProtocolError
from bluemule.protocol.manifest import decode_manifest
from bluemule.protocol.messages import DeviceStatus, decode_status
from bluemule.protocol.release import Release
from bluemule.relay.cache import BlobCache, CacheError
from bluemule.relay.config import RelayConfig, log_event
from bluemule.relay.events import EventDrainError, RelayedEvent, drain_events
from bluemule.relay.journal import ItemKind, Journal, OutboxItem
from bluemule.relay.scan import Scanner, Sighting, StockSighting
from bluemule.relay.server_client import (
    DesiredUpdate,
    Offline,
    RejectedError,
    ServerClient,
    ServerError,
    parse_desired,
    parse_release_key,
)
from bluemule.relay.update import UpdatePolicy, push_update
from bluemule.transport.base import CentralLink, Connector, TransportError

ConnectorFactory = Callable[[str], Connector]
"""A connector (connect, and reconnect to resume) for a sighted device's address."""
ControlConnectorFactory = Callable[[str], StreamConnector]
"""A control-channel byte-stream connector for a stock device's address."""

UPLOAD_BATCH = 500
BLE_ERROR_PAUSE = 5.0
"""Seconds to wait after the BLE stack failed (a dongle unplugged, the adapter off)."""


class Clock(Protocol):
    """Wall-clock time (reports' ``at``, the maintenance window, backoff deadlines)."""

    def now(self) -> dt.datetime:
        """The current UTC time."""
        ...


class SystemClock:
    """The computer's clock."""

    def now(self) -> dt.datetime:
        """See :meth:`Clock.now`."""
        return dt.datetime.now(dt.UTC)


@dataclass
class DeviceVisit:
    """What one visit to a device did."""

    device_id: str
    address: str
    connected: bool = False
    events: int = 0
    update: str | None = None
    """The update outcome (``applied``, ``rejected``, …) if one was pushed."""
    reason: str | None = None
    bytes_sent: int = 0


@dataclass
class RunSummary:
    """One :meth:`RelayAgent.run_once`: sync, a pass over the devices in range, upload."""

    online: bool = False
    desired: int = 0
    downloaded_bytes: int = 0
    devices: list[DeviceVisit] = field(default_factory=list)
    uploaded_reports: int = 0
    uploaded_events: int = 0
    pending: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class RelayAgent:
    """The relay's logic over an injected scanner, connector factory, clock and client."""

    def __init__(
        self,
        config: RelayConfig,
        scanner: Scanner,
        connector_factory: ConnectorFactory,
        *,
        clock: Clock | None = None,
        client: ServerClient | None = None,
        update_policy: UpdatePolicy | None = None,
        control_connector_factory: ControlConnectorFactory | None = None,
    ) -> None:
        self.config = config
        self.scanner = scanner
        self.connector_factory = connector_factory
        self.control_connector_factory = control_connector_factory
        """Reaches stock devices over Device OS's control channel (None: they are skipped)."""
        self.clock = clock or SystemClock()
        self.client = client or ServerClient(config.server_url, config.token)
        self.update_policy = update_policy or UpdatePolicy()
        self.journal = Journal(config.journal_path)
        self.cache = BlobCache(config.blob_dir, max_bytes=config.cache_max_bytes)
        self.etag, body, _ = self.journal.load_sync()
        self.desired: dict[str, DesiredUpdate] = parse_desired(body) if body else {}
        self._visited: dict[str, float] = {}
        self._progress_at: dict[str, float] = {}
        self.stock_backoff: dict[tuple[str, str], float] = {}
        """(device id, address) → Unix time before which no handshake is tried again
        (a guess that failed: the device at that address is probably another one)."""

    async def aclose(self) -> None:
        """Close the HTTP client and the journal."""
        await self.client.aclose()
        self.journal.close()

    def _now(self) -> float:
        return float(self.clock.now().timestamp())

    def _at(self) -> str:
        return self.clock.now().astimezone(dt.UTC).isoformat()

    # --- online -----------------------------------------------------------------------

    async def sync(self) -> int:
        """Fetch the desired state and its blobs; returns bytes downloaded.

        Raises :class:`~bluemule.relay.server_client.ServerClientError` when the server
        cannot be used; the last desired state stays in force.
        """
        result = await self.client.sync(self.etag)
        if result.body is not None:
            self._pin_release_key(result.body)
            self.journal.save_sync(result.etag, result.body, self._now())
            self.desired = parse_desired(result.body)
            log_event("synced", devices=len(self.desired))
        self.etag = result.etag
        return await self.fetch_blobs()

    def _pin_release_key(self, body: dict[str, Any]) -> None:
        """Pin the server's manifest key at first sync; refuse an answer with another key."""
        key = parse_release_key(body)
        if key is None:
            return
        pinned = self.journal.pinned_release_key()
        if pinned is None:
            self.journal.pin_release_key(key)
            log_event("release_key_pinned", key=key.hex())
        elif pinned != key:
            raise RejectedError(
                "the server's release key changed since this relay pinned it; refusing the "
                "sync answer (an operator must reset the relay's journal to trust a new key)"
            )

    def _needed_blobs(self) -> dict[str, int]:
        return {
            p.sha256: p.size for d in self.desired.values() for p in (*d.device_os_parts, *d.parts)
        }

    async def fetch_blobs(self) -> int:
        """Download the blobs pending devices need; note ``cached_on_relay`` per device."""
        needed = self._needed_blobs()
        downloaded = 0
        for sha256, size in needed.items():
            if self.cache.has(sha256):
                continue
            try:
                self.cache.make_room(size, needed)
                downloaded += await self.client.download(self.cache, sha256, size)
            except (CacheError, RejectedError) as exc:  # next sync tries again
                log_event("blob_failed", 30, blob=sha256, error=str(exc))
                continue
            log_event("blob_cached", blob=sha256, size=size)
        for update in self.desired.values():
            if (
                self._ready(update)
                and self.journal.checkpoint(update.device_id, update.release_id) is None
            ):
                self._report_update(update, "cached_on_relay")
        return downloaded

    def _ready(self, update: DesiredUpdate) -> bool:
        return all(self.cache.has(p.sha256) for p in (*update.device_os_parts, *update.parts))

    async def upload(self) -> tuple[int, int]:
        """Upload everything owed, oldest first; returns (reports, events) the server took.

        A batch the server refuses outright is split until the refused items are found;
        those move aside (:meth:`Journal.refuse`) and the rest goes through in order.
        """
        sent = {"report": 0, "event": 0}
        kinds: tuple[ItemKind, ...] = ("report", "event")
        for kind in kinds:
            while batch := self.journal.pending(kind, UPLOAD_BATCH):
                sent[kind] += await self._upload_batch(kind, batch)
        return sent["report"], sent["event"]

    async def _upload_batch(self, kind: ItemKind, batch: list[OutboxItem]) -> int:
        bodies = [item.body for item in batch]
        try:
            if kind == "report":
                accepted = await self.client.post_reports(bodies)
            else:
                accepted = await self.client.post_events(bodies)
        except RejectedError as exc:
            if len(batch) == 1:
                self.journal.refuse(batch[0], str(exc))
                log_event("server_refused", 40, kind=kind, id=batch[0].item_id, error=str(exc))
                return 0
            half = len(batch) // 2
            return await self._upload_batch(kind, batch[:half]) + await self._upload_batch(
                kind, batch[half:]
            )
        self.journal.acknowledge(batch)
        log_event("uploaded", kind=kind, accepted=accepted.accepted, dup=accepted.duplicates)
        return len(batch)

    # --- BLE --------------------------------------------------------------------------

    def has_work(self, sighting: Sighting) -> bool:
        """Whether a device is worth a connection now (from its advertisement alone)."""
        device_id = sighting.device_id
        if self._update_due(device_id, sighting.advertisement.release_counter) is not None:
            return True
        if sighting.advertisement.flags & AdvertisingFlag.EVENTS_QUEUED:
            return True
        last = self._visited.get(device_id)
        return last is None or time.monotonic() - last >= self.config.sighting_interval

    def _update_due(self, device_id: str, device_counter: int | None) -> DesiredUpdate | None:
        """The device's pending update if it should be pushed (or confirmed) now."""
        update = self.desired.get(device_id)
        if update is None or not self._ready(update):
            return None
        checkpoint = self.journal.checkpoint(device_id, update.release_id)
        if checkpoint is not None and checkpoint.stage == "confirmed_running":
            return None
        if device_counter is not None and device_counter == _release_counter(update):
            return update  # installed already: confirm it
        if checkpoint is not None and checkpoint.retry_at > self._now():
            return None
        return update if self.update_allowed_now() else None

    async def ble_pass(self) -> list[DeviceVisit]:
        """One sweep, then a visit to each device with work."""
        sightings = await self.scanner.sweep(self.config.scan_seconds)
        visits = []
        for sighting in sightings:
            if isinstance(sighting, StockSighting):
                if self.control_connector_factory is not None:
                    from bluemule.relay.stock_visit import visit_stock  # noqa: PLC0415

                    if (visit := await visit_stock(self, sighting)) is not None:
                        visits.append(visit)
            elif self.has_work(sighting):
                visits.append(await self.visit(sighting))
        return visits

    async def visit(self, sighting: Sighting) -> DeviceVisit:
        """Connect once: STATUS, events, and the pending update if it is due."""
        visit = DeviceVisit(sighting.device_id, sighting.address)
        connect = self.connector_factory(sighting.address)
        try:
            link = await connect()
        except (TransportError, OSError, TimeoutError) as exc:
            log_event("connect_failed", 30, device=visit.device_id, error=str(exc))
            return visit
        visit.connected = True
        self._visited[visit.device_id] = time.monotonic()
        try:
            status = decode_status(await link.read(STATUS_UUID))
            if status.device_id_hex != visit.device_id:
                visit.reason = f"STATUS names device {status.device_id_hex}"
                return visit
            self._report_sighting(status, sighting.rssi)
            visit.events = await self._drain_events(link)
            # the desired state may have changed while the events drained: decide now
            if update := self._update_due(visit.device_id, status.release_counter):
                from bluemule.relay.stock_visit import device_os_first  # noqa: PLC0415

                if (fresh := await device_os_first(self, visit, update, status, link)) is None:
                    return visit
                link, status = fresh
                await self._update(visit, update, status, link, connect)
        except (TransportError, OSError, TimeoutError, ProtocolError) as exc:
            visit.reason = f"link: {exc}"
            log_event("visit_interrupted", 30, device=visit.device_id, error=str(exc))
        finally:
            with contextlib.suppress(TransportError, OSError):
                await link.disconnect()
        return visit

    async def _drain_events(self, link: CentralLink) -> int:
        async def store(batch: Sequence[RelayedEvent]) -> None:
            self.journal.add_events([e.to_json() for e in batch])

        try:
            drained = await drain_events(link, store, timeout=self.config.event_timeout)
        except EventDrainError as exc:
            log_event("events_interrupted", 30, error=str(exc), drained=exc.drained)
            return exc.drained
        if drained:
            log_event("events_drained", count=drained)
        return drained

    async def _update(
        self,
        visit: DeviceVisit,
        update: DesiredUpdate,
        status: DeviceStatus,
        link: CentralLink,
        connect: Connector,
    ) -> None:
        try:
            manifest = decode_manifest(update.manifest)
            release = Release(manifest, tuple(self.cache.read(p.sha256) for p in update.parts))
        except (ProtocolError, CacheError) as exc:
            self._fail(update, f"relay cannot use its copy: {exc}")
            visit.update, visit.reason = "rejected", str(exc)
            return
        app = manifest.app
        if status.release_counter == manifest.release_counter and (
            app is None or status.app_sha256 == app.content_sha256
        ):
            self._confirm(update, status.app_sha256.hex())
            visit.update = Outcome.ALREADY_CURRENT.value
            return
        first: list[CentralLink] = [link]

        async def reconnect() -> CentralLink:
            return first.pop() if first else await connect()

        log_event("update_started", device=visit.device_id, release=update.release_id)
        report = await push_update(
            reconnect,
            release,
            policy=self.update_policy,
            on_progress=lambda p: self._progress(update, p),
        )
        result = report.result
        visit.update, visit.reason, visit.bytes_sent = (
            result.outcome.value,
            result.reason,
            result.bytes_sent,
        )
        log_event(
            "update_finished",
            device=visit.device_id,
            outcome=result.outcome.value,
            reason=result.reason or "",
            sent=result.bytes_sent,
            resent=result.resent_bytes,
        )
        match result.outcome:
            case Outcome.APPLIED | Outcome.ALREADY_CURRENT:
                self._report_update(update, "installed", progress=1.0)
                sha = app.content_sha256.hex() if app else status.app_sha256.hex()
                self._confirm(update, sha)
            case Outcome.REJECTED:
                self._fail(update, result.reason or "rejected by the device")
            case Outcome.INTERRUPTED:
                self.interrupted(update, result.reason or "interrupted")

    def _progress(self, update: DesiredUpdate, progress: TransferProgress) -> None:
        if progress.phase not in (Phase.PART_DATA, Phase.PART_BEGIN, Phase.PART_END):
            return
        if not self.progress_due(update.device_id):
            return
        fraction = round(progress.acked / progress.total, 4) if progress.total else 0.0
        log_event("transfer", device=update.device_id, acked=progress.acked, total=progress.total)
        self._report_update(update, "transferring", progress=fraction)

    def report_update(
        self,
        update: DesiredUpdate,
        state: str,
        *,
        progress: float | None = None,
        reason: str | None = None,
        device_state: dict[str, Any] | None = None,
    ) -> None:
        """Journal an update report and checkpoint (``failed`` goes through :meth:`fail`)."""
        self._report_update(
            update, state, progress=progress, reason=reason, device_state=device_state
        )

    def fail(self, update: DesiredUpdate, reason: str) -> None:
        """Report ``failed`` with ``reason`` and back off before the next attempt."""
        self._fail(update, reason)

    def interrupted(self, update: DesiredUpdate, reason: str) -> None:
        """The link broke mid-update: keep the stage, count a failure, back off."""
        checkpoint = self.journal.checkpoint(update.device_id, update.release_id)
        self.journal.set_checkpoint(
            update.device_id,
            update.release_id,
            "transferring",
            progress=checkpoint.progress if checkpoint else None,
            failed=True,
            retry_at=self._retry_at(update),
            reason=reason,
        )
        log_event("update_interrupted", 30, device=update.device_id, reason=reason)

    def progress_due(self, device_id: str) -> bool:
        """Whether a ``transferring`` report is due (throttled per device)."""
        now = time.monotonic()
        last = self._progress_at.get(device_id)
        if last is not None and now - last < self.config.progress_interval:
            return False
        self._progress_at[device_id] = now
        return True

    def report_sighting(self, device_id: str, rssi: int, state: dict[str, Any]) -> None:
        """Journal a sighting report."""
        self.journal.add_report(
            {
                "device_id": device_id,
                "kind": "sighting",
                "at": self._at(),
                "rssi": max(-200, min(50, rssi)),
                "state": state,
            }
        )

    def now(self) -> float:
        """Unix time from the agent's clock."""
        return self._now()

    def visit_due(self, update: DesiredUpdate) -> bool:
        """Worth a connection now: its update can start, or no sighting for a while."""
        if self._ready(update) and self.update_allowed_now():
            return True
        last = self._visited.get(update.device_id)
        return last is None or time.monotonic() - last >= self.config.sighting_interval

    def mark_visited(self, device_id: str) -> None:
        """A connection to the device succeeded now."""
        self._visited[device_id] = time.monotonic()

    def ready(self, update: DesiredUpdate) -> bool:
        """Every part of ``update`` is in the blob cache."""
        return self._ready(update)

    def update_allowed_now(self) -> bool:
        """The maintenance window (if any) allows starting an update now."""
        window = self.config.maintenance_window
        return window is None or window.allows(self.clock.now())

    def _confirm(self, update: DesiredUpdate, app_sha256: str) -> None:
        self._report_update(update, "confirmed_running", device_state={"app_sha256": app_sha256})

    def _fail(self, update: DesiredUpdate, reason: str) -> None:
        self._report_update(update, "failed", reason=reason, retry_at=self._retry_at(update))

    def _retry_at(self, update: DesiredUpdate) -> float:
        checkpoint = self.journal.checkpoint(update.device_id, update.release_id)
        failures = (checkpoint.failures if checkpoint else 0) + 1
        delay = min(self.config.retry_max, self.config.retry_base * 2.0 ** (failures - 1))
        return self._now() + delay

    def _report_update(
        self,
        update: DesiredUpdate,
        state: str,
        *,
        progress: float | None = None,
        reason: str | None = None,
        retry_at: float = 0.0,
        device_state: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "device_id": update.device_id,
            "kind": "update",
            "at": self._at(),
            "update": {"release_id": update.release_id, "state": state},
        }
        if progress is not None:
            body["update"]["progress"] = progress
        if reason is not None:
            body["update"]["reason"] = reason[:1000]
        if device_state is not None:
            body["state"] = device_state
        self.journal.add_report(body)
        self.journal.set_checkpoint(
            update.device_id,
            update.release_id,
            state,
            progress=progress,
            failed=state == "failed",
            retry_at=retry_at,
            reason=reason,
        )
        log_event("report", device=update.device_id, state=state, reason=reason or "")

    def _report_sighting(self, status: DeviceStatus, rssi: int) -> None:
        self.report_sighting(
            status.device_id_hex,
            rssi,
            {
                "device_os_version": status.device_os_version,
                "app_sha256": status.app_sha256.hex(),
                "app_module_version": status.app_module_version,
                "product_version": status.product_version,
                "release_counter": status.release_counter,
            },
        )

    # --- loops ------------------------------------------------------------------------

    async def online_step(self, summary: RunSummary) -> None:
        """Sync and upload once; being offline or a 5xx is not an error here."""
        try:
            summary.downloaded_bytes += await self.sync()
            reports, events = await self.upload()
        except (Offline, ServerError) as exc:
            log_event("offline", 30, error=str(exc))
            summary.online = False
            return
        except RejectedError as exc:  # a sync the server refuses: try again next round
            log_event("server_refused", 40, error=str(exc))
            summary.online = True
            return
        summary.online = True
        summary.uploaded_reports += reports
        summary.uploaded_events += events

    async def run_once(self) -> RunSummary:
        """Sync, one pass over the devices in range, upload; for tests and cron."""
        summary = RunSummary()
        await self.online_step(summary)
        summary.devices = await self.ble_pass()
        if summary.online or not summary.devices:
            await self.online_step(summary)
        summary.desired = len(self.desired)
        summary.pending = self.journal.counts()
        return summary

    async def run(self, stop: asyncio.Event) -> None:
        """Both loops until ``stop`` is set.

        Being offline is routine and a BLE stack error is retried after a pause; what
        only an operator can fix (a refused token) stops both loops and is raised.
        """

        async def pause(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        async def online() -> None:
            while not stop.is_set():
                await self.online_step(RunSummary())
                await pause(self.config.sync_interval)

        async def ble() -> None:
            while not stop.is_set():
                try:
                    await self.ble_pass()
                except (TransportError, OSError) as exc:
                    log_event("ble_error", 40, error=str(exc))
                    await pause(BLE_ERROR_PAUSE)
                await pause(0.5)

        tasks = {asyncio.create_task(online()), asyncio.create_task(ble())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises what stopped it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _release_counter(update: DesiredUpdate) -> int | None:
    try:
        return decode_manifest(update.manifest).release_counter
    except ProtocolError:
        return None
