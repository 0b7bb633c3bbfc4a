"""Read a stock device and update it over the control channel (async, over ``open_channel``).

* :func:`device_info`: Device OS version, modules, assets, device mode, capabilities
  (requests 20, 30, 32, 72, 90, 91; ``shared/reference/particle.md`` §3.7);
* :func:`flash_module`: one module as particle-usb's ``updateFirmware`` sends it:
  START(size) → DATA chunks of the ``chunk_size`` the device answers (at most 1024, one
  request in flight) → FINISH(validate_only=False); CANCEL on any failure; a refusal is
  a :class:`UpdateRefusedError` naming Device OS's error;
* :func:`flash`: a :class:`~bluemule.particle_ctrl.plan.Plan` step by step: after every
  reset a new connection and handshake (the mobile secret does not change), waiting for
  the device to come back, then GET_MODULE_INFO / GET_ASSET_INFO to confirm the step took
  effect — the bootloader leaves the old image in place when a staged one fails its
  checks (§3.3), which shows up here as :class:`NotAppliedError`.

Timeouts follow particle-usb: START up to 120 s (the erase runs before the reply), the
others 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.device_report import DeviceInfo, ModuleReport, modules_from_reply
from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    RequestError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.plan import (
    Plan,
    ResetAfter,
    Step,
)
from bluemule.particle_ctrl.stream import ByteStream, ControlChannel, open_channel
from bluemule.transport.base import TransportError

RT = m.RequestType
START_TIMEOUT: Final = 120.0
"""particle-usb's overall timeout for START, which replies only after the erase."""
REQUEST_TIMEOUT: Final = 60.0
FINISH_TIMEOUT: Final = 120.0
"""FINISH validates the whole module before it replies."""
CANCEL_TIMEOUT: Final = 10.0
MAX_CHUNK: Final = 1024
"""Never more than the device's 1,024-byte receive pool in flight (§5.3)."""
DEFAULT_COME_BACK_TIMEOUT: Final = 120.0
"""Seconds to wait for the device after a reset (bootloader copy, boot, advertising)."""
_RETRY_DELAYS: Final = (0.2, 0.5, 1.0, 2.0)
_UNREACHABLE: Final = (ConnectionError, OSError, TransportError, ChannelError, HandshakeError)


# -- errors -------------------------------------------------------------------------------------


class UpdateRefusedError(ParticleCtrlError):
    """The device refused a firmware-update request; ``name`` is Device OS's error."""

    def __init__(self, step: str, request: str, error: RequestError) -> None:
        super().__init__(f"{step}: the device refused {request}: {error.name} ({error.code})")
        self.step = step
        self.request = request
        self.code = error.code
        self.name = error.name


class DeviceUnreachableError(ParticleCtrlError):
    """The device did not come back (or could not be reached) in time."""


class NotAppliedError(ParticleCtrlError):
    """After the reset the device does not report the module: it kept the old image."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: the device did not take it ({detail})")
        self.step = step


# -- device info --------------------------------------------------------------------------------


async def _optional(ch: ControlChannel, request: RT) -> bytes | None:
    """The reply payload, or None when this Device OS does not support the request."""
    try:
        return await ch.request(request, timeout=REQUEST_TIMEOUT)
    except RequestError as exc:
        if exc.name in ("NOT_SUPPORTED", "NOT_FOUND"):
            return None
        raise


async def device_info(ch: ControlChannel) -> DeviceInfo:
    """Read everything ``bluemule particle info`` shows.

    A protected device answers only a few requests (§1.12): the result then has
    ``protected=True`` and what could be read. Raises :class:`RequestError` for any
    other refusal and the channel's errors.
    """
    try:
        raw_id = await _optional(ch, RT.DEVICE_ID)
        device_id = None if raw_id is None else m.GetDeviceIdReply.decode(raw_id).id
    except RequestError:
        device_id = None
    try:
        version = await _optional(ch, RT.SYSTEM_VERSION)
    except RequestError as exc:
        if exc.name == "PROTECTED":
            return DeviceInfo(device_id, None, protected=True)
        raise
    caps = await _optional(ch, RT.GET_SYSTEM_CAPABILITIES)
    mode = await _optional(ch, RT.GET_DEVICE_MODE)
    modules = await _optional(ch, RT.GET_MODULE_INFO)
    assets = await _optional(ch, RT.GET_ASSET_INFO)
    asset_reply = m.GetAssetInfoReply() if assets is None else m.GetAssetInfoReply.decode(assets)
    return DeviceInfo(
        device_id=device_id,
        device_os=None if version is None else m.GetSystemVersionReply.decode(version).version,
        modules=() if modules is None else modules_from_reply(m.GetModuleInfoReply.decode(modules)),
        available_assets=asset_reply.available,
        required_assets=asset_reply.required,
        listening=None
        if mode is None
        else m.GetDeviceModeReply.decode(mode).mode == m.DeviceMode.LISTENING_MODE,
        capabilities=None if caps is None else m.GetSystemCapabilitiesReply.decode(caps).flags,
    )


# -- one module ---------------------------------------------------------------------------------

ProgressCallback = Callable[[int, int], None]
"""``(bytes sent, total)`` after each DATA reply."""


async def flash_module(
    ch: ControlChannel,
    data: bytes,
    progress: ProgressCallback | None = None,
    *,
    name: str = "module",
) -> None:
    """START → DATA… → FINISH(validate_only=False) for one module; CANCEL on any failure.

    After FINISH Device OS applies the module and (unless resets are disabled) resets.

    Raises:
        UpdateRefusedError: a request was refused (Device OS's error named).
        ChannelError: the channel broke (a timeout closes it too).
    """
    request = "START_FIRMWARE_UPDATE"
    try:
        reply = await ch.request(
            RT.START_FIRMWARE_UPDATE,
            m.StartFirmwareUpdateRequest(len(data)).encode(),
            timeout=START_TIMEOUT,
        )
        chunk = m.StartFirmwareUpdateReply.decode(reply).chunk_size
        chunk = MAX_CHUNK if chunk <= 0 else min(chunk, MAX_CHUNK)
        request = "FIRMWARE_UPDATE_DATA"
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            await ch.request(
                RT.FIRMWARE_UPDATE_DATA,
                m.FirmwareUpdateDataRequest(piece).encode(),
                timeout=REQUEST_TIMEOUT,
            )
            if progress is not None:
                progress(offset + len(piece), len(data))
        request = "FINISH_FIRMWARE_UPDATE"
        await ch.request(
            RT.FINISH_FIRMWARE_UPDATE,
            m.FinishFirmwareUpdateRequest(validate_only=False).encode(),
            timeout=FINISH_TIMEOUT,
        )
    except RequestError as exc:
        await _cancel(ch)
        raise UpdateRefusedError(name, request, exc) from None
    except BaseException:
        await _cancel(ch)
        raise


async def _cancel(ch: ControlChannel) -> None:
    if not ch.is_open:
        return
    with contextlib.suppress(ParticleCtrlError):
        await ch.request(RT.CANCEL_FIRMWARE_UPDATE, timeout=CANCEL_TIMEOUT)


# -- connections ------------------------------------------------------------------------------

OpenChannel = Callable[[], AbstractAsyncContextManager[ControlChannel]]
"""Connect, run the handshake and yield the channel; close everything on exit."""


def stream_opener(
    connect: Callable[[], Awaitable[ByteStream]],
    mobile_secret: bytes,
    *,
    handshake_timeout: float = 10.0,
) -> OpenChannel:
    """An :data:`OpenChannel` from a byte-stream connector and the mobile secret."""

    @contextlib.asynccontextmanager
    async def opener() -> AsyncIterator[ControlChannel]:
        stream = await connect()
        async with open_channel(
            stream, mobile_secret, handshake_timeout=handshake_timeout
        ) as channel:
            yield channel

    return opener


async def _connect(
    stack: contextlib.AsyncExitStack, opener: OpenChannel, timeout: float
) -> ControlChannel:
    """Open a channel, retrying while the device is away; a wrong secret is not retried."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return await stack.enter_async_context(opener())
        except WrongMobileSecretError:
            raise
        except _UNREACHABLE as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceUnreachableError(
                    f"the device did not answer within {timeout:g} s ({type(exc).__name__}: {exc})"
                ) from None
            delay = _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)]
            attempt += 1
            await asyncio.sleep(min(delay, left))


# -- a whole plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepStarted:
    """A step's session is open; its bytes start to go."""

    index: int
    step: Step


@dataclass(frozen=True)
class StepProgress:
    """Bytes of a step acknowledged by the device."""

    index: int
    sent: int
    total: int


@dataclass(frozen=True)
class WaitingForDevice:
    """The device is resetting; reconnecting."""

    index: int


@dataclass(frozen=True)
class StepDone:
    """The device reports the step's module (or asset)."""

    index: int
    result: StepResult


FlashEvent = StepStarted | StepProgress | WaitingForDevice | StepDone


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    name: str
    kind: str
    size: int
    outcome: str
    """``installed``: the device reports it; ``stored``: an asset, reported at once."""
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FlashResult:
    """The whole update."""

    steps: tuple[StepResult, ...]
    skipped_assets: tuple[str, ...]
    device: DeviceInfo | None = None
    """What the device reported after the last step."""
    seconds: float = 0.0
    resets: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form (``bluemule particle flash --json``)."""
        return {
            "outcome": "done",
            "steps": [s.to_json() for s in self.steps],
            "skipped_assets": list(self.skipped_assets),
            "resets": self.resets,
            "seconds": round(self.seconds, 3),
            "device": None if self.device is None else self.device.to_json(),
        }


def check_step(step: Step, info: DeviceInfo) -> None:
    """Raise :class:`NotAppliedError` unless ``info`` shows ``step``'s module or asset."""
    if step.asset_name is not None:
        assert step.asset_hash is not None
        if not info.has_asset(step.asset_name, step.asset_hash):
            raise NotAppliedError(step.name, f"asset {step.asset_name!r} is not available")
        return
    found = info.module(step.function, step.index)
    if found is None:
        raise NotAppliedError(step.name, f"no {step.kind} {step.index} is reported")
    if found.hash is not None and found.hash != step.sha256:
        raise NotAppliedError(
            step.name, f"{step.kind} {step.index} reports SHA-256 {found.hash.hex()[:16]}…"
        )
    if found.version != step.version:
        raise NotAppliedError(
            step.name, f"{step.kind} {step.index} is version {found.version}, not {step.version}"
        )


async def flash(
    plan: Plan,
    opener: OpenChannel,
    progress: Callable[[FlashEvent], None] | None = None,
    *,
    come_back_timeout: float = DEFAULT_COME_BACK_TIMEOUT,
    connect_timeout: float = 30.0,
) -> FlashResult:
    """Run ``plan``: one firmware-update session per step, reconnecting after each reset.

    Raises:
        UpdateRefusedError: the device refused a request (nothing further is sent).
        NotAppliedError: after its reset the device does not report a step's module.
        DeviceUnreachableError: the device did not come back in ``come_back_timeout``.
        WrongMobileSecretError, HandshakeError, ChannelError: the channel failed.
    """
    emit = progress or (lambda _event: None)
    began = time.monotonic()
    results: list[StepResult] = []
    info: DeviceInfo | None = None
    resets = 0
    session = contextlib.AsyncExitStack()
    try:
        ch = await _connect(session, opener, connect_timeout)
        for i, step in enumerate(plan.steps):
            emit(StepStarted(i, step))
            started = time.monotonic()

            def report(sent: int, total: int, index: int = i) -> None:
                emit(StepProgress(index, sent, total))

            await flash_module(ch, step.data, report, name=step.name)
            if step.reset is ResetAfter.REQUEST:
                with contextlib.suppress(ParticleCtrlError):
                    await ch.request(RT.RESET, timeout=CANCEL_TIMEOUT)
            if step.reset is not ResetAfter.NONE:
                resets += 1
                await session.aclose()
                session = contextlib.AsyncExitStack()
                emit(WaitingForDevice(i))
                ch = await _connect(session, opener, come_back_timeout)
            info = await device_info(ch)
            check_step(step, info)
            outcome = "stored" if step.asset_name is not None else "installed"
            result = StepResult(
                step.name, step.kind, step.size, outcome, time.monotonic() - started
            )
            results.append(result)
            emit(StepDone(i, result))
        if info is None:
            info = await device_info(ch)
    finally:
        await session.aclose()
    return FlashResult(
        tuple(results),
        tuple(a.name for a in plan.skipped),
        info,
        time.monotonic() - began,
        resets,
    )


__all__ = [
    "DEFAULT_COME_BACK_TIMEOUT",
    "DeviceInfo",
    "DeviceUnreachableError",
    "FlashEvent",
    "FlashResult",
    "ModuleReport",
    "NotAppliedError",
    "OpenChannel",
    "StepDone",
    "StepProgress",
    "StepResult",
    "StepStarted",
    "UpdateRefusedError",
    "WaitingForDevice",
    "check_step",
    "device_info",
    "flash",
    "flash_module",
    "stream_opener",
]
