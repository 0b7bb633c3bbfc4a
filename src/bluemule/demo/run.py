"""``run_demo``: the whole system on one machine, from nothing, and back to nothing.

Steps (``docs/demo.md``):

1. a temporary directory; the fleet server on it (SQLite) on 127.0.0.1, a free port;
2. a webhook receiver on 127.0.0.1 (or the given URL), registered as a webhook for
   ``demo/…`` events, with the event id in a header;
3. a relay of site ``demo``, and N devices registered (groups ``pilot`` / ``fleet``);
4. N emulated devices on a Bumble virtual link, trusting the server's signing key; each
   publishes two events while offline;
5. a relay agent (the real :class:`~bluemule.relay.agent.RelayAgent`) over the link: a
   first pass reports what the devices run and carries their events to the server;
6. release 2 with three assets is uploaded per platform, published, and rolled out in
   two stages (pilots, then everyone once every pilot runs it);
7. relay passes until every rollout finishes, devices publishing between passes; then
   each device publishes ``demo/updated`` and the relay drains every queue;
8. wait until the receiver has every event (and a little longer, to catch duplicates);
9. the summary, from the server's rollout status and the receiver's log.

Everything runs in this process (threads for the server and the receiver); every exit
path — success, failure, Ctrl-C — stops them and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from bluemule.demo.admin import AdminClient
from bluemule.demo.fleet import (
    EVENT_PREFIX,
    PILOT_GROUP,
    PLATFORMS,
    DemoFleet,
    DevicePlan,
    demo_fleet,
    plan_devices,
    release_bundle,
)
from bluemule.demo.model import (
    DemoError,
    DemoOptions,
    DemoStatus,
    DemoSummary,
    DemoUI,
    DeviceRow,
    QuietUI,
)
from bluemule.demo.receiver import EVENT_ID_HEADER, WebhookReceiver
from bluemule.demo.serving import ServerThread
from bluemule.relay.agent import RelayAgent
from bluemule.relay.config import RelayConfig
from bluemule.relay.scan import BumbleScanner
from bluemule.server.config import Settings

SITE: Final = "demo"
REFRESH_SECONDS: Final = 0.25
QUIET_SECONDS: Final = 1.0
"""After the last expected event arrived, wait this long for duplicates."""
STALL_SECONDS: Final = 10.0
"""Stop waiting for deliveries when none arrived for this long (a receiver that refuses:
the server retries after 30 s and 60 s, longer than a demo should wait)."""
DURING_ROLLOUT_EVENTS: Final = 2
"""Passes after which every device publishes a reading while the rollout runs."""


def run_demo(options: DemoOptions, ui: DemoUI | None = None) -> DemoSummary:
    """Run the demo (see the module notes); returns its summary.

    Raises:
        DemoError: it could not be set up (nothing is left behind either way).
    """
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from bluemule.server.app import create_app  # noqa: PLC0415
    from bluemule.server.files import DataDirError, bootstrap  # noqa: PLC0415

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_loopback_bypasses_proxies())
        temp = tempfile.TemporaryDirectory(prefix="bluemule-demo-", ignore_cleanup_errors=True)
        root = Path(stack.enter_context(temp))
        settings = Settings(data_dir=root / "server", webhook_poll_seconds=0.2)
        try:
            bootstrap(settings)
            app = create_app(settings)
        except (DataDirError, SQLAlchemyError) as exc:
            raise DemoError(f"cannot set up the fleet server: {exc}") from None
        stack.callback(app.state.bluemule.engine.dispose)
        server = ServerThread(app)
        stack.callback(server.stop)
        server.start()
        receiver: WebhookReceiver | None = None
        if options.webhook_url is None:
            receiver = WebhookReceiver()
            stack.callback(receiver.close)
        demo = _Demo(
            options,
            ui or QuietUI(),
            root=root,
            settings=settings,
            server_url=server.url,
            receiver=receiver,
            signing_key=app.state.bluemule.signing_key.public_key,
        )
        summary: DemoSummary = asyncio.run(demo.run(started))
    return summary


@contextlib.contextmanager
def _loopback_bypasses_proxies() -> Iterator[None]:
    """Every HTTP client made meanwhile talks to 127.0.0.1 directly, whatever proxy the
    environment names (``NO_PROXY``); a ``--webhook-url`` elsewhere still uses it."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    given = ",".join(v for v in saved.values() if v)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(
        filter(None, ["127.0.0.1", "localhost", given])
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Demo:
    """One run's state, on the event loop."""

    def __init__(
        self,
        options: DemoOptions,
        ui: DemoUI,
        *,
        root: Path,
        settings: Settings,
        server_url: str,
        receiver: WebhookReceiver | None,
        signing_key: bytes,
    ) -> None:
        self.options = options
        self.ui = ui
        self.root = root
        self.settings = settings
        self.server_url = server_url
        self.receiver = receiver
        self.webhook_url = options.webhook_url or (receiver.url if receiver else "")
        self.signing_key = signing_key
        self.plans = plan_devices(options.devices, options.seed)
        self.admin = AdminClient(server_url, settings.admin_token_path.read_text().strip())
        self.status = DemoStatus(
            devices=[DeviceRow(p.device_id, p.platform, 1 if p.pilot else 2) for p in self.plans]
        )
        self.releases: dict[str, int] = {}
        self.rollouts: dict[str, int] = {}
        self.rollout_status: dict[str, dict[str, Any]] = {}
        self.webhook_id = 0
        self.fleet: DemoFleet | None = None
        self.agent: RelayAgent | None = None
        self.deadline = 0.0

    # --- the run --------------------------------------------------------------------

    async def run(self, started: float) -> DemoSummary:
        self.deadline = time.monotonic() + self.options.seconds_allowed
        try:
            token = await self._register()
            devices = self.root / "devices"
            async with demo_fleet(devices, self.plans, self.signing_key, self.options.seed) as f:
                self.fleet = f
                self.agent = self._agent(f, token)
                try:
                    refresher = asyncio.create_task(self._refresh_forever())
                    try:
                        await self._play(f, self.agent)
                        await self._wait_for_deliveries(f)
                        await self._refresh()
                    finally:
                        refresher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await refresher
                    summary = await self._summary(f, time.monotonic() - started)
                    self.status.phase = "done"
                    self.ui.show(self.status)
                    if self.options.keep:
                        await self._keep(self.agent, summary)
                    return summary
                finally:
                    await self.agent.aclose()
        finally:
            await self.admin.aclose()

    def _agent(self, fleet: DemoFleet, token: str) -> RelayAgent:
        config = RelayConfig(
            server_url=self.server_url,
            token=token,
            cache_dir=self.root / "relay",
            transport="bumble:virtual",
            sync_interval=2.0,
            scan_seconds=0.5,
            retry_base=1.0,
            progress_interval=0.1,
        )
        scanner = BumbleScanner(fleet.link.central)
        return RelayAgent(config, scanner, scanner.connector)

    async def _register(self) -> str:
        self.status.phase = "registering the relay, the webhook and the devices"
        self.ui.show(self.status)
        token = await self.admin.add_relay("demo-relay", SITE)
        self.webhook_id = await self.admin.add_webhook(
            EVENT_PREFIX, self.webhook_url, {EVENT_ID_HEADER: "{{{PARTICLE_EVENT_ID}}}"}
        )
        for plan in self.plans:
            await self.admin.add_device(
                plan.device_id, plan.platform, plan.product_id, SITE, [plan.group]
            )
        return token

    async def _play(self, fleet: DemoFleet, agent: RelayAgent) -> None:
        self.status.phase = "devices publish events while offline"
        await fleet.publish_all("boot")
        await fleet.publish_all("reading")
        self.status.phase = "the relay's first pass: sightings and events"
        await agent.run_once()
        await self._start_rollouts()
        passes = 0
        while not self._rollouts_over() and not self._late():
            self.status.phase = f"rollout: relay pass {passes + 1}"
            await agent.run_once()
            passes += 1
            await self._refresh()
            if passes <= DURING_ROLLOUT_EVENTS and not self._rollouts_over():
                await fleet.publish_all("reading")
        self.status.phase = "updated devices report in; the relay drains every queue"
        await fleet.publish_all("updated")
        while any(d.device.queued_events()["queued"] for d in fleet.devices) or any(
            agent.journal.counts().values()
        ):
            if self._late():
                return  # the summary says what is missing
            await agent.run_once()

    async def _start_rollouts(self) -> None:
        for platform in PLATFORMS:
            if not any(p.platform == platform for p in self.plans):
                continue
            self.status.phase = f"uploading release 2 ({platform}, 3 assets) and rolling it out"
            filename, bundle = release_bundle(platform)
            release = await self.admin.upload_release(bundle, filename, "bluemule demo")
            release_id = int(release["id"])
            self.releases[platform] = release_id
            await self.admin.publish(release_id)
            stages: list[dict[str, Any]] = [{"groups": [PILOT_GROUP]}, {"percent": 100}]
            status = await self.admin.start_rollout(release_id, stages, 1.0, 0.5)
            self.rollouts[platform] = int(status["id"])
            self.rollout_status[platform] = status

    def _rollouts_over(self) -> bool:
        """Every rollout finished or paused (paused: a stage failed; nothing more happens)."""
        return all(s["status"] in ("finished", "paused") for s in self.rollout_status.values())

    def _late(self) -> bool:
        return time.monotonic() > self.deadline

    async def _wait_for_deliveries(self, fleet: DemoFleet) -> None:
        self.status.phase = "the fleet server delivers the events to the webhook"
        expected = sum(len(d.published) for d in fleet.devices)
        count, moved_at = 0, time.monotonic()
        while count < expected:
            if self._late() or time.monotonic() - moved_at > STALL_SECONDS:
                return  # the summary says how many are missing
            await asyncio.sleep(0.1)
            now = (await self._delivered())[0]
            if now > count:
                count, moved_at = now, time.monotonic()
        await asyncio.sleep(QUIET_SECONDS)

    async def _keep(self, agent: RelayAgent, summary: DemoSummary) -> None:
        stop = asyncio.Event()
        relay = asyncio.create_task(agent.run(stop))
        try:
            await self.ui.keep(summary)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await relay

    # --- what the receiver and the server say ---------------------------------------

    async def _delivered(self) -> tuple[int, int, Counter[str]]:
        """(distinct events delivered, duplicate deliveries, distinct per device)."""
        if self.receiver is not None:
            log = self.receiver.log
            return log.distinct(), log.duplicates(), log.per_device()
        attempts = await self.admin.deliveries(self.webhook_id)
        delivered = [a["event_id"] for a in attempts if a["outcome"] == "delivered"]
        distinct = set(delivered)
        per_device = Counter(event_id.partition(":")[0] for event_id in distinct)
        return len(distinct), len(delivered) - len(distinct), per_device

    async def _summary(self, fleet: DemoFleet, seconds: float) -> DemoSummary:
        states = self._device_states()
        distinct, duplicates, _ = await self._delivered()
        return DemoSummary(
            devices=len(self.plans),
            updated=sum(1 for s in states.values() if s == "confirmed_running"),
            failed=sum(1 for s in states.values() if s == "failed"),
            events_published=sum(len(d.published) for d in fleet.devices),
            events_delivered=distinct,
            duplicate_deliveries=duplicates,
            seconds=round(seconds, 2),
            dashboard_url=f"{self.server_url}/dashboard/",
            server_url=self.server_url,
            admin_token_path=self.settings.admin_token_path,
        )

    def _device_states(self) -> dict[str, str]:
        """Each device's state in its rollout, as the server last said."""
        return {
            d["device_id"]: d["state"]
            for status in self.rollout_status.values()
            for d in status["devices"]
        }

    # --- the live display -------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        while True:
            with contextlib.suppress(DemoError):
                await self._refresh()
            await asyncio.sleep(REFRESH_SECONDS)

    async def _refresh(self) -> None:
        for platform, rollout_id in list(self.rollouts.items()):  # may grow meanwhile
            self.rollout_status[platform] = status = await self.admin.rollout(rollout_id)
            stages = len(status["stages"])
            self.status.rollouts[platform] = (
                f"stage {status['stage'] + 1}/{stages} {status['status']}"
            )
        _, _, delivered = await self._delivered()
        for row, plan in zip(self.status.devices, self.plans, strict=True):
            self._refresh_row(row, plan, delivered[plan.device_id])
        self.ui.show(self.status)

    def _stage_open(self, plan: DevicePlan) -> bool | None:
        status = self.rollout_status.get(plan.platform)
        if status is None:
            return None
        return bool(status["status"] == "finished" or (2 - plan.pilot) <= status["stage"] + 1)

    def _refresh_row(self, row: DeviceRow, plan: DevicePlan, delivered: int) -> None:
        row.delivered = delivered
        if self.fleet is not None:
            device = next(d for d in self.fleet.devices if d.plan is plan)
            row.published = len(device.published)
        server_state = self._device_states().get(plan.device_id)
        release_id = self.releases.get(plan.platform)
        relay_view = (
            self.agent.journal.checkpoint(plan.device_id, release_id)
            if self.agent is not None and release_id is not None
            else None
        )
        if server_state in {"confirmed_running", "failed"}:
            row.state = server_state
        elif relay_view is not None:
            row.state = relay_view.stage
        elif server_state == "pending" and self._stage_open(plan) is False:
            row.state = "waiting"  # for its stage to open
        elif server_state is not None:
            row.state = server_state
        else:
            row.state = "running v1"
        if row.state in ("installed", "confirmed_running"):
            row.progress = 1.0
        elif relay_view is not None and relay_view.progress is not None:
            row.progress = relay_view.progress
