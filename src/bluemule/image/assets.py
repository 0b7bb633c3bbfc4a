"""Asset modules (function 9) and an application's ASSET_DEPENDENCY list.

An asset module wraps the raw asset bytes: prefix (start 0, DROP_MODULE_INFO), body,
suffix extensions HASH (SHA-256 of the raw bytes), NAME, optional ASSET_TYPE and
PRODUCT_DATA (0xFFFF), compressed by default (``shared/reference/particle.md`` §2.2).
An application declares the assets it needs by name and SHA-256; on Gen 3 the list
goes in the suffix, on RTL872x apps (which grow left from a fixed end) in the prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bluemule.image.compression import compress_module, decompress_module
from bluemule.image.constants import AssetType, ExtensionType, ModuleFlag, ModuleFunction
from bluemule.image.errors import (
    ImageError,
    LimitExceededError,
    UnsupportedOperationError,
)
from bluemule.image.extensions import (
    AssetDependencyExtension,
    AssetTypeExtension,
    Extension,
    HashExtension,
    NameExtension,
    ProductDataExtension,
    extension_type,
)
from bluemule.image.module import (
    Module,
    ModulePrefix,
    build_module,
    parse_module,
    rebuild_module,
)

MAX_ASSET_NAME_BYTES: Final = 255
"""LittleFS file-name limit: the asset is stored under its name."""


def check_asset_name(name: str) -> None:
    """Refuse names the device cannot store as a file (empty, a path, control chars, too long)."""
    raw = name.encode("utf-8", errors="surrogatepass")
    problem = None
    if not name or name in {".", ".."}:
        problem = "must not be empty, '.' or '..'"
    elif "/" in name or "\\" in name:
        problem = "must not contain a path separator"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "must not contain control characters"
    elif len(raw) > MAX_ASSET_NAME_BYTES:
        problem = f"is {len(raw)} bytes, at most {MAX_ASSET_NAME_BYTES}"
    if problem:
        raise ImageError(f"asset name {name!r} {problem}")


def create_asset_module(
    data: bytes, name: str, *, compress: bool = True, asset_type: int = AssetType.DEFAULT
) -> bytes:
    """Wrap raw asset bytes as an asset module, compressed by default."""
    check_asset_name(name)
    exts: list[Extension] = [HashExtension(hashlib.sha256(data).digest()), NameExtension(name)]
    if asset_type != AssetType.DEFAULT:
        exts.append(AssetTypeExtension(asset_type))
    exts.append(ProductDataExtension(0xFFFF, 0xFFFF))
    prefix = ModulePrefix(
        start_address=0,
        end_address=0,
        function=ModuleFunction.ASSET,
        flags=ModuleFlag.DROP_MODULE_INFO,
    )
    module = build_module(prefix=prefix, body=data, suffix_extensions=exts)
    return compress_module(parse_module(module)) if compress else module


@dataclass(frozen=True)
class AssetContent:
    """What an asset module carries."""

    name: str
    data: bytes
    declared_sha256: bytes | None

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the raw asset bytes."""
        return hashlib.sha256(self.data).digest()

    @property
    def hash_ok(self) -> bool:
        """Whether the HASH extension matches the content."""
        return self.declared_sha256 == self.sha256


def unwrap_asset_module(module: Module) -> AssetContent:
    """The raw bytes and name inside an asset module (decompressed if needed)."""
    if module.function != ModuleFunction.ASSET:
        raise UnsupportedOperationError("not an asset module (function is not 9)")
    if not module.flags & ModuleFlag.DROP_MODULE_INFO:
        raise UnsupportedOperationError("asset modules must carry DROP_MODULE_INFO")
    if module.is_compressed:
        module = parse_module(decompress_module(module))
    name = module.asset_name
    if name is None:
        raise UnsupportedOperationError("asset module has no NAME extension")
    check_asset_name(name)  # it becomes a file name on the device and maybe on disk
    lo, hi = module.body_range
    return AssetContent(name, module.data[lo:hi], module.asset_hash)


def asset_dependency(name: str, data: bytes) -> AssetDependencyExtension:
    """The ASSET_DEPENDENCY an application needs for raw asset ``data`` called ``name``."""
    check_asset_name(name)
    return AssetDependencyExtension(name, hashlib.sha256(data).digest())


def _without(exts: Sequence[Extension], *types: int) -> list[Extension]:
    return [e for e in exts if extension_type(e) not in types]


def set_asset_dependencies(app: Module, deps: Sequence[AssetDependencyExtension]) -> bytes:
    """The application with exactly ``deps`` as its asset dependencies (others replaced).

    Placement follows binary-version-reader ``addModuleExtensions``: in the prefix when
    the app already has prefix extensions or its platform's user part grows left
    (RTL872x), else in the suffix. An empty list removes them.

    Raises:
        UnsupportedOperationError: not a user part, compressed or combined.
        LimitExceededError: the result exceeds the platform's application size.
    """
    if app.function != ModuleFunction.USER_PART:
        raise UnsupportedOperationError("only applications (user parts) declare assets")
    if app.is_compressed or app.is_combined:
        raise UnsupportedOperationError("asset dependencies need an uncompressed, single module")
    names = [d.name for d in deps]
    if len(set(names)) != len(names):
        raise ImageError("asset names must be unique")
    platform = app.platform
    in_prefix = bool(app.flags & ModuleFlag.PREFIX_EXTENSIONS) or (
        platform is not None and platform.app_grows_left
    )
    drop = (ExtensionType.ASSET_DEPENDENCY, ExtensionType.END)
    if in_prefix:
        if app.prefix_offset:
            raise UnsupportedOperationError("prefix extensions need the prefix at offset 0")
        out = rebuild_module(
            app, prefix_extensions=[*_without(app.prefix.extensions, *drop), *deps], anchor="end"
        )
    else:
        out = rebuild_module(
            app, suffix_extensions=[*deps, *_without(app.suffix.extensions, *drop)]
        )
    if platform is not None and platform.max_app_size and len(out) > platform.max_app_size:
        raise LimitExceededError(
            f"application would be {len(out)} bytes, {platform.display_name} allows "
            f"{platform.max_app_size}",
            limit=platform.max_app_size,
            actual=len(out),
        )
    return out
