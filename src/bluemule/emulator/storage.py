"""The two LittleFS instances, modelled as directories of files.

LittleFS commits are atomic, so a file is modelled as a file in a directory written
with temp + fsync + rename; each such commit (write or remove) is **one** flash
operation (:meth:`bluemule.emulator.flash.Flash.commit`), and a power loss during it
leaves the old state.

* The main file system (``shared/reference/particle.md`` §3.6: 2 MB; holds the DCT
  ``/sys/dct.bin`` of §3.2 and the bluemule library's key-value files) is a
  :class:`FileStore` over ``<state>/lfs``.
* The asset file system (§2.3: its own LittleFS, one file per asset holding the whole
  asset module, still compressed) is an :class:`AssetStorage` over ``<state>/assets``.
  It enforces device-constants' block accounting (4096-B blocks, 288 in total, 10
  reserved, ceil(len / 4088) blocks per file) and models the Boron overlap with the
  OTA tail: once the OTA region past 606,208 B is erased or programmed, the asset file
  system is corrupt (a marker file), so the next mount fails and the storage is
  formatted, which drops every asset (§2.3 "invalid files are deleted", §4.2 item 5).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bluemule.emulator.errors import DeviceOsError, SystemErrorCode, UsageError
from bluemule.emulator.flash import Flash
from bluemule.image import (
    AssetLimits,
    ImageError,
    Module,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    parse_module,
    unwrap_asset_module,
)
from bluemule.image.assets import check_asset_name

_PREFIX_SIZE: Final = 24
_COMPRESSED_HEADER_SIZE: Final = 8
_SUFFIX_BASE_SIZE: Final = 36
_CRC_SIZE: Final = 4
_EXTENSION_HEADER_SIZE: Final = 4
_TMP_SUFFIX: Final = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: write a temp file, fsync it, rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_SUFFIX}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class FileStore:
    """A LittleFS instance as a directory; names may contain ``/`` for subdirectories."""

    def __init__(self, root: Path, flash: Flash) -> None:
        self._root = root
        self._flash = flash
        root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        """The directory standing for the file system."""
        return self._root

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in {"", ".", ".."} or p.startswith(".") for p in parts):
            raise UsageError(f"bad file name {name!r}")
        return self._root.joinpath(*parts)

    def read(self, name: str) -> bytes | None:
        """The file's content, or None if there is no such file."""
        self._flash.require_power()
        path = self._path(name)
        return path.read_bytes() if path.is_file() else None

    def write(self, name: str, data: bytes) -> None:
        """Create or replace a file atomically (one flash operation)."""
        path = self._path(name)
        self._flash.commit(f"write {self._root.name}/{name}", lambda: atomic_write(path, data))

    def remove(self, name: str) -> bool:
        """Delete a file (one flash operation if it exists)."""
        path = self._path(name)
        self._flash.require_power()
        if not path.is_file():
            return False
        self._flash.commit(f"remove {self._root.name}/{name}", path.unlink)
        return True

    def files(self) -> list[str]:
        """Names of the files at the top level, sorted (temp files are not listed)."""
        self._flash.require_power()
        return sorted(p.name for p in self._root.iterdir() if p.is_file() and p.name[0] != ".")

    def format(self) -> None:
        """Erase the whole file system (one flash operation)."""

        def wipe() -> None:
            shutil.rmtree(self._root)
            self._root.mkdir()

        self._flash.commit(f"format {self._root.name}", wipe)


def validate_asset_module(data: bytes) -> Module:
    """``AssetReader::validate`` (system/src/asset_manager.cpp; §2.3): what makes an asset
    file or an OTA'd asset module acceptable. Pure.

    Checks: long enough; prefix at offset 0 with function ASSET, DROP_MODULE_INFO set,
    no PREFIX_EXTENSIONS; length = end − start + 4; CRC-32 (never the SHA-256, §1.8);
    a suffix of at least 44 B with NAME and HASH extensions. The name must also be a
    valid file name (it becomes one).

    Raises:
        DeviceOsError: NOT_ENOUGH_DATA or BAD_DATA, as Device OS returns them.
    """
    minimum = _PREFIX_SIZE + _COMPRESSED_HEADER_SIZE + _SUFFIX_BASE_SIZE + _CRC_SIZE
    if len(data) <= minimum:
        raise DeviceOsError(SystemErrorCode.NOT_ENOUGH_DATA, "asset module too short")
    prefix = ModulePrefix.unpack(data, 0)
    if prefix.function != ModuleFunction.ASSET:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "not an asset module")
    if not prefix.flags & ModuleFlag.DROP_MODULE_INFO or prefix.flags & (
        ModuleFlag.PREFIX_EXTENSIONS
    ):
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "asset module flags")
    if prefix.end_address - prefix.start_address + _CRC_SIZE != len(data):
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "asset module length")
    try:
        module = parse_module(data)
    except ImageError as exc:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, str(exc)) from None
    if module.prefix_offset != 0 or not module.crc_ok:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "asset module CRC-32 mismatch")
    if module.suffix.size < _SUFFIX_BASE_SIZE + 2 * _EXTENSION_HEADER_SIZE:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "asset module suffix too short")
    name, digest = module.asset_name, module.asset_hash
    if name is None or digest is None:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, "asset module lacks NAME or HASH")
    try:
        check_asset_name(name)
    except ImageError as exc:
        raise DeviceOsError(SystemErrorCode.BAD_DATA, str(exc)) from None
    return module


def raw_asset_sha256(module: Module) -> bytes:
    """SHA-256 of the raw asset inside a module (its declared HASH if it cannot be inflated:
    Device OS never inflates at validation, so such an asset still counts as present)."""
    try:
        return unwrap_asset_module(module).sha256
    except ImageError:
        assert module.asset_hash is not None
        return module.asset_hash


@dataclass(frozen=True)
class StoredAsset:
    """A valid file of the asset file system."""

    name: str
    declared_sha256: bytes
    """The HASH extension: what Device OS compares with ASSET_DEPENDENCY (§2.3)."""
    module: Module

    @property
    def key(self) -> tuple[str, bytes]:
        """Identity Device OS uses: name and hash."""
        return self.name, self.declared_sha256


def asset_file_name(name: str) -> str:
    """Host file name for an asset (hashed: asset names need not be valid host names)."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40] + ".asset"


class AssetStorage:
    """The asset LittleFS (§2.3) with its block accounting and the Boron overlap marker."""

    def __init__(self, root: Path, flash: Flash, limits: AssetLimits) -> None:
        self._fs = FileStore(root, flash)
        self._flash = flash
        self._limits = limits
        self._marker = root.parent / f"{root.name}.corrupt"

    @property
    def limits(self) -> AssetLimits:
        """device-constants ``assets`` of the platform."""
        return self._limits

    @property
    def capacity(self) -> int:
        """Usable bytes: (total − reserved blocks) × block size."""
        return self._limits.total_size

    @property
    def corrupt(self) -> bool:
        """Whether an OTA write clobbered the file system (Boron overlap)."""
        return self._marker.exists()

    def mark_corrupt(self) -> None:
        """Called when the OTA tail overlapping this storage is erased or programmed."""
        self._marker.touch()

    def storage_size(self, module_size: int) -> int:
        """Bytes a file of ``module_size`` takes: ceil(size / 4088) × 4096."""
        return self._limits.storage_size(module_size)

    def used(self) -> int:
        """Bytes taken by all files (valid or not)."""
        return sum(self.storage_size((self._fs.root / f).stat().st_size) for f in self._fs.files())

    def scan(self) -> tuple[list[StoredAsset], list[str]]:
        """Valid assets (by name) and the files that are not (``parseAvailableAssets``).

        A corrupt file system has no valid files.
        """
        files = self._fs.files()
        if self.corrupt:
            return [], files
        valid: list[StoredAsset] = []
        invalid: list[str] = []
        for f in files:
            data = self._fs.read(f)
            assert data is not None
            try:
                module = validate_asset_module(data)
            except DeviceOsError:
                invalid.append(f)
                continue
            name, digest = module.asset_name, module.asset_hash
            assert name is not None
            assert digest is not None
            if asset_file_name(name) != f:
                invalid.append(f)
                continue
            valid.append(StoredAsset(name, digest, module))
        valid.sort(key=lambda a: a.name)
        return valid, invalid

    def remove_file(self, file: str) -> bool:
        """Delete one file (one flash operation)."""
        return self._fs.remove(file)

    def remove(self, name: str) -> bool:
        """Delete the asset called ``name`` (one flash operation if it exists)."""
        return self._fs.remove(asset_file_name(name))

    def format(self) -> None:
        """Format the storage (one flash operation): every file and the corruption go."""

        def wipe() -> None:
            shutil.rmtree(self._fs.root)
            self._fs.root.mkdir()
            self._marker.unlink(missing_ok=True)

        self._flash.commit(f"format {self._fs.root.name}", wipe)

    def write(self, name: str, module_data: bytes) -> None:
        """Write an asset file (one flash operation), refusing what does not fit.

        Raises:
            DeviceOsError: FILESYSTEM_NOSPC when the blocks would exceed the capacity.
        """
        file = asset_file_name(name)
        existing = self._fs.root / file
        old = self.storage_size(existing.stat().st_size) if existing.is_file() else 0
        needed = self.storage_size(len(module_data))
        if self.used() - old + needed > self.capacity:
            raise DeviceOsError(
                SystemErrorCode.FILESYSTEM_NOSPC,
                f"asset {name!r} needs {needed} B, {self.capacity - self.used() + old} B free",
            )
        self._fs.write(file, module_data)

    def install(self, name: str, module_data: bytes) -> None:
        """Write an asset file at manufacturing (not a flash operation)."""
        atomic_write(self._fs.root / asset_file_name(name), module_data)
