"""Writers: build, asset modules, asset dependencies, compression, combining, bundles."""

from __future__ import annotations

import hashlib
import random

import pytest

from bluemule.image import (
    BundleError,
    DynamicLocationExtension,
    Extension,
    HashExtension,
    ImageError,
    LimitExceededError,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    NameExtension,
    ProductDataExtension,
    UnsupportedOperationError,
    asset_dependency,
    build_module,
    check_bundle,
    combine_modules,
    compress_module,
    create_asset_module,
    decompress_module,
    parse_combined,
    parse_module,
    read_bundle,
    set_asset_dependencies,
    split_combined,
    unwrap_asset_module,
    write_bundle,
)
from bluemule.image.module import rebuild_module
from tests.image.fixtures import ASSETS, BUNDLES, binary

ALL_BINARIES = [
    "tinker-6.3.4-msom.bin",
    "argon-tinker-620.bin",
    "p2-user-part-prefix-extensions.bin",
    "tracker-user-part-extensions.bin",
    "p2-bootloader@5.6.0.bin",
    "tracker-bootloader-protected.bin",
    "argon-system-part1@4.1.0.bin",
    "cat.bin",
]


@pytest.mark.parametrize("name", ALL_BINARIES)
def test_rebuild_without_change_is_byte_identical(name: str) -> None:
    data = binary(name)
    m = parse_module(data)
    grows_left = bool(m.flags & ModuleFlag.PREFIX_EXTENSIONS)
    assert rebuild_module(m, anchor="end" if grows_left else "start") == data


def test_uncompressed_asset_module_is_byte_identical_to_particles() -> None:
    reference = binary("cat.bin")  # made by binary-version-reader createAssetModule
    content = unwrap_asset_module(parse_module(reference))
    assert content.name == "cat.jpg" and content.hash_ok
    assert create_asset_module(content.data, "cat.jpg", compress=False) == reference


def test_compressed_asset_module_round_trip() -> None:
    raw = (ASSETS / "cat.jpg").read_bytes()
    module = parse_module(create_asset_module(raw, "cat.jpg"))
    assert module.is_compressed and module.flags & ModuleFlag.DROP_MODULE_INFO
    assert module.crc_ok and module.sha256_ok
    content = unwrap_asset_module(module)
    assert (content.name, content.data, content.hash_ok) == ("cat.jpg", raw, True)
    plain = parse_module(decompress_module(module))
    assert plain.data == create_asset_module(raw, "cat.jpg", compress=False)


@pytest.mark.parametrize(
    "name", ["tinker-6.3.4-msom.bin", "argon-tinker-620.bin", "p2-user-part-prefix-extensions.bin"]
)
def test_compress_round_trip(name: str) -> None:
    data = binary(name)
    packed = parse_module(compress_module(parse_module(data)))
    assert packed.is_compressed and packed.crc_ok and packed.sha256_ok
    assert packed.prefix.start_address == parse_module(data).prefix.start_address
    assert len(packed.data) < len(data)
    assert decompress_module(packed) == data


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("tracker-bootloader@5.6.0.bin", "only user parts"),
        ("argon-softdevice-6.1.1.bin", "only user parts"),
    ],
)
def test_compress_refuses_what_device_os_refuses(name: str, why: str) -> None:
    with pytest.raises(UnsupportedOperationError, match=why):
        compress_module(parse_module(binary(name)))


def test_compress_twice_and_decompress_plain_are_refused() -> None:
    packed = parse_module(compress_module(parse_module(binary("argon-tinker-620.bin"))))
    with pytest.raises(UnsupportedOperationError, match="already compressed"):
        compress_module(packed)
    with pytest.raises(UnsupportedOperationError, match="not compressed"):
        decompress_module(parse_module(binary("argon-tinker-620.bin")))


def test_combine_and_split() -> None:
    boot, app = binary("tracker-bootloader@5.6.0.bin"), binary("tracker-tinker@5.3.1.bin")
    combined = combine_modules([boot, app])
    parts = parse_combined(combined)
    assert [p.is_combined for p in parts] == [True, False]
    assert all(p.crc_ok and p.sha256_ok for p in parts)
    assert split_combined(combined) == [boot, app]
    with pytest.raises(UnsupportedOperationError, match="already combined"):
        combine_modules([combined, app])
    with pytest.raises(UnsupportedOperationError, match="at most 2"):
        combine_modules([boot, app, app])


def test_asset_dependencies_gen3_suffix() -> None:
    app = parse_module(binary("argon-tinker-620.bin"))
    deps = [asset_dependency("a.bin", b"A" * 10), asset_dependency("b.txt", b"hello")]
    out = parse_module(set_asset_dependencies(app, deps))
    assert out.asset_dependencies == deps
    assert out.prefix.start_address == app.prefix.start_address
    assert (out.suffix.product_id, out.suffix.product_version) == (
        app.suffix.product_id,
        app.suffix.product_version,
    )
    assert out.body_range[1] - out.body_range[0] == app.body_range[1] - app.body_range[0]
    again = parse_module(set_asset_dependencies(out, deps[:1]))
    assert again.asset_dependencies == deps[:1]
    assert set_asset_dependencies(again, []) == app.data  # removing them restores the original


def test_asset_dependencies_rtl872x_prefix_grows_left() -> None:
    app = parse_module(binary("tinker-6.3.4-msom.bin"))
    deps = [asset_dependency("cat.jpg", b"meow"), asset_dependency("x", b"")]
    out = parse_module(set_asset_dependencies(app, deps))
    assert out.flags & ModuleFlag.PREFIX_EXTENSIONS
    assert out.prefix.end_address == app.prefix.end_address  # fixed end at the top of flash
    assert out.prefix.start_address % 8 == 0 and out.prefix.start_address < app.prefix.start_address
    location = next(e for e in out.suffix.extensions if isinstance(e, DynamicLocationExtension))
    assert location.module_start_address == out.prefix.start_address
    assert out.asset_dependencies == deps
    replaced = parse_module(set_asset_dependencies(out, deps[1:]))
    assert replaced.asset_dependencies == deps[1:]  # no stale END in front of the new list
    assert set_asset_dependencies(replaced, []) == app.data


def test_asset_dependencies_refusals() -> None:
    with pytest.raises(UnsupportedOperationError, match="user parts"):
        set_asset_dependencies(parse_module(binary("tracker-bootloader@5.6.0.bin")), [])
    big = parse_module(binary("tracker-max-size@5.5.0-rc.1.bin"))
    with pytest.raises(LimitExceededError) as info:
        set_asset_dependencies(big, [asset_dependency("a", b"a")])
    assert info.value.limit == 262_144


def test_build_module_computes_addresses_and_checksums() -> None:
    prefix = ModulePrefix(
        start_address=0xB4000,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=2,
        platform_id=13,
        module_version=6,
    )
    data = build_module(prefix=prefix, body=b"\x00" * 100, product=(13, 7))
    m = parse_module(data)
    assert m.prefix.end_address == 0xB4000 + len(data) - 4
    assert (m.suffix.product_id, m.suffix.product_version, m.suffix.size) == (13, 7, 40)
    assert m.crc_ok and m.sha256_ok


def test_bundle_round_trip_is_deterministic() -> None:
    app = binary("argon-tinker-620.bin")
    assets = [("a.txt", b"alpha"), ("b.bin", bytes(range(256)))]
    first = write_bundle("firmware.bin", app, assets)
    assert first == write_bundle("firmware.bin", app, assets)
    bundle = read_bundle(first)
    assert (bundle.app_name, bundle.assets) == ("firmware.bin", dict(assets))
    check = check_bundle(bundle)
    assert check.ok, check.problems
    assert [d.name for d in check.app.asset_dependencies] == ["a.txt", "b.bin"]
    assert check.app.asset_dependencies[1].hash == hashlib.sha256(bytes(range(256))).digest()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("bundle-asset-hash-no-match.zip", "'cat.txt' does not match"),
        ("bundle-missing-assets.zip", "needs asset 'water.txt'"),
    ],
)
def test_bundle_problems(name: str, problem: str) -> None:
    check = check_bundle(read_bundle((BUNDLES / name).read_bytes()))
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


def test_bundle_extra_asset_and_platform_limits() -> None:
    app = binary("argon-tinker-620.bin")
    bundle = read_bundle(write_bundle("app.bin", app, [("a", b"1")]))
    extra = type(bundle)(bundle.app_name, bundle.app, {**bundle.assets, "b": b"2"})
    assert any("does not declare it" in p for p in check_bundle(extra).problems)
    photon = binary("040_user-part.bin")
    with pytest.raises(BundleError, match=r"plain '\.bin'"):
        write_bundle("x.hex", photon, [])
    noise = random.Random(7).randbytes(620_000)  # incompressible: the module stays > limit
    huge = write_bundle("app.bin", app, [("big.bin", noise)])
    problems = check_bundle(read_bundle(huge)).problems
    assert any("Argon allows 606208" in p for p in problems), problems


def test_real_bundles_are_read() -> None:
    for name in ("bundle.zip", "bundle_app_1719510886367.zip"):
        check = check_bundle(read_bundle((BUNDLES / name).read_bytes()))
        assert check.ok and sorted(check.bundle.assets) == ["cat.txt", "house.txt", "water.txt"]


def test_unwrap_refuses_asset_names_that_are_paths() -> None:
    prefix = ModulePrefix(
        start_address=0,
        end_address=0,
        function=ModuleFunction.ASSET,
        flags=ModuleFlag.DROP_MODULE_INFO,
    )
    exts: list[Extension] = [
        HashExtension(hashlib.sha256(b"x").digest()),
        NameExtension("../etc/passwd"),
        ProductDataExtension(0xFFFF, 0xFFFF),
    ]
    module = parse_module(build_module(prefix=prefix, body=b"x", suffix_extensions=exts))
    with pytest.raises(ImageError, match="path separator"):
        unwrap_asset_module(module)
