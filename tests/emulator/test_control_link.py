"""The per-connection control channel of the emulated device, in process: a real
ClientSession talks to ControlConnection with its bytes fed one at a time; hostile
payloads never break the handler (fuzz)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.emulator.control import AfterReply, DeviceOsControl
from bluemule.emulator.control_link import ControlConnection, Handle, Transmit
from bluemule.emulator.setup import load_settings
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.errors import WrongMobileSecretError
from bluemule.particle_ctrl.session import ClientSession, HandshakeComplete, Reply, Send
from tests.emulator.helpers import new_device

T = m.RequestType
FUZZ = settings(
    max_examples=int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400")),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Wire:
    """A client and the device's connection, bytes carried one at a time."""

    def __init__(self, connection: ControlConnection, phrase: bytes) -> None:
        self.connection = connection
        self.client = ClientSession(phrase)
        self.after: list[AfterReply] = []

    def to_device(self, sends: list[Send]) -> list[Reply | HandshakeComplete]:
        events: list[Reply | HandshakeComplete] = []
        for send in sends:
            for i in range(len(send.data)):
                for step in self.connection.receive(send.data[i : i + 1]):
                    if isinstance(step, Transmit):
                        events += self.to_client(step.data)
                    else:
                        assert isinstance(step, Handle)
                        reply, action = self.connection.answer(step.request)
                        if action is not None:
                            self.after.append(action)
                        events += self.to_client(reply)
        return events

    def to_client(self, data: bytes) -> list[Reply | HandshakeComplete]:
        out: list[Reply | HandshakeComplete] = []
        for i in range(len(data)):
            for event in self.client.receive(data[i : i + 1]):
                if isinstance(event, Send):
                    out += self.to_device([event])
                elif isinstance(event, Reply | HandshakeComplete):
                    out.append(event)
        return out

    def request(self, request_type: int, payload: bytes = b"") -> Reply:
        _, sends = self.client.request(request_type, payload)
        [reply] = self.to_device(sends)
        assert isinstance(reply, Reply)
        return reply


def test_byte_by_byte_handshake_and_update(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    control = DeviceOsControl(device)
    wire = Wire(ControlConnection(control), load_settings(device.state_dir).mobile_secret.encode())
    assert wire.to_device(wire.client.start()) == [HandshakeComplete()]
    app = make_app("boron", library=False, product_version=3, body_size=1500)
    start = wire.request(T.START_FIRMWARE_UPDATE, m.StartFirmwareUpdateRequest(len(app)).encode())
    assert (start.result, m.StartFirmwareUpdateReply.decode(start.payload).chunk_size) == (0, 1024)
    for offset in range(0, len(app), 1024):
        data = m.FirmwareUpdateDataRequest(app[offset : offset + 1024]).encode()
        assert wire.request(T.FIRMWARE_UPDATE_DATA, data).result == 0
    assert wire.request(T.FINISH_FIRMWARE_UPDATE).result == 0
    assert wire.after == [AfterReply.APPLY_UPDATE]
    assert control.after_reply(AfterReply.APPLY_UPDATE)
    assert device.installed_app is not None and device.installed_app.data == app


def test_wrong_secret_fails_the_handshake_on_the_device(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron", stock=True)
    wire = Wire(ControlConnection(DeviceOsControl(device)), b"WRONGWRONGWRONG")
    with pytest.raises(WrongMobileSecretError):
        wire.to_device(wire.client.start())
    assert not wire.connection.session.is_open


@pytest.mark.fuzz
@FUZZ
@given(st.integers(0, 300), st.binary(max_size=64))
def test_fuzz_handler_answers_any_request(
    tmp_path: Path, request_type: int, payload: bytes
) -> None:
    root = tmp_path / "fuzz"
    if not (root / "boron").exists():
        new_device(root, "boron", stock=True)
    control = DeviceOsControl(EmulatedDevice.open(root / "boron"))
    result = control.handle(request_type, payload)
    assert result.result <= 0
    if result.after_reply is not None:
        control.after_reply(result.after_reply)
