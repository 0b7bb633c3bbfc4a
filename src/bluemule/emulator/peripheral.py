"""An emulated device on BLE: the protocol's device role behind a GATT server.

:class:`EmulatedPeripheral` is a :class:`~bluemule.transport.base.PeripheralHandler`:
the transport (Bumble's virtual link or a real controller) calls it in arrival order,
it runs the sans-IO :class:`~bluemule.protocol.device_session.DeviceSession`, sends
its notifications, and on APPLY drops the link, resets the emulated device (the
bootloader applies the staged app) and boots a fresh session, as the real device does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from bluemule.emulator.device import EmulatedDevice
from bluemule.emulator.events import PublishedEvent
from bluemule.emulator.services import EmulatorServices
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
        self.session = self._boot_session()
        self._advertised = b""
        self.link: PeripheralLink | None = None
        self.resets = 0
        self._outbox: asyncio.Queue[Output] = asyncio.Queue()
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
        """The service to serve and the advertisement for this device."""
        return GattServerSpec(
            service_uuid=SERVICE_UUID,
            characteristics=GATT_CHARACTERISTICS,
            device_name=f"bluemule-{self.device.device_id[-6:]}",
            advertising_data=self._advertise_now(),
            refresh_advertising_data=self._advertise_now,
            service_uuid_in_scan_response=True,
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

    def on_disconnect(self) -> None:
        self.link = None

    def on_read(self, uuid: str) -> bytes:
        if self.link is not None:  # the MTU exchange completes after the connection
            self.session.on_connect(self.link.mtu)
        return self.session.read(uuid)

    def on_write(self, uuid: str, value: bytes) -> None:
        if uuid == CONTROL_UUID:
            self._emit(self.session.handle_control(value))
        elif uuid == DATA_UUID:
            self._emit(self.session.handle_data(value))

    # -------------------------------------------------------------------- outputs

    def _emit(self, outputs: list[Output]) -> None:
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
