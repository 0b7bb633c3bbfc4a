"""Everything a phone might lie about is refused with a named reason before any erase."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from bluemule.emulator import EmulatedDevice, make_app
from bluemule.protocol.client_session import Outcome, UpdateResult
from bluemule.protocol.constants import Status
from bluemule.protocol.manifest import SigningKey, sign_manifest
from bluemule.protocol.release import Release, build_release, parse_device_id
from bluemule.relay.update import UpdatePolicy, push_update
from tests.e2e.harness import DEVICE_IDS, KEY, new_device, served

FAST = UpdatePolicy(notification_timeout=0.5, reboot_timeout=10.0)
BORON = parse_device_id(DEVICE_IDS["boron"])
MSOM = parse_device_id(DEVICE_IDS["msom"])


def installed_digest(device: EmulatedDevice, *, include_ota: bool) -> str:
    """Every persistent byte of the device (optionally without the OTA staging region)."""
    h = hashlib.sha256()
    for path in sorted(device.state_dir.rglob("*")):
        if not path.is_file() or path.name == "ram.json":
            continue
        if not include_ota and path.name == "ota.bin":
            continue
        h.update(str(path.relative_to(device.state_dir)).encode() + path.read_bytes())
    return h.hexdigest()


def push(device: EmulatedDevice, release: Release) -> UpdateResult:
    async def run() -> UpdateResult:
        async with served(device) as rig:
            return (await push_update(rig.connector(), release, policy=FAST)).result

    return asyncio.run(run())


def boron_release(**kw: object) -> Release:
    args: dict[str, object] = {
        "key": KEY,
        "device_id": BORON,
        "app": make_app("boron", tag="new"),
        "release_counter": 5,
    }
    args.update(kw)
    return build_release(**args)  # type: ignore[arg-type]


def resigned(release: Release, key: SigningKey, **changes: object) -> Release:
    manifest = dataclasses.replace(release.manifest, **changes)  # type: ignore[arg-type]
    return Release(sign_manifest(manifest, key), release.payloads)


def tampered_signature(release: Release) -> Release:
    changed = dataclasses.replace(release.manifest, release_counter=99)  # signature kept
    return Release(changed, release.payloads)


def unsigned(release: Release) -> Release:
    return Release(dataclasses.replace(release.manifest, signature=bytes(64)), release.payloads)


def mismatched_asset() -> Release:
    app = make_app("boron", tag="a", assets={"x.bin": b"what the app was built with"})
    return boron_release(app=app, assets=[("x.bin", b"something else")])


CASES: dict[str, tuple[Callable[[], Release], Status]] = {
    "tampered-manifest": (lambda: tampered_signature(boron_release()), Status.BAD_SIGNATURE),
    "unsigned-manifest": (lambda: unsigned(boron_release()), Status.BAD_SIGNATURE),
    "unknown-key": (lambda: boron_release(key=SigningKey.from_seed(bytes(32))), Status.UNKNOWN_KEY),
    "wrong-device": (lambda: boron_release(device_id=MSOM), Status.WRONG_DEVICE),
    "wrong-platform": (
        lambda: resigned(boron_release(), KEY, platform_id=35),
        Status.WRONG_PLATFORM,
    ),
    "older-counter": (lambda: boron_release(release_counter=0), Status.OLD_RELEASE),
    "too-large": (
        lambda: boron_release(
            assets=[("big.bin", random.Random(5).randbytes(700_000))],
            app=make_app("boron", assets={"big.bin": random.Random(5).randbytes(700_000)}),
        ),
        Status.TOO_LARGE,
    ),
    "device-os-too-old": (lambda: boron_release(min_device_os=9900), Status.DEVICE_OS_TOO_OLD),
    "asset-hash-mismatch": (mismatched_asset, Status.ASSETS_UNSATISFIED),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_erase(tmp_path: Path, case: str) -> None:
    make, status = CASES[case]
    device = new_device(tmp_path / "dev", "boron")
    before, ops = installed_digest(device, include_ota=True), device.flash.ops
    result = push(device, make())
    assert (result.outcome, result.status) == (Outcome.REJECTED, status), result
    assert device.flash.ops == ops  # not one erase or write
    assert installed_digest(device, include_ota=True) == before


def test_tampered_part_is_refused_and_nothing_installed_changes(tmp_path: Path) -> None:
    device = new_device(tmp_path / "dev", "boron")
    release = boron_release()
    payloads = list(release.payloads)
    app = bytearray(payloads[-1])
    app[len(app) // 2] ^= 0x40
    payloads[-1] = bytes(app)
    before = installed_digest(device, include_ota=False)
    old_app = device.show()["app"]
    result = push(device, Release(release.manifest, tuple(payloads)))
    assert (result.outcome, result.status) == (Outcome.REJECTED, Status.HASH_MISMATCH), result
    assert installed_digest(device, include_ota=False) == before  # only the OTA scratch area
    assert device.pending_slots() == []
    device.reset()
    assert device.show()["app"] == old_app
    assert device.mode == "normal"
