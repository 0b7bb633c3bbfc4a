"""bleak adapter without a Bluetooth stack: a tiny fake of the BleakClient surface it uses.

bleak cannot run here (no BlueZ/D-Bus), so these tests check the import guard, the
argument mapping (``response`` always explicit, bytes in and out, MTU source) and the
disconnect handling; the real BleakClient is only checked for type compatibility.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bleak
import pytest

from bluemule.transport.base import LinkLostError, PeerNotFoundError, TransportError
from bluemule.transport.bleak_link import (
    BLE_EXTRA_HINT,
    BleakCentralLink,
    BleakClientLike,
    require_bleak,
)
from tests.transport.helpers import CONTROL, DATA, SERVICE, STATUS, run


def _real_client_fits(client: bleak.BleakClient) -> BleakClientLike:
    return client  # mypy checks that the Protocol matches bleak's signatures


@dataclass
class FakeChar:
    uuid: str
    properties: Sequence[str]
    max_write_without_response_size: int = 20


@dataclass
class FakeService:
    characteristics: Sequence[FakeChar]


@dataclass
class FakeServices:
    services: dict[str, FakeService]

    def get_service(self, specifier: str) -> FakeService | None:
        return self.services.get(specifier)


@dataclass
class FakeClient:
    chars: list[FakeChar]
    service_uuid: str = SERVICE
    mtu_size: int = 23
    is_connected: bool = False
    hang_connect: bool = False
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    notify: Callable[[Any, bytearray], None] | None = None
    pending: asyncio.Future[bytearray] | None = None
    on_disconnect: Callable[[], None] | None = None

    @property
    def services(self) -> FakeServices:
        return FakeServices({self.service_uuid: FakeService(self.chars)})

    async def connect(self) -> None:
        if self.hang_connect:
            await asyncio.get_running_loop().create_future()
        self.is_connected = True

    async def disconnect(self) -> None:
        self.calls.append(("disconnect",))
        self.drop()

    def drop(self) -> None:
        """What the OS does on a link loss: not connected, then the callback."""
        self.is_connected = False
        assert self.on_disconnect is not None
        self.on_disconnect()

    async def read_gatt_char(self, char_specifier: Any) -> bytearray:
        self.calls.append(("read", char_specifier.uuid))
        if self.pending is not None:
            return await self.pending
        return bytearray(b"\x01\x02")

    async def write_gatt_char(self, char_specifier: Any, data: bytes, response: bool) -> None:
        self.calls.append(("write", char_specifier.uuid, data, response))
        if not self.is_connected:
            raise bleak.exc.BleakError("Not connected")

    async def start_notify(
        self, char_specifier: Any, callback: Callable[[Any, bytearray], None]
    ) -> None:
        self.calls.append(("start_notify", char_specifier.uuid))
        self.notify = callback


def _chars(wwr_size: int = 244) -> list[FakeChar]:
    return [
        FakeChar(DATA.upper(), ["write-without-response", "write"], wwr_size),
        FakeChar(CONTROL, ["write"]),
        FakeChar(STATUS, ["read", "notify"]),
    ]


async def _open(client: FakeClient, *, timeout: float = 5.0) -> BleakCentralLink:
    async def factory(
        address: str, on_disconnect: Callable[[], None], service_uuid: str, timeout: float
    ) -> BleakClientLike:
        assert address == "AA:BB:CC:DD:EE:FF"
        assert service_uuid == SERVICE
        client.on_disconnect = on_disconnect
        return client

    return await BleakCentralLink.connect(
        "AA:BB:CC:DD:EE:FF", SERVICE.upper(), timeout=timeout, client_factory=factory
    )


def test_argument_mapping() -> None:
    async def main() -> None:
        client = FakeClient(_chars())
        link = await _open(client)
        assert link.connected
        assert link.mtu == 247  # max_write_without_response_size + 3, not mtu_size
        await link.write(DATA, b"chunk", response=False)
        await link.write(DATA, b"req", response=True)
        await link.write(CONTROL.upper(), b"c", response=True)
        assert await link.read(STATUS) == b"\x01\x02"
        received: list[bytes] = []
        await link.subscribe(STATUS, received.append)
        assert client.notify is not None
        client.notify(object(), bytearray(b"note"))
        assert received == [b"note"] and type(received[0]) is bytes
        assert client.calls == [
            ("write", DATA.upper(), b"chunk", False),
            ("write", DATA.upper(), b"req", True),
            ("write", CONTROL, b"c", True),
            ("read", STATUS),
            ("start_notify", STATUS),
        ]
        with pytest.raises(ValueError, match="exceed"):
            await link.write(DATA, bytes(245), response=False)
        with pytest.raises(TransportError, match="no characteristic"):
            await link.read("6fa900ff-5c4e-48a8-94f4-8030546f36fc")

    run(main)


def test_mtu_falls_back_to_mtu_size() -> None:
    async def main() -> None:
        client = FakeClient([FakeChar(STATUS, ["read"])], mtu_size=185)
        link = await _open(client)
        assert link.mtu == 185

    run(main)


def test_disconnect_callback_fails_pending_and_new_operations() -> None:
    async def main() -> None:
        client = FakeClient(_chars())
        client.pending = asyncio.get_running_loop().create_future()
        link = await _open(client)
        read = asyncio.create_task(link.read(STATUS))
        while not client.calls:  # until the read is issued
            await asyncio.sleep(0)
        client.drop()
        with pytest.raises(LinkLostError):
            await read
        await link.wait_disconnected()
        assert not link.connected
        with pytest.raises(LinkLostError):
            await link.write(DATA, b"x", response=False)
        await link.disconnect()  # already down: no call
        assert ("disconnect",) not in client.calls

    run(main)


def test_stack_error_after_silent_drop_is_link_lost() -> None:
    async def main() -> None:
        client = FakeClient(_chars())
        link = await _open(client)
        client.is_connected = False  # the OS knows, the callback has not run yet
        with pytest.raises(LinkLostError):
            await link.write(DATA, b"x", response=True)
        assert not link.connected

    run(main)


def test_local_disconnect() -> None:
    async def main() -> None:
        client = FakeClient(_chars())
        link = await _open(client)
        await link.disconnect()
        await link.wait_disconnected()
        assert client.calls == [("disconnect",)]

    run(main)


def test_missing_service_and_timeout_are_peer_not_found() -> None:
    async def main() -> None:
        client = FakeClient(_chars(), service_uuid="6fa90001-5c4e-48a8-94f4-000000000000")
        with pytest.raises(PeerNotFoundError, match="no service"):
            await _open(client)
        assert client.calls == [("disconnect",)]
        with pytest.raises(PeerNotFoundError, match="no answer"):
            await _open(FakeClient(_chars(), hang_connect=True), timeout=0.05)

    run(main)


def test_import_guard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_bleak() is bleak
    monkeypatch.setitem(sys.modules, "bleak", None)  # what a missing package looks like
    with pytest.raises(ImportError, match=r"pip install 'bluemule\[ble\]'") as info:
        require_bleak()
    assert str(info.value) == BLE_EXTRA_HINT
