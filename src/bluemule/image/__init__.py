"""Particle firmware images: modules, asset modules, combined modules and bundles.

Everything here is pure (bytes in, objects or bytes out) except :func:`read_file`.
Facts and sources: ``shared/reference/particle.md`` §1, §2 and §7; format notes in
``docs/image-format.md``; the JSON that ``bluemule image inspect`` prints in
``docs/image-json.md``.
"""

from __future__ import annotations

from pathlib import Path

from bluemule.image.assets import (
    AssetContent,
    asset_dependency,
    create_asset_module,
    set_asset_dependencies,
    unwrap_asset_module,
)
from bluemule.image.bundle import (
    Bundle,
    BundleCheck,
    check_bundle,
    looks_like_zip,
    read_bundle,
    write_bundle,
)
from bluemule.image.combined import combine_modules, parse_combined, split_combined
from bluemule.image.compression import (
    CompressedHeader,
    compress_module,
    decompress_module,
    read_compressed_header,
)
from bluemule.image.constants import (
    AssetType,
    ExtensionType,
    HashType,
    ModuleFlag,
    ModuleFunction,
    SecurityMode,
)
from bluemule.image.errors import (
    BundleError,
    CompressionError,
    ExtensionError,
    ImageError,
    LimitExceededError,
    MalformedModuleError,
    NotAModuleError,
    UnsupportedOperationError,
)
from bluemule.image.extensions import (
    AssetDependencyExtension,
    AssetTypeExtension,
    DependencyExtension,
    DynamicLocationExtension,
    EndExtension,
    Extension,
    HashExtension,
    NameExtension,
    ProductDataExtension,
    SecurityModeExtension,
    UnknownExtension,
)
from bluemule.image.module import (
    Dependency,
    Module,
    ModulePrefix,
    ModuleSuffix,
    build_module,
    parse_module,
    parse_module_at_head,
)
from bluemule.image.platforms import (
    PLATFORMS,
    AssetLimits,
    McuFamily,
    Platform,
    platform_by_id,
    platform_by_name,
)
from bluemule.image.report import InspectResult, inspect_image

MAX_FILE_SIZE = 64 * 1024 * 1024
"""Files larger than this are not read: no module or bundle comes near it."""


def read_file(path: str | Path) -> bytes:
    """Read an image file, refusing anything absurdly large before reading it.

    Raises:
        ImageError: the file is missing, unreadable, a directory or too large.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_SIZE:
            raise LimitExceededError(
                f"{p} is {size} bytes; limit is {MAX_FILE_SIZE}", limit=MAX_FILE_SIZE, actual=size
            )
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {p}: {exc.strerror or exc}") from None


__all__ = [
    "MAX_FILE_SIZE",
    "PLATFORMS",
    "AssetContent",
    "AssetDependencyExtension",
    "AssetLimits",
    "AssetType",
    "AssetTypeExtension",
    "Bundle",
    "BundleCheck",
    "BundleError",
    "CompressedHeader",
    "CompressionError",
    "Dependency",
    "DependencyExtension",
    "DynamicLocationExtension",
    "EndExtension",
    "Extension",
    "ExtensionError",
    "ExtensionType",
    "HashExtension",
    "HashType",
    "ImageError",
    "InspectResult",
    "LimitExceededError",
    "MalformedModuleError",
    "McuFamily",
    "Module",
    "ModuleFlag",
    "ModuleFunction",
    "ModulePrefix",
    "ModuleSuffix",
    "NameExtension",
    "NotAModuleError",
    "Platform",
    "ProductDataExtension",
    "SecurityMode",
    "SecurityModeExtension",
    "UnknownExtension",
    "UnsupportedOperationError",
    "asset_dependency",
    "build_module",
    "check_bundle",
    "combine_modules",
    "compress_module",
    "create_asset_module",
    "decompress_module",
    "inspect_image",
    "looks_like_zip",
    "parse_combined",
    "parse_module",
    "parse_module_at_head",
    "platform_by_id",
    "platform_by_name",
    "read_bundle",
    "read_compressed_header",
    "read_file",
    "set_asset_dependencies",
    "split_combined",
    "unwrap_asset_module",
    "write_bundle",
]
