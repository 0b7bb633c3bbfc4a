"""Asset dependencies and bundles: what each library writes, the other reads.

* ``set_asset_dependencies`` on Gen 3 (suffix) and RTL872x (prefix, growing left, 8-byte
  aligned start, DYNAMIC_LOCATION moved) against ``updateModuleAssetDependencies``:
  byte-identical where binary-version-reader is right, and both parsers see exactly
  the new asset list in our output;
* re-bundling an RTL872x app that already declares assets: binary-version-reader
  leaves the old END in front of the new extensions (so its own parser, and the
  device, see no assets); ours replaces the list;
* ``write_bundle`` → ``unpackApplicationAndAssetBundle`` and
  ``createApplicationAndAssetBundle`` → ``read_bundle`` + ``check_bundle``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluemule.image import (
    AssetDependencyExtension,
    Bundle,
    BundleError,
    DynamicLocationExtension,
    EndExtension,
    LimitExceededError,
    Module,
    ModuleFlag,
    ProductDataExtension,
    asset_dependency,
    check_bundle,
    parse_module,
    read_bundle,
    set_asset_dependencies,
    write_bundle,
)
from tests.conformance.bvr import BinaryVersionReader, BvrError, NamedBlob
from tests.conformance.compare import assert_matches_bvr, bvr_extension
from tests.conformance.conftest import FIXTURES
from tests.strategies import (
    RTL872X_APP_END,
    Generated,
    any_apps,
    asset_apps,
    asset_blobs,
    examples,
    rtl872x_apps,
)

EXAMPLES = examples(40)
BINARIES = FIXTURES / "binaries"

Blobs = Sequence[tuple[str, bytes]]


def _deps(blobs: Blobs) -> list[AssetDependencyExtension]:
    return [asset_dependency(name, data) for name, data in blobs]


def _bvr_assets(blobs: Blobs) -> list[dict[str, Any]]:
    """The ``assets`` list binary-version-reader's parser reports for these raw assets."""
    return [
        {"hashType": 0, "hash": hashlib.sha256(data).hexdigest(), "name": name}
        for name, data in blobs
    ]


def _check_app(bvr: BinaryVersionReader, data: bytes, blobs: Blobs) -> Module:
    """Both parsers read ``data`` alike, it is intact and declares exactly ``blobs``."""
    module = parse_module(data)
    info = bvr.parse(data)
    assert_matches_bvr(module, info)
    assert module.crc_ok
    assert module.sha256_ok
    assert module.asset_dependencies == _deps(blobs)
    assert info.get("assets", []) == _bvr_assets(blobs)
    return module


def _check_placement(before: Module, after: Module) -> None:
    """Where the asset dependencies went, and that nothing else changed."""
    lo, hi = before.body_range
    new_lo, new_hi = after.body_range
    assert after.data[new_lo:new_hi] == before.data[lo:hi]
    assert after.prefix.platform_id == before.prefix.platform_id
    assert after.suffix.product_id == before.suffix.product_id
    assert after.suffix.product_version == before.suffix.product_version
    platform = before.platform
    assert platform is not None
    if platform.app_grows_left:
        # RTL872x: the list goes in the prefix, the module grows left from its fixed
        # end, the start is 8-byte aligned and DYNAMIC_LOCATION follows it.
        assert after.prefix.end_address == before.prefix.end_address == RTL872X_APP_END
        if after.asset_dependencies:
            assert after.flags & ModuleFlag.PREFIX_EXTENSIONS
            assert after.prefix.start_address % 8 == 0
            assert isinstance(after.prefix.extensions[-1], EndExtension)
        else:
            assert not after.flags & ModuleFlag.PREFIX_EXTENSIONS
        assert not any(isinstance(e, AssetDependencyExtension) for e in after.suffix.extensions)
        locations = [e for e in after.suffix.extensions if isinstance(e, DynamicLocationExtension)]
        assert [d.module_start_address for d in locations] == [after.prefix.start_address]
        assert isinstance(after.suffix.extensions[-1], ProductDataExtension)
    else:
        # Gen 3: in the suffix, followed by END and the raw product data.
        assert after.prefix.start_address == before.prefix.start_address
        assert not after.flags & ModuleFlag.PREFIX_EXTENSIONS
        assert after.suffix.raw_product
        if after.asset_dependencies:
            assert isinstance(after.suffix.extensions[-1], EndExtension)
        else:
            assert after.suffix.size == 40


def _assert_stale_end(bvr: BinaryVersionReader, theirs: bytes, before: Module) -> None:
    """binary-version-reader's re-bundle of an RTL872x app that already declared assets.

    ``addModuleExtensions`` drops the old ASSET_DEPENDENCY extensions but keeps the old
    END (it only replaces extensions of the types being added), appends the new ones
    and then a new END: ``[END(old padding), ASSET_DEPENDENCY…, END]``. Everything
    reading prefix extensions (its own parser, ours, the device) stops at the first END,
    so the new list is invisible: the result declares no assets at all, and the new
    records sit at the front of what now reads as the body.
    """
    old_end = before.prefix.extensions[-1]
    assert isinstance(old_end, EndExtension)
    info = bvr.parse(theirs)
    assert "assets" not in info
    assert info["prefixInfo"]["extensions"] == [bvr_extension(old_end, 24)]
    module = parse_module(theirs)
    assert_matches_bvr(module, info)
    assert module.prefix.extensions == (old_end,)
    assert module.asset_dependencies == []


# set_asset_dependencies vs updateModuleAssetDependencies -----------------------------


@EXAMPLES
@given(g=any_apps(), blobs=asset_blobs(min_size=1))
def test_asset_dependencies(bvr: BinaryVersionReader, g: Generated, blobs: Blobs) -> None:
    before = parse_module(g.data)
    ours = set_asset_dependencies(before, _deps(blobs))
    after = _check_app(bvr, ours, blobs)
    _check_placement(before, after)

    theirs = bvr.update_module_asset_dependencies(g.data, blobs)
    assert g.platform is not None
    if g.platform.app_grows_left and g.asset_deps:
        _assert_stale_end(bvr, theirs, before)
    else:
        # Gen 3, and RTL872x apps without asset dependencies yet: same layout, same
        # END padding, same DYNAMIC_LOCATION, same checksums.
        assert ours == theirs


@EXAMPLES
@given(g=any_apps(with_asset_deps=False), blobs=asset_blobs(min_size=1))
def test_asset_dependencies_removed(bvr: BinaryVersionReader, g: Generated, blobs: Blobs) -> None:
    """An empty list takes them out again, giving back the original bytes.

    binary-version-reader has no counterpart (``updateModuleAssetDependencies`` refuses
    an empty list); its parser reads our result as a module without assets.
    """
    with_deps = set_asset_dependencies(parse_module(g.data), _deps(blobs))
    without = set_asset_dependencies(parse_module(with_deps), [])
    assert without == g.data
    _check_app(bvr, without, [])
    with pytest.raises(BvrError, match="Empty asset dependency list"):
        bvr.update_module_asset_dependencies(g.data, [])


@examples(25)
@given(g=rtl872x_apps().filter(lambda g: bool(g.asset_deps)), blobs=asset_blobs(min_size=1))
def test_rebundle_rtl872x(bvr: BinaryVersionReader, g: Generated, blobs: Blobs) -> None:
    """Replacing the asset list of an RTL872x app that already has one."""
    before = parse_module(g.data)
    assert before.flags & ModuleFlag.PREFIX_EXTENSIONS
    ours = set_asset_dependencies(before, _deps(blobs))
    after = _check_app(bvr, ours, blobs)
    _check_placement(before, after)
    # Ours equals building the app with the new list from the start.
    fresh = set_asset_dependencies(parse_module(g.data), [])
    assert set_asset_dependencies(parse_module(fresh), _deps(blobs)) == ours
    assert bvr.update_module_asset_dependencies(fresh, blobs) == ours

    _assert_stale_end(bvr, bvr.update_module_asset_dependencies(g.data, blobs), before)


def test_rebundle_p2_fixture(bvr: BinaryVersionReader) -> None:
    """The same on the real p2-user-part-prefix-extensions.bin (two assets declared)."""
    data = (BINARIES / "p2-user-part-prefix-extensions.bin").read_bytes()
    before = parse_module(data)
    assert [d.name for d in before.asset_dependencies] == ["103_system-part1.bin", "unknown.bin"]
    blobs = [("a.txt", b"alpha"), ("b.bin", bytes(range(256)))]
    ours = set_asset_dependencies(before, _deps(blobs))
    after = _check_app(bvr, ours, blobs)
    _check_placement(before, after)
    _assert_stale_end(bvr, bvr.update_module_asset_dependencies(data, blobs), before)

    # Through the bundle writers as well: theirs declares nothing, so check_bundle
    # reports each asset as undeclared; ours is clean.
    zipped = bvr.create_application_and_asset_bundle(("app.bin", data), blobs)
    assert check_bundle(read_bundle(zipped)).problems == [
        "asset 'a.txt' is in the bundle but the application does not declare it",
        "asset 'b.bin' is in the bundle but the application does not declare it",
    ]
    ours_zip = write_bundle("app.bin", data, blobs)
    assert check_bundle(read_bundle(ours_zip)).ok
    unpacked = bvr.unpack_application_and_asset_bundle(ours_zip)
    assert unpacked.application == NamedBlob("app.bin", ours)
    assert bvr.parse(ours)["assets"] == _bvr_assets(blobs)


USER_PART_FIXTURES = [
    "argon-tinker-620.bin",
    "boron_blank.bin",
    "tinker-0.8.0-rc.27-boron.bin",
    "tracker-tinker@5.3.1.bin",
    "tracker-user-part-extensions.bin",
    "p2-tinker@5.3.1.bin",
    "p2-user-part.bin",
    "tinker-6.3.4-msom.bin",
]


@pytest.mark.parametrize("name", USER_PART_FIXTURES)
def test_asset_dependencies_on_fixtures(bvr: BinaryVersionReader, name: str) -> None:
    data = (BINARIES / name).read_bytes()
    blobs = [
        ("cat.jpg", (FIXTURES / "assets/cat.jpg").read_bytes()),
        ("blink.bin", (FIXTURES / "assets/blink.bin").read_bytes()),
        ("ünïcødé name.txt", b"hello"),
    ]
    before = parse_module(data)
    ours = set_asset_dependencies(before, _deps(blobs))
    _check_placement(before, _check_app(bvr, ours, blobs))
    assert ours == bvr.update_module_asset_dependencies(data, blobs)


def test_asset_dependencies_over_the_limit(bvr: BinaryVersionReader) -> None:
    """tracker-max-size is 2 bytes under 256 KB: neither library lets it grow past."""
    data = (BINARIES / "tracker-max-size@5.5.0-rc.1.bin").read_bytes()
    blobs = [("a", b"x")]
    with pytest.raises(LimitExceededError):
        set_asset_dependencies(parse_module(data), _deps(blobs))
    with pytest.raises(BvrError, match="exceeds platform size limits") as caught:
        bvr.update_module_asset_dependencies(data, blobs)
    assert caught.value.js_name == "AssetLimitError"


def test_asset_dependencies_gen2(bvr: BinaryVersionReader) -> None:
    """A Photon app with the old 36-byte suffix (no product data).

    binary-version-reader cannot add the list: it rewrites the product fields it read
    as -1 and Node refuses to store -1 in a u16. We write ``ASSET_DEPENDENCY…, END``
    in front of the base suffix; its parser reads the assets back (and, as always with
    a suffix of 40 bytes or more, takes the END record's last four bytes as product
    id/version: 0 and 4).
    """
    data = (BINARIES / "040_user-part.bin").read_bytes()
    blobs = [("a.txt", b"alpha")]
    with pytest.raises(BvrError, match="out of range"):
        bvr.update_module_asset_dependencies(data, blobs)
    ours = set_asset_dependencies(parse_module(data), _deps(blobs))
    module = _check_app(bvr, ours, blobs)
    assert module.suffix.product_id is None
    info = bvr.parse(ours)
    assert (info["suffixInfo"]["productId"], info["suffixInfo"]["productVersion"]) == (0, 4)
    assert set_asset_dependencies(module, []) == data


# Bundles -----------------------------------------------------------------------------

IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
"""File names ``read_bundle`` skips under ``assets/`` (desktop junk in hand-made zips)."""


def _assert_junk_names_dropped(bundle: Bundle, blobs: Blobs) -> None:
    """A bundle binary-version-reader wrote with an asset called e.g. ``desktop.ini``.

    Deliberate difference: we skip such files when reading (binary-version-reader keeps
    every file under ``assets/``), so check_bundle reports the asset missing; and
    ``write_bundle`` refuses those names rather than write a bundle it would not read
    back whole.
    """
    junk = [n for n, _ in blobs if n in IGNORED_NAMES]
    assert bundle.ignored == tuple(f"assets/{n}" for n in junk)
    assert bundle.assets == {n: d for n, d in blobs if n not in IGNORED_NAMES}
    assert check_bundle(bundle).problems == [
        f"application needs asset {n!r}, which the bundle lacks" for n in junk
    ]


def test_bundle_junk_asset_names(bvr: BinaryVersionReader) -> None:
    app = (BINARIES / "argon-tinker-620.bin").read_bytes()
    for junk in sorted(IGNORED_NAMES):
        blobs = [("a.txt", b"alpha"), (junk, b"not really junk")]
        with pytest.raises(BundleError, match="ignored when a bundle is read"):
            write_bundle("app.bin", app, blobs)
        zipped = bvr.create_application_and_asset_bundle(("app.bin", app), blobs)
        _assert_junk_names_dropped(read_bundle(zipped), blobs)


def _zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


@EXAMPLES
@given(g=asset_apps(), blobs=asset_blobs(min_size=1), with_env=st.booleans())
def test_write_bundle_read_by_bvr(
    bvr: BinaryVersionReader, g: Generated, blobs: Blobs, with_env: bool
) -> None:
    env = {"FOO": "bar", "N": "1"} if with_env else None
    env_bytes = json.dumps(env).encode() if env is not None else None
    if IGNORED_NAMES & {n for n, _ in blobs}:
        with pytest.raises(BundleError, match="ignored when a bundle is read"):
            write_bundle("firmware.bin", g.data, blobs, env=env_bytes)
        return
    zipped = write_bundle("firmware.bin", g.data, blobs, env=env_bytes)
    expected_app = set_asset_dependencies(parse_module(g.data), _deps(blobs))

    theirs = bvr.unpack_application_and_asset_bundle(zipped)
    assert theirs.application == NamedBlob("firmware.bin", expected_app)
    assert [(a.name, a.data) for a in theirs.assets] == list(blobs)
    _check_app(bvr, theirs.application.data, blobs)
    if env is None:
        assert theirs.vars is None
    else:
        assert theirs.vars is not None
        assert theirs.vars["data"] == env

    ours = read_bundle(zipped)
    assert (ours.app_name, ours.app) == ("firmware.bin", expected_app)
    assert ours.assets == dict(blobs)
    assert ours.env == env_bytes
    assert check_bundle(ours).ok


@EXAMPLES
@given(g=asset_apps(with_asset_deps=False), blobs=asset_blobs())
def test_bvr_bundle_read_by_ours(bvr: BinaryVersionReader, g: Generated, blobs: Blobs) -> None:
    zipped = bvr.create_application_and_asset_bundle(("app.bin", g.data), blobs)
    assert _zip_names(zipped) == ["app.bin", *(f"assets/{n}" for n, _ in blobs)]
    bundle = read_bundle(zipped)
    if IGNORED_NAMES & {n for n, _ in blobs}:
        _assert_junk_names_dropped(bundle, blobs)
        return
    assert bundle.app_name == "app.bin"
    assert bundle.assets == dict(blobs)
    assert bundle.env is None
    assert bundle.ignored == ()
    checked = check_bundle(bundle)
    assert checked.ok, checked.problems
    _check_app(bvr, bundle.app, blobs)
    if blobs:
        assert bundle.app == set_asset_dependencies(parse_module(g.data), _deps(blobs))
        # The same bundle written by us holds the same entries and contents.
        assert read_bundle(write_bundle("app.bin", g.data, blobs)) == bundle
    else:
        assert bundle.app == g.data


@examples(20)
@given(g=asset_apps().filter(lambda g: bool(g.asset_deps)))
def test_bundle_without_assets(bvr: BinaryVersionReader, g: Generated) -> None:
    """Bundling an app that declares assets with no assets at all.

    Deliberate difference: binary-version-reader leaves the app untouched, so its
    bundle declares assets it does not hold (check_bundle reports each one missing);
    ``write_bundle`` sets the list to exactly the bundle's assets, i.e. removes it.
    """
    theirs = read_bundle(bvr.create_application_and_asset_bundle(("app.bin", g.data), []))
    assert theirs.app == g.data
    assert check_bundle(theirs).problems == [
        f"application needs asset {d.name!r}, which the bundle lacks" for d in g.asset_deps
    ]
    ours_zip = write_bundle("app.bin", g.data, [])
    unpacked = bvr.unpack_application_and_asset_bundle(ours_zip)
    assert unpacked.application is not None
    assert unpacked.assets == []
    _check_app(bvr, unpacked.application.data, [])
    assert check_bundle(read_bundle(ours_zip)).ok
