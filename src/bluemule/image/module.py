"""Parse, check and build single Particle modules (pure: bytes in, objects or bytes out).

Layout (``shared/reference/particle.md`` §1)::

    [vector table][prefix 24 B][prefix extensions…END][body][suffix extensions][product]
    [reserved u16][sha256 32 B][suffix size u16][CRC-32 big-endian]

``module_start_address`` is the address of the file's first byte; the module is
``end - start + 4`` bytes long. The suffix is read backwards from ``end``, as the
device does, not from the end of the file (they differ only for padded files).
CRC-32 (zlib) covers all but the last 4 bytes; SHA-256 all but the last 38.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Final, Literal

from bluemule.image.constants import (
    CRC_SIZE,
    KNOWN_FLAGS,
    MAX_PREFIX_OFFSET,
    MAX_SUFFIX_SIZE,
    MIN_SUFFIX_SIZE,
    PREFERRED_PREFIX_OFFSETS,
    PREFIX_SIZE,
    PREFIX_START_ALIGNMENT,
    SHA256_SIZE,
    SHA256_TAIL,
    SUFFIX_PRODUCT_SIZE,
    ExtensionType,
    ModuleFlag,
    ModuleFunction,
)
from bluemule.image.errors import ExtensionError, MalformedModuleError, NotAModuleError
from bluemule.image.extensions import (
    AssetDependencyExtension,
    DynamicLocationExtension,
    EndExtension,
    Extension,
    HashExtension,
    NameExtension,
    ProductDataExtension,
    decode_extensions,
    encode_extensions,
    extension_type,
)
from bluemule.image.platforms import DEVICE_PLATFORM_IDS, Platform, platform_by_id

# module_info_t: start u32, end u32, mcu_target u8, flags u8, version u16, platform u16,
# function u8, index u8, dep1 {function u8, index u8, version u16}, dep2 {same}
_PREFIX: Final = struct.Struct("<IIBBHHBBBBHBBH")
assert _PREFIX.size == PREFIX_SIZE
# module_info_suffix_base_t, read backwards: reserved u16, sha256[32], size u16
_SUFFIX_BASE: Final = struct.Struct(f"<H{SHA256_SIZE}sH")
assert _SUFFIX_BASE.size == MIN_SUFFIX_SIZE
_PRODUCT_RAW: Final = struct.Struct("<HH")  # product_id, product_version
assert _PRODUCT_RAW.size == SUFFIX_PRODUCT_SIZE
_CRC: Final = struct.Struct(">I")  # stored big-endian (device: __REV in FLASH_VerifyCRC32)
_KNOWN_FUNCTIONS: Final = frozenset(int(f) for f in ModuleFunction)
_FLAGS_OFFSET: Final = 9
_END_ADDRESS_OFFSET: Final = 4


@dataclass(frozen=True)
class Dependency:
    """``module_dependency_t``: a module (function, index) of at least ``version`` must exist."""

    function: int = 0
    index: int = 0
    version: int = 0

    @property
    def is_none(self) -> bool:
        """Function 0 means no dependency."""
        return self.function == ModuleFunction.NONE


@dataclass(frozen=True)
class ModulePrefix:
    """``module_info_t`` plus the TLV extensions that may follow it."""

    start_address: int
    end_address: int
    function: int
    index: int = 0
    platform_id: int = 0
    module_version: int = 0
    flags: int = 0
    mcu_target: int = 0
    dependency: Dependency = field(default_factory=Dependency)
    dependency2: Dependency = field(default_factory=Dependency)
    extensions: tuple[Extension, ...] = ()

    def pack(self) -> bytes:
        """The 24 fixed bytes (extensions not included)."""
        d1, d2 = self.dependency, self.dependency2
        return _PREFIX.pack(
            self.start_address,
            self.end_address,
            self.mcu_target,
            self.flags,
            self.module_version,
            self.platform_id,
            self.function,
            self.index,
            d1.function,
            d1.index,
            d1.version,
            d2.function,
            d2.index,
            d2.version,
        )

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> ModulePrefix:
        """Read the 24 fixed bytes at ``offset``."""
        (start, end, mcu, flags, version, platform, function, index, f1, i1, v1, f2, i2, v2) = (
            _PREFIX.unpack_from(data, offset)
        )
        return cls(
            start,
            end,
            function,
            index,
            platform,
            version,
            flags,
            mcu,
            Dependency(f1, i1, v1),
            Dependency(f2, i2, v2),
        )


@dataclass(frozen=True)
class ModuleSuffix:
    """The suffix as stored: extensions, product data, reserved, SHA-256, size."""

    size: int
    sha256: bytes
    reserved: int = 0
    product_id: int | None = None
    product_version: int | None = None
    raw_product: bool = False
    """Product fields sit as raw ``u16, u16`` before the base (Gen 3), not in an extension."""
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, eq=False)
class Module:
    """One parsed module. ``data`` is exactly its bytes (``end - start + 4``)."""

    data: bytes
    prefix_offset: int
    prefix: ModulePrefix
    prefix_size: int
    """24 plus the bytes of prefix extensions."""
    suffix: ModuleSuffix
    stored_crc32: int

    @cached_property
    def computed_crc32(self) -> int:
        """zlib CRC-32 of all bytes but the last 4."""
        return zlib.crc32(memoryview(self.data)[:-CRC_SIZE])

    @cached_property
    def computed_sha256(self) -> bytes:
        """SHA-256 of all bytes but the last 38."""
        return hashlib.sha256(memoryview(self.data)[:-SHA256_TAIL]).digest()

    @property
    def crc_ok(self) -> bool:
        """Whether the stored CRC-32 matches the content."""
        return self.computed_crc32 == self.stored_crc32

    @property
    def sha256_ok(self) -> bool:
        """Whether the stored SHA-256 matches the content."""
        return self.computed_sha256 == self.suffix.sha256

    @property
    def flags(self) -> int:
        """``module_info_flags_t`` bits."""
        return self.prefix.flags

    @property
    def function(self) -> int:
        """Module function number (see :class:`ModuleFunction`)."""
        return self.prefix.function

    @property
    def is_compressed(self) -> bool:
        """COMPRESSED flag set."""
        return bool(self.flags & ModuleFlag.COMPRESSED)

    @property
    def is_combined(self) -> bool:
        """COMBINED flag set: another module follows this one."""
        return bool(self.flags & ModuleFlag.COMBINED)

    @property
    def is_asset(self) -> bool:
        """Function is ASSET."""
        return self.function == ModuleFunction.ASSET

    @property
    def platform(self) -> Platform | None:
        """The platform this module is built for, if Particle defines its ID."""
        return platform_by_id(self.prefix.platform_id)

    @property
    def body_range(self) -> tuple[int, int]:
        """Offsets of the bytes between the prefix (with extensions) and the suffix."""
        return (self.prefix_offset + self.prefix_size, len(self.data) - CRC_SIZE - self.suffix.size)

    @property
    def extensions(self) -> tuple[Extension, ...]:
        """Prefix extensions followed by suffix extensions."""
        return self.prefix.extensions + self.suffix.extensions

    @property
    def asset_dependencies(self) -> list[AssetDependencyExtension]:
        """Assets this (application) module requires."""
        return [e for e in self.extensions if isinstance(e, AssetDependencyExtension)]

    @property
    def asset_name(self) -> str | None:
        """NAME extension of an asset module."""
        return next((e.name for e in self.extensions if isinstance(e, NameExtension)), None)

    @property
    def asset_hash(self) -> bytes | None:
        """HASH extension of an asset module: SHA-256 of the raw asset bytes."""
        return next((e.hash for e in self.extensions if isinstance(e, HashExtension)), None)


def _prefix_score(
    data: bytes | memoryview, offset: int, length: int | None = None
) -> tuple[int, bool]:
    """binary-version-reader's plausibility score (0–7) of a prefix at ``offset``.

    Returns (score, exact_size). A score of 0 means impossible (end ≤ start, function
    NONE, a NONE dependency with index/version set, or bigger than the data). ``length``
    scores the prefix as if the file were that long (to tell a truncated file).
    """
    length = len(data) if length is None else length  # a file as long as ``length``
    if offset + PREFIX_SIZE > len(data):
        return 0, False
    p = ModulePrefix.unpack(data, offset)
    if p.end_address <= p.start_address or p.function == ModuleFunction.NONE:
        return 0, False
    size = p.end_address - p.start_address + CRC_SIZE
    if length < size:
        return 0, False
    for dep in (p.dependency, p.dependency2):
        if dep.is_none and (dep.index or dep.version):
            return 0, False
    exact = length == size
    score = 1 + sum(
        (
            p.platform_id in DEVICE_PLATFORM_IDS,
            p.function in _KNOWN_FUNCTIONS,
            p.dependency.function in _KNOWN_FUNCTIONS,
            p.dependency2.function in _KNOWN_FUNCTIONS,
            exact,
            not (p.flags & ~KNOWN_FLAGS),
        )
    )
    return score, exact


_FULL_SCORE: Final = 7
_MAX_CRC_CHECKS: Final = 4
"""CRC-32 checks among flawed candidate prefixes, at most (a hostile file can hold hundreds)."""


def find_prefix_offset(data: bytes | memoryview) -> int:
    """Where the module prefix sits: 0, 0x200 (nRF52840), 0x20 (RTL872x bootloader) or others.

    Tries the usual offsets, then every 4-byte-aligned offset up to 8 KiB, as
    binary-version-reader does. A prefix with a single flaw (the data is longer than
    it declares — padding, a combined module — or one unknown platform, function or
    flag value) is accepted when nothing better is found; among several, the first whose
    declared module passes its CRC-32 (in a combined file a later part's prefix can sit
    where this part's is looked for first). Raises :class:`NotAModuleError` when no
    offset holds a plausible prefix.
    """
    if len(data) < PREFIX_SIZE + MIN_SUFFIX_SIZE + CRC_SIZE:
        raise NotAModuleError(f"{len(data)} bytes is too short for a Particle module")
    last = min(MAX_PREFIX_OFFSET, len(data) - MIN_SUFFIX_SIZE - PREFIX_SIZE - CRC_SIZE)
    candidates = itertools.chain(
        PREFERRED_PREFIX_OFFSETS,
        (o for o in range(4, last + 1, 4) if o not in PREFERRED_PREFIX_OFFSETS),
    )
    fallback: int | None = None
    verified = False
    checks = 0  # each check hashes up to all of ``data``: decoy prefixes must not multiply it
    for offset in candidates:
        score, _ = _prefix_score(data, offset)
        if score == _FULL_SCORE:
            return offset
        if score == _FULL_SCORE - 1 and not verified:
            if checks < _MAX_CRC_CHECKS:
                checks += 1
                verified = _crc_verifies(data, offset)
            if fallback is None or verified:
                fallback = offset
    if fallback is None:
        raise NotAModuleError("no Particle module prefix found" + _truncation_hint(data))
    return fallback


def _truncation_hint(data: bytes | memoryview) -> str:
    """Say so when a usual prefix would be valid if the file were as long as it declares."""
    for offset in PREFERRED_PREFIX_OFFSETS:
        if offset + PREFIX_SIZE > len(data):
            continue
        p = ModulePrefix.unpack(data, offset)
        size = p.end_address - p.start_address + CRC_SIZE
        if size > len(data) and _prefix_score(data, offset, size) == (_FULL_SCORE, True):
            return (
                f" (the prefix at {offset:#x} declares {size} bytes, {len(data)} are here: "
                "is the file truncated?)"
            )
    return ""


def _crc_verifies(data: bytes | memoryview, prefix_offset: int) -> bool:
    """Whether the module the prefix at ``prefix_offset`` declares has a matching CRC-32."""
    size = declared_size(data, prefix_offset)
    (stored,) = _CRC.unpack_from(data, size - CRC_SIZE)
    return bool(zlib.crc32(memoryview(data)[: size - CRC_SIZE]) == stored)


def declared_size(data: bytes | memoryview, prefix_offset: int) -> int:
    """Module length the prefix at ``prefix_offset`` declares (end − start + CRC)."""
    p = ModulePrefix.unpack(data, prefix_offset)
    return p.end_address - p.start_address + CRC_SIZE


def _read_suffix(data: bytes, low: int) -> ModuleSuffix:
    """Read the suffix backwards from the end of ``data``; it may not reach below ``low``."""
    n = len(data)
    base = n - CRC_SIZE - MIN_SUFFIX_SIZE
    reserved, sha, size = _SUFFIX_BASE.unpack_from(data, base)
    start = n - CRC_SIZE - size
    if size < MIN_SUFFIX_SIZE or start < low:
        raise MalformedModuleError(
            f"suffix size {size} does not fit a module of {n} bytes", offset=n - CRC_SIZE - 2
        )
    if size == MIN_SUFFIX_SIZE:
        return ModuleSuffix(size, sha, reserved)
    if size < MIN_SUFFIX_SIZE + SUFFIX_PRODUCT_SIZE:
        raise MalformedModuleError(
            f"suffix size {size} leaves {size - MIN_SUFFIX_SIZE} unaccounted bytes", offset=start
        )
    product_at = base - SUFFIX_PRODUCT_SIZE
    pid, pver = _PRODUCT_RAW.unpack_from(data, product_at)
    if size == MIN_SUFFIX_SIZE + SUFFIX_PRODUCT_SIZE:
        return ModuleSuffix(size, sha, reserved, pid, pver, raw_product=True)
    exts, pos = decode_extensions(data, start, base)
    last = exts[-1]
    if pos == base:
        if isinstance(last, ProductDataExtension):
            return ModuleSuffix(
                size, sha, reserved, last.product_id, last.product_version, extensions=tuple(exts)
            )
        return ModuleSuffix(size, sha, reserved, extensions=tuple(exts))
    if pos == product_at:
        return ModuleSuffix(
            size, sha, reserved, pid, pver, raw_product=True, extensions=tuple(exts)
        )
    raise ExtensionError(
        f"{base - pos} bytes between the suffix extensions and the suffix base", offset=pos
    )


def parse_module_at_head(data: bytes) -> Module:
    """Parse the module at the start of ``data``; bytes past its declared end are ignored."""
    offset = find_prefix_offset(data)
    size = declared_size(data, offset)
    if size > len(data):
        raise MalformedModuleError(f"prefix declares {size} bytes but only {len(data)} are there")
    if size < offset + PREFIX_SIZE + MIN_SUFFIX_SIZE + CRC_SIZE:  # before slicing: see below
        raise MalformedModuleError(f"declared size {size} is too small for prefix and suffix")
    mod = data if size == len(data) else data[:size]
    prefix = ModulePrefix.unpack(mod, offset)  # needs size >= offset + 24
    suffix = _read_suffix(mod, offset + PREFIX_SIZE)
    prefix_size = PREFIX_SIZE
    if prefix.flags & ModuleFlag.PREFIX_EXTENSIONS:
        suffix_start = size - CRC_SIZE - suffix.size
        exts, pos = decode_extensions(mod, offset + PREFIX_SIZE, suffix_start)
        if not exts or extension_type(exts[-1]) != ExtensionType.END:
            raise ExtensionError("prefix extensions do not end with END", offset=pos)
        prefix = replace(prefix, extensions=tuple(exts))
        prefix_size = pos - offset
    (crc,) = _CRC.unpack_from(mod, size - CRC_SIZE)
    return Module(mod, offset, prefix, prefix_size, suffix, crc)


def parse_module(data: bytes) -> Module:
    """Parse exactly one module; trailing bytes are an error (see ``parse_combined``)."""
    module = parse_module_at_head(data)
    if len(module.data) != len(data):
        kind = "a combined module" if module.is_combined else "trailing bytes"
        raise MalformedModuleError(
            f"{len(data) - len(module.data)} bytes after the module's declared end ({kind})",
            offset=len(module.data),
        )
    return module


def update_checksums(buf: bytearray) -> bytes:
    """Write SHA-256 and CRC-32 into a module buffer and return it as bytes."""
    view = memoryview(buf)
    sha_at = len(buf) - SHA256_TAIL
    buf[sha_at : sha_at + SHA256_SIZE] = hashlib.sha256(view[:sha_at]).digest()
    _CRC.pack_into(buf, len(buf) - CRC_SIZE, zlib.crc32(view[:-CRC_SIZE]))
    view.release()
    return bytes(buf)


def with_flags(module: Module, flags: int) -> bytes:
    """The module's bytes with new flags and fresh checksums."""
    buf = bytearray(module.data)
    buf[module.prefix_offset + _FLAGS_OFFSET] = flags
    return update_checksums(buf)


def set_end_and_flags(buf: bytearray, prefix_offset: int, *, end: int, flags: int) -> None:
    """Patch ``module_end_address`` and flags of the prefix in ``buf``."""
    if end > 0xFFFFFFFF:  # start near the top of the address space, then grown
        raise MalformedModuleError(f"module does not fit the address space (end {end:#x})")
    struct.pack_into("<I", buf, prefix_offset + _END_ADDRESS_OFFSET, end)
    buf[prefix_offset + _FLAGS_OFFSET] = flags


def _terminated(exts: Sequence[Extension], *, product_ext_ends: bool) -> tuple[Extension, ...]:
    """Append END unless the list is empty or already ends in END (or PRODUCT_DATA if allowed)."""
    if not exts:
        return ()
    last = extension_type(exts[-1])
    if last == ExtensionType.END or (product_ext_ends and last == ExtensionType.PRODUCT_DATA):
        return tuple(exts)
    return (*exts, EndExtension())


def build_module(
    *,
    prefix: ModulePrefix,
    body: bytes,
    suffix_extensions: Sequence[Extension] = (),
    product: tuple[int, int] | None = None,
    reserved: int = 0,
    head: bytes = b"",
    anchor: Literal["start", "end"] = "start",
) -> bytes:
    """Assemble a module and compute addresses, sizes and checksums.

    ``anchor="start"`` keeps ``prefix.start_address`` and computes the end;
    ``anchor="end"`` keeps ``prefix.end_address`` (RTL872x apps that grow left),
    computes the start, pads the prefix END so the start is 8-byte aligned and updates
    any DYNAMIC_LOCATION extension. Prefix extensions set PREFIX_EXTENSIONS (and get an
    END); ``product`` writes raw product fields in front of the base suffix.
    """
    prefix_exts = [e for e in prefix.extensions if extension_type(e) != ExtensionType.END]
    flags = prefix.flags & ~ModuleFlag.PREFIX_EXTENSIONS
    if prefix_exts:
        flags |= ModuleFlag.PREFIX_EXTENSIONS
        prefix_exts.append(EndExtension())
        if head:
            raise MalformedModuleError("prefix extensions need the prefix at offset 0")
    suffix_exts = _terminated(suffix_extensions, product_ext_ends=product is None)
    suffix_size = (
        MIN_SUFFIX_SIZE
        + len(encode_extensions(suffix_exts))
        + (SUFFIX_PRODUCT_SIZE if product is not None else 0)
    )
    if suffix_size > MAX_SUFFIX_SIZE:
        raise ExtensionError(f"suffix of {suffix_size} bytes is larger than 65535")
    length = (
        len(head)
        + PREFIX_SIZE
        + len(encode_extensions(prefix_exts))
        + len(body)
        + suffix_size
        + CRC_SIZE
    )
    start, end = prefix.start_address, prefix.end_address
    if anchor == "end":
        start = end - (length - CRC_SIZE)
        pad = start % PREFIX_START_ALIGNMENT if prefix_exts else 0
        if pad:
            prefix_exts[-1] = EndExtension(pad)
            start -= pad
        suffix_exts = tuple(
            replace(e, module_start_address=start) if isinstance(e, DynamicLocationExtension) else e
            for e in suffix_exts
        )
    else:
        end = start + length - CRC_SIZE
    if start < 0 or end > 0xFFFFFFFF:
        raise MalformedModuleError(f"module does not fit the address space (start {start:#x})")
    fixed = replace(prefix, start_address=start, end_address=end, flags=flags, extensions=())
    parts = [
        head,
        fixed.pack(),
        encode_extensions(prefix_exts),
        body,
        encode_extensions(suffix_exts),
    ]
    if product is not None:
        parts.append(_PRODUCT_RAW.pack(*product))
    parts.append(_SUFFIX_BASE.pack(reserved, bytes(SHA256_SIZE), suffix_size))
    parts.append(bytes(CRC_SIZE))
    return update_checksums(bytearray(b"".join(parts)))


def rebuild_module(
    module: Module,
    *,
    prefix_extensions: Sequence[Extension] | None = None,
    suffix_extensions: Sequence[Extension] | None = None,
    anchor: Literal["start", "end"] = "start",
) -> bytes:
    """The same module with other extensions, keeping head, body, product data and flags."""
    lo, hi = module.body_range
    s = module.suffix
    prefix = module.prefix
    if prefix_extensions is not None:
        prefix = replace(prefix, extensions=tuple(prefix_extensions))
    product = (s.product_id, s.product_version) if s.raw_product else None
    if product is not None and product[0] is not None and product[1] is not None:
        raw: tuple[int, int] | None = (product[0], product[1])
    else:
        raw = None
    return build_module(
        prefix=prefix,
        body=module.data[lo:hi],
        suffix_extensions=s.extensions if suffix_extensions is None else suffix_extensions,
        product=raw,
        reserved=s.reserved,
        head=module.data[: module.prefix_offset],
        anchor=anchor,
    )
