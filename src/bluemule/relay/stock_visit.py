"""One visit to a stock device over Device OS's control channel (EC-JPAKE + AES-CCM).

The agent sighted Particle's setup advertising (:class:`~bluemule.relay.scan.StockSighting`).
This finds which site device it is (:func:`~bluemule.relay.stock.stock_candidates`), opens
that device's sealed mobile secret in memory right before the handshake, asks the device
its id (request 20) and module info (a sighting report), and — when its release is
cached, verified (:func:`~bluemule.relay.stock.trusted_release`) and the maintenance
window allows — flashes it with :func:`bluemule.particle_ctrl.client.flash`: bootloader,
system parts, application, assets, a new handshake after every reset, and a check that
the device reports each module. Reports use the bluemule path's vocabulary.

A failed handshake is never retried in a loop: with a setup code from the server it is a
``failed`` report with the Device OS-side name and the usual backoff; a guess that fails
backs off that (device, address) pair for ``retry_max`` seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from bluemule.particle_ctrl.client import (
    DeviceInfo,
    DeviceUnreachableError,
    FlashEvent,
    FlashResult,
    NotAppliedError,
    OpenChannel,
    StepDone,
    StepProgress,
    UpdateRefusedError,
    device_info,
    flash,
    stream_opener,
)
from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.plan import InputFile, Plan, PlanError, make_plan
from bluemule.particle_ctrl.stream import ControlChannel, StreamConnector
from bluemule.protocol.constants import STATUS_UUID
from bluemule.protocol.manifest import Manifest
from bluemule.protocol.messages import DeviceStatus, decode_status
from bluemule.relay.agent import DeviceVisit
from bluemule.relay.cache import CacheError
from bluemule.relay.config import log_event, scrub_from_logs
from bluemule.relay.scan import StockSighting
from bluemule.relay.sealed import SealedSecretError, open_mobile_secret
from bluemule.relay.server_client import DesiredUpdate
from bluemule.relay.stock import (
    StockState,
    TrustError,
    device_os_files,
    running_app_sha256,
    stock_candidates,
    trusted_release,
)
from bluemule.transport.base import CentralLink, TransportError

if TYPE_CHECKING:
    from bluemule.relay.agent import RelayAgent

HANDSHAKE_TIMEOUT = 10.0
WRONG_SECRET = "WRONG_MOBILE_SECRET: the device's key confirmation does not match"  # noqa: S105 - a reason, not a secret
MIN_LINK_BACKOFF = 5.0
"""Seconds before another handshake with a device whose connection or handshake broke."""
_LINK_ERRORS = (TransportError, OSError, TimeoutError, ChannelError, HandshakeError)


async def visit_stock(agent: RelayAgent, sighting: StockSighting) -> DeviceVisit | None:
    """Identify the device behind ``sighting`` and update it if due; None if no candidate."""
    assert agent.control_connector_factory is not None
    now = agent.now()

    def backed_off(update: DesiredUpdate) -> bool:
        if agent.stock_backoff.get((update.device_id, sighting.address), 0.0) > now:
            return True
        checkpoint = agent.journal.checkpoint(update.device_id, update.release_id)
        if checkpoint is not None and (
            checkpoint.stage == "confirmed_running" or checkpoint.retry_at > now
        ):
            return True
        return not agent.visit_due(update)

    candidates, named = stock_candidates(sighting, agent.desired, backed_off)
    if not candidates:
        return None
    connect = agent.control_connector_factory(sighting.address)
    visit = DeviceVisit(candidates[0].device_id, sighting.address)
    for update in candidates:
        visit.device_id = update.device_id
        opener = _opener(agent, update, connect)
        try:
            async with opener() as channel:
                info = await device_info(channel)
        except WrongMobileSecretError:
            _handshake_refused(agent, update, sighting, named, visit)
            continue
        except SealedSecretError as exc:
            agent.fail(update, f"SEALED_SECRET: {exc}")
            visit.update, visit.reason = "rejected", str(exc)
            continue
        except (*_LINK_ERRORS, ParticleCtrlError) as exc:
            visit.reason = f"control channel: {type(exc).__name__}: {exc}"
            log_event("stock_connect_failed", 30, device=update.device_id, error=visit.reason)
            pause = max(agent.config.retry_base, MIN_LINK_BACKOFF)
            agent.stock_backoff[(update.device_id, sighting.address)] = now + pause
            return visit
        if info.device_id != update.device_id:
            visit.reason = f"the device says it is {info.device_id}"
            agent.stock_backoff[(update.device_id, sighting.address)] = now + agent.config.retry_max
            continue
        visit.connected = True
        agent.mark_visited(update.device_id)
        agent.report_sighting(update.device_id, sighting.rssi, StockState.of(info).to_json())
        await _update(agent, visit, update, info, opener=opener, platform=sighting.platform_id)
        return visit
    return visit


def _opener(agent: RelayAgent, update: DesiredUpdate, connect: StreamConnector) -> OpenChannel:
    """An opener that unseals the secret for each connection and forgets it after."""
    sealed = update.mobile_secret_sealed
    assert sealed is not None

    @contextlib.asynccontextmanager
    async def opener() -> AsyncIterator[ControlChannel]:
        secret = open_mobile_secret(agent.config.token, update.device_id, sealed)
        scrub_from_logs(secret.decode("latin-1"))
        inner = stream_opener(connect, secret, handshake_timeout=HANDSHAKE_TIMEOUT)
        del secret
        async with inner() as channel:
            yield channel

    return opener


def _handshake_refused(
    agent: RelayAgent,
    update: DesiredUpdate,
    sighting: StockSighting,
    named: bool,
    visit: DeviceVisit,
) -> None:
    visit.reason = WRONG_SECRET
    if named:  # the setup code says it is this device: the server's secret is wrong
        agent.fail(update, visit.reason)
        visit.update = "rejected"
    else:  # a guess: probably another device; do not knock again for a while
        agent.stock_backoff[(update.device_id, sighting.address)] = (
            agent.now() + agent.config.retry_max
        )
        log_event("stock_guess_refused", device=update.device_id, address=sighting.address)


def _plan(
    agent: RelayAgent, visit: DeviceVisit, update: DesiredUpdate, info: DeviceInfo, platform: int
) -> tuple[Plan, str | None] | None:
    """The verified plan and the release's app SHA-256, or None (nothing to send now)."""
    if not agent.ready(update):
        return None
    try:
        manifest, files = _trusted(agent, update, info, platform)
    except TrustError as exc:
        agent.fail(update, f"UNTRUSTED: {exc}")
        visit.update, visit.reason = "rejected", str(exc)
        log_event("stock_untrusted", 40, device=update.device_id, error=str(exc))
        return None
    app_sha = manifest.app.content_sha256.hex() if manifest.app else None
    if app_sha is not None and running_app_sha256(info) == app_sha:
        agent.report_update(update, "confirmed_running", device_state={"app_sha256": app_sha})
        visit.update = "already_current"
        return None
    if not agent.update_allowed_now():
        return None
    try:
        return make_plan(files, info.state(platform)), app_sha
    except PlanError as exc:
        agent.fail(update, f"{type(exc).__name__}: {exc}")
        visit.update, visit.reason = "rejected", str(exc)
        return None


async def _update(
    agent: RelayAgent,
    visit: DeviceVisit,
    update: DesiredUpdate,
    info: DeviceInfo,
    *,
    opener: OpenChannel,
    platform: int,
) -> None:
    planned = _plan(agent, visit, update, info, platform)
    if planned is None:
        return
    plan, app_sha = planned
    total = plan.total_bytes or 1
    before = [sum(s.size for s in plan.steps[:i]) for i in range(len(plan.steps))]

    def on_event(event: FlashEvent) -> None:
        if isinstance(event, StepProgress | StepDone):
            sent = event.sent if isinstance(event, StepProgress) else plan.steps[event.index].size
            if agent.progress_due(update.device_id) or isinstance(event, StepDone):
                fraction = round((before[event.index] + sent) / total, 4)
                agent.report_update(update, "transferring", progress=min(fraction, 1.0))

    log_event("stock_update_started", device=update.device_id, steps=len(plan.steps))
    result = await _flash(agent, visit, update, plan, opener, on_event=on_event)
    if result is None:
        return
    visit.update, visit.bytes_sent = "applied", plan.total_bytes
    agent.report_update(update, "installed", progress=1.0)
    after = StockState(None, None) if result.device is None else StockState.of(result.device)
    running = after.app_sha256
    if app_sha is None or running == app_sha:
        agent.report_update(update, "confirmed_running", device_state=after.to_json())
    else:
        agent.fail(update, f"NOT_RUNNING: the device reports app {running}")


async def _flash(
    agent: RelayAgent,
    visit: DeviceVisit,
    update: DesiredUpdate,
    plan: Plan,
    opener: OpenChannel,
    *,
    on_event: Callable[[FlashEvent], None] | None = None,
) -> FlashResult | None:
    """Run ``plan``; a refusal or a broken channel is reported and gives None."""
    try:
        return await flash(
            plan, opener, on_event, come_back_timeout=agent.update_policy.reboot_timeout
        )
    except UpdateRefusedError as exc:
        agent.fail(update, f"{exc.name}: {exc}")
        visit.update, visit.reason = "rejected", exc.name
    except (NotAppliedError, WrongMobileSecretError, SealedSecretError) as exc:
        agent.fail(update, f"{type(exc).__name__}: {exc}")
        visit.update, visit.reason = "rejected", str(exc)
    except (DeviceUnreachableError, *_LINK_ERRORS, ParticleCtrlError) as exc:
        agent.interrupted(update, f"{type(exc).__name__}: {exc}")
        visit.update, visit.reason = "interrupted", str(exc)
    return None


def _trusted(
    agent: RelayAgent, update: DesiredUpdate, info: DeviceInfo, platform: int
) -> tuple[Manifest, list[InputFile]]:
    """The verified manifest and every file to send: Device OS modules first."""
    try:
        manifest, files = trusted_release(
            update, agent.journal.pinned_release_key(), agent.cache.read
        )
        return manifest, device_os_files(update, agent.cache.read, info, platform) + files
    except CacheError as exc:
        raise TrustError(f"the cached copy cannot be read: {exc}") from None


def needs_device_os_first(agent: RelayAgent, update: DesiredUpdate, device_os: int) -> bool:
    """A bluemule device below its release's minimum Device OS, which the relay can fix
    over the control channel (modules in sync, a sealed secret, a control connector)."""
    return (
        device_os < update.min_device_os
        and bool(update.device_os_parts)
        and update.mobile_secret_sealed is not None
        and agent.control_connector_factory is not None
    )


async def _device_os_plan(
    agent: RelayAgent,
    visit: DeviceVisit,
    update: DesiredUpdate,
    opener: OpenChannel,
    platform: int,
) -> Plan | None:
    """Handshake, check the device's id, plan the Device OS modules it lacks."""
    try:
        async with opener() as channel:
            info = await device_info(channel)
        if info.device_id != update.device_id:
            raise TrustError(f"the device says it is {info.device_id}")
        files = device_os_files(update, agent.cache.read, info, platform)
        return make_plan(files, info.state(platform))
    except WrongMobileSecretError:
        visit.update, visit.reason = "rejected", WRONG_SECRET
        agent.fail(update, WRONG_SECRET)
    except (TrustError, CacheError, PlanError, SealedSecretError) as exc:
        agent.fail(update, f"{type(exc).__name__}: {exc}")
        visit.update, visit.reason = "rejected", str(exc)
    except (*_LINK_ERRORS, ParticleCtrlError) as exc:
        visit.reason = f"control channel: {type(exc).__name__}: {exc}"
        agent.interrupted(update, visit.reason)
    return None


async def install_device_os(
    agent: RelayAgent, visit: DeviceVisit, update: DesiredUpdate, platform: int
) -> bool:
    """Install the Device OS modules ``update`` lists over the control channel of the
    device at ``visit.address`` (a bluemule device: its app goes over bluemule's protocol
    afterwards). True when the device now reports them; otherwise reported and False."""
    assert agent.control_connector_factory is not None
    opener = _opener(agent, update, agent.control_connector_factory(visit.address))
    plan = await _device_os_plan(agent, visit, update, opener, platform)
    if plan is None:
        return False
    if plan.steps:
        log_event("device_os_started", device=update.device_id, steps=len(plan.steps))
        if await _flash(agent, visit, update, plan, opener) is None:
            return False
        visit.bytes_sent += plan.total_bytes
    return True


async def device_os_first(
    agent: RelayAgent,
    visit: DeviceVisit,
    update: DesiredUpdate,
    status: DeviceStatus,
    link: CentralLink,
) -> tuple[CentralLink, DeviceStatus] | None:
    """For a bluemule device below its release's minimum Device OS: leave bluemule's link,
    install the Device OS modules over the control channel, reconnect and re-read STATUS.
    Returns the link and status to continue with (unchanged when nothing was needed), or
    None when the Device OS step failed (reported)."""
    if not needs_device_os_first(agent, update, status.device_os_version):
        return link, status
    await link.disconnect()  # Device OS's channel takes its own connection
    if not await install_device_os(agent, visit, update, status.platform_id):
        return None
    link = await agent.connector_factory(visit.address)()
    return link, decode_status(await link.read(STATUS_UUID))
