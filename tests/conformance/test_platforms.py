"""Our platform table against Particle's own npm ``@particle/device-constants`` (4.2.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bluemule.image import PLATFORMS, McuFamily, platform_by_id, platform_by_name
from tests.conformance.bvr import ensure_installed


@pytest.fixture(scope="module")
def device_constants() -> dict[str, Any]:
    root = ensure_installed() / "node_modules" / "@particle" / "device-constants"
    data: dict[str, Any] = json.loads((root / "src" / "constants.json").read_text())
    return data


def _platforms(constants: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["id"]: p for p in constants.values()}


def test_ids_names_generations_and_mcus(device_constants: dict[str, Any]) -> None:
    theirs = _platforms(device_constants)
    assert {p.id for p in PLATFORMS} == set(theirs)
    for ours in PLATFORMS:
        ref = theirs[ours.id]
        assert (ours.name, ours.display_name, ours.generation) == (
            ref["name"],
            ref["displayName"],
            ref["generation"],
        )
        if ref["baseMcu"] in {m.value for m in McuFamily}:
            assert ours.mcu == ref["baseMcu"]
        else:
            assert ours.mcu == McuFamily.OTHER


def test_application_limits_and_growth(device_constants: dict[str, Any]) -> None:
    for ref in _platforms(device_constants).values():
        user = next((m for m in ref.get("firmwareModules", []) if m["type"] == "userPart"), None)
        ours = platform_by_id(ref["id"])
        assert ours is not None
        assert ours.max_app_size == (user or {}).get("maxSize"), ref["name"]
        assert ours.app_grows_left == bool((user or {}).get("growsLeft")), ref["name"]


def test_asset_limits(device_constants: dict[str, Any]) -> None:
    for ref in _platforms(device_constants).values():
        ours = platform_by_id(ref["id"])
        assert ours is not None
        if "assets" not in ref:
            assert ours.assets is None, ref["name"]
            continue
        a, limits = ref["assets"], ours.assets
        assert limits is not None, ref["name"]
        assert (
            limits.block_size,
            limits.total_blocks,
            limits.reserved_blocks,
            limits.per_block_overhead,
            limits.max_single_asset_size,
        ) == (
            a["blockSize"],
            a["storageTotalBlocks"],
            a["reservedBlocks"],
            a["assetPerBlockOverhead"],
            a["maxSingleAssetSize"],
        )
        assert a["assetOverhead"] == 0  # storage_size() assumes none


def test_the_platforms_bluemule_serves() -> None:
    boron, msom = platform_by_name("boron"), platform_by_name("muon")
    assert boron is not None and msom is not None
    assert (boron.id, boron.mcu, boron.max_app_size, boron.ota_region_size) == (
        13,
        McuFamily.NRF52840,
        262_144,
        1_536_000,
    )
    assert (msom.id, msom.mcu, msom.max_app_size, msom.ota_region_size) == (
        35,
        McuFamily.RTL872X,
        1_572_864,
        1_572_864,
    )
    assert boron.assets is not None and boron.assets.total_size == 1_138_688
    assert msom.app_grows_left and not boron.app_grows_left
    for name in ("bsom", "p2", "argon", "tracker"):
        assert platform_by_name(name) is not None
