"""Parsing real Particle files: the facts shared/reference/particle.md states about them."""

from __future__ import annotations

import hashlib
import zipfile
import zlib

import pytest

from bluemule.image import (
    AssetDependencyExtension,
    Dependency,
    DynamicLocationExtension,
    EndExtension,
    MalformedModuleError,
    ModuleFlag,
    ModuleFunction,
    NotAModuleError,
    ProductDataExtension,
    SecurityModeExtension,
    parse_module,
    parse_module_at_head,
)
from tests.image.fixtures import BINARIES, BUNDLES, binary

VALID = sorted(
    p.name
    for p in BINARIES.iterdir()
    if p.name not in {"RC4_bootloader_pad_BM-09.bin", "unknown.bin", "emptybin.bin"}
)


@pytest.mark.parametrize("name", VALID)
def test_checksums_cover_what_the_reference_says(name: str) -> None:
    data = binary(name)
    m = parse_module(data)
    assert m.crc_ok and m.sha256_ok
    assert m.stored_crc32 == zlib.crc32(data[:-4])
    assert m.suffix.sha256 == hashlib.sha256(data[:-38]).digest()
    assert len(data) == m.prefix.end_address - m.prefix.start_address + 4


@pytest.mark.parametrize(
    ("name", "offset", "function", "index", "platform", "version", "start"),
    [
        ("tinker-6.3.4-msom.bin", 0, ModuleFunction.USER_PART, 1, 35, 6, 0x085F2000),
        ("argon-system-part1@4.1.0.bin", 0x200, ModuleFunction.SYSTEM_PART, 1, 12, 4100, 0x30000),
        ("p2-bootloader@5.6.0.bin", 0x20, ModuleFunction.BOOTLOADER, 0, 32, 2400, 0x08004000),
        ("tracker-bootloader@5.6.0.bin", 0x200, ModuleFunction.BOOTLOADER, 0, 26, 2400, 0xF4000),
        ("boron_blank.bin", 0, ModuleFunction.USER_PART, 1, 13, 6, 0xD4000),
        ("argon-softdevice-6.1.1.bin", 0, ModuleFunction.RADIO_STACK, 0, 12, 182, 0x1000),
        ("cat.bin", 0, ModuleFunction.ASSET, 0, 0, 0, 0),
        ("040_user-part.bin", 0, ModuleFunction.USER_PART, 1, 6, 2, 0x080A0000),
    ],
)
def test_prefix_fields(
    name: str, offset: int, function: int, index: int, platform: int, version: int, start: int
) -> None:
    m = parse_module(binary(name))
    assert (
        m.prefix_offset,
        m.function,
        m.prefix.index,
        m.prefix.platform_id,
        m.prefix.module_version,
        m.prefix.start_address,
    ) == (offset, function, index, platform, version, start)


def test_dependencies() -> None:
    argon = parse_module(binary("argon-system-part1@4.1.0.bin")).prefix
    assert {argon.dependency, argon.dependency2} == {
        Dependency(ModuleFunction.RADIO_STACK, 0, 202),
        Dependency(ModuleFunction.BOOTLOADER, 0, 1200),
    }
    msom = parse_module(binary("tinker-6.3.4-msom.bin")).prefix
    assert msom.dependency == Dependency(ModuleFunction.SYSTEM_PART, 1, 6305)
    assert msom.dependency2.is_none


def test_suffix_layouts() -> None:
    gen3 = parse_module(binary("tracker-tinker@5.3.1.bin")).suffix
    assert (gen3.size, gen3.raw_product, gen3.product_id, gen3.product_version) == (40, True, 26, 3)
    rtl = parse_module(binary("p2-tinker@5.3.1.bin"))
    assert rtl.suffix.size == 62 and not rtl.suffix.raw_product
    loc, product = rtl.suffix.extensions
    assert isinstance(loc, DynamicLocationExtension)
    assert loc.module_start_address == rtl.prefix.start_address
    assert product == ProductDataExtension(32, 4)
    old = parse_module(binary("040_user-part.bin")).suffix
    assert (old.size, old.product_id) == (36, None)


def test_asset_dependencies_in_suffix_and_prefix() -> None:
    gen3 = parse_module(binary("tracker-user-part-extensions.bin"))
    assert [d.name for d in gen3.asset_dependencies] == ["btgap.a", "cat.jpg", "km4_image2_all.bin"]
    assert isinstance(gen3.suffix.extensions[-1], EndExtension)
    cat = next(d for d in gen3.asset_dependencies if d.name == "cat.jpg")
    assert (
        cat.hash == hashlib.sha256((BINARIES.parent / "assets" / "cat.jpg").read_bytes()).digest()
    )
    p2 = parse_module(binary("p2-user-part-prefix-extensions.bin"))
    assert p2.flags & ModuleFlag.PREFIX_EXTENSIONS
    assert all(isinstance(e, AssetDependencyExtension) for e in p2.prefix.extensions[:-1])
    assert isinstance(p2.prefix.extensions[-1], EndExtension)
    assert p2.prefix.start_address % 8 == 0
    assert p2.prefix_size == 24 + sum(len(e.encode()) for e in p2.prefix.extensions)


def test_protected_bootloader() -> None:
    m = parse_module(binary("tracker-bootloader-protected.bin"))
    assert SecurityModeExtension(1) in m.suffix.extensions


def test_bundle_app_declares_hashes_of_its_assets() -> None:
    with zipfile.ZipFile(BUNDLES / "bundle.zip") as z:
        app = parse_module(z.read("app.bin"))
        for dep in app.asset_dependencies:
            assert dep.hash == hashlib.sha256(z.read(f"assets/{dep.name}")).digest()


def test_padded_module_reads_suffix_at_its_declared_end() -> None:
    data = binary("RC4_bootloader_pad_BM-09.bin")
    m = parse_module_at_head(data)
    assert (m.prefix_offset, len(m.data), len(data)) == (0x184, 16284, 16384)
    assert not m.crc_ok and not m.sha256_ok  # placeholder checksums, on purpose
    assert set(data[len(m.data) :]) == {0xFF}
    with pytest.raises(MalformedModuleError, match="100 bytes after"):
        parse_module(data)


@pytest.mark.parametrize("name", ["unknown.bin", "emptybin.bin"])
def test_not_modules(name: str) -> None:
    with pytest.raises(NotAModuleError):
        parse_module(binary(name))
