"""End to end over Bumble's virtual link: a real GATT client updates an emulated device."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bluemule.emulator import make_app
from bluemule.protocol.client_session import Outcome
from bluemule.protocol.release import build_release, parse_device_id
from bluemule.relay.update import UpdatePolicy, push_update
from tests.e2e.harness import DEVICE_IDS, KEY, new_device, served
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
