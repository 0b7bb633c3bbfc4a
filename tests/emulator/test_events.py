"""The emulated device's event queue: persistence across processes, resets and power
loss at every flash operation; capacity; ack semantics through the device role."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, PoweredOff, PowerLoss
from bluemule.emulator.peripheral import EmulatedPeripheral, advertising_data
from bluemule.protocol.constants import (
    EVENT_QUEUE_CAPACITY,
    RESPONSE_UUID,
    AdvertisingFlag,
    Opcode,
    Status,
)
from bluemule.protocol.events import EventQueueFullError, InvalidEventError
from bluemule.protocol.messages import Request, decode_advertisement, decode_response
from tests.emulator.helpers import DEVICE_ID, new_device

AT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def sequences(device: EmulatedDevice) -> list[int]:
    return [e["sequence"] for e in device.queued_events()["events"]]


def test_published_events_survive_reopen_reset_and_power_cycle(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    first = device.publish("temp", "21.5", AT)
    assert (first.sequence, first.event_id, first.captured_at) == (
        1,
        f"{DEVICE_ID}:1",
        int(AT.timestamp()),
    )
    device.publish("door/open", None, clock_set=False)
    device.reset()
    device.power_off()
    device.power_on()
    again = EmulatedDevice.open(device.state_dir)  # another process
    shown = again.queued_events()
    assert [(e["name"], e["data"], e["captured_at"]) for e in shown["events"]] == [
        ("temp", "21.5", int(AT.timestamp())),
        ("door/open", None, None),
    ]
    assert again.publish("x", "y").sequence == 3


def test_a_device_that_is_off_cannot_publish(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    device.power_off()
    with pytest.raises(PoweredOff):
        device.publish("temp", "1")


def test_full_queue_refuses_and_counts(tmp_path: Path) -> None:
    device = new_device(tmp_path, "msom")
    for i in range(EVENT_QUEUE_CAPACITY):
        device.publish("n", str(i), AT)
    with pytest.raises(EventQueueFullError):
        device.publish("n", "lost?", AT)
    shown = device.queued_events()
    assert (shown["queued"], shown["dropped"]) == (EVENT_QUEUE_CAPACITY, 1)
    assert shown["events"][-1]["data"] == str(EVENT_QUEUE_CAPACITY - 1)


def test_invalid_events_are_refused(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    with pytest.raises(InvalidEventError):
        device.publish("spark/status", "x")
    with pytest.raises(InvalidEventError):
        device.publish("ok", "x" * 1025)
    assert device.queued_events()["last_sequence"] == 0


def history(device: EmulatedDevice) -> None:
    device.publish("a", "1", AT)
    device.publish("b", "é" * 500, AT)
    services = EmulatedPeripheral(device).session
    services.events.ack(1)
    for i in range(5):
        device.publish("c", str(i) * 1000, AT)
    services.events.ack(5)
    device.publish("d", None, AT)


def test_power_loss_at_every_flash_operation(tmp_path: Path) -> None:
    """Publishes and acks are a few LittleFS commits each; a power loss at any of them
    leaves the queue as it was before or after that change, with sequences intact."""
    template = new_device(tmp_path, "boron")
    dry = EmulatedDevice.open(shutil.copytree(template.state_dir, tmp_path / "dry"))
    start = dry.flash.ops
    history(dry)
    total = dry.flash.ops - start
    assert sequences(dry) == [6, 7, 8]
    for k in range(total):
        device = EmulatedDevice.open(shutil.copytree(template.state_dir, tmp_path / f"k{k}"))
        device.flash.power_loss_at(device.flash.ops + k)
        with pytest.raises(PowerLoss):
            history(device)
        device.power_on()
        shown = device.queued_events()
        seqs = sequences(device)
        if seqs:
            assert seqs == list(range(seqs[0], seqs[-1] + 1))
            assert seqs[-1] == shown["last_sequence"]
        nxt = device.publish("after", "power", AT).sequence
        assert nxt == shown["last_sequence"] + 1


def test_ack_semantics_through_the_device_role(tmp_path: Path) -> None:
    device = new_device(tmp_path, "boron")
    for i in range(3):
        device.publish("n", str(i), AT)
    peripheral = EmulatedPeripheral(device)
    session = peripheral.session
    flags = decode_advertisement(advertising_data(session)[2:])
    assert flags is not None and flags.flags & AdvertisingFlag.EVENTS_QUEUED

    def ack(seq: int, up_to: int) -> tuple[Status, tuple[int, ...], int]:
        session.handle_control(Request(Opcode.EVENTS_ACK, seq, (up_to,)).encode())
        r = decode_response(session.read(RESPONSE_UUID))
        return r.status, r.values, r.detail

    assert ack(1, 4) == (Status.UNKNOWN_EVENT, (), 3)  # never had 4: nothing deleted
    assert sequences(device) == [1, 2, 3]
    assert ack(2, 2) == (Status.OK, (1,), 0)
    assert ack(3, 2) == (Status.OK, (1,), 0)  # idempotent
    assert ack(4, 1) == (Status.OK, (1,), 0)  # older: already gone
    assert sequences(device) == [3]
    assert ack(5, 3) == (Status.OK, (0,), 0)
    status = session.status()
    assert status.events is not None
    assert (status.events.queued, status.events.last_sequence) == (0, 3)
    flags = decode_advertisement(advertising_data(session)[2:])
    assert flags is not None and not flags.flags & AdvertisingFlag.EVENTS_QUEUED
