"""The harness itself works: binary-version-reader 3.1.3 answers through bvr.py."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tests.conformance.bvr import (
    BVR_VERSION,
    DEVICE_CONSTANTS_VERSION,
    BinaryVersionReader,
    BvrError,
    NamedBlob,
)

USER_PART = 5
ASSET = 9
DROP_MODULE_INFO = 0x01
COMPRESSED = 0x02
COMBINED = 0x04


def _read(fixtures: Path, name: str) -> bytes:
    return (fixtures / name).read_bytes()


def _assert_alive(bvr: BinaryVersionReader) -> None:
    assert bvr.version()["binaryVersionReader"] == BVR_VERSION


def test_pinned_versions(bvr: BinaryVersionReader) -> None:
    versions = bvr.version()
    assert versions["binaryVersionReader"] == BVR_VERSION
    assert versions["deviceConstants"] == DEVICE_CONSTANTS_VERSION


def test_parse_msom_tinker(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    info = bvr.parse(_read(particle_fixtures, "binaries/tinker-6.3.4-msom.bin"))
    assert "fileBuffer" not in info
    assert info["crc"]["ok"] is True
    assert info["crc"]["storedCrc"] == info["crc"]["actualCrc"]
    prefix = info["prefixInfo"]
    assert prefix["platformID"] == 35
    assert prefix["moduleFunction"] == USER_PART
    assert prefix["depModuleVersion"] == 6305
    assert prefix["moduleStartAddy"] == "85f2000"  # unpadded lowercase hex, as BVR emits
    suffix = info["suffixInfo"]
    assert len(suffix["fwUniqueId"]) == 64
    ext = suffix["extensions"][0]
    # Extensions keep type/length/offset, their raw bytes as hex, and the parsed fields.
    assert {"type", "length", "offset", "data", "moduleStartAddress"} <= ext.keys()
    assert len(bytes.fromhex(ext["data"])) == ext["length"]


def test_parse_security_certificate_is_hex(
    bvr: BinaryVersionReader, particle_fixtures: Path
) -> None:
    info = bvr.parse(_read(particle_fixtures, "binaries/tracker-bootloader-protected.bin"))
    assert info["security"]["mode"] == 1
    for ext in info["suffixInfo"].get("extensions", []) + info["prefixInfo"].get("extensions", []):
        assert isinstance(ext["data"], str)
        bytes.fromhex(ext["data"])


def test_parse_asset_dependencies(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    info = bvr.parse(_read(particle_fixtures, "binaries/tracker-user-part-extensions.bin"))
    assert len(info["assets"]) == 3
    for asset in info["assets"]:
        assert asset["hashType"] == 0
        assert len(asset["hash"]) == 64
        assert asset["name"]


def test_unwrap_cat_asset(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    module = _read(particle_fixtures, "binaries/cat.bin")
    info = bvr.parse(module)
    assert info["crc"]["ok"] is True
    assert info["prefixInfo"]["moduleFunction"] == ASSET
    exts = {ext["type"]: ext for ext in info["suffixInfo"]["extensions"]}
    assert exts[0x11]["name"] == "cat.jpg"
    unwrapped = bvr.unwrap_asset_module(module)
    # cat.bin wraps a 21,474-byte JPEG that is *not* assets/cat.jpg (387,662 bytes): the
    # unwrapped payload matches the HASH extension recorded in the module itself.
    assert hashlib.sha256(unwrapped).hexdigest() == exts[0x10]["hash"]
    assert unwrapped[:3] == b"\xff\xd8\xff"  # JPEG SOI
    assert unwrapped[-2:] == b"\xff\xd9"  # JPEG EOI


def test_wrap_and_unwrap_cat_jpg(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    jpg = _read(particle_fixtures, "assets/cat.jpg")
    expected = hashlib.sha256(jpg).hexdigest()
    for compress in (False, True):
        module = bvr.create_asset_module(jpg, "cat.jpg", compress=compress)
        info = bvr.parse(module)
        assert info["crc"]["ok"] is True
        hashes = [e["hash"] for e in info["suffixInfo"]["extensions"] if e["type"] == 0x10]
        assert hashes == [expected]
        assert hashlib.sha256(bvr.unwrap_asset_module(module)).hexdigest() == expected


def test_unpack_bundle(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    bundle = bvr.unpack_application_and_asset_bundle(_read(particle_fixtures, "bundles/bundle.zip"))
    assert bundle.application is not None
    assert bundle.application.name == "app.bin"
    assert bundle.application.data == _read(particle_fixtures, "bundles/app-with-assets.bin")
    assert sorted(a.name for a in bundle.assets) == ["cat.txt", "house.txt", "water.txt"]
    assert bundle.vars is None


def test_asset_module_round_trip(bvr: BinaryVersionReader) -> None:
    payload = b"bluemule " * 500
    for compress in (False, True):
        module = bvr.create_asset_module(payload, "greeting.txt", compress=compress)
        info = bvr.parse(module)
        assert info["crc"]["ok"] is True
        flags = info["prefixInfo"]["moduleFlags"]
        assert flags & DROP_MODULE_INFO
        assert bool(flags & COMPRESSED) is compress
        assert bvr.unwrap_asset_module(module) == payload
        if compress:
            decompressed = bvr.decompress_module(module)
            assert not bvr.parse(decompressed)["prefixInfo"]["moduleFlags"] & COMPRESSED


def test_compress_and_combine_round_trip(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    app = _read(particle_fixtures, "binaries/tracker-tinker@5.3.1.bin")
    compressed = bvr.compress_module(app)
    assert bvr.parse(compressed)["prefixInfo"]["moduleFlags"] & COMPRESSED
    assert bvr.decompress_module(compressed) == app

    asset = bvr.create_asset_module(b"x" * 100, "x.bin", compress=False)
    combined = bvr.combine_modules([app, asset])
    assert len(combined) == len(app) + len(asset)
    assert bvr.parse(combined[: len(app)])["prefixInfo"]["moduleFlags"] & COMBINED
    assert bvr.split_combined_modules(combined) == [app, asset]


def test_bundle_round_trip(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    app = _read(particle_fixtures, "binaries/argon-tinker-620.bin")
    assets = [NamedBlob("a.txt", b"alpha"), NamedBlob("b.txt", b"bravo")]
    updated = bvr.update_module_asset_dependencies(app, assets)
    declared = bvr.parse(updated)["assets"]
    assert {a["name"]: a["hash"] for a in declared} == {
        a.name: hashlib.sha256(a.data).hexdigest() for a in assets
    }

    zipped = bvr.create_application_and_asset_bundle(("app.bin", app), assets)
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert sorted(archive.namelist()) == ["app.bin", "assets/a.txt", "assets/b.txt"]
    bundle = bvr.unpack_application_and_asset_bundle(zipped)
    assert bundle.application == NamedBlob("app.bin", updated)
    assert sorted(bundle.assets, key=lambda a: a.name) == assets


def test_parse_empty_file_fails(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    with pytest.raises(BvrError) as caught:
        bvr.parse(_read(particle_fixtures, "binaries/emptybin.bin"))
    assert caught.value.op == "parse"
    assert str(caught.value)
    _assert_alive(bvr)


def test_decompress_uncompressed_fails(bvr: BinaryVersionReader, particle_fixtures: Path) -> None:
    with pytest.raises(BvrError, match="not compressed") as caught:
        bvr.decompress_module(_read(particle_fixtures, "binaries/tinker-6.3.4-msom.bin"))
    assert caught.value.js_name == "RangeError"
    _assert_alive(bvr)


def test_error_thrown_inside_unzip_entry_handler(bvr: BinaryVersionReader) -> None:
    # Two top-level files: BVR throws from inside its async unzip 'entry' handler, an
    # error that never reaches the promise it returned (an unhandled rejection).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("one.bin", b"1")
        archive.writestr("two.bin", b"2")
    with pytest.raises(BvrError, match="More applications than expected"):
        bvr.unpack_application_and_asset_bundle(buf.getvalue())
    _assert_alive(bvr)


def test_bad_requests(bvr: BinaryVersionReader) -> None:
    with pytest.raises(BvrError, match="unknown op") as caught:
        bvr.call("noSuchOperation")
    assert caught.value.js_name == "BadRequest"
    with pytest.raises(BvrError, match=r"missing args\.data"):
        bvr.call("parse", {})
    with pytest.raises(BvrError, match="base64"):
        bvr.call("parse", {"data": 42})
    _assert_alive(bvr)


def test_uncaught_exception_and_timeout() -> None:
    # A private server with a short time limit, so the session one stays untouched.
    with BinaryVersionReader(op_timeout=0.5) as client:
        with pytest.raises(BvrError, match="late boom"):
            client.call("_debugThrowLater", {"message": "late boom"})
        _assert_alive(client)
        with pytest.raises(BvrError, match="timed out"):
            client.call("_debugSleep", {"ms": 3000})
        _assert_alive(client)
    assert not client.running
