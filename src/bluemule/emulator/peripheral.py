"""An emulated device on BLE: the protocol's device role behind a GATT server.

:class:`EmulatedPeripheral` is a :class:`~bluemule.transport.base.PeripheralHandler`:
the transport (Bumble's virtual link or a real controller) calls it in arrival order,
it runs the sans-IO :class:`~bluemule.protocol.device_session.DeviceSession`, sends
its notifications, and on APPLY drops the link, resets the emulated device (the
bootloader applies the staged app) and boots a fresh session, as the real device does.

Device OS's own control service (``shared/reference/particle.md`` §5) is in the GATT
table too: Device OS registers it at boot unless the app disabled listening mode, and it
serves any connection, beside the app's service (§5.2). Each connection gets a new
EC-JPAKE handshake (:class:`~bluemule.emulator.control_link.ControlConnection`);
requests are answered one at a time by the same output worker that sends bluemule's
notifications, and what Device OS does after a reply (apply an update, reset) runs once
the reply has been notified. A device whose app lacks the bluemule library (``--stock``)
has only the control service and advertises like Device OS in listening mode (name
``<Platform>-<setup code>``, Particle's manufacturer data, the service UUID in the scan
response). Which services exist is decided when the peripheral is made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from bluemule.emulator.apps import LIBRARY_MARKER
from bluemule.emulator.control import DeviceOsControl
from bluemule.emulator.control_link import ControlConnection, Handle, Step, Transmit
from bluemule.emulator.device import EmulatedDevice
from bluemule.emulator.events import PublishedEvent
from bluemule.emulator.services import EmulatorServices
from bluemule.particle_ctrl import gatt as control_gatt
from bluemule.particle_ctrl.errors import ParticleCtrlError
from bluemule.protocol.constants import (
    CONTROL_UUID,
    DATA_UUID,
    PROGRESS_UUID,
    RESPONSE_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    AdvertisingFlag,
    StatusFlag,
)
from bluemule.protocol.device_session import DeviceSession, Notify, Output, ResetDevice
from bluemule.protocol.messages import Advertisement
from bluemule.transport.base import (
    CharacteristicSpec,
    CharProperty,
    GattServerSpec,
    PeripheralLink,
    ServiceSpec,
)

_AD_MANUFACTURER: Final = 0xFF
_RESET_DELAY: Final = 0.05
"""Seconds between answering APPLY and resetting, so the response gets out first."""

GATT_CHARACTERISTICS: Final = (
    CharacteristicSpec(STATUS_UUID, CharProperty.READ | CharProperty.NOTIFY),
    CharacteristicSpec(CONTROL_UUID, CharProperty.WRITE),
    CharacteristicSpec(RESPONSE_UUID, CharProperty.READ | CharProperty.NOTIFY),
    CharacteristicSpec(DATA_UUID, CharProperty.WRITE_WITHOUT_RESPONSE),
    CharacteristicSpec(PROGRESS_UUID, CharProperty.READ | CharProperty.NOTIFY),
)


CONTROL_SERVICE: Final = ServiceSpec(
    control_gatt.SERVICE_UUID, control_gatt.CONTROL_CHARACTERISTICS
)
_SETUP_NAMES: Final = {"p2": "P2"}


@dataclass(frozen=True)
class _ControlStep:
    """A step of one connection's control channel, for the output worker."""

    channel: ControlConnection
    step: Step


@dataclass(frozen=True)
class _DropControl:
    """The channel failed (e.g. a wrong mobile secret): Device OS disconnects."""

    channel: ControlConnection


def setup_name(device: EmulatedDevice) -> str:
    """``<Platform>-<setup code>``; the setup code is the device id's last 6 characters."""
    platform = device.platform
    name = _SETUP_NAMES.get(platform.name, platform.display_name.replace(" ", ""))
    return f"{name}-{device.device_id[-6:].upper()}"


def advertising_data(session: DeviceSession) -> bytes:
    """The manufacturer-data AD structure a device advertises."""
    status = session.status()
    flags = 0
    if status.flags & StatusFlag.SAFE_MODE:
        flags |= AdvertisingFlag.SAFE_MODE
    if status.flags & StatusFlag.TRANSFER_OPEN:
        flags |= AdvertisingFlag.TRANSFER_OPEN
    if status.flags & StatusFlag.UPDATE_PENDING:
        flags |= AdvertisingFlag.UPDATE_PENDING
    if status.events is not None and status.events.queued:
        flags |= AdvertisingFlag.EVENTS_QUEUED
    value = Advertisement(
        status.device_id, status.platform_id, status.release_counter, int(flags)
    ).encode()
    return bytes((len(value) + 1, _AD_MANUFACTURER)) + value


class EmulatedPeripheral:
    """The device side of one emulated device, for any BLE transport."""

    def __init__(self, device: EmulatedDevice, *, app_healthy: bool = True) -> None:
        self.device = device
        self.services = EmulatorServices(device)
        self.app_healthy = app_healthy
        app = device.installed_app
        self.stock = app is None or LIBRARY_MARKER not in app.data
        """Only Device OS's control service: the app has no bluemule library."""
        self.session = self._boot_session()
        self.control = DeviceOsControl(device)
        self.channel: ControlConnection | None = None
        self._advertised = b""
        self.link: PeripheralLink | None = None
        self.resets = 0
        self._outbox: asyncio.Queue[Output | _ControlStep | _DropControl] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.reset_done = asyncio.Event()
        self.advertising_changed: Callable[[], Awaitable[None]] | None = None
        """Set by the host to restart advertising with fresh data (e.g. the Bumble
        server's ``start``); called when an event is published while idle."""

    def _boot_session(self) -> DeviceSession:
        session = DeviceSession(self.services)
        session.on_boot(app_healthy=self.app_healthy and self.device.has_bluemule_library)
        return session

    def gatt_spec(self) -> GattServerSpec:
        """The services to serve and the advertisement for this device."""
        if self.stock:
            name = setup_name(self.device)
            code = name.rsplit("-", 1)[1]
            return control_gatt.control_service_spec(
                device_name=name,
                advertising_data=control_gatt.setup_advertising_data(
                    name.rsplit("-", 1)[0], self.device.platform_id, code
                ),
            )
        return GattServerSpec(
            service_uuid=SERVICE_UUID,
            characteristics=GATT_CHARACTERISTICS,
            device_name=f"bluemule-{self.device.device_id[-6:]}",
            advertising_data=self._advertise_now(),
            refresh_advertising_data=self._advertise_now,
            service_uuid_in_scan_response=True,
            extra_services=(CONTROL_SERVICE,),
        )

    async def publish(
        self,
        name: str,
        data: str | None = None,
        captured_at: datetime | None = None,
        *,
        clock_set: bool = True,
    ) -> PublishedEvent:
        """The app publishes an event (see :meth:`EmulatedDevice.publish`); when no relay
        is connected the advertisement is refreshed, so relays see EVENTS_QUEUED."""
        event = self.device.publish(name, data, captured_at, clock_set=clock_set)
        if self.link is None and self.advertising_changed is not None:
            await self.advertising_changed()
        return event

    def _advertise_now(self) -> bytes:
        """The advertisement for the transport to start with (remembered)."""
        self._advertised = advertising_data(self.session)
        return self._advertised

    async def keep_advertising_fresh(self, interval: float = 1.0) -> None:
        """Until cancelled: when the advertisement would change while idle (another
        process published into the state directory, say), call ``advertising_changed``."""
        while True:
            await asyncio.sleep(interval)
            stale = advertising_data(self.session) != self._advertised
            if stale and self.link is None and self.advertising_changed is not None:
                await self.advertising_changed()

    # ------------------------------------------------------------ PeripheralHandler

    def on_connect(self, link: PeripheralLink) -> None:
        self.link = link
        self.session.on_connect(link.mtu)
        self.channel = ControlConnection(self.control)  # a new handshake per connection

    def on_disconnect(self) -> None:
        self.link = None
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def on_read(self, uuid: str) -> bytes:
        if uuid == control_gatt.VERSION_UUID:
            return bytes((control_gatt.PROTOCOL_VERSION,))
        if self.link is not None:  # the MTU exchange completes after the connection
            self.session.on_connect(self.link.mtu)
        return self.session.read(uuid)

    def on_write(self, uuid: str, value: bytes) -> None:
        if uuid == control_gatt.RX_UUID:
            self._control_write(value)
        elif self.stock:
            return
        elif uuid == CONTROL_UUID:
            self._emit(self.session.handle_control(value))
        elif uuid == DATA_UUID:
            self._emit(self.session.handle_data(value))

    def _control_write(self, value: bytes) -> None:
        channel = self.channel
        if channel is None:
            return
        try:
            steps = channel.receive(value)
        except ParticleCtrlError:
            self._emit([_DropControl(channel)])
            return
        self._emit([_ControlStep(channel, step) for step in steps])

    # -------------------------------------------------------------------- outputs

    def _emit(self, outputs: Sequence[Output | _ControlStep | _DropControl]) -> None:
        """Queue outputs for one worker, so notifications leave in order and a reset
        happens only after the response before it went out."""
        if not outputs:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())
        for out in outputs:
            self._outbox.put_nowait(out)

    async def _drain(self) -> None:
        while True:
            out = await self._outbox.get()
            match out:
                case Notify(uuid=uuid, value=value):
                    link = self.link
                    if link is not None:
                        with contextlib.suppress(Exception):  # a dropped link loses it
                            await link.notify(uuid, value)
                case ResetDevice():
                    await self._reset()
                case _ControlStep(channel=channel, step=step):
                    if channel is self.channel:
                        await self._control_step(channel, step)
                case _DropControl(channel=channel):
                    if channel is self.channel and self.link is not None:
                        with contextlib.suppress(Exception):
                            await self.link.disconnect()

    async def _notify_tx(self, data: bytes) -> None:
        """Notifications of up to ATT_MTU - 3 bytes on TX (§5.3)."""
        link = self.link
        if link is None:
            return
        size = max(20, link.mtu - 3)
        for offset in range(0, len(data), size):
            with contextlib.suppress(Exception):  # a dropped link loses it
                await link.notify(control_gatt.TX_UUID, data[offset : offset + size])

    async def _control_step(self, channel: ControlConnection, step: Step) -> None:
        if isinstance(step, Transmit):
            await self._notify_tx(step.data)
            return
        assert isinstance(step, Handle)
        reply, action = channel.answer(step.request)
        await self._notify_tx(reply)
        if action is None:
            return
        await asyncio.sleep(_RESET_DELAY)  # let the reply leave before Device OS acts
        if self.control.after_reply(action):
            link = self.link
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.disconnect()
            self.resets += 1
            self.session = self._boot_session()
            self.reset_done.set()

    async def _reset(self) -> None:
        await asyncio.sleep(_RESET_DELAY)
        link = self.link
        if link is not None:
            with contextlib.suppress(Exception):
                await link.disconnect()
        self.device.reset()
        self.resets += 1
        self.session = self._boot_session()
        self.reset_done.set()

    async def aclose(self) -> None:
        """Stop the output worker."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
