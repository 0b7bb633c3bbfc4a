"""Run a client UpdateSession against a DeviceSession with no transport: values are
handed across directly, in order, with optional faults (drop, disconnect)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bluemule.protocol.client_session import (
    Read,
    ReconnectAfterReset,
    UpdateResult,
    UpdateSession,
    WaitForNotification,
    Write,
)
from bluemule.protocol.constants import CONTROL_UUID, DATA_UUID
from bluemule.protocol.device_services import DeviceServices
from bluemule.protocol.device_session import DeviceSession, Notify, ResetDevice


class ResettableDevice(DeviceServices, Protocol):
    """Device services that can also be reset (what APPLY triggers)."""

    def reset(self) -> None:
        """Reset: the bootloader applies what was staged, then the device boots."""


@dataclass
class Faults:
    """Which DATA writes to drop (by index) and after how many DATA bytes to disconnect."""

    drop_writes: set[int] = field(default_factory=set)
    disconnect_after_bytes: list[int] = field(default_factory=list)
    notifications: bool = True


@dataclass
class PairStats:
    data_writes: int = 0
    data_bytes: int = 0
    disconnects: int = 0


def run_pair(
    client: UpdateSession,
    device: ResettableDevice,
    *,
    faults: Faults | None = None,
    mtu: int = 247,
    on_reset: Callable[[], None] | None = None,
    max_steps: int = 200_000,
) -> tuple[UpdateResult, PairStats]:
    faults = faults or Faults()
    stats = PairStats()
    session = DeviceSession(device)
    session.on_connect(mtu)
    inbox: deque[tuple[str, bytes]] = deque()
    cut = sorted(faults.disconnect_after_bytes)

    def deliver(outputs: list[Notify | ResetDevice]) -> bool:
        reset = False
        for out in outputs:
            if isinstance(out, Notify):
                if faults.notifications:
                    inbox.append((out.uuid, out.value))
            else:
                reset = True
        return reset

    def reboot() -> None:
        nonlocal session
        device.reset()
        if on_reset:
            on_reset()
        session = DeviceSession(device)
        session.on_boot(app_healthy=True)
        session.on_connect(mtu)

    for _ in range(max_steps):
        action = client.next_action()
        if action is None:
            assert client.result is not None
            return client.result, stats
        match action:
            case Write(uuid=uuid, value=value):
                if uuid == DATA_UUID:
                    index = stats.data_writes
                    stats.data_writes += 1
                    if cut and stats.data_bytes >= cut[0]:
                        cut.pop(0)
                        stats.disconnects += 1
                        inbox.clear()
                        client.on_disconnected()
                        session.on_connect(mtu)
                        client.on_reconnected()
                        continue
                    stats.data_bytes += len(value) - 5
                    if index in faults.drop_writes:
                        continue
                    deliver(session.handle_data(value))
                elif uuid == CONTROL_UUID and deliver(session.handle_control(value)):
                    reboot()
            case Read(uuid=uuid):
                client.on_read(uuid, session.read(uuid))
            case WaitForNotification():
                if inbox:
                    client.on_notification(*inbox.popleft())
                else:
                    client.on_timeout()
            case ReconnectAfterReset():
                inbox.clear()
                client.on_reconnected()
    raise AssertionError("the sessions did not finish")
