"""Hypothesis strategies that build valid Particle modules with ``bluemule.image.build_module``.

Every strategy draws a :class:`Generated`: the module's bytes plus what it was built
from, so a test knows what to expect without parsing. The shapes copy the real files in
``shared/fixtures/particle``:

* ``gen3_apps``: nRF52840 user parts at 0xB4000 (index 2) or 0xD4000 (index 1), a
  40-byte suffix with raw product id/version, optional ASSET_DEPENDENCY extensions in
  the suffix followed by END (like ``tracker-user-part-extensions.bin``);
* ``rtl872x_apps``: RTL872x user parts ending at 0x085FFFFC that grow left, suffix
  extensions DYNAMIC_LOCATION + PRODUCT_DATA (like the p2/msom Tinker files), optional
  ASSET_DEPENDENCY extensions in the prefix with an 8-byte aligned start (like
  ``p2-user-part-prefix-extensions.bin``), optionally an extra DEPENDENCY extension;
* ``gen2_apps`` / ``other_apps``: STM32 user parts with the old 36-byte suffix, and user
  parts for the remaining platforms of ``PLATFORMS``;
* ``system_parts``: Gen 3 behind a 0x200-byte vector table, Gen 2 behind 0x184 bytes,
  RTL872x with the prefix at 0 (the only compressible ones);
* ``bootloaders``: Gen 3 behind a vector table, optionally with SECURITY_MODE (and a
  certificate) like ``tracker-bootloader-protected.bin``; RTL872x with the prefix at
  0x20 like ``p2-bootloader@5.6.0.bin``;
* ``radio_stacks`` (DROP_MODULE_INFO) and ``asset_modules`` (``create_asset_module``,
  compressed or not, with or without an ASSET_TYPE).

Bodies are random bytes of at most a few hundred bytes, so hundreds of examples stay fast.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from bluemule.image import (
    PLATFORMS,
    AssetDependencyExtension,
    AssetType,
    Dependency,
    DependencyExtension,
    DynamicLocationExtension,
    Extension,
    McuFamily,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    Platform,
    ProductDataExtension,
    SecurityMode,
    SecurityModeExtension,
    UnknownExtension,
    asset_dependency,
    build_module,
    create_asset_module,
)

__all__ = [
    "ASSET_PLATFORMS",
    "NRF52840_PLATFORMS",
    "RTL872X_APP_END",
    "RTL872X_PLATFORMS",
    "STM32F2_PLATFORMS",
    "Generated",
    "any_apps",
    "any_modules",
    "asset_apps",
    "asset_blobs",
    "asset_modules",
    "asset_names",
    "bodies",
    "bootloaders",
    "compressible_modules",
    "examples",
    "gen2_apps",
    "gen3_apps",
    "other_apps",
    "radio_stacks",
    "rtl872x_apps",
    "system_parts",
]

NRF52840_PLATFORMS = tuple(p for p in PLATFORMS if p.mcu is McuFamily.NRF52840)
RTL872X_PLATFORMS = tuple(p for p in PLATFORMS if p.mcu is McuFamily.RTL872X)
STM32F2_PLATFORMS = tuple(p for p in PLATFORMS if p.mcu is McuFamily.STM32F2)
OTHER_PLATFORMS = tuple(p for p in PLATFORMS if p.mcu in (McuFamily.OTHER, McuFamily.STM32F1))
ASSET_PLATFORMS = tuple(p for p in PLATFORMS if p.assets is not None)
"""Platforms binary-version-reader accepts in ``createApplicationAndAssetBundle``."""

RTL872X_APP_END = 0x085FFFFC
"""``module_end_address`` of every RTL872x user part (the CRC ends at 0x08600000)."""

_NRF_VECTOR_TABLE = 0x200
_STM32F2_VECTOR_TABLE = 0x184
_RTL_BOOTLOADER_HEADER = 0x20
_SRAM_STACK_TOP = 0x20040000


def examples(max_examples: int = 40) -> settings:
    """Hypothesis settings for tests that call binary-version-reader: few examples, no deadline.

    ``BLUEMULE_HYPOTHESIS_SCALE`` (a float, default 1) multiplies the count for a deeper
    run, e.g. ``BLUEMULE_HYPOTHESIS_SCALE=25 pytest tests/conformance``.
    """
    scale = float(os.environ.get("BLUEMULE_HYPOTHESIS_SCALE", "1"))
    return settings(max_examples=max(1, round(max_examples * scale)), deadline=None)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@dataclass(frozen=True)
class Generated:
    """A generated module and the facts it was built from."""

    kind: str
    data: bytes = field(repr=False)
    platform: Platform | None
    asset_deps: tuple[AssetDependencyExtension, ...] = ()
    """ASSET_DEPENDENCY extensions the module was built with, in order."""
    asset: tuple[str, bytes] | None = None
    """For asset modules: name and raw content."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' pretty printer
        printer.text(repr(self))

    def __repr__(self) -> str:  # keep hypothesis' failure output readable
        name = self.platform.name if self.platform else None
        return (
            f"Generated({self.kind}, platform={name}, {len(self.data)} B, "
            f"deps={[d.name for d in self.asset_deps]}, "
            f"sha256={hashlib.sha256(self.data).hexdigest()[:16]}, "
            f"data={self.data.hex()})"
        )


def bodies(max_size: int = 256) -> st.SearchStrategy[bytes]:
    """Random module bodies."""
    return st.binary(min_size=0, max_size=max_size)


def asset_names(max_size: int = 24) -> st.SearchStrategy[str]:
    """Names ``check_asset_name`` accepts: UTF-8, no separators or control characters."""
    alphabet = st.characters(
        codec="utf-8",
        min_codepoint=0x20,
        exclude_characters="/\\\x7f",
    )
    return st.text(alphabet, min_size=1, max_size=max_size).filter(lambda s: s not in {".", ".."})


def asset_blobs(
    *, min_size: int = 0, max_size: int = 4, max_data: int = 200
) -> st.SearchStrategy[list[tuple[str, bytes]]]:
    """Raw assets with unique names."""
    return st.lists(
        st.tuples(asset_names(), st.binary(max_size=max_data)),
        min_size=min_size,
        max_size=max_size,
        unique_by=lambda a: a[0],
    )


def _asset_deps(blobs: Sequence[tuple[str, bytes]]) -> tuple[AssetDependencyExtension, ...]:
    return tuple(asset_dependency(name, data) for name, data in blobs)


def dependencies() -> st.SearchStrategy[Dependency]:
    """No dependency, or one on any known module function."""
    functions = [f for f in ModuleFunction if f != ModuleFunction.NONE]
    return st.one_of(
        st.just(Dependency()),
        st.builds(Dependency, st.sampled_from(functions), u8, u16),
    )


@st.composite
def _vector_table(draw: st.DrawFn, size: int, start: int) -> bytes:
    """Stack pointer and reset vector like a real MCU image, then random words."""
    head = struct.pack("<II", _SRAM_STACK_TOP, start + size + 1)
    return head + draw(st.binary(min_size=size - len(head), max_size=size - len(head)))


@st.composite
def gen3_apps(draw: st.DrawFn, *, with_asset_deps: bool = True) -> Generated:
    """nRF52840 user part with raw product data in a 40-byte suffix (+ optional asset deps)."""
    platform = draw(st.sampled_from(NRF52840_PLATFORMS))
    index, start = draw(st.sampled_from([(2, 0xB4000), (1, 0xD4000)]))
    deps = _asset_deps(draw(asset_blobs())) if with_asset_deps else ()
    prefix = ModulePrefix(
        start_address=start,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=index,
        platform_id=platform.id,
        module_version=draw(u16),
        mcu_target=draw(st.sampled_from([0, 0xFF])),
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, draw(u16)),
        dependency2=draw(dependencies()),
    )
    data = build_module(
        prefix=prefix,
        body=draw(bodies()),
        suffix_extensions=deps,
        product=(draw(u16), draw(u16)),
    )
    return Generated("gen3_app", data, platform, deps)


@st.composite
def rtl872x_apps(draw: st.DrawFn, *, with_asset_deps: bool = True) -> Generated:
    """RTL872x user part: fixed end, DYNAMIC_LOCATION + PRODUCT_DATA suffix, deps in the prefix."""
    platform = draw(st.sampled_from(RTL872X_PLATFORMS))
    deps = _asset_deps(draw(asset_blobs())) if with_asset_deps else ()
    suffix: list[Extension] = []
    if draw(st.booleans()):
        suffix.append(DependencyExtension(ModuleFunction.SYSTEM_PART, 1, draw(u16), draw(u32)))
    # module_start_address is filled in by build_module (anchor="end").
    suffix.append(DynamicLocationExtension(0, draw(u32), draw(u32)))
    suffix.append(ProductDataExtension(draw(u16), draw(u16)))
    prefix = ModulePrefix(
        start_address=0,
        end_address=RTL872X_APP_END,
        function=ModuleFunction.USER_PART,
        index=1,
        platform_id=platform.id,
        module_version=draw(u16),
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, draw(u16)),
        dependency2=draw(dependencies()),
        extensions=deps,
    )
    data = build_module(prefix=prefix, body=draw(bodies()), suffix_extensions=suffix, anchor="end")
    return Generated("rtl872x_app", data, platform, deps)


@st.composite
def gen2_apps(draw: st.DrawFn) -> Generated:
    """STM32F2 user part with the old 36-byte suffix (no product data)."""
    platform = draw(st.sampled_from(STM32F2_PLATFORMS))
    prefix = ModulePrefix(
        start_address=0x080A0000,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=1,
        platform_id=platform.id,
        module_version=draw(u16),
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 2, draw(u16)),
    )
    return Generated("gen2_app", build_module(prefix=prefix, body=draw(bodies())), platform)


@st.composite
def other_apps(draw: st.DrawFn) -> Generated:
    """User parts for the remaining platforms (Core, GCC, Linux …), 36- or 40-byte suffix."""
    platform = draw(st.sampled_from(OTHER_PLATFORMS))
    prefix = ModulePrefix(
        start_address=draw(st.sampled_from([0, 0x08005000, 0x10000])),
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=draw(st.integers(0, 2)),
        platform_id=platform.id,
        module_version=draw(u16),
        dependency=draw(dependencies()),
    )
    product = draw(st.none() | st.tuples(u16, u16))
    data = build_module(prefix=prefix, body=draw(bodies()), product=product)
    return Generated("other_app", data, platform)


@st.composite
def system_parts(draw: st.DrawFn, *, family: str | None = None) -> Generated:
    """System part: Gen 3 (vector table 0x200), Gen 2 (0x184) or RTL872x (prefix at 0).

    ``family`` (``"nrf52840"``, ``"stm32f2"`` or ``"rtl872x"``) picks one; default: any.
    """
    if family is None:
        family = draw(st.sampled_from(["nrf52840", "stm32f2", "rtl872x"]))
    version = draw(u16)
    suffix: list[Extension] = []
    product: tuple[int, int] | None = None
    if family == "nrf52840":
        platform = draw(st.sampled_from(NRF52840_PLATFORMS))
        start, head_size = 0x30000, _NRF_VECTOR_TABLE
        deps = (
            Dependency(ModuleFunction.RADIO_STACK, 0, draw(u16)),
            Dependency(ModuleFunction.BOOTLOADER, 0, draw(u16)),
        )
        product = (0xFFFF, 0xFFFF)
        if draw(st.booleans()):  # a type this library does not interpret, kept as is
            suffix.append(UnknownExtension(draw(st.integers(0x100, 0xFFFE)), draw(bodies(16))))
    elif family == "stm32f2":
        platform = draw(st.sampled_from(STM32F2_PLATFORMS))
        start, head_size = 0x08020000, _STM32F2_VECTOR_TABLE
        deps = (Dependency(ModuleFunction.SYSTEM_PART, 1, draw(u16)), Dependency())
    else:
        platform = draw(st.sampled_from(RTL872X_PLATFORMS))
        start, head_size = 0x08060000, 0
        deps = (Dependency(ModuleFunction.BOOTLOADER, 0, draw(u16)), Dependency())
        suffix.append(ProductDataExtension(0xFFFF, 0xFFFF))
    prefix = ModulePrefix(
        start_address=start,
        end_address=0,
        function=ModuleFunction.SYSTEM_PART,
        index=draw(st.integers(1, 3)),
        platform_id=platform.id,
        module_version=version,
        dependency=deps[0],
        dependency2=deps[1],
    )
    head = draw(_vector_table(head_size, start)) if head_size else b""
    data = build_module(
        prefix=prefix, body=draw(bodies()), suffix_extensions=suffix, product=product, head=head
    )
    return Generated("system_part", data, platform)


@st.composite
def bootloaders(draw: st.DrawFn) -> Generated:
    """Bootloader: Gen 3 behind a vector table (maybe protected) or RTL872x behind 0x20 bytes."""
    suffix: list[Extension] = []
    product: tuple[int, int] | None = None
    flags = 0
    if draw(st.booleans()):
        platform = draw(st.sampled_from(NRF52840_PLATFORMS))
        start, head_size = 0xF4000, _NRF_VECTOR_TABLE
        product = (draw(u16), draw(u16))
        if draw(st.booleans()):
            suffix.append(SecurityModeExtension(SecurityMode.PROTECTED, draw(bodies(64))))
    else:
        platform = draw(st.sampled_from(RTL872X_PLATFORMS))
        start, head_size = 0x08004000, _RTL_BOOTLOADER_HEADER
        suffix += [DynamicLocationExtension(start, 0, 0), ProductDataExtension(0xFFFF, 0xFFFF)]
        flags = draw(st.sampled_from([0, ModuleFlag.ENCRYPTED]))
    prefix = ModulePrefix(
        start_address=start,
        end_address=0,
        function=ModuleFunction.BOOTLOADER,
        index=draw(st.integers(0, 2)),
        platform_id=platform.id,
        module_version=draw(u16),
        flags=flags,
        dependency=draw(dependencies()),
    )
    head = draw(_vector_table(head_size, start))
    data = build_module(
        prefix=prefix, body=draw(bodies()), suffix_extensions=suffix, product=product, head=head
    )
    return Generated("bootloader", data, platform)


@st.composite
def radio_stacks(draw: st.DrawFn) -> Generated:
    """nRF SoftDevice: prefix at 0, DROP_MODULE_INFO, 36-byte suffix."""
    platform = draw(st.sampled_from(NRF52840_PLATFORMS))
    prefix = ModulePrefix(
        start_address=0x1000,
        end_address=0,
        function=ModuleFunction.RADIO_STACK,
        platform_id=platform.id,
        module_version=draw(u16),
        flags=ModuleFlag.DROP_MODULE_INFO,
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, draw(u16)),
        dependency2=Dependency(ModuleFunction.BOOTLOADER, 0, draw(u16)),
    )
    return Generated("radio_stack", build_module(prefix=prefix, body=draw(bodies())), platform)


@st.composite
def asset_modules(draw: st.DrawFn, *, compress: bool | None = None) -> Generated:
    """``create_asset_module`` output; ``compress=None`` draws it."""
    name = draw(asset_names())
    content = draw(st.binary(max_size=300))
    compressed = draw(st.booleans()) if compress is None else compress
    asset_type = draw(st.sampled_from(list(AssetType)))
    data = create_asset_module(content, name, compress=compressed, asset_type=asset_type)
    return Generated("asset", data, None, asset=(name, content))


def any_apps(*, with_asset_deps: bool = True) -> st.SearchStrategy[Generated]:
    """Gen 3 or RTL872x application (the platforms that take assets)."""
    return st.one_of(
        gen3_apps(with_asset_deps=with_asset_deps), rtl872x_apps(with_asset_deps=with_asset_deps)
    )


def asset_apps(*, with_asset_deps: bool = True) -> st.SearchStrategy[Generated]:
    """Applications for platforms with asset storage (what bundles are made of)."""
    return any_apps(with_asset_deps=with_asset_deps).filter(
        lambda g: g.platform is not None and g.platform.assets is not None
    )


def compressible_modules() -> st.SearchStrategy[Generated]:
    """Modules Device OS inflates and that have their prefix at offset 0."""
    return st.one_of(
        gen3_apps(),
        rtl872x_apps(),
        gen2_apps(),
        system_parts(family="rtl872x"),
        asset_modules(compress=False),
    )


def any_modules(*, device_platforms_only: bool = False) -> st.SearchStrategy[Generated]:
    """Any kind of module this file can generate.

    ``device_platforms_only`` leaves out modules for platforms without a device
    generation (GCC, Linux, Duo …), whose prefixes binary-version-reader does not score
    as fully valid.
    """
    modules = st.one_of(
        gen3_apps(),
        rtl872x_apps(),
        gen2_apps(),
        other_apps(),
        system_parts(),
        bootloaders(),
        radio_stacks(),
        asset_modules(),
    )
    if device_platforms_only:
        return modules.filter(lambda g: g.platform is None or g.platform.generation > 0)
    return modules
