"""Application + asset bundles: the zip ``particle compile`` produces.

Layout (``shared/reference/particle.md`` §2.1): one application ``.bin`` at the root,
raw asset files under ``assets/``, optionally env vars: read from ``env.json`` or
``env/*.json``, written as ``env/env-vars.json`` as binary-version-reader writes them
(its unpacker takes any root file for the application). Reading is defensive: entry
names are checked for path traversal and duplicates, and sizes are bounded before and
while inflating.
"""

from __future__ import annotations

import io
import lzma
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from bluemule.image.assets import (
    asset_dependency,
    check_asset_name,
    create_asset_module,
    set_asset_dependencies,
)
from bluemule.image.errors import BundleError, ImageError, LimitExceededError
from bluemule.image.module import Module, parse_module

ASSETS_DIR: Final = "assets"
ENV_ENTRY: Final = "env/env-vars.json"
"""Where ``write_bundle`` puts env vars, as ``createApplicationAndAssetBundle`` does."""
MAX_ENTRIES: Final = 1024
MAX_ENTRY_SIZE: Final = 16 * 1024 * 1024
"""Larger than any application or asset a Particle device can hold."""
MAX_TOTAL_SIZE: Final = 64 * 1024 * 1024
_IGNORED_NAMES: Final = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06")
_FIXED_TIME: Final = (2020, 1, 1, 0, 0, 0)
# End of central directory: signature, disk, cd disk, entries here, entries total, cd size,
# cd offset, comment length. It sits in the last 22 + 65535 (comment) bytes.
_EOCD: Final = struct.Struct("<4sHHHHIIH")
assert _EOCD.size == 22
_EOCD_SEARCH: Final = _EOCD.size + 0xFFFF
_ENTRY_ERRORS: Final = (
    zipfile.BadZipFile,
    OSError,  # bzip2
    EOFError,
    NotImplementedError,  # compression method
    RuntimeError,  # encrypted
    zlib.error,  # Deflate: zipfile lets it through
    lzma.LZMAError,
    ValueError,  # negative seek to a lying header offset, a name flagged UTF-8 that is not
)


def looks_like_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a zip archive."""
    return data[:4] in _ZIP_MAGICS


@dataclass(frozen=True)
class Bundle:
    """The parts of an application bundle."""

    app_name: str
    app: bytes
    assets: dict[str, bytes]
    env: bytes | None = None
    ignored: tuple[str, ...] = field(default=())
    """Entries that are not part of a bundle (``__MACOSX/``, ``.DS_Store``, other folders)."""


def _safe_name(name: str) -> str:
    if "\\" in name or "\x00" in name:
        raise BundleError(f"bundle entry {name!r} has a backslash or NUL in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"bundle entry {name!r} has an absolute path")
    parts = name.rstrip("/").split("/")
    if any(p in {"..", "."} for p in parts) or "" in parts:
        raise BundleError(f"bundle entry {name!r} escapes or has empty path parts")
    return name


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    limit = min(MAX_ENTRY_SIZE, budget)
    if info.file_size > limit:
        raise LimitExceededError(
            f"bundle entry {info.filename!r} declares {info.file_size} bytes, limit is {limit}",
            limit=limit,
            actual=info.file_size,
        )
    try:
        with archive.open(info) as handle:
            data = handle.read(info.file_size + 1)  # not limit + 1: zipfile inflates that much
    except _ENTRY_ERRORS as exc:
        raise BundleError(f"bundle entry {info.filename!r} is corrupt: {exc}") from None
    if len(data) > limit:
        raise LimitExceededError(
            f"bundle entry {info.filename!r} inflates past {limit} bytes",
            limit=limit,
            actual=len(data),
        )
    if len(data) != info.file_size:  # zipfile stops at the first end it sees and does not check
        raise BundleError(
            f"bundle entry {info.filename!r} declares {info.file_size} bytes but holds {len(data)}"
        )
    return data


def _role(name: str) -> Literal["app", "asset", "env", "ignored"]:
    folder, base = posixpath.split(name)
    if folder == "" and base.lower().endswith(".bin"):
        return "app"
    if (folder == "" and base == "env.json") or (folder == "env" and base.endswith(".json")):
        return "env"
    if folder == ASSETS_DIR and base not in _IGNORED_NAMES:
        return "asset"
    return "ignored"


def _check_bundle_asset_name(name: str) -> None:
    try:
        check_asset_name(name)
    except ImageError as exc:
        raise BundleError(str(exc)) from None


def _declared_entry_count(data: bytes) -> int | None:
    """Entries the end-of-central-directory record declares, before zipfile parses them all."""
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD_SEARCH))
    if eocd < 0 or eocd + _EOCD.size > len(data):
        return None
    return int(_EOCD.unpack_from(data, eocd)[4])


def read_bundle(data: bytes) -> Bundle:
    """Read a bundle zip. Raises :class:`BundleError` or :class:`LimitExceededError`."""
    declared = _declared_entry_count(data)
    if declared is not None and declared > MAX_ENTRIES:  # 0xFFFF: zip64, never a bundle
        raise LimitExceededError(
            f"bundle has {declared} entries", limit=MAX_ENTRIES, actual=declared
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,  # "zip file version 7.4": a mangled central directory
    ) as exc:
        raise BundleError(f"not a readable zip: {exc}") from None
    if len(infos) > MAX_ENTRIES:
        raise LimitExceededError(
            f"bundle has {len(infos)} entries", limit=MAX_ENTRIES, actual=len(infos)
        )
    seen: set[str] = set()
    apps: list[tuple[str, bytes]] = []
    assets: dict[str, bytes] = {}
    env: bytes | None = None
    ignored: list[str] = []
    budget = MAX_TOTAL_SIZE
    for info in infos:
        name = _safe_name(info.filename)
        if name in seen:
            raise BundleError(f"bundle has two entries named {name!r}")
        seen.add(name)
        if info.is_dir():
            continue
        role = _role(name)
        if role == "ignored":
            ignored.append(name)
            continue
        content = _read_entry(archive, info, budget)
        budget -= len(content)
        base = posixpath.basename(name)
        if role == "asset":
            _check_bundle_asset_name(base)
            assets[base] = content
        elif role == "env":
            if env is not None:
                raise BundleError("bundle has more than one env file")
            env = content
        else:
            apps.append((base, content))
    if len(apps) != 1:
        found = ", ".join(n for n, _ in apps) or "none"
        raise BundleError(f"a bundle holds exactly one application .bin at its root; found {found}")
    return Bundle(apps[0][0], apps[0][1], assets, env, tuple(ignored))


def write_bundle(
    app_name: str, app: bytes, assets: Sequence[tuple[str, bytes]], *, env: bytes | None = None
) -> bytes:
    """Write a bundle zip, setting the application's asset dependencies to ``assets``.

    The zip is deterministic (fixed timestamps, Deflate level 9), so the same inputs
    give the same bytes.
    """
    if "/" in app_name or not app_name.lower().endswith(".bin"):
        raise BundleError(f"application name {app_name!r} must be a plain '.bin' file name")
    names = [n for n, _ in assets]
    if len(set(names)) != len(names):
        raise BundleError("two assets have the same name")
    skipped = sorted(set(names) & _IGNORED_NAMES)
    if skipped:  # read_bundle would drop them and the app would miss them
        raise BundleError(f"asset names {skipped} are ignored when a bundle is read")
    module = parse_module(app)
    deps = [asset_dependency(n, d) for n, d in assets]
    if deps or module.asset_dependencies:
        app = set_asset_dependencies(module, deps)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        entries = [(app_name, app), *((f"{ASSETS_DIR}/{n}", d) for n, d in assets)]
        if env is not None:
            # Where binary-version-reader writes it: its unpacker takes every file at the
            # root for the application and rejects a bundle with two.
            entries.append((ENV_ENTRY, env))
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return out.getvalue()


@dataclass(frozen=True)
class BundleCheck:
    """What a bundle holds and what is wrong with it."""

    bundle: Bundle
    app: Module
    problems: list[str]

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def check_bundle(bundle: Bundle) -> BundleCheck:
    """Parse the application and check it against the assets and platform limits."""
    app = parse_module(bundle.app)
    problems: list[str] = []
    if not app.crc_ok:
        problems.append("application CRC-32 does not match its content")
    if not app.sha256_ok:
        problems.append("application SHA-256 does not match its content")
    declared = {d.name: d for d in app.asset_dependencies}
    for name, dep in declared.items():
        if name not in bundle.assets:
            problems.append(f"application needs asset {name!r}, which the bundle lacks")
        elif asset_dependency(name, bundle.assets[name]).hash != dep.hash:
            problems.append(f"asset {name!r} does not match the SHA-256 the application declares")
    problems.extend(
        f"asset {name!r} is in the bundle but the application does not declare it"
        for name in bundle.assets
        if name not in declared
    )
    platform = app.platform
    if platform is not None and platform.max_app_size and len(app.data) > platform.max_app_size:
        problems.append(
            f"application is {len(app.data)} bytes; {platform.display_name} allows "
            f"{platform.max_app_size}"
        )
    if bundle.assets and platform is not None:
        limits = platform.assets
        if limits is None:
            problems.append(f"{platform.display_name} does not support assets")
        else:
            total = 0
            for name, content in bundle.assets.items():
                size = len(create_asset_module(content, name))
                total += limits.storage_size(size)
                if size > limits.max_single_asset_size:
                    problems.append(
                        f"asset {name!r} is {size} bytes as a module; "
                        f"{platform.display_name} allows "
                        f"{limits.max_single_asset_size}"
                    )
            if total > limits.total_size:
                problems.append(
                    f"assets need {total} bytes of storage; {platform.display_name} "
                    f"has {limits.total_size}"
                )
    return BundleCheck(bundle, app, problems)
