"""Fuzz every parser of ``bluemule.image``: nothing but ``ImageError`` may escape.

Inputs are random bytes, structurally random modules, and mutations of valid inputs
(real Particle files and generated modules, combined modules, asset modules and
bundles): byte flips, insertions, deletions, truncations, splices, and writes of
boundary values into the fields that steer parsing (addresses, flags, suffix size,
extension headers, the compressed header, zip header sizes and offsets). Mutants
are often resealed (SHA-256 and CRC-32 recomputed) so they look intact.

The CI pass is short (``BLUEMULE_FUZZ_EXAMPLES`` examples per test, 400 by default,
about 10 s); raise it for a longer local run::

    BLUEMULE_FUZZ_EXAMPLES=5000 .venv/bin/pytest -m fuzz tests/image/test_fuzz.py \
        --hypothesis-show-statistics

With ``atheris`` installed (``pip install atheris``; not a project dependency), the
same property runs under libFuzzer, coverage-guided, from the same seeds::

    python -m tests.image.test_fuzz --write-corpus fuzz-corpus
    python -m tests.image.test_fuzz fuzz-corpus -max_total_time=600
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import os
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bluemule.image import (
    AssetDependencyExtension,
    AssetTypeExtension,
    Bundle,
    Dependency,
    DependencyExtension,
    DynamicLocationExtension,
    EndExtension,
    Extension,
    HashExtension,
    ImageError,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    NameExtension,
    ProductDataExtension,
    SecurityModeExtension,
    UnknownExtension,
    asset_dependency,
    build_module,
    check_bundle,
    combine_modules,
    compress_module,
    create_asset_module,
    decompress_module,
    inspect_image,
    parse_combined,
    parse_module,
    parse_module_at_head,
    read_bundle,
    split_combined,
    unwrap_asset_module,
    write_bundle,
)
from bluemule.image.compression import MAX_DECOMPRESSED_SIZE
from bluemule.image.extensions import decode_extensions, encode_extensions
from tests.image.conftest import FIXTURES

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))
settings.register_profile(
    "bluemule-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # a hang or a quadratic blow-up shows up as a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FUZZ = settings.get_profile("bluemule-fuzz")


# -------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """A valid input and the (offset, width) of the fields worth overwriting."""

    name: str
    data: bytes
    fields: tuple[tuple[int, int], ...]


def module_fields(data: bytes) -> list[tuple[int, int]]:
    """Prefix fields, extension headers, suffix size and compressed header of each part."""
    out: list[tuple[int, int]] = []
    base = 0
    while base < len(data):
        try:
            m = parse_module_at_head(data[base:])
        except ImageError:
            break
        p = base + m.prefix_offset
        out += [(p, 4), (p + 4, 4), (p + 8, 1), (p + 9, 1), (p + 12, 2), (p + 14, 1)]
        out += [(p + 16, 1), (p + 18, 2), (p + 20, 1)]
        end = base + len(m.data)
        out += [(end - 6, 2), (end - 4, 4), (end - 10, 2), (end - 8, 2)]
        pos = p + 24
        for ext in m.prefix.extensions:
            out += [(pos, 2), (pos + 2, 2)]
            pos += len(ext.encode())
        pos = end - 4 - m.suffix.size
        for ext in m.suffix.extensions:
            out += [(pos, 2), (pos + 2, 2)]
            pos += len(ext.encode())
        if m.is_compressed:
            lo = base + m.body_range[0]
            out += [(lo, 2), (lo + 2, 1), (lo + 3, 1), (lo + 4, 4), (lo + 8, 1)]
        base = end
    return out


def zip_fields(data: bytes) -> list[tuple[int, int]]:
    """Sizes, offsets, name lengths, methods and flags of local, central and end records."""
    out: list[tuple[int, int]] = []
    for sig, fields in (
        (b"PK\x03\x04", [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2), (30, 1)]),
        (
            b"PK\x01\x02",
            [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (42, 4), (46, 1)],
        ),
        (b"PK\x05\x06", [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]),
    ):
        at = data.find(sig)
        while at >= 0:
            out += [(at + o, w) for o, w in fields if at + o + w <= len(data)]
            at = data.find(sig, at + 4)
    return out


def _fixture(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def _app(body: bytes, platform: int = 13, **kw: object) -> bytes:
    prefix = ModulePrefix(
        start_address=0xD4000,
        end_address=0,
        function=ModuleFunction.USER_PART,
        index=1,
        platform_id=platform,
        module_version=6,
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, 6101),
    )
    return build_module(prefix=prefix, body=body, product=(platform, 3), **kw)  # type: ignore[arg-type]


@functools.cache
def module_seeds() -> list[Seed]:
    real = [
        "040_user-part.bin",
        "argon-tinker-620.bin",
        "boron_blank.bin",
        "cat.bin",
        "p2-user-part.bin",
        "p2-user-part-prefix-extensions.bin",
        "tracker-bootloader-protected.bin",
        "tracker-tinker@5.3.1.bin",
        "tracker-user-part-extensions.bin",
        "RC4_bootloader_pad_BM-09.bin",
    ]
    raw = {name: _fixture("binaries", name) for name in real}
    raw["app-with-assets.bin"] = _fixture("bundles", "app-with-assets.bin")
    text = b"the quick brown fox " * 8
    small = _app(bytes(range(64)))
    other = _app(b"\x00\x01" * 40, platform=12)
    deps: list[Extension] = [
        asset_dependency("a.txt", b"a"),
        asset_dependency("b.txt", b"b"),
        DependencyExtension(4, 1, 6101, 0),
        SecurityModeExtension(1, b"\x30\x03\x02\x01\x00"),
        UnknownExtension(0x7777, b"??"),
    ]
    p2_prefix = ModulePrefix(
        start_address=0,
        end_address=0x08600000,
        function=ModuleFunction.USER_PART,
        index=2,
        platform_id=32,
        module_version=6,
        extensions=(AssetDependencyExtension("x.bin", bytes(32)),),
    )
    raw |= {
        "small-app": small,
        "app-with-suffix-extensions": _app(b"body" * 10, suffix_extensions=deps),
        "p2-app-prefix-extensions": build_module(
            prefix=p2_prefix,
            body=b"p2" * 20,
            suffix_extensions=[
                DynamicLocationExtension(0, 0x08600000 - 0x100, 0x08600000 - 0x80),
                ProductDataExtension(32, 2),
            ],
            anchor="end",
        ),
        "asset-plain": create_asset_module(text, "fox.txt", compress=False),
        "asset-compressed": create_asset_module(text, "fox.txt"),
        "asset-typed": create_asset_module(b"{}", "env", asset_type=1),
        "app-compressed": compress_module(parse_module(small)),
        "combined": combine_modules([small, other]),
        "combined-compressed": combine_modules(
            [compress_module(parse_module(small)), create_asset_module(text, "fox.txt")]
        ),
    }
    return [Seed(name, data, tuple(module_fields(data))) for name, data in raw.items()]


def _stored_zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, content in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return buf.getvalue()


@functools.cache
def zip_seeds() -> list[Seed]:
    app = _app(b"app" * 30)
    raw = {
        name: _fixture("bundles", name)
        for name in (
            "bundle.zip",
            "bundle_app_1719510886367.zip",
            "bundle-asset-hash-no-match.zip",
            "bundle-missing-assets.zip",
            "invalid-bundle.zip",
        )
    }
    raw["written"] = write_bundle("app.bin", app, [("a.txt", b"aaaa"), ("b.txt", b"b" * 50)])
    raw["stored"] = _stored_zip(
        [("app.bin", app), ("assets/a.txt", b"aaaa"), ("env.json", b"{}"), (".DS_Store", b"")]
    )
    return [Seed(name, data, tuple(zip_fields(data))) for name, data in raw.items()]


def seeds_where(pred: str) -> list[Seed]:
    return [s for s in module_seeds() if pred in s.name]


# ----------------------------------------------------------------- mutation

INTERESTING = (0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 35, 36, 37, 40, 41, 0x7F, 0x80, 0xFF)
INTERESTING_WIDE = (0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def reseal(buf: bytearray) -> None:
    """Fresh SHA-256 and CRC-32 for the module ending at the end of ``buf``."""
    if len(buf) >= 38:
        buf[-38:-6] = hashlib.sha256(buf[:-38]).digest()
        buf[-4:] = zlib.crc32(buf[:-4]).to_bytes(4, "big")


@st.composite
def mutants(draw: st.DrawFn, seeds: list[Seed], *, sealable: bool = True) -> bytes:
    """A seed with one to five random mutations, often aware of its fields."""
    seed = draw(st.sampled_from(seeds))
    buf = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 5))):
        n = len(buf)
        op = draw(st.sampled_from(["field", "field", "field", "flip", "insert", "delete", "cut"]))
        if op == "field" and seed.fields:
            offset, width = draw(st.sampled_from(seed.fields))
            if offset + width > n:
                continue
            near = [n + d for d in (-64, -40, -36, -6, -4, -1, 0, 1)]
            pool = [v for v in (*INTERESTING, *INTERESTING_WIDE, *near) if 0 <= v < 1 << 8 * width]
            value = draw(st.one_of(st.sampled_from(pool), st.integers(0, (1 << 8 * width) - 1)))
            delta = draw(st.sampled_from([0, 0, 0, 1, -1]))
            old = int.from_bytes(buf[offset : offset + width], "little")
            if delta:
                value = (old + delta) % (1 << 8 * width)
            buf[offset : offset + width] = value.to_bytes(width, "little")
        elif op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            buf[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            i = draw(st.integers(0, n))
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del buf[i : i + draw(st.integers(1, 16))]
        elif op == "cut":
            del buf[draw(st.integers(0, n)) :]
    if sealable and draw(st.booleans()):
        reseal(buf)
    if draw(st.integers(0, 9)) == 0:  # sometimes glue on another input (combined files)
        buf += draw(st.sampled_from(seeds)).data
    return bytes(buf)


EXTENSION_TYPES = st.sampled_from([0x0000, 0x0001, 0x0002, 0x0003, 0x10, 0x11, 0x12, 0x13, 0x14])


@st.composite
def structured_modules(draw: st.DrawFn, *, compressed: bool = False) -> bytes:
    """A prefix and suffix laid out right around random content and random extensions."""
    flags = draw(st.integers(0, 0x1F))
    if compressed:
        flags |= ModuleFlag.COMPRESSED
    function = draw(st.sampled_from([*range(10), 0x55]))
    body = draw(st.binary(max_size=256))
    if compressed:
        window = draw(st.sampled_from([0, 7, 8, 9, 15, 16]))
        original = draw(st.one_of(st.integers(0, 4096), st.sampled_from([0xFFFFFFFF])))
        stream = zlib.compress(body, 9)[2:-4] if draw(st.booleans()) else body
        body = struct.pack("<HBBI", draw(st.sampled_from([8, 8, 0, 9])), 0, window, original)
        body += stream
    prefix = ModulePrefix(
        start_address=draw(st.sampled_from([0, 0xD4000, 0x085F0000, 0xFFFFF000])),
        end_address=0,
        function=function,
        platform_id=draw(st.sampled_from([0, 6, 12, 13, 32, 35, 0xFFFF])),
        flags=flags & ~ModuleFlag.PREFIX_EXTENSIONS,
    )
    exts = [
        UnknownExtension(t, draw(st.binary(max_size=40)))
        for t in draw(st.lists(EXTENSION_TYPES, max_size=4))
    ]
    data = bytearray(build_module(prefix=prefix, body=body, suffix_extensions=exts))
    if draw(st.booleans()):
        data[9] = flags  # PREFIX_EXTENSIONS set with no extensions, or cleared
        reseal(data)
    return bytes(data)


RANDOM_BYTES = st.binary(max_size=2048)


def any_module() -> st.SearchStrategy[bytes]:
    return st.one_of(RANDOM_BYTES, structured_modules(), mutants(module_seeds()))


def any_input() -> st.SearchStrategy[bytes]:
    return st.one_of(any_module(), mutants(zip_seeds(), sealable=False))


@contextlib.contextmanager
def only_image_errors() -> Iterator[None]:
    """The property: ImageError may be raised, nothing else.

    The outcome is recorded as a Hypothesis event, so ``--hypothesis-show-statistics``
    shows how deep the inputs get (how many parse, which errors stop the rest).
    """
    try:
        yield
    except ImageError as exc:
        event(f"{type(exc).__name__}: {re.sub(r'[0-9a-fx]*[0-9][0-9a-fx]*', 'N', str(exc))[:36]}")
    else:
        event("accepted")


def touch(module: object) -> None:
    """Use the lazy parts of a parsed module too."""
    for attr in ("crc_ok", "sha256_ok", "body_range", "extensions", "asset_name", "platform"):
        getattr(module, attr)


# -------------------------------------------------------------------- tests


@FUZZ
@given(any_module())
def test_parse_module(data: bytes) -> None:
    with only_image_errors():
        m = parse_module(data)
        assert len(m.data) == len(data)
        touch(m)


@FUZZ
@given(any_module())
def test_parse_module_at_head(data: bytes) -> None:
    with only_image_errors():
        m = parse_module_at_head(data)
        assert len(m.data) <= len(data)
        touch(m)


COMBINED = st.one_of(any_module(), mutants(seeds_where("combined")))


@FUZZ
@given(COMBINED)
def test_parse_combined(data: bytes) -> None:
    with only_image_errors():
        parts = parse_combined(data)
        assert sum(len(p.data) for p in parts) == len(data)
        for p in parts:
            touch(p)


@FUZZ
@given(COMBINED)
def test_split_combined(data: bytes) -> None:
    with only_image_errors():
        for part in split_combined(data):
            assert not parse_module(part).is_combined


@FUZZ
@given(
    st.one_of(
        structured_modules(compressed=True),
        mutants(seeds_where("compressed")),
        mutants(seeds_where("compressed")),
    )
)
def test_decompress_module(data: bytes) -> None:
    with only_image_errors():
        out = decompress_module(parse_module_at_head(data))
        assert len(out) <= MAX_DECOMPRESSED_SIZE + len(data)


@FUZZ
@given(
    st.one_of(
        structured_modules(compressed=True),
        mutants(seeds_where("asset")),
        mutants(seeds_where("asset")),
        mutants([s for s in module_seeds() if s.name == "cat.bin"]),
    )
)
def test_unwrap_asset_module(data: bytes) -> None:
    with only_image_errors():
        content = unwrap_asset_module(parse_module_at_head(data))
        assert content.hash_ok in (True, False)


ZIPS = st.one_of(
    RANDOM_BYTES.map(lambda b: b"PK\x03\x04" + b), mutants(zip_seeds(), sealable=False)
)


@FUZZ
@given(ZIPS)
def test_read_bundle(data: bytes) -> None:
    with only_image_errors():
        bundle = read_bundle(data)
        assert bundle.app_name.lower().endswith(".bin")


NAMES = st.one_of(
    st.sampled_from(["a.txt", "", ".", "..", "a/b", "a\\b", "n" * 256, "é" * 128, "\x00", "env"]),
    st.text(max_size=12),
)


@FUZZ
@given(
    st.one_of(
        ZIPS.map(lambda z: (z, None)),
        st.tuples(
            st.just(b""),
            st.builds(
                Bundle,
                app_name=st.just("app.bin"),
                app=st.one_of(any_module(), mutants(seeds_where("app"))),
                assets=st.dictionaries(NAMES, st.binary(max_size=64), max_size=3),
                env=st.none() | st.binary(max_size=16),
            ),
        ),
    )
)
def test_check_bundle(case: tuple[bytes, Bundle | None]) -> None:
    zipped, bundle = case
    with only_image_errors():
        result = check_bundle(read_bundle(zipped) if bundle is None else bundle)
        assert result.ok == (not result.problems)


@FUZZ
@given(any_input())
def test_inspect_image(data: bytes) -> None:
    with only_image_errors():
        result = inspect_image(data)
        assert result.ok == result.report["ok"]


def _extension_lists() -> st.SearchStrategy[bytes]:
    one = st.one_of(
        st.builds(EndExtension, st.integers(0, 8)),
        st.builds(ProductDataExtension, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
        st.builds(HashExtension, st.binary(max_size=40)),
        st.builds(NameExtension, st.text(max_size=10)),
        st.builds(AssetDependencyExtension, st.text(max_size=10), st.binary(max_size=40)),
        st.builds(AssetTypeExtension, st.integers(0, 255)),
        st.builds(UnknownExtension, st.integers(0, 0xFFFF), st.binary(max_size=20)),
    )
    return st.lists(one, max_size=6).map(encode_extensions)


@st.composite
def regions(draw: st.DrawFn) -> tuple[bytes, int, int]:
    data = bytearray(draw(st.one_of(RANDOM_BYTES, _extension_lists())))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.sampled_from([0, 1, 3, 4, 0xFF]))
    start = draw(st.integers(0, len(data)))
    stop = draw(st.integers(start, len(data)))
    return bytes(data), start, stop


@FUZZ
@given(regions())
def test_decode_extensions(region: tuple[bytes, int, int]) -> None:
    data, start, stop = region
    with only_image_errors():
        exts, pos = decode_extensions(data, start, stop)
        assert start <= pos <= stop
        assert pos - start == len(encode_extensions(exts))


# ------------------------------------------------------------------ atheris


def one_input(data: bytes) -> None:
    """Every parser on the same bytes; libFuzzer reports anything but ImageError."""
    calls = (
        parse_module,
        parse_module_at_head,
        parse_combined,
        split_combined,
        read_bundle,
        inspect_image,
        lambda d: decompress_module(parse_module_at_head(d)),
        lambda d: unwrap_asset_module(parse_module_at_head(d)),
        lambda d: check_bundle(read_bundle(d)),
        lambda d: decode_extensions(d, 0, len(d)),
    )
    for call in calls:
        with contextlib.suppress(ImageError):
            call(data)


def main(argv: list[str]) -> None:
    """``--write-corpus DIR`` writes the seeds; other arguments go to libFuzzer."""
    if argv[1:2] == ["--write-corpus"]:
        folder = Path(argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for seed in module_seeds() + zip_seeds():
            (folder / seed.name).write_bytes(seed.data)
        return
    atheris = importlib.import_module("atheris")  # optional, so imported only here
    atheris.instrument_all()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
