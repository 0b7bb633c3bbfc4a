"""Flash layouts against shared/reference/particle.md §3.6 (layout.py)."""

from __future__ import annotations

from bluemule.emulator import LAYOUTS, FlashDevice, layout_for
from bluemule.image import ModuleFunction, platform_by_name


def test_boron_layout_matches_the_reference() -> None:
    b = LAYOUTS["boron"]
    assert b.platform_id == 13
    assert (b.ota.device, b.ota.start, b.ota.length) == (FlashDevice.SERIAL, 0x24C000, 1_536_000)
    assert b.ota.end == 0x3C3000
    assert b.ota_safe_length == 606_208
    assert b.ota.start + b.ota_safe_length == b.asset_storage.start == 0x2E0000
    assert b.asset_storage.end == 0x400000
    assert (b.system_part.start, b.system_part.end) == (0x28000, 0xB4000)
    user = b.bounds_for(ModuleFunction.USER_PART, 2)
    legacy = b.bounds_for(ModuleFunction.USER_PART, 1)
    assert user is not None
    assert legacy is not None
    assert (user.start, user.length) == (0xB4000, 256 * 1024)
    assert (legacy.start, legacy.length) == (0xD4000, 128 * 1024)
    assert b.user_parts[0] == legacy  # checked first at boot
    assert b.default_user_part == user
    assert b.bounds_for(ModuleFunction.BOOTLOADER, 0) is not None
    assert b.bounds_for(ModuleFunction.NCP_FIRMWARE, 0) is None


def test_msom_layout_matches_the_reference() -> None:
    m = LAYOUTS["msom"]
    assert m.platform_id == 35
    assert (m.ota.start, m.ota.length, m.ota_safe_length) == (0x08300000, 1_572_864, None)
    assert (m.asset_storage.start, m.asset_storage.end) == (0x081E0000, 0x08300000)
    assert (m.system_part.start, m.system_part.end) == (0x08060000, 0x081E0000)
    user = m.default_user_part
    assert user.grows_left
    assert user.end == 0x08600000
    assert user.length == 1_572_864
    assert m.user_window.end == 0x08600000
    assert len(m.bootloaders) == 3
    assert m.radio_stack is None


def test_every_layout_agrees_with_the_platform_table() -> None:
    for name, layout in LAYOUTS.items():
        platform = platform_by_name(name)
        assert platform is not None
        assert layout.platform == platform
        assert layout.ota.length == platform.ota_region_size
        assert layout.default_user_part.length == platform.max_app_size
        assert layout.asset_storage.length == layout.assets.block_size * layout.assets.total_blocks
        assert layout.main_fs.length == 2 * 1024 * 1024


def test_sibling_platforms_are_one_entry_each() -> None:
    assert LAYOUTS["bsom"].platform_id == 23
    assert LAYOUTS["p2"].platform_id == 32
    assert LAYOUTS["bsom"].ota == LAYOUTS["boron"].ota
    assert LAYOUTS["p2"].user_parts == LAYOUTS["msom"].user_parts
    muon = layout_for("muon")
    assert muon is not None
    assert muon.name == "msom"
    assert layout_for("argon") is None
    assert layout_for("nonsense") is None
