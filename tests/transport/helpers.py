"""Shared pieces for the transport tests: a GATT spec, a recording handler, a runner."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any

from bluemule.transport.base import (
    CentralLink,
    CharacteristicSpec,
    CharProperty,
    GattServerSpec,
    PeripheralLink,
)

SERVICE = "6fa90001-5c4e-48a8-94f4-8030546f36fc"
DATA = "6fa90002-5c4e-48a8-94f4-8030546f36fc"  # write without response (and with)
CONTROL = "6fa90003-5c4e-48a8-94f4-8030546f36fc"  # write with response
STATUS = "6fa90004-5c4e-48a8-94f4-8030546f36fc"  # read + notify: bytes received on DATA

ADVERTISING = bytes((5, 0xFF, 0xFF, 0xFF, 0xB1, 0x0E))  # manufacturer data, test company id


def make_spec(service: str = SERVICE, name: str = "bluemule-test") -> GattServerSpec:
    return GattServerSpec(
        service_uuid=service,
        characteristics=(
            CharacteristicSpec(DATA, CharProperty.WRITE_WITHOUT_RESPONSE | CharProperty.WRITE),
            CharacteristicSpec(CONTROL, CharProperty.WRITE),
            CharacteristicSpec(STATUS, CharProperty.READ | CharProperty.NOTIFY),
        ),
        device_name=name,
        advertising_data=ADVERTISING,
    )


SPEC = make_spec()


class Recorder:
    """A :class:`PeripheralHandler` that records everything, in order.

    ``on_data`` (optional) is called after each DATA write with the byte count so far.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes: list[tuple[str, bytes]] = []
        self.events: list[str] = []
        self.link: PeripheralLink | None = None
        self.on_data: Callable[[int], None] | None = None
        self.fail_control = False
        self._changed = asyncio.Event()

    def on_connect(self, link: PeripheralLink) -> None:
        self.link = link
        self.events.append("connect")
        self._changed.set()

    def on_disconnect(self) -> None:
        self.link = None
        self.events.append("disconnect")
        self._changed.set()

    def on_write(self, uuid: str, value: bytes) -> None:
        self.writes.append((uuid, value))
        if uuid == DATA:
            self.data += value
            if self.on_data is not None:
                self.on_data(len(self.data))
        elif uuid == CONTROL and self.fail_control:
            raise RuntimeError("handler rejects the control write")

    def on_read(self, uuid: str) -> bytes:
        assert uuid == STATUS
        return len(self.data).to_bytes(4, "little")

    async def wait_events(self, count: int) -> None:
        """Wait until ``count`` connect/disconnect events have been recorded."""
        while len(self.events) < count:
            self._changed.clear()
            await self._changed.wait()


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int = 1) -> bytes:
    """Deterministic, incompressible-looking test data."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def stream(link: CentralLink, data: bytes, *, chunk: int = 244, start: int = 0) -> None:
    """Queue ``data[start:]`` as writes without response of ``chunk`` bytes to DATA."""
    for offset in range(start, len(data), chunk):
        await link.write(DATA, data[offset : offset + chunk], response=False)


async def status(link: CentralLink) -> int:
    """Bytes the device has received (the read is a delivery barrier)."""
    return int.from_bytes(await link.read(STATUS), "little")


def run(factory: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20.0) -> None:
    """Run one test coroutine on a fresh loop; a hang fails after ``timeout`` seconds."""

    async def main() -> None:
        await asyncio.wait_for(factory(), timeout)

    asyncio.run(main())
