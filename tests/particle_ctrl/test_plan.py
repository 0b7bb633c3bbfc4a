"""Planning a stock-device update: order, skipped assets and every refusal, on real files."""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from pathlib import Path

import pytest

from bluemule.emulator.apps import make_app
from bluemule.image import (
    Dependency,
    ModuleFunction,
    ModulePrefix,
    SecurityModeExtension,
    build_module,
    combine_modules,
    compress_module,
    create_asset_module,
    parse_module,
    write_bundle,
)
from bluemule.particle_ctrl.plan import (
    BadFileError,
    CompressionError,
    DependencyError,
    DeviceAsset,
    DeviceModule,
    DeviceState,
    InputFile,
    PlanError,
    ProtectedDeviceError,
    ResetAfter,
    TooLargeError,
    UnsupportedModuleError,
    WrongPlatformError,
    make_plan,
)

FIXTURES = Path(__file__).resolve().parents[2] / "../shared/fixtures/particle"
ARGON, BORON, TRACKER = 12, 13, 26
SYSTEM, BOOTLOADER, RADIO, USER, ASSET = 4, 2, 8, 5, 9


def fixture(rel: str) -> InputFile:
    path = FIXTURES / rel
    return InputFile(path.name, path.read_bytes())


def argon(os_version: int = 4006, **kw: object) -> DeviceState:
    modules = (
        DeviceModule(SYSTEM, 1, os_version),
        DeviceModule(BOOTLOADER, 0, 1200),
        DeviceModule(RADIO, 0, 202),
    )
    return DeviceState(ARGON, modules, **kw)  # type: ignore[arg-type]


def boron(os_version: int = 6200, **kw: object) -> DeviceState:
    modules = (DeviceModule(SYSTEM, 1, os_version), DeviceModule(BOOTLOADER, 0, 2400))
    return DeviceState(BORON, modules, **kw)  # type: ignore[arg-type]


def boron_system_part(version: int, *, deps: tuple[Dependency, ...] = ()) -> bytes:
    """A Boron system part 1 at 0x28000 with its prefix after the vector table."""
    d1, d2 = (*deps, Dependency(), Dependency())[:2]
    prefix = ModulePrefix(
        start_address=0x28000,
        end_address=0,
        function=ModuleFunction.SYSTEM_PART,
        index=1,
        platform_id=BORON,
        module_version=version,
        dependency=d1,
        dependency2=d2,
    )
    vectors = (0x2003FC00).to_bytes(4, "little") + bytes(0x200 - 4)
    return build_module(prefix=prefix, body=bytes(range(256)) * 8, head=vectors, product=(BORON, 1))


# -- order ------------------------------------------------------------------------------------


def test_bundle_and_system_part_are_ordered_like_particle_cli() -> None:
    plan = make_plan(
        [fixture("bundles/bundle.zip"), fixture("binaries/argon-system-part1@4.1.0.bin")],
        argon(),
    )
    assert [(s.name, s.kind, s.version) for s in plan.steps] == [
        ("argon-system-part1@4.1.0.bin", "system_part", 4100),
        ("bundle.zip:app.bin", "user_part", 6),
        ("bundle.zip:assets/cat.txt", "asset", 0),
        ("bundle.zip:assets/house.txt", "asset", 0),
        ("bundle.zip:assets/water.txt", "asset", 0),
    ]
    system = (FIXTURES / "binaries/argon-system-part1@4.1.0.bin").read_bytes()
    assert plan.steps[0].data == system
    assert plan.steps[0].sha256 == parse_module(system).suffix.sha256
    assert all(s.reset is ResetAfter.DEVICE for s in plan.steps)
    assert plan.resets == 5
    assert plan.total_bytes == sum(len(s.data) for s in plan.steps)


def test_assets_are_sent_as_asset_modules_with_the_hash_the_app_declares() -> None:
    plan = make_plan([fixture("bundles/bundle.zip")], argon(4100))
    app = parse_module(plan.steps[0].data)
    declared = {d.name: d.hash for d in app.asset_dependencies}
    for step in plan.steps[1:]:
        module = parse_module(step.data)
        assert module.function == ASSET
        assert step.asset_name is not None
        assert declared[step.asset_name] == step.asset_hash == module.asset_hash


def test_files_given_in_any_order_come_out_in_dependency_order(tmp_path: Path) -> None:
    # bootloader 3000, a system part needing it, an app needing that system part
    bootloader_prefix = ModulePrefix(
        start_address=0xF4000,
        end_address=0,
        function=ModuleFunction.BOOTLOADER,
        index=0,
        platform_id=BORON,
        module_version=3000,
    )
    vectors = (0x2003FC00).to_bytes(4, "little") + bytes(0x200 - 4)
    bootloader = build_module(prefix=bootloader_prefix, body=b"\x01" * 512, head=vectors)
    system = boron_system_part(6300, deps=(Dependency(BOOTLOADER, 0, 3000),))
    app = make_app("boron", device_os=6300, library=False)
    files = [
        InputFile("app.bin", app),
        InputFile("sp.bin", system),
        InputFile("bl.bin", bootloader),
    ]
    plan = make_plan(files, boron())
    assert [s.name for s in plan.steps] == ["bl.bin", "sp.bin", "app.bin"]


def test_system_part_follows_the_radio_stack_it_needs() -> None:
    prefix = ModulePrefix(
        start_address=0x1000,
        end_address=0,
        function=ModuleFunction.RADIO_STACK,
        index=0,
        platform_id=BORON,
        module_version=300,
        flags=0x01,
    )
    radio = build_module(prefix=prefix, body=b"\x02" * 1024)
    system = boron_system_part(6300, deps=(Dependency(RADIO, 0, 300),))
    device = DeviceState(BORON, (*boron().modules, DeviceModule(RADIO, 0, 202)))
    plan = make_plan([InputFile("sp.bin", system), InputFile("radio.bin", radio)], device)
    assert [s.kind for s in plan.steps] == ["radio_stack", "system_part"]
    with pytest.raises(DependencyError, match="radio_stack 0 >= 300; the device has 202"):
        make_plan([InputFile("sp.bin", system)], device)


def _argon_with_radio(radio: int) -> DeviceState:
    return DeviceState(
        ARGON,
        (
            DeviceModule(SYSTEM, 1, 4006),
            DeviceModule(BOOTLOADER, 0, 1200),
            DeviceModule(RADIO, 0, radio),
        ),
    )


def test_a_combined_file_is_planned_part_by_part() -> None:
    system = boron_system_part(6300)
    app = make_app("boron", device_os=6300, library=False)
    combined = combine_modules([system, app])
    plan = make_plan([InputFile("both.bin", combined)], boron())
    assert [(s.name, s.kind) for s in plan.steps] == [
        ("both.bin#1", "system_part"),
        ("both.bin#2", "user_part"),
    ]
    assert parse_module(plan.steps[1].data).suffix.sha256 == parse_module(app).suffix.sha256


# -- assets the device has --------------------------------------------------------------------


def test_assets_the_device_already_has_are_skipped() -> None:
    cat = hashlib.sha256(_bundle_asset("cat.txt")).digest()
    house = hashlib.sha256(_bundle_asset("house.txt")).digest()
    device = argon(4100, assets=(DeviceAsset("cat.txt", cat), DeviceAsset("house.txt", b"\0" * 32)))
    plan = make_plan([fixture("bundles/bundle.zip")], device)
    assert [s.asset_name for s in plan.steps if s.asset_name] == ["house.txt", "water.txt"]
    assert [(a.name, a.hash) for a in plan.skipped] == [("cat.txt", cat)]
    assert house != b"\0" * 32


def _bundle_asset(name: str) -> bytes:
    with zipfile.ZipFile(FIXTURES / "bundles/bundle.zip") as z:
        return z.read(f"assets/{name}")


def test_an_asset_module_file_no_app_requires_is_refused() -> None:
    device = boron(required_assets=(DeviceAsset("logo.png", b"\1" * 32),))
    with pytest.raises(UnsupportedModuleError, match=r"does not require asset 'cat\.jpg'"):
        make_plan([fixture("binaries/cat.bin")], device)


def test_an_asset_module_alone_goes_when_the_installed_app_requires_it() -> None:
    cat = parse_module((FIXTURES / "binaries/cat.bin").read_bytes())
    assert cat.asset_hash is not None
    device = boron(required_assets=(DeviceAsset("cat.jpg", cat.asset_hash),))
    plan = make_plan([fixture("binaries/cat.bin")], device)
    assert [(s.kind, s.asset_name) for s in plan.steps] == [("asset", "cat.jpg")]


# -- resets -----------------------------------------------------------------------------------


def test_with_resets_disabled_assets_share_a_session_and_a_reset_is_requested() -> None:
    assets = {"a.txt": b"alpha", "b.txt": b"bravo"}
    app = make_app("boron", device_os=6200, library=False, assets=assets)
    bundle = write_bundle("app.bin", app, sorted(assets.items()))
    plan = make_plan([InputFile("b.zip", bundle)], boron(resets_disabled=True))
    assert [(s.kind, s.reset) for s in plan.steps] == [
        ("user_part", ResetAfter.REQUEST),
        ("asset", ResetAfter.NONE),
        ("asset", ResetAfter.REQUEST),
    ]
    assert plan.resets == 2


# -- refusals ---------------------------------------------------------------------------------


def test_wrong_platform_is_refused() -> None:
    with pytest.raises(WrongPlatformError, match="built for Boron; the device is Argon") as err:
        make_plan([fixture("binaries/boron_blank.bin")], argon())
    assert err.value.reason == "wrong_platform"


def test_an_app_needing_a_newer_device_os_without_it_is_refused() -> None:
    with pytest.raises(DependencyError, match="system_part 1 >= 6101; the device has 4006"):
        make_plan([fixture("binaries/argon-tinker-620.bin")], argon())


def test_the_app_goes_when_the_set_brings_its_device_os() -> None:
    app = make_app("boron", device_os=6300, library=False)
    plan = make_plan(
        [InputFile("app.bin", app), InputFile("sp.bin", boron_system_part(6300))], boron()
    )
    assert [s.kind for s in plan.steps] == ["system_part", "user_part"]


def test_a_system_part_whose_radio_stack_is_too_old_is_refused() -> None:
    with pytest.raises(DependencyError, match="radio_stack 0 >= 202; the device has 150"):
        make_plan([fixture("binaries/argon-system-part1@4.1.0.bin")], _argon_with_radio(150))


def test_a_downgrade_that_breaks_the_installed_app_is_refused() -> None:
    device = DeviceState(
        BORON,
        (
            DeviceModule(SYSTEM, 1, 6200),
            DeviceModule(BOOTLOADER, 0, 2400),
            DeviceModule(USER, 2, 6, Dependency(SYSTEM, 1, 6200)),
        ),
    )
    with pytest.raises(DependencyError, match="installed user_part 2 would need system_part 1"):
        make_plan([InputFile("sp.bin", boron_system_part(5000))], device)


def test_bad_files_are_refused_with_their_name() -> None:
    for rel, match in (
        ("binaries/unknown.bin", "unknown.bin: no Particle module prefix"),
        ("binaries/emptybin.bin", "emptybin.bin: 0 bytes"),
        ("bundles/bundle-missing-assets.zip", "bundle-missing-assets.zip: application needs"),
        ("bundles/bundle-asset-hash-no-match.zip", "does not match the SHA-256"),
        ("bundles/invalid-bundle.zip", "invalid-bundle.zip"),
    ):
        with pytest.raises(BadFileError, match=match):
            make_plan([fixture(rel)], argon(4100))
    with pytest.raises(BadFileError, match="no files"):
        make_plan([], argon())


def test_a_module_with_a_bad_crc_is_refused() -> None:
    app = bytearray(make_app("boron", library=False))
    app[100] ^= 0xFF
    with pytest.raises(BadFileError, match="CRC-32"):
        make_plan([InputFile("app.bin", bytes(app))], boron())


def test_an_oversize_app_is_refused() -> None:
    app = make_app("boron", library=False, body_size=262_144)
    with pytest.raises(TooLargeError, match="Boron allows 262144") as err:
        make_plan([InputFile("big.bin", app)], boron())
    assert err.value.reason == "too_large"


def test_an_oversize_asset_is_refused() -> None:
    big = create_asset_module(random.Random(1).randbytes(620_000), "big.bin")
    with pytest.raises(TooLargeError, match="Boron allows 606208 B per asset"):
        make_plan([InputFile("big.bin", big)], boron())


def test_compressed_modules_are_refused_where_device_os_cannot_inflate_them() -> None:
    app = compress_module(parse_module(make_app("boron", library=False, body_size=8192)))
    with pytest.raises(CompressionError, match="cannot inflate"):
        make_plan([InputFile("app.bin", app)], boron(compressed_ota=False))
    assert make_plan([InputFile("app.bin", app)], boron()).steps[0].data == app


def test_ncp_firmware_is_refused() -> None:
    prefix = ModulePrefix(
        start_address=0,
        end_address=0,
        function=ModuleFunction.NCP_FIRMWARE,
        index=0,
        platform_id=BORON,
        module_version=5,
        mcu_target=33,
    )
    ncp = build_module(prefix=prefix, body=b"\x00" * 64)
    with pytest.raises(UnsupportedModuleError, match="ncp modules cannot be installed"):
        make_plan([InputFile("ncp.bin", ncp)], boron())


def test_two_apps_are_refused() -> None:
    a = make_app("boron", library=False, tag="a")
    b = make_app("boron", library=False, tag="b")
    with pytest.raises(UnsupportedModuleError, match="two applications"):
        make_plan([InputFile("a.bin", a), InputFile("b.bin", b)], boron())


def test_a_protected_device_refuses_everything() -> None:
    with pytest.raises(ProtectedDeviceError, match="SYSTEM_ERROR_PROTECTED") as err:
        make_plan([fixture("binaries/tracker-tinker@5.3.1.bin")], _tracker(protected=True))
    assert err.value.reason == "protected_device"


def test_a_protected_bootloader_needs_device_os_6_1_1() -> None:
    files = [fixture("binaries/tracker-bootloader-protected.bin")]
    with pytest.raises(ProtectedDeviceError, match=r"needs Device OS >= 6\.1\.1"):
        make_plan(files, _tracker(os_version=5600))
    plan = make_plan(files, _tracker(os_version=6101))
    module = parse_module(plan.steps[0].data)
    assert any(isinstance(e, SecurityModeExtension) for e in module.extensions)


def _tracker(*, os_version: int = 5600, protected: bool = False) -> DeviceState:
    return DeviceState(
        TRACKER,
        (DeviceModule(SYSTEM, 1, os_version), DeviceModule(BOOTLOADER, 0, 2400)),
        protected=protected,
    )


def test_every_refusal_is_a_plan_error_with_a_reason() -> None:
    for cls in (
        BadFileError,
        WrongPlatformError,
        DependencyError,
        TooLargeError,
        CompressionError,
        ProtectedDeviceError,
        UnsupportedModuleError,
    ):
        assert issubclass(cls, PlanError)
        assert cls.reason != PlanError.reason


def test_asset_modules_given_directly_are_sent_as_they_are() -> None:
    module = create_asset_module(b"hello", "hello.txt")
    plan = make_plan([InputFile("hello.bin", module)], boron())
    assert plan.steps[0].data == module
    assert plan.steps[0].asset_name == "hello.txt"


def test_golden_plan_of_real_particle_files() -> None:
    """The whole plan for particle-cli's bundle and Argon Device OS 4.1.0: order, sizes,
    SHA-256 and resets, as recorded (asset modules compressed as particle-cli makes them)."""
    golden = json.loads((Path(__file__).parent / "golden/plan_argon.json").read_text())
    plan = make_plan([fixture(f) for f in golden["files"]], argon())
    assert [s.describe() for s in plan.steps] == golden["steps"]


def test_a_compressed_app_is_measured_by_its_original_size() -> None:
    app = make_app("boron", library=False, body_size=262_144)  # compresses well, too big
    packed = compress_module(parse_module(app))
    assert len(packed) < 262_144 < len(app)
    with pytest.raises(TooLargeError, match="Boron allows 262144"):
        make_plan([InputFile("big.bin", packed)], boron())


def test_m_som_tinker_needs_its_device_os() -> None:
    msom = DeviceState(35, (DeviceModule(SYSTEM, 1, 6300), DeviceModule(BOOTLOADER, 0, 3000)))
    with pytest.raises(DependencyError, match="system_part 1 >= 6305; the device has 6300"):
        make_plan([fixture("binaries/tinker-6.3.4-msom.bin")], msom)
    newer = DeviceState(35, (DeviceModule(SYSTEM, 1, 6305), DeviceModule(BOOTLOADER, 0, 3000)))
    plan = make_plan([fixture("binaries/tinker-6.3.4-msom.bin")], newer)
    assert [(s.kind, s.index, s.size) for s in plan.steps] == [("user_part", 1, 57344)]


def test_a_compressed_app_is_checked_by_its_inflated_sha256() -> None:
    """The device reports the installed (inflated) module's SHA-256, not the packed one's."""
    app = make_app("boron", library=False, tag="packed")
    packed = compress_module(parse_module(app))
    (step,) = make_plan([InputFile("app.bin", packed)], boron()).steps
    assert step.data == packed
    assert step.sha256 == parse_module(app).suffix.sha256 != parse_module(packed).suffix.sha256
