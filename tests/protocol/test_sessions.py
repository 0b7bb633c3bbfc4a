"""The two sans-IO sessions against each other: installs, resume, refusals."""

from __future__ import annotations

import hashlib
import random

import pytest

from bluemule.image import asset_dependency, parse_module, set_asset_dependencies
from bluemule.protocol.client_session import Outcome, UpdateSession
from bluemule.protocol.constants import Status
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.release import build_release
from tests.image.fixtures import binary
from tests.protocol.memory_device import MemoryDevice
from tests.protocol.pair import Faults, run_pair

KEY = SigningKey.from_seed(bytes(range(32)))
DEVICE_ID = bytes.fromhex("e00fce68a1b2c3d4e5f60718")


def boron(app: bytes | None = None) -> MemoryDevice:
    return MemoryDevice(DEVICE_ID, 13, app or binary("boron_blank.bin"), (KEY.public_key,))


def new_app(assets: list[tuple[str, bytes]]) -> bytes:
    base = parse_module(binary("boron_blank.bin"))
    deps = [asset_dependency(n, d) for n, d in assets]
    return set_asset_dependencies(base, deps) if deps else base.data


ASSETS = [
    ("a.txt", b"alpha" * 100),
    ("b.bin", bytes(range(256)) * 40),
    ("noise", random.Random(1).randbytes(5000)),
]


def test_install_app_and_assets() -> None:
    device = boron()
    app = new_app(ASSETS)
    release = build_release(key=KEY, device_id=DEVICE_ID, app=app, assets=ASSETS, release_counter=1)
    result, _ = run_pair(UpdateSession(release), device)
    assert result.outcome == Outcome.APPLIED, result
    assert device.app == app
    assert sorted(device.assets) == ["a.txt", "b.bin", "noise"]
    assert not device.safe_mode
    assert result.resent_bytes == 0
    assert device.kv["counter"] == (1).to_bytes(4, "little")
    again, _ = run_pair(UpdateSession(release), device)
    assert again.outcome == Outcome.ALREADY_CURRENT


@pytest.mark.parametrize("seed", range(8))
def test_disconnects_resume_with_at_most_one_window(seed: int) -> None:
    rng = random.Random(seed)
    device = boron()
    app = new_app(ASSETS)
    release = build_release(key=KEY, device_id=DEVICE_ID, app=app, assets=ASSETS, release_counter=1)
    cuts = sorted(rng.randrange(1, release.total_bytes) for _ in range(3))
    result, stats = run_pair(
        UpdateSession(release), device, faults=Faults(disconnect_after_bytes=cuts)
    )
    assert result.outcome == Outcome.APPLIED, result
    assert device.app == app
    assert stats.disconnects == 3
    assert result.resent_bytes <= 3 * 4096


@pytest.mark.parametrize("notifications", [True, False])
def test_dropped_writes_are_resent_from_the_device_offset(notifications: bool) -> None:
    device = boron()
    app = new_app(ASSETS)
    release = build_release(key=KEY, device_id=DEVICE_ID, app=app, assets=ASSETS, release_counter=1)
    faults = Faults(drop_writes={3, 4, 17, 40, 41, 42}, notifications=notifications)
    result, _ = run_pair(UpdateSession(release), device, faults=faults)
    assert result.outcome == Outcome.APPLIED, result
    assert device.app == app


def test_refusals_before_any_erase() -> None:
    app = new_app([])
    other = SigningKey.from_seed(bytes(32))
    cases = {
        Status.UNKNOWN_KEY: build_release(
            key=other, device_id=DEVICE_ID, app=app, release_counter=1
        ),
        Status.WRONG_DEVICE: build_release(
            key=KEY, device_id=bytes(12), app=app, release_counter=1
        ),
        Status.DEVICE_OS_TOO_OLD: build_release(
            key=KEY, device_id=DEVICE_ID, app=app, release_counter=1, min_device_os=9999
        ),
    }
    for status, release in cases.items():
        device = boron()
        before = device.state_digest()
        result, _ = run_pair(UpdateSession(release), device)
        if status == Status.WRONG_DEVICE:
            assert result.status == Status.WRONG_DEVICE
        else:
            assert (result.outcome, result.status) == (Outcome.REJECTED, status), result
        assert device.erases == 0
        assert device.state_digest() == before


def test_get_assets_pages_through_installed_assets() -> None:
    from bluemule.image import create_asset_module  # noqa: PLC0415
    from bluemule.protocol.constants import Opcode  # noqa: PLC0415
    from bluemule.protocol.device_session import DeviceSession  # noqa: PLC0415
    from bluemule.protocol.messages import Request, decode_response  # noqa: PLC0415

    device = boron()
    raw = {f"asset{i}.bin": bytes([i]) * (100 + i) for i in range(6)}
    device.assets = {n: create_asset_module(d, n) for n, d in raw.items()}
    session = DeviceSession(device)
    seen = {}
    for page in range(3):
        out = session.handle_control(Request(Opcode.GET_ASSETS, page, (page,)).encode())
        response = decode_response(out[0].value)  # type: ignore[union-attr]
        assert response.ok
        assert response.values == (6, page)
        seen.update({a.name: a.sha256 for a in response.assets})
    assert seen == {n: hashlib.sha256(d).digest() for n, d in raw.items()}
