"""Our parser against binary-version-reader's on every real file in shared/fixtures/particle.

Every module in ``binaries/`` and ``bundles/`` is compared field by field
(``compare.assert_matches_bvr``); the bundles are unpacked by both libraries and their
contents compared. Deliberate differences are asserted exactly, not skipped:

* ``RC4_bootloader_pad_BM-09.bin`` is padded with 0xFF past its declared end;
* ``unknown.bin`` and ``emptybin.bin`` are not modules;
* bundles: ``.DS_Store`` under ``assets/`` and a root file that is not ``.bin``.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from bluemule.image import (
    BundleError,
    MalformedModuleError,
    NotAModuleError,
    check_bundle,
    parse_module,
    parse_module_at_head,
    read_bundle,
)
from tests.conformance.bvr import BinaryVersionReader, BvrError
from tests.conformance.compare import assert_matches_bvr, bvr_prefix_offset, bvr_view, diff
from tests.conformance.conftest import FIXTURES

BINARIES = FIXTURES / "binaries"
BUNDLES = FIXTURES / "bundles"

PADDED = "RC4_bootloader_pad_BM-09.bin"
NOT_MODULES = {"unknown.bin", "emptybin.bin"}


def _names(folder: Path, suffix: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix))


MODULE_FILES = [
    *(f"binaries/{n}" for n in _names(BINARIES, ".bin") if n not in NOT_MODULES | {PADDED}),
    *(f"bundles/{n}" for n in _names(BUNDLES, ".bin")),
]
BUNDLE_FILES = _names(BUNDLES, ".zip")


def test_every_fixture_is_covered() -> None:
    """A file added to the fixtures must land in one of the cases below."""
    covered = {*MODULE_FILES, f"binaries/{PADDED}", *(f"binaries/{n}" for n in NOT_MODULES)}
    covered |= {f"bundles/{n}" for n in BUNDLE_FILES}
    on_disk = {f"{d.name}/{p.name}" for d in (BINARIES, BUNDLES) for p in d.iterdir()}
    assert on_disk == covered
    assert len(MODULE_FILES) == 19
    assert {*EXPECTED_PROBLEMS, "invalid-bundle.zip"} == set(BUNDLE_FILES)


@pytest.mark.parametrize("name", MODULE_FILES)
def test_module_fixture(bvr: BinaryVersionReader, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    module = parse_module(data)
    assert module.data == data
    info = bvr.parse(data)
    assert_matches_bvr(module, info)
    assert bvr_prefix_offset(data) == info["prefixInfo"]["prefixOffset"]
    # Every one of these is intact (only the padded RC4 file is not).
    assert module.crc_ok
    assert module.sha256_ok


def test_padded_bootloader(bvr: BinaryVersionReader) -> None:
    """RC4_bootloader_pad_BM-09.bin: 100 bytes of 0xFF after the declared end.

    Deliberate difference: we read the suffix backwards from ``module_end_address``,
    as the device does; binary-version-reader reads it from the end of the file and
    so reports the padding (0xFFFF sizes, an all-0xFF SHA and CRC block).
    """
    data = (BINARIES / PADDED).read_bytes()
    with pytest.raises(MalformedModuleError, match="100 bytes after"):
        parse_module(data)
    module = parse_module_at_head(data)
    assert len(module.data) == len(data) - 100
    assert data[len(module.data) :] == b"\xff" * 100
    assert module.prefix_offset == 0x184
    # The module itself (without the padding) is still a negative case: its stored
    # CRC is a placeholder.
    assert module.stored_crc32 == 0x78563412
    assert not module.crc_ok

    info = bvr.parse(data)
    ours = bvr_view(module)
    # Same prefix: both find it at 0x184 with the same fields.
    assert not diff(ours["prefixInfo"], info["prefixInfo"])
    # Suffix: what binary-version-reader reads from the last 40 bytes of the file.
    assert info["suffixInfo"] == {
        "productId": 0xFFFF,
        "productVersion": 0xFFFF,
        "fwUniqueId": "ff" * 32,
        "reserved": 0xFFFF,
        "suffixSize": 0xFFFF,
        "crcBlock": "ffffffff",
    }
    assert ours["suffixInfo"] == {
        "productId": -1,
        "productVersion": -1,
        "fwUniqueId": module.suffix.sha256.hex(),
        "reserved": 0,
        "suffixSize": 36,
        "crcBlock": "78563412",
    }
    assert info["crc"] == {
        "ok": False,
        "storedCrc": "ffffffff",
        "actualCrc": zlib.crc32(data[:-4]).to_bytes(4, "big").hex(),
    }
    # Given just the declared bytes, binary-version-reader agrees with us on everything.
    assert_matches_bvr(module, bvr.parse(module.data))


def test_unknown_bin(bvr: BinaryVersionReader) -> None:
    """unknown.bin: we refuse it; binary-version-reader "parses" garbage.

    Deliberate difference: no offset holds a plausible prefix, so binary-version-reader
    falls back to its best-scoring offset (16, score 2 of 7) and reports whatever is
    there: unknown platform, function and flags.
    """
    data = (BINARIES / "unknown.bin").read_bytes()
    with pytest.raises(NotAModuleError):
        parse_module_at_head(data)
    info = bvr.parse(data)
    prefix = info["prefixInfo"]
    assert prefix["prefixOffset"] == bvr_prefix_offset(data) == 16
    assert (prefix["platformID"], prefix["moduleFunction"], prefix["moduleFlags"]) == (
        129,
        129,
        128,
    )
    assert (prefix["depModuleFunction"], prefix["dep2ModuleFunction"]) == (129, 129)
    assert info["suffixInfo"]["productId"] == -1


def test_empty_file(bvr: BinaryVersionReader) -> None:
    """emptybin.bin: we raise NotAModuleError; binary-version-reader throws a RangeError."""
    data = (BINARIES / "emptybin.bin").read_bytes()
    assert data == b""
    with pytest.raises(NotAModuleError):
        parse_module_at_head(data)
    with pytest.raises(BvrError, match="outside buffer bounds"):
        bvr.parse(data)


# Bundles ---------------------------------------------------------------------------

# Deliberate difference: binary-version-reader returns every file under assets/ as an
# asset, the macOS .DS_Store included; we list it as ignored.
IGNORED_BY_US = {"bundle-missing-assets.zip": ("assets/.DS_Store",)}

# What check_bundle reports, derived independently from binary-version-reader's view
# (its parse of the app's asset list and the hashes of the files it unpacked).
EXPECTED_PROBLEMS = {
    "bundle.zip": [],
    "bundle_app_1719510886367.zip": [],
    "bundle-asset-hash-no-match.zip": [
        "asset 'cat.txt' does not match the SHA-256 the application declares"
    ],
    "bundle-missing-assets.zip": ["application needs asset 'water.txt', which the bundle lacks"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_bundle_fixture(bvr: BinaryVersionReader, name: str) -> None:
    data = (BUNDLES / name).read_bytes()
    theirs = bvr.unpack_application_and_asset_bundle(data)
    ours = read_bundle(data)
    assert theirs.application is not None
    assert (ours.app_name, ours.app) == (theirs.application.name, theirs.application.data)
    ignored = IGNORED_BY_US.get(name, ())
    assert ours.ignored == ignored
    assert ours.assets == {
        a.name: a.data for a in theirs.assets if f"assets/{a.name}" not in ignored
    }
    assert len(theirs.assets) == len(ours.assets) + len(ignored)
    assert ours.env is None
    assert theirs.vars is None

    checked = check_bundle(ours)
    info = bvr.parse(theirs.application.data)
    assert_matches_bvr(checked.app, info)

    # The verdict binary-version-reader's data implies (isAssetValid on each declared
    # asset, and every file the app does not declare).
    unpacked = {a.name: a.data for a in theirs.assets if f"assets/{a.name}" not in ignored}
    implied = []
    for asset in info.get("assets", []):
        if asset["name"] not in unpacked:
            implied.append(f"application needs asset {asset['name']!r}, which the bundle lacks")
        elif hashlib.sha256(unpacked[asset["name"]]).hexdigest() != asset["hash"]:
            implied.append(
                f"asset {asset['name']!r} does not match the SHA-256 the application declares"
            )
    declared = {a["name"] for a in info.get("assets", [])}
    implied += [
        f"asset {n!r} is in the bundle but the application does not declare it"
        for n in unpacked
        if n not in declared
    ]
    assert checked.problems == implied == EXPECTED_PROBLEMS[name]
    assert checked.ok == (not implied)


def test_bundle_app_matches_loose_copy() -> None:
    """bundles/app-with-assets.bin is the app inside bundle.zip (as the README says)."""
    bundle = read_bundle((BUNDLES / "bundle.zip").read_bytes())
    assert bundle.app == (BUNDLES / "app-with-assets.bin").read_bytes()


def test_invalid_bundle(bvr: BinaryVersionReader) -> None:
    """invalid-bundle.zip holds a single empty ``app.txt``.

    Deliberate difference: binary-version-reader takes any root file as the application
    and returns it (then cannot parse its 0 bytes); we need exactly one root ``.bin``.
    """
    data = (BUNDLES / "invalid-bundle.zip").read_bytes()
    with pytest.raises(BundleError, match=r"exactly one application \.bin"):
        read_bundle(data)
    theirs = bvr.unpack_application_and_asset_bundle(data)
    assert theirs.application is not None
    assert (theirs.application.name, theirs.application.data) == ("app.txt", b"")
    assert theirs.assets == []
    with pytest.raises(BvrError):
        bvr.parse(theirs.application.data)
