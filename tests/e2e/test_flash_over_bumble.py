"""End to end over Bumble's virtual link: a real GATT client updates an emulated device."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bluemule.emulator import make_app
from bluemule.image import parse_module
from bluemule.protocol.client_session import Outcome
from bluemule.protocol.constants import DATA_UUID
from bluemule.protocol.release import build_release, parse_device_id
from bluemule.relay.targets import bluemule_advertisement
from bluemule.relay.update import UpdatePolicy, UpdateReport, push_update
from bluemule.transport.base import CentralLink, Connector
from bluemule.transport.faults import DisconnectAfterBytes, WriteFaults, fault_first
from tests.e2e.harness import DEVICE_IDS, KEY, Rig, new_device, served
from tests.image.fixtures import ASSETS

FAST = UpdatePolicy(notification_timeout=0.5, reboot_timeout=10.0)


def assets_for_test() -> dict[str, bytes]:
    return {
        "blink.bin": (ASSETS / "blink.bin").read_bytes(),
        "cat.jpg": (ASSETS / "cat.jpg").read_bytes()[:150_000],
        "noise.bin": random.Random(3).randbytes(20_000),
    }


@pytest.mark.parametrize("platform", ["boron", "msom"])
def test_bundle_with_three_assets_installs(tmp_path: Path, platform: str) -> None:
    device = new_device(tmp_path / "dev", platform)
    assets = assets_for_test()
    app = make_app(platform, tag="v2", assets=assets)
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS[platform]),
        app=app,
        assets=sorted(assets.items()),
        release_counter=1,
    )

    async def run() -> None:
        async with served(device) as rig:
            report = await push_update(rig.connector(), release, policy=FAST)
            assert report.result.outcome == Outcome.APPLIED, report.result
            assert rig.peripheral.resets == 1

    asyncio.run(run())
    shown = device.show()
    assert shown["mode"] == "normal"
    assert sorted(a["name"] for a in shown["assets"]) == sorted(assets)
    app_sha = release.manifest.app.content_sha256.hex()  # type: ignore[union-attr]
    assert shown["app"]["sha256"] == app_sha


def cutting_connector(connector: Connector, cuts: list[int]) -> Connector:
    """Each new link drops after the next number of DATA bytes, until none are left."""
    remaining = list(cuts)

    async def connect() -> CentralLink:
        link = await connector()
        if remaining:
            return DisconnectAfterBytes(link, remaining.pop(0), uuid=DATA_UUID)
        return link

    return connect


@pytest.mark.parametrize("seed", range(6))
def test_disconnects_at_random_offsets_resume(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    device = new_device(tmp_path / "dev", "boron")
    assets = {"noise.bin": random.Random(seed).randbytes(30_000)}
    app = make_app("boron", tag=f"seed{seed}", assets=assets, body_size=40_000)
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS["boron"]),
        app=app,
        assets=sorted(assets.items()),
        release_counter=1,
    )
    cuts = [rng.randrange(1, 10_000) for _ in range(3)]  # each under a third of the ~42 KB

    async def run() -> UpdateReport:
        async with served(device) as rig:
            return await push_update(cutting_connector(rig.connector(), cuts), release, policy=FAST)

    report = asyncio.run(run())
    assert report.result.outcome == Outcome.APPLIED, report.result
    assert report.reconnects == 3
    window = 4096
    assert report.result.resent_bytes <= 3 * window, report.result
    assert device.show()["app"]["sha256"] == parse_module(app).suffix.sha256.hex()


def test_corrupted_write_is_detected_and_the_part_sent_again(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    app = make_app("boron", tag="corrupt", body_size=20_000)
    release = build_release(
        key=KEY, device_id=parse_device_id(DEVICE_IDS["boron"]), app=app, release_counter=1
    )
    faults: list[WriteFaults] = []

    def corrupt_third_data_write(link: CentralLink) -> CentralLink:
        wrapped = WriteFaults(link, corrupt={3}, uuid=DATA_UUID)
        faults.append(wrapped)
        return wrapped

    async def run() -> UpdateReport:
        async with served(device) as rig:
            connector = fault_first(rig.connector(), corrupt_third_data_write)
            return await push_update(connector, release, policy=FAST)

    report = asyncio.run(run())
    assert faults[0].corrupted  # the fault fired
    assert report.result.outcome == Outcome.APPLIED, report.result
    assert report.result.resent_bytes == len(release.payloads[-1])  # the part, once more
    assert device.show()["app"]["sha256"] == parse_module(app).suffix.sha256.hex()


def test_a_client_without_notifications_completes_by_polling(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "msom")
    assets = {"one.bin": random.Random(9).randbytes(9000)}
    app = make_app("msom", tag="polling", assets=assets)
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS["msom"]),
        app=app,
        assets=sorted(assets.items()),
        release_counter=1,
    )

    async def run() -> UpdateReport:
        async with served(device) as rig:
            return await push_update(rig.connector(), release, policy=FAST, use_notifications=False)

    report = asyncio.run(run())
    assert report.result.outcome == Outcome.APPLIED, report.result
    assert device.show()["app"]["sha256"] == parse_module(app).suffix.sha256.hex()


def test_the_advertisement_tells_a_relay_the_new_release(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    release = build_release(
        key=KEY,
        device_id=parse_device_id(DEVICE_IDS["boron"]),
        app=make_app("boron", tag="advert"),
        release_counter=7,
    )

    async def advertised_counter(rig: Rig) -> int:
        async with rig.link.scan(None) as results:
            async for result in results:
                advert = bluemule_advertisement(result.advertising_data)
                if advert is not None and advert.device_id.hex() == DEVICE_IDS["boron"]:
                    return advert.release_counter
        raise AssertionError("no advertisement")

    async def run() -> tuple[int, int]:
        async with served(device) as rig:
            before = await advertised_counter(rig)
            report = await push_update(rig.connector(), release, policy=FAST)
            assert report.result.outcome == Outcome.APPLIED
            return before, await advertised_counter(rig)

    assert asyncio.run(run()) == (0, 7)
