"""Hostile input: a typed error, bounded memory, never a crash.

Each test builds one hostile input precisely: a valid module from ``build_module`` (or
a real Particle file) with specific bytes corrupted and, where it matters, SHA-256
and CRC-32 recomputed so that the corruption reaches the structural check instead of
stopping at an integrity mismatch. Every error must be an ``ImageError`` subclass;
memory is measured with ``tracemalloc`` where a hostile size could make us allocate.

Integrity failures (CRC, SHA-256, asset hashes, a bad compressed stream inside an
otherwise well-formed module) are not errors: ``inspect_image`` reports them as
problems and ``bluemule image inspect`` exits 1. Anything that cannot be read as a
module, combined module or bundle raises and the CLI exits 2.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import random
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bluemule.image import (
    AssetDependencyExtension,
    BundleError,
    CompressionError,
    Dependency,
    Extension,
    ExtensionError,
    HashExtension,
    ImageError,
    LimitExceededError,
    MalformedModuleError,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    NameExtension,
    NotAModuleError,
    ProductDataExtension,
    asset_dependency,
    build_module,
    check_bundle,
    combine_modules,
    create_asset_module,
    decompress_module,
    inspect_image,
    parse_combined,
    parse_module,
    parse_module_at_head,
    read_bundle,
    read_compressed_header,
    set_asset_dependencies,
    split_combined,
    unwrap_asset_module,
    write_bundle,
)
from bluemule.image.extensions import decode_extensions
from tests.image.conftest import FIXTURES

BINARIES = FIXTURES / "binaries"
BUNDLES = FIXTURES / "bundles"
BLUEMULE = Path(sys.executable).parent / "bluemule"

KIB = 1024
MIB = 1024 * KIB
MAX_DECOMPRESSED = 8 * MIB  # compression.MAX_DECOMPRESSED_SIZE
MAX_ENTRY = 16 * MIB  # bundle.MAX_ENTRY_SIZE


# --------------------------------------------------------------------------- helpers


def reseal(buf: bytes | bytearray) -> bytes:
    """Recompute SHA-256 (all but the last 38 bytes) and CRC-32 (all but the last 4, BE)."""
    b = bytearray(buf)
    b[-38:-6] = hashlib.sha256(b[:-38]).digest()
    b[-4:] = zlib.crc32(b[:-4]).to_bytes(4, "big")
    return bytes(b)


def patched(data: bytes, offset: int, fmt: str, value: int, *, seal: bool = True) -> bytes:
    """``data`` with ``value`` packed at ``offset`` (offset < 0 counts from the end)."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset % len(b), value)
    return reseal(b) if seal else bytes(b)


def noise(n: int, seed: int = 1) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(n)


def raw_deflate(data: bytes, level: int = 9, wbits: int = 15) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    return c.compress(data) + c.flush()


@functools.cache
def zeros_deflated(megabytes: int) -> tuple[bytes, int]:
    """Raw Deflate of ``megabytes`` MiB of zeros (about 1 KiB per MiB) and its CRC-32."""
    chunk = bytes(MIB)
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    parts = [c.compress(chunk) for _ in range(megabytes)]
    parts.append(c.flush())
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    return b"".join(parts), crc


@contextmanager
def bounded_memory(limit: int) -> Iterator[None]:
    """Fail if Python allocations traced during the block peak above ``limit`` bytes."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak} B >= {limit} B"


BORON_APP_START = 0xD4000


def boron_app(body: bytes | None = None, *, flags: int = 0) -> bytes:
    """A Boron (13) user part, index 1, product (13, 3): suffix of 40 bytes (Gen 3)."""
    prefix = ModulePrefix(
        start_address=BORON_APP_START,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=1,
        platform_id=13,
        module_version=6,
        flags=flags,
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, 6101),
    )
    return build_module(prefix=prefix, body=noise(1000) if body is None else body, product=(13, 3))


def compressed_header(original_size: int, *, method: int = 0, window_bits: int = 0) -> bytes:
    return struct.pack("<HBBI", 8, method, window_bits, original_size)


def compressed_app(stream: bytes, original_size: int, **header: int) -> bytes:
    """A compressed Boron user part whose body is ``header + stream`` (no DROP flag)."""
    return boron_app(
        compressed_header(original_size, **header) + stream, flags=ModuleFlag.COMPRESSED
    )


def compressed_asset(stream: bytes, original_size: int, *, start: int = 0, **header: int) -> bytes:
    """A compressed asset module (DROP_MODULE_INFO) whose body is ``header + stream``."""
    prefix = ModulePrefix(
        start_address=start,
        end_address=0,
        function=ModuleFunction.ASSET,
        flags=ModuleFlag.DROP_MODULE_INFO | ModuleFlag.COMPRESSED,
    )
    exts: list[Extension] = [
        HashExtension(bytes(32)),
        NameExtension("bomb.bin"),
        ProductDataExtension(0xFFFF, 0xFFFF),
    ]
    return build_module(
        prefix=prefix,
        body=compressed_header(original_size, **header) + stream,
        suffix_extensions=exts,
    )


ASSET_TEXT = b"hello, asset\n" * 40


def plain_asset() -> bytes:
    """Uncompressed asset module: suffix HASH (38) NAME (13) PRODUCT_DATA (10) base (36)."""
    return create_asset_module(ASSET_TEXT, "hello.txt", compress=False)


def suffix_ext_offsets(data: bytes) -> list[int]:
    """Offsets of each suffix extension header of a valid module."""
    m = parse_module(data)
    pos = len(data) - 4 - m.suffix.size
    out = []
    for ext in m.suffix.extensions:
        out.append(pos)
        pos += len(ext.encode())
    return out


def prefix_ext_app(body: bytes = b"") -> bytes:
    """A P2 user part with a PRODUCT_DATA prefix extension (10 B) and END (4 B) at 24."""
    prefix = ModulePrefix(
        start_address=0x085F0000,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=2,
        platform_id=32,
        module_version=6,
        extensions=(ProductDataExtension(32, 1),),
    )
    data = build_module(prefix=prefix, body=body, product=(32, 1))
    assert data[24:28] == b"\x01\x00\x0a\x00" and data[34:38] == b"\x00\x00\x04\x00"
    return data


def small_module(seed: int) -> bytes:
    return boron_app(noise(200, seed))


def combined_pair() -> tuple[bytes, bytes, bytes]:
    a, b = small_module(1), small_module(2)
    return a, b, combine_modules([a, b])


def set_combined(module: bytes) -> bytes:
    return patched(module, 9, "<B", module[9] | ModuleFlag.COMBINED)


# ------------------------------------------------------------------ zip builders


@dataclass(frozen=True)
class RawEntry:
    """A zip entry written byte by byte, so its header may lie."""

    name: bytes
    stream: bytes
    crc: int
    compress_size: int
    file_size: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0
    local_flags: int | None = None


def raw_zip(entries: list[RawEntry]) -> bytes:
    out = bytearray()
    central = bytearray()
    for e in entries:
        offset = len(out)
        local_flags = e.flags if e.local_flags is None else e.local_flags
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            local_flags,
            e.method,
            0,
            0x21,
            e.crc,
            e.compress_size,
            e.file_size,
            len(e.name),
            0,
        )
        out += e.name + e.stream
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            e.flags,
            e.method,
            0,
            0x21,
            e.crc,
            e.compress_size,
            e.file_size,
            len(e.name),
            0,
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        central += e.name
    cd_offset = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset, 0
    )
    return bytes(out)


def deflated_entry(name: str, content: bytes, **overrides: int) -> RawEntry:
    stream = raw_deflate(content)
    fields = {"crc": zlib.crc32(content), "compress_size": len(stream), "file_size": len(content)}
    fields.update(overrides)
    return RawEntry(name.encode(), stream, **fields)


def zip_of(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip with these names exactly as given (duplicates allowed)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", compression=method) as z:
            for name, content in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = method
                z.writestr(info, content)
    return buf.getvalue()


APP = boron_app()


def zip_bomb(declared: int, megabytes: int = 200, *, crc: int | None = None) -> bytes:
    """``assets/zeros`` inflating to ``megabytes`` MiB, declaring ``declared`` bytes."""
    stream, real_crc = zeros_deflated(megabytes)
    return raw_zip(
        [
            deflated_entry("app.bin", APP),
            RawEntry(
                b"assets/zeros", stream, real_crc if crc is None else crc, len(stream), declared
            ),
        ]
    )


# ------------------------------------------------------------- the hostile files

Builder = Callable[[], bytes]


@dataclass(frozen=True)
class Raises:
    """``inspect_image`` raises ``error`` matching ``match``; the CLI exits 2."""

    error: type[ImageError]
    match: str


@dataclass(frozen=True)
class Invalid:
    """``inspect_image`` reports a problem matching ``match``; the CLI exits 1."""

    match: str


def _truncated_app() -> bytes:
    return APP[:-1]


def _end_before_start() -> bytes:
    return patched(APP, 4, "<I", BORON_APP_START - 1)


def _end_equals_start() -> bytes:
    return patched(APP, 4, "<I", BORON_APP_START)


def _end_past_file() -> bytes:
    return patched(APP, 4, "<I", BORON_APP_START + len(APP) + 100)


def _end_short_of_file() -> bytes:
    return patched(APP, 4, "<I", BORON_APP_START + len(APP) - 4 - 8)


def _trailing_bytes() -> bytes:
    return APP + bytes(16)


def _suffix_size(size: int) -> Builder:
    return lambda: patched(APP, -6, "<H", size)


def _suffix_ext_length(index: int, length: int) -> Builder:
    def build() -> bytes:
        data = plain_asset()
        return patched(data, suffix_ext_offsets(data)[index] + 2, "<H", length)

    return build


def _suffix_ext_type(index: int, ext_type: int) -> Builder:
    def build() -> bytes:
        data = plain_asset()
        return patched(data, suffix_ext_offsets(data)[index], "<H", ext_type)

    return build


def _prefix_ext_no_end() -> bytes:
    return patched(prefix_ext_app(), 34, "<H", 0x7777)  # END becomes an unknown type


def _prefix_ext_length(length: int) -> Builder:
    return lambda: patched(prefix_ext_app(noise(64)), 26, "<H", length)


def _compressed_4gib() -> bytes:
    return compressed_asset(raw_deflate(ASSET_TEXT), 0xFFFFFFFF)


def _compressed_header(**header: int) -> Builder:
    return lambda: compressed_asset(raw_deflate(ASSET_TEXT), len(ASSET_TEXT), **header)


def _compressed_header_size(size: int) -> Builder:
    def build() -> bytes:
        data = compressed_asset(raw_deflate(ASSET_TEXT), len(ASSET_TEXT))
        return patched(data, 24, "<H", size)

    return build


def _corrupt_stream() -> bytes:
    return compressed_asset(b"\xff" * 64, len(ASSET_TEXT))


def _truncated_stream() -> bytes:
    return compressed_asset(raw_deflate(noise(4000))[:-100], 4000)


def _short_stream() -> bytes:
    return compressed_asset(raw_deflate(ASSET_TEXT), len(ASSET_TEXT) + 1)


def _stream_with_trailer() -> bytes:
    return compressed_asset(raw_deflate(ASSET_TEXT) + b"junk", len(ASSET_TEXT))


def _deflate_bomb() -> bytes:
    return compressed_asset(zeros_deflated(100)[0], 1 * KIB)


def _deflate_bomb_app() -> bytes:
    return compressed_app(zeros_deflated(100)[0], 1 * KIB)


def _nested_compression() -> bytes:
    inner = compressed_app(raw_deflate(APP), len(APP))
    return compressed_app(raw_deflate(inner), len(inner))


def _compressed_high_start() -> bytes:
    # start + inflated size no longer fits in 32 bits: the end address cannot be written.
    stream = raw_deflate(bytes(100 * KIB))
    return compressed_asset(stream, 100 * KIB, start=0xFFFFFFFF - 20 * KIB)


def _combined_second_missing() -> bytes:
    a, _, combined = combined_pair()
    return combined[: len(a)]


def _combined_second_garbage() -> bytes:
    a, _, combined = combined_pair()
    return combined[: len(a)] + noise(300, 7)


def _combined_second_truncated() -> bytes:
    return combined_pair()[2][:-1]


def _combined_last_flagged() -> bytes:
    a, b, _ = combined_pair()
    return set_combined(a) + set_combined(b)


def _combined_parts(n: int) -> Builder:
    return lambda: b"".join(set_combined(small_module(i)) for i in range(n - 1)) + small_module(n)


def _zip_names(*names: str) -> Builder:
    return lambda: zip_of([(n, APP) for n in names])


def _zip_lies_small() -> bytes:
    # Declares 1 KiB for 200 MiB of zeros; the CRC is that of the whole 200 MiB.
    return zip_bomb(1 * KIB)


def _zip_lies_large() -> bytes:
    content = noise(1000)
    return raw_zip(
        [deflated_entry("app.bin", APP), deflated_entry("assets/a", content, file_size=1 * MIB)]
    )


def _zip_corrupt(method: int, offset: int, length: int) -> Builder:
    def build() -> bytes:
        data = bytearray(zip_of([("app.bin", APP)], method))
        for i in range(offset, offset + length):  # "app.bin" data starts at 30 + 7 = 37
            data[i] ^= 0xFF
        return bytes(data)

    return build


def _zip_bad_utf8_local_name() -> bytes:
    # The central directory name is cp437 (any bytes decode); the local header claims UTF-8.
    entry = dataclasses.replace(deflated_entry("app.bin", APP), name=b"app\xff.bin")
    return raw_zip([dataclasses.replace(entry, local_flags=0x800)])


def _zip_unknown_method() -> bytes:
    stream = raw_deflate(APP)
    return raw_zip([RawEntry(b"app.bin", stream, zlib.crc32(APP), len(stream), len(APP), 99)])


def _zip_encrypted() -> bytes:
    return raw_zip([deflated_entry("app.bin", APP, flags=0x1)])


def _zip_5000_entries() -> bytes:
    return zip_of([("app.bin", APP)] + [(f"assets/a{i}", b"x") for i in range(4999)])


HOSTILE: dict[str, tuple[Builder, Raises | Invalid]] = {
    # Modules: truncation and lying addresses
    "empty": (lambda: b"", Raises(NotAModuleError, "0 bytes is too short")),
    "truncated-by-one": (_truncated_app, Raises(NotAModuleError, "no Particle module prefix")),
    "end-before-start": (_end_before_start, Raises(NotAModuleError, "no Particle module prefix")),
    "end-equals-start": (_end_equals_start, Raises(NotAModuleError, "no Particle module prefix")),
    "end-past-file": (_end_past_file, Raises(NotAModuleError, "no Particle module prefix")),
    "end-short-of-file": (_end_short_of_file, Raises(MalformedModuleError, "suffix size")),
    "trailing-bytes": (_trailing_bytes, Invalid("16 bytes after the module's declared end")),
    # Suffix size lies
    "suffix-size-0": (_suffix_size(0), Raises(MalformedModuleError, "suffix size 0 does not fit")),
    "suffix-size-37": (
        _suffix_size(37),
        Raises(MalformedModuleError, "suffix size 37 leaves 1 unaccounted"),
    ),
    "suffix-size-ffff": (
        _suffix_size(0xFFFF),
        Raises(MalformedModuleError, "suffix size 65535 does not fit"),
    ),
    "suffix-size-past-file": (
        _suffix_size(len(APP) - 3),
        Raises(MalformedModuleError, f"suffix size {len(APP) - 3} does not fit"),
    ),
    # Extensions
    "suffix-ext-length-0": (
        _suffix_ext_length(0, 0),
        Raises(ExtensionError, "extension 0x0010 declares length 0"),
    ),
    "suffix-ext-length-1": (
        _suffix_ext_length(0, 1),
        Raises(ExtensionError, "extension 0x0010 declares length 1"),
    ),
    "suffix-ext-length-3": (
        _suffix_ext_length(1, 3),
        Raises(ExtensionError, "extension 0x0011 declares length 3"),
    ),
    "suffix-ext-past-region": (
        _suffix_ext_length(1, 0x7FFF),
        Raises(ExtensionError, "extension 0x0011 of 32767 B runs"),
    ),
    "suffix-ext-invalid-type": (
        _suffix_ext_type(0, 0xFFFF),
        Raises(ExtensionError, r"INVALID \(0xFFFF\)"),
    ),
    "prefix-ext-no-end": (
        _prefix_ext_no_end,
        Raises(ExtensionError, "prefix extensions do not end with END"),
    ),
    "prefix-ext-length-0": (
        _prefix_ext_length(0),
        Raises(ExtensionError, "extension 0x0001 declares length 0"),
    ),
    "prefix-ext-past-region": (
        _prefix_ext_length(0xFFFF),
        Raises(ExtensionError, "extension 0x0001 of 65535 B runs"),
    ),
    # Compressed modules: the module parses, its compressed content is reported
    "compressed-4gib": (
        _compressed_4gib,
        Invalid("declares 4294967295 bytes, limit is 8388608"),
    ),
    "compressed-method-1": (_compressed_header(method=1), Invalid("unknown compression method 1")),
    "compressed-window-7": (
        _compressed_header(window_bits=7),
        Invalid("window bits 7 out of range"),
    ),
    "compressed-window-16": (
        _compressed_header(window_bits=16),
        Invalid("window bits 16 out of range"),
    ),
    "compressed-header-size-0": (
        _compressed_header_size(0),
        Invalid("compressed header declares 0 bytes"),
    ),
    "compressed-header-size-huge": (
        _compressed_header_size(0xFFFF),
        Invalid("compressed header declares 65535 bytes"),
    ),
    "compressed-corrupt-stream": (_corrupt_stream, Invalid("Deflate stream is corrupt")),
    "compressed-truncated-stream": (_truncated_stream, Invalid("Deflate stream is truncated")),
    "compressed-short-stream": (
        _short_stream,
        Invalid(f"inflates to {len(ASSET_TEXT)} bytes, header says {len(ASSET_TEXT) + 1}"),
    ),
    "compressed-stream-trailer": (_stream_with_trailer, Invalid("4 bytes after the Deflate")),
    "compressed-bomb-asset": (_deflate_bomb, Invalid("inflates past the declared 1024 bytes")),
    "compressed-bomb-app": (_deflate_bomb_app, Invalid("inflates past the declared 1024 bytes")),
    "compressed-nested": (_nested_compression, Invalid("nested in a compressed module")),
    "compressed-high-start": (
        _compressed_high_start,
        Invalid("does not fit the address space"),
    ),
    # Combined modules
    "combined-second-missing": (
        _combined_second_missing,
        Raises(MalformedModuleError, "flagged COMBINED but nothing follows"),
    ),
    "combined-second-garbage": (
        _combined_second_garbage,
        Raises(MalformedModuleError, "part 2 at byte 268: no Particle module prefix"),
    ),
    "combined-second-truncated": (
        _combined_second_truncated,
        Raises(MalformedModuleError, "part 2 at byte 268: no Particle module prefix"),
    ),
    "combined-last-flagged": (
        _combined_last_flagged,
        Raises(MalformedModuleError, "the last part is flagged COMBINED but nothing follows"),
    ),
    "combined-3-parts": (
        _combined_parts(3),
        Invalid("3 combined parts; Device OS installs at most 2"),
    ),
    "combined-65-parts": (
        _combined_parts(65),
        Raises(MalformedModuleError, "more than 64 combined parts"),
    ),
    # Bundles
    "zip-not-a-zip": (
        lambda: b"PK\x03\x04" + noise(500),
        Raises(BundleError, "not a readable zip"),
    ),
    "zip-bomb-200mib": (
        lambda: zip_bomb(200 * MIB),
        Raises(LimitExceededError, f"declares {200 * MIB} bytes, limit is {MAX_ENTRY}"),
    ),
    "zip-lies-small": (_zip_lies_small, Raises(BundleError, "Bad CRC-32")),
    "zip-lies-large": (
        _zip_lies_large,
        Raises(BundleError, "declares 1048576 bytes but holds 1000"),
    ),
    "zip-dotdot": (_zip_names("../evil.bin"), Raises(BundleError, "escapes")),
    "zip-absolute": (_zip_names("/abs.bin"), Raises(BundleError, "absolute path")),
    "zip-assets-dotdot": (_zip_names("app.bin", "assets/../../x"), Raises(BundleError, "escapes")),
    "zip-drive": (_zip_names("C:\\x.bin"), Raises(BundleError, "backslash")),
    "zip-drive-relative": (_zip_names("C:x.bin"), Raises(BundleError, "absolute path")),
    "zip-backslash": (_zip_names("app.bin", "assets\\x"), Raises(BundleError, "backslash")),
    "zip-duplicate-app": (
        _zip_names("app.bin", "app.bin"),
        Raises(BundleError, "two entries named 'app.bin'"),
    ),
    "zip-duplicate-asset": (
        _zip_names("app.bin", "assets/a", "assets/a"),
        Raises(BundleError, "two entries named 'assets/a'"),
    ),
    "zip-two-apps": (
        _zip_names("app.bin", "other.bin"),
        Raises(BundleError, "exactly one application .bin at its root; found app.bin, other.bin"),
    ),
    "zip-no-app": (
        _zip_names("assets/a", "readme.txt"),
        Raises(BundleError, "found none"),
    ),
    "zip-5000-entries": (
        _zip_5000_entries,
        Raises(LimitExceededError, "bundle has 5000 entries"),
    ),
    "zip-asset-name-256": (
        _zip_names("app.bin", "assets/" + "n" * 256),
        Raises(BundleError, "is 256 bytes, at most 255"),
    ),
    "zip-corrupt-deflate": (
        _zip_corrupt(zipfile.ZIP_DEFLATED, 37, 40),
        Raises(BundleError, "bundle entry 'app.bin' is corrupt"),
    ),
    "zip-corrupt-bzip2": (
        _zip_corrupt(zipfile.ZIP_BZIP2, 37, 4),
        Raises(BundleError, "bundle entry 'app.bin' is corrupt"),
    ),
    "zip-corrupt-lzma": (
        _zip_corrupt(zipfile.ZIP_LZMA, 46, 1),
        Raises(BundleError, "bundle entry 'app.bin' is corrupt"),
    ),
    "zip-unknown-method": (_zip_unknown_method, Raises(BundleError, "is corrupt")),
    "zip-bad-utf8-local-name": (_zip_bad_utf8_local_name, Raises(BundleError, "is corrupt")),
    "zip-encrypted": (_zip_encrypted, Raises(BundleError, "encrypted")),
    "zip-app-not-a-module": (
        lambda: zip_of([("app.bin", noise(3000))]),
        Raises(NotAModuleError, "no Particle module prefix"),
    ),
}


@functools.cache
def hostile(name: str) -> bytes:
    return HOSTILE[name][0]()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_inspect_image(name: str) -> None:
    data = hostile(name)
    expected = HOSTILE[name][1]
    if isinstance(expected, Raises):
        with pytest.raises(expected.error, match=expected.match):
            inspect_image(data)
    else:
        result = inspect_image(data)
        assert not result.ok
        assert any(re.search(expected.match, p) for p in result.report["problems"]), result.report[
            "problems"
        ]


# ------------------------------------------------------------- truncated files


def _truncation_error(n: int) -> tuple[type[ImageError], str]:
    # A cut file: the prefix at offset 0 declares more bytes than are there, so it is
    # not a plausible prefix, and no other offset holds one.
    if n < 64:
        return NotAModuleError, f"^{n} bytes is too short for a Particle module$"
    return NotAModuleError, (
        r"^no Particle module prefix found \(the prefix at 0x[0-9a-f]+ declares \d+ bytes, "
        rf"{n} are here: is the file truncated\?\)$"
    )


def test_every_truncation_of_a_real_module_raises() -> None:
    # Device OS rejects such a file (the CRC it would check is not there). Parsing it as
    # a module with crc_ok False would invent a layout, so it must raise, for every length.
    data = (BINARIES / "040_user-part.bin").read_bytes()
    assert parse_module(data).crc_ok
    for n in range(len(data)):
        error, match = _truncation_error(n)
        with pytest.raises(error, match=match):
            parse_module(data[:n])
    for n in range(0, len(data), 97):  # the same path as parse_module; a sample suffices
        error, match = _truncation_error(n)
        with pytest.raises(error, match=match):
            inspect_image(data[:n])


@pytest.mark.parametrize(
    "name", ["cat.bin", "p2-user-part-prefix-extensions.bin", "tracker-bootloader-protected.bin"]
)
def test_truncations_of_other_layouts_raise(name: str) -> None:
    # An asset module, prefix extensions, and a prefix behind a 0x200 vector table.
    data = (BINARIES / name).read_bytes()
    for n in [*range(0, len(data), 1009), *range(len(data) - 64, len(data))]:
        error, match = _truncation_error(n)
        with pytest.raises(error, match=match):
            parse_module_at_head(data[:n])


def test_every_truncation_of_a_compressed_asset_module() -> None:
    data = create_asset_module(ASSET_TEXT, "hello.txt")
    assert unwrap_asset_module(parse_module(data)).data == ASSET_TEXT
    for n in range(len(data)):
        error, match = _truncation_error(n)
        with pytest.raises(error, match=match):
            unwrap_asset_module(parse_module(data[:n]))


def test_every_truncation_of_a_combined_module() -> None:
    a, _, combined = combined_pair()
    for n in range(len(combined)):
        if n < len(a):
            error, match = _truncation_error(n)
        elif n == len(a):
            error, match = MalformedModuleError, "flagged COMBINED but nothing follows"
        else:
            error, match = MalformedModuleError, f"^part 2 at byte {len(a)}: "
        with pytest.raises(error, match=match):
            parse_combined(combined[:n])
        with pytest.raises(error, match=match):
            split_combined(combined[:n])


def test_every_truncation_of_a_real_bundle() -> None:
    data = (BUNDLES / "bundle.zip").read_bytes()
    assert read_bundle(data).assets
    for n in range(len(data)):
        with pytest.raises(BundleError, match="not a readable zip"):
            read_bundle(data[:n])


# ------------------------------------------------------ lying sizes and addresses


@pytest.mark.parametrize(
    "name", ["end-before-start", "end-equals-start", "end-past-file", "truncated-by-one"]
)
def test_impossible_end_address(name: str) -> None:
    data = hostile(name)
    for parse in (parse_module, parse_module_at_head, parse_combined):
        with pytest.raises(NotAModuleError, match="no Particle module prefix found"):
            parse(data)


def test_end_address_short_of_the_file() -> None:
    # The prefix declares 8 bytes fewer: the suffix is then read from inside the SHA-256.
    with pytest.raises(MalformedModuleError, match="suffix size"):
        parse_module(hostile("end-short-of-file"))


def test_real_system_part_with_end_past_the_file() -> None:
    data = (BINARIES / "tracker-bootloader@5.6.0.bin").read_bytes()  # prefix at 0x200
    end = parse_module(data).prefix.end_address
    with pytest.raises(NotAModuleError, match="no Particle module prefix found"):
        parse_module(patched(data, 0x200 + 4, "<I", end + 1))
    with pytest.raises(NotAModuleError, match="no Particle module prefix found"):
        parse_module(patched(data, 0x200 + 4, "<I", 0x200))  # end before start


def test_trailing_bytes_are_an_error_for_parse_module_only() -> None:
    data = hostile("trailing-bytes")
    with pytest.raises(MalformedModuleError, match=r"^16 bytes after .* \(trailing bytes\)$"):
        parse_module(data)
    head = parse_module_at_head(data)
    assert head.data == APP and head.crc_ok and head.sha256_ok


@pytest.mark.parametrize(
    ("size", "match"),
    [
        (0, "suffix size 0 does not fit"),
        (1, "suffix size 1 does not fit"),
        (35, "suffix size 35 does not fit"),
        (37, "suffix size 37 leaves 1 unaccounted bytes"),
        (39, "suffix size 39 leaves 3 unaccounted bytes"),
        (len(APP) - 4 - 24 + 1, "does not fit"),  # one byte into the prefix
        (len(APP) - 3, "does not fit"),  # larger than the file
        (0xFFFF, "suffix size 65535 does not fit"),
    ],
)
def test_lying_suffix_size(size: int, match: str) -> None:
    data = patched(APP, -6, "<H", size)
    for parse in (parse_module, parse_module_at_head, inspect_image):
        with pytest.raises(MalformedModuleError, match=match):
            parse(data)


def test_suffix_size_36_on_a_gen3_module_is_self_consistent() -> None:
    # 36 is a valid suffix (no product fields): the 4 product bytes then read as body.
    # Nothing contradicts that, so it parses; the checksums still cover every byte.
    m = parse_module(patched(APP, -6, "<H", 36))
    assert m.suffix.size == 36 and m.suffix.product_id is None
    assert m.body_range == (24, len(APP) - 40)
    assert m.crc_ok and m.sha256_ok


# ----------------------------------------------------------------- extensions


def tlv(ext_type: int, length: int, payload: bytes = b"") -> bytes:
    return struct.pack("<HH", ext_type, length) + payload


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_extension_shorter_than_its_header(length: int) -> None:
    # Length 0 would loop forever on the same record if it were accepted.
    region = tlv(0x0011, 6, b"ab") + tlv(0x0011, length) + bytes(8)
    with pytest.raises(ExtensionError, match=f"declares length {length}") as info:
        decode_extensions(region, 0, len(region))
    assert info.value.offset == 6


@pytest.mark.parametrize("length", [13, 100, 0xFFFF])
def test_extension_running_past_its_region(length: int) -> None:
    region = tlv(0x0011, length, b"name") + bytes(8)
    with pytest.raises(ExtensionError, match="past its region"):
        decode_extensions(region, 0, 12)  # the region stops before the data does


@pytest.mark.parametrize("stray", [1, 2, 3])
def test_stray_bytes_after_the_last_extension(stray: int) -> None:
    region = tlv(0x0011, 6, b"ab") + bytes(stray)
    with pytest.raises(ExtensionError, match=f"{stray} stray bytes"):
        decode_extensions(region, 0, len(region))


def test_invalid_extension_type_stops_parsing() -> None:
    region = tlv(0x0011, 6, b"ab") + tlv(0xFFFF, 4) + tlv(0x0000, 4)
    with pytest.raises(ExtensionError, match=r"INVALID \(0xFFFF\)"):
        decode_extensions(region, 0, len(region))


def test_erased_flash_region() -> None:
    region = b"\xff" * 64
    with pytest.raises(ExtensionError, match="INVALID"):
        decode_extensions(region, 0, len(region))


def test_many_minimal_extensions_terminate() -> None:
    region = tlv(0x7777, 4) * 16383 + tlv(0x0000, 4)
    exts, pos = decode_extensions(region, 0, len(region))
    assert len(exts) == 16384 and pos == len(region)


@pytest.mark.parametrize(
    ("payload_for", "match"),
    [
        (lambda: tlv(0x0001, 8, b"\x00" * 4), "PRODUCT_DATA extension payload is 4 B, expected 6"),
        (lambda: tlv(0x0010, 6, b"\x00\x20"), "HASH hash of 32 B runs past the extension"),
        (lambda: tlv(0x0010, 4), "HASH extension too short"),
        (lambda: tlv(0x0011, 6, b"\xff\xfe"), "NAME extension is not valid UTF-8"),
        (lambda: tlv(0x0012, 5, b"\x00"), "ASSET_DEPENDENCY extension too short"),
        (lambda: tlv(0x0013, 4), "SECURITY_MODE extension has no mode byte"),
        (lambda: tlv(0x0014, 7, b"\x00\x00\x00"), "ASSET_TYPE extension payload is 3 B"),
    ],
)
def test_extension_payload_contradicts_its_type(
    payload_for: Callable[[], bytes], match: str
) -> None:
    region = payload_for()
    with pytest.raises(ExtensionError, match=match):
        decode_extensions(region, 0, len(region))


@pytest.mark.parametrize(
    "name",
    [
        "suffix-ext-length-0",
        "suffix-ext-length-1",
        "suffix-ext-length-3",
        "suffix-ext-past-region",
        "suffix-ext-invalid-type",
        "prefix-ext-no-end",
        "prefix-ext-length-0",
        "prefix-ext-past-region",
    ],
)
def test_extension_errors_in_whole_modules(name: str) -> None:
    expected = HOSTILE[name][1]
    assert isinstance(expected, Raises)
    data = hostile(name)
    for parse in (parse_module, parse_module_at_head, parse_combined):
        with pytest.raises(ExtensionError, match=expected.match):
            parse(data)


# --------------------------------------------------------- compressed modules


def test_compressed_4gib_raises_before_allocating() -> None:
    for data in (hostile("compressed-4gib"), compressed_app(raw_deflate(APP), 0xFFFFFFFF)):
        module = parse_module(data)
        assert read_compressed_header(module).original_size == 0xFFFFFFFF
        with bounded_memory(64 * KIB), pytest.raises(LimitExceededError) as info:
            decompress_module(module)
        assert (info.value.limit, info.value.actual) == (MAX_DECOMPRESSED, 0xFFFFFFFF)
    asset = parse_module(hostile("compressed-4gib"))
    with bounded_memory(64 * KIB), pytest.raises(LimitExceededError):
        unwrap_asset_module(asset)


def test_compressed_one_byte_over_the_limit() -> None:
    module = parse_module(compressed_asset(raw_deflate(ASSET_TEXT), MAX_DECOMPRESSED + 1))
    with pytest.raises(LimitExceededError, match=f"declares {MAX_DECOMPRESSED + 1} bytes"):
        decompress_module(module)
    smaller = parse_module(compressed_asset(raw_deflate(ASSET_TEXT), len(ASSET_TEXT)))
    with pytest.raises(LimitExceededError):
        decompress_module(smaller, max_size=len(ASSET_TEXT) - 1)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"method": 1}, "unknown compression method 1"),
        ({"method": 0xFF}, "unknown compression method 255"),
        ({"window_bits": 7}, "window bits 7 out of range"),
        ({"window_bits": 16}, "window bits 16 out of range"),
        ({"window_bits": 0xFF}, "window bits 255 out of range"),
    ],
)
def test_bad_compressed_header(header: dict[str, int], match: str) -> None:
    module = parse_module(_compressed_header(**header)())
    for call in (read_compressed_header, decompress_module, unwrap_asset_module):
        with pytest.raises(CompressionError, match=match):
            call(module)


@pytest.mark.parametrize("window_bits", [0, 8, 9, 15])
def test_valid_window_bits_inflate(window_bits: int) -> None:
    content = b"abcabcabc" * 20  # every distance fits the smallest window
    module = parse_module(
        compressed_asset(raw_deflate(content, wbits=9), len(content), window_bits=window_bits)
    )
    assert unwrap_asset_module(module).data == content


@pytest.mark.parametrize(("size", "what"), [(0, "0"), (7, "7"), (0xFFFF, "65535")])
def test_compressed_header_size_lies(size: int, what: str) -> None:
    module = parse_module(_compressed_header_size(size)())
    with pytest.raises(CompressionError, match=f"compressed header declares {what} bytes"):
        decompress_module(module)


def test_compressed_body_shorter_than_its_header() -> None:
    prefix = ModulePrefix(
        start_address=0,
        end_address=0,
        function=ModuleFunction.ASSET,
        flags=ModuleFlag.DROP_MODULE_INFO | ModuleFlag.COMPRESSED,
    )
    module = parse_module(build_module(prefix=prefix, body=b"\x08\x00\x00"))
    with pytest.raises(CompressionError, match="too short for its header"):
        decompress_module(module)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("compressed-corrupt-stream", "Deflate stream is corrupt"),
        ("compressed-truncated-stream", "Deflate stream is truncated"),
        ("compressed-short-stream", "inflates to 520 bytes, header says 521"),
        ("compressed-stream-trailer", "4 bytes after the Deflate stream"),
    ],
)
def test_bad_deflate_stream(name: str, match: str) -> None:
    module = parse_module(hostile(name))
    assert module.crc_ok and module.sha256_ok  # only the stream is wrong
    for call in (decompress_module, unwrap_asset_module):
        with pytest.raises(CompressionError, match=match):
            call(module)


@pytest.mark.parametrize("name", ["compressed-bomb-asset", "compressed-bomb-app"])
def test_deflate_bomb_declared_small(name: str) -> None:
    # 100 MiB of zeros (about 100 KiB of Deflate) declared as 1 KiB.
    module = parse_module(hostile(name))
    with bounded_memory(1 * MIB), pytest.raises(CompressionError, match="inflates past"):
        decompress_module(module)


def test_deflate_bomb_declared_at_the_limit_is_bounded_by_the_limit() -> None:
    module = parse_module(compressed_asset(zeros_deflated(100)[0], MAX_DECOMPRESSED))
    with bounded_memory(3 * MAX_DECOMPRESSED), pytest.raises(CompressionError, match="past"):
        decompress_module(module)


def test_nested_compression_is_refused() -> None:
    module = parse_module(hostile("compressed-nested"))
    with pytest.raises(CompressionError, match="a compressed module nested in a compressed"):
        decompress_module(module)


def test_compressed_asset_holding_a_compressed_module_is_not_inflated_twice() -> None:
    # An asset's content is opaque bytes: a module inside is returned as is.
    inner = create_asset_module(ASSET_TEXT, "inner.txt")
    outer = parse_module(create_asset_module(inner, "outer.bin"))
    content = unwrap_asset_module(outer)
    assert (content.name, content.data, content.hash_ok) == ("outer.bin", inner, True)


def test_compressed_module_whose_end_address_overflows() -> None:
    module = parse_module(hostile("compressed-high-start"))
    with pytest.raises(MalformedModuleError, match="does not fit the address space"):
        decompress_module(module)


# ------------------------------------------------------------ combined modules


@pytest.mark.parametrize(
    "name",
    [
        "combined-second-missing",
        "combined-second-garbage",
        "combined-second-truncated",
        "combined-last-flagged",
        "combined-65-parts",
    ],
)
def test_bad_combined_module(name: str) -> None:
    expected = HOSTILE[name][1]
    assert isinstance(expected, Raises)
    for call in (parse_combined, split_combined):
        with pytest.raises(expected.error, match=expected.match):
            call(hostile(name))


def test_combined_second_part_with_a_bad_suffix_names_the_part() -> None:
    a, b, _ = combined_pair()
    with pytest.raises(MalformedModuleError, match=f"^part 2 at byte {len(a)}: suffix size 0"):
        parse_combined(set_combined(a) + patched(b, -6, "<H", 0))


def decoy_part(size: int, remaining: int, *, combined: bool) -> bytearray:
    """A ``size``-byte part with a bad CRC whose first 8 KiB hold ~340 decoy prefixes.

    Each decoy is plausible but for one flaw (it declares fewer bytes than follow) and
    declares nearly everything that remains, so checking its CRC hashes all of that.
    """
    buf = bytearray(size)
    fields = (0, 0, 6, 13, ModuleFunction.USER_PART, 1, 0, 0, 0, 0, 0, 0)
    for off in range(24, 8192 - 24, 24):
        struct.pack_into("<IIBBHHBBBBHBBH", buf, off, off, remaining - 12, *fields)
    flags = ModuleFlag.COMBINED if combined else 0
    head = (0, size - 4, 0, flags, *fields[2:])
    struct.pack_into("<IIBBHHBBBBHBBH", buf, 0, *head)
    struct.pack_into("<H", buf, size - 6, 36)  # a base suffix; the CRC stays zero (wrong)
    return buf


def test_decoy_prefixes_do_not_multiply_work() -> None:
    # 20 combined parts of 9000 B in 4 MiB: unbounded CRC checks of every decoy took
    # 20 x 340 x ~4 MiB of hashing (seconds; minutes at the 64 MiB file limit).
    total, size, parts = 4 * MIB, 9000, 20
    data = bytearray()
    for i in range(parts):
        data += decoy_part(size, total - len(data), combined=i < parts - 1)
    data += bytes(total - len(data))
    t0 = time.perf_counter()
    with pytest.raises(MalformedModuleError, match=f"{total - parts * size} bytes after the last"):
        parse_combined(bytes(data))
    assert time.perf_counter() - t0 < 2.0


def test_first_part_not_a_module() -> None:
    with pytest.raises(NotAModuleError):
        parse_combined(noise(500))


# -------------------------------------------------------------------- bundles


def test_zip_bomb_raises_before_inflating() -> None:
    data = hostile("zip-bomb-200mib")
    with bounded_memory(1 * MIB), pytest.raises(LimitExceededError) as info:
        read_bundle(data)
    assert (info.value.limit, info.value.actual) == (MAX_ENTRY, 200 * MIB)


def test_zip_entry_declaring_less_than_it_inflates_to() -> None:
    # 200 MiB of zeros declared as 1 KiB: only about the declared size is inflated.
    data = hostile("zip-lies-small")
    with bounded_memory(1 * MIB), pytest.raises(BundleError, match="Bad CRC-32"):
        read_bundle(data)


def test_zip_entry_declaring_10mib_for_200mib() -> None:
    data = zip_bomb(10 * MIB)
    with bounded_memory(3 * 10 * MIB), pytest.raises(BundleError, match="Bad CRC-32"):
        read_bundle(data)


def test_zip_entry_declaring_more_than_it_holds() -> None:
    with pytest.raises(BundleError, match="'assets/a' declares 1048576 bytes but holds 1000"):
        read_bundle(hostile("zip-lies-large"))


def test_zip_total_size_budget() -> None:
    # Five honest 15 MiB entries: each is under the entry limit, together over 64 MiB.
    stream, crc = zeros_deflated(15)
    size = 15 * MIB
    entries = [deflated_entry("app.bin", APP)]
    entries += [RawEntry(f"assets/z{i}".encode(), stream, crc, len(stream), size) for i in range(5)]
    with bounded_memory(100 * MIB), pytest.raises(LimitExceededError) as info:
        read_bundle(raw_zip(entries))
    assert info.value.actual == size and info.value.limit < size


def test_zip_with_5000_entries() -> None:
    with pytest.raises(LimitExceededError) as info:
        read_bundle(hostile("zip-5000-entries"))
    assert (info.value.limit, info.value.actual) == (1024, 5000)


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("zip-corrupt-deflate", zlib.error),
        ("zip-corrupt-bzip2", OSError),
        ("zip-corrupt-lzma", __import__("lzma").LZMAError),
        ("zip-bad-utf8-local-name", UnicodeDecodeError),
        ("zip-unknown-method", NotImplementedError),
        ("zip-encrypted", RuntimeError),
    ],
)
def test_corrupt_zip_entries_become_bundle_errors(name: str, cause: type[Exception]) -> None:
    with pytest.raises(BundleError, match="is corrupt") as info:
        read_bundle(hostile(name))
    assert isinstance(info.value.__context__, cause)  # the path this case is meant to reach


@pytest.mark.parametrize(
    "name",
    [
        "zip-dotdot",
        "zip-absolute",
        "zip-assets-dotdot",
        "zip-drive",
        "zip-drive-relative",
        "zip-backslash",
        "zip-duplicate-app",
        "zip-duplicate-asset",
        "zip-two-apps",
        "zip-no-app",
        "zip-asset-name-256",
        "zip-not-a-zip",
    ],
)
def test_unsafe_or_ambiguous_bundle(name: str) -> None:
    expected = HOSTILE[name][1]
    assert isinstance(expected, Raises) and expected.error is BundleError
    with pytest.raises(BundleError, match=expected.match):
        read_bundle(hostile(name))


@pytest.mark.parametrize(
    "name", ["./app.bin", "assets//x", "assets/./x", "a/../app.bin", "assets/x/..", "\\\\srv\\x"]
)
def test_more_unsafe_entry_names(name: str) -> None:
    with pytest.raises(BundleError):
        read_bundle(zip_of([("app.bin", APP), (name, b"x")]))


def test_nul_in_an_entry_name_is_cut_by_zipfile() -> None:
    # zipfile keeps only what precedes a NUL; the name we check is the one we use.
    bundle = read_bundle(zip_of([("app.bin\x00../../evil", APP)]))
    assert bundle.app_name == "app.bin"


def test_nested_asset_folders_are_ignored_not_flattened() -> None:
    bundle = read_bundle(zip_of([("app.bin", APP), ("assets/sub/x.txt", b"x")]))
    assert bundle.assets == {} and bundle.ignored == ("assets/sub/x.txt",)


def test_check_bundle_with_an_app_that_is_not_a_module() -> None:
    bundle = read_bundle(hostile("zip-app-not-a-module"))
    with pytest.raises(NotAModuleError):
        check_bundle(bundle)


# ---------------------------------------------------------------- asset names


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("a/b", "path separator"),
        ("/abs", "path separator"),
        ("..", "must not be empty, '.' or '..'"),
        ("a\\b", "path separator"),
        ("", "must not be empty"),
        ("n" * 256, "is 256 bytes, at most 255"),
        ("é" * 128, "is 256 bytes, at most 255"),
        ("tab\there", "control characters"),
    ],
)
def test_bad_asset_names(name: str, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        create_asset_module(b"x", name)
    with pytest.raises(ImageError, match=match):
        asset_dependency(name, b"x")
    with pytest.raises(ImageError, match=match):
        write_bundle("app.bin", APP, [(name, b"x")])


def test_asset_name_of_255_bytes_is_fine() -> None:
    name = "n" * 255
    assert unwrap_asset_module(parse_module(create_asset_module(b"x", name))).name == name


def test_duplicate_asset_names() -> None:
    with pytest.raises(BundleError, match="two assets have the same name"):
        write_bundle("app.bin", APP, [("a", b"1"), ("a", b"2")])
    deps = [asset_dependency("a", b"1"), AssetDependencyExtension("a", bytes(32))]
    with pytest.raises(ImageError, match="asset names must be unique"):
        set_asset_dependencies(parse_module(APP), deps)


# ------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def cli_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """``bluemule image inspect`` on every hostile file, run concurrently."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name in HOSTILE:
        paths[name] = folder / f"{name}.bin"
        paths[name].write_bytes(hostile(name))

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BLUEMULE), "image", "inspect", str(paths[name])],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(HOSTILE, pool.map(run, HOSTILE), strict=True))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_cli_inspect(name: str, cli_results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = cli_results[name]
    expected = HOSTILE[name][1]
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    if isinstance(expected, Raises):
        assert result.returncode == 2, (result.returncode, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("bluemule: error: ")
        assert re.search(expected.match, lines[0]), lines[0]
        assert result.stdout == ""
    else:
        # Read, but a check failed: the report goes to stdout, nothing to stderr.
        assert result.returncode == 1, (result.returncode, result.stderr)
        assert result.stderr == ""
        assert "INVALID" in result.stdout
        assert re.search(expected.match, " ".join(result.stdout.split())), result.stdout
