"""Field-by-field comparison of a bluemule ``Module`` with binary-version-reader's ``parse``.

``bvr_view`` maps a parsed :class:`~bluemule.image.Module` to the dict that
``new HalModuleParser().parseBuffer()`` returns for the same bytes (as the bridge
JSON-normalises it: buffers as lowercase hex, addresses as unpadded hex strings).
``assert_matches_bvr`` builds that view and compares it with what binary-version-reader
really returned, key by key, and fails listing every path that differs, so one
assertion covers start/end address, reserved (mcu_target), flags, versions, platform,
function, index, both dependencies, prefix offset and size, suffix size, product
fields, SHA-256, stored CRC, CRC verdict, every extension (type, length, offset, raw
bytes and decoded fields), the assets list and the security entry.

Where the two libraries model a field differently the mapping is spelled out here:

* product id/version: binary-version-reader reports ``-1`` when the suffix is shorter
  than 40 bytes; we report ``None``. With a suffix of 40 bytes or more it always reads
  the two ``u16`` in front of the base suffix; we report ``None`` when the suffix
  extensions run right up to the base without a PRODUCT_DATA extension (so those four
  bytes belong to another extension, e.g. an END), and the view reads the same raw
  bytes there.
* extension offsets: binary-version-reader gives prefix-extension offsets relative to
  the prefix (it parses a slice starting at ``prefixOffset``) and suffix-extension
  offsets relative to the start of the buffer it parsed.
* ``hashLength`` of HASH / ASSET_DEPENDENCY is the byte it read; our decoder only
  accepts extensions where that byte equals the hash's length, so it is ``len(hash)``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from bluemule.image import (
    PLATFORMS,
    AssetDependencyExtension,
    AssetTypeExtension,
    DependencyExtension,
    DynamicLocationExtension,
    EndExtension,
    Extension,
    HashExtension,
    Module,
    ModuleFlag,
    ModuleFunction,
    ModulePrefix,
    NameExtension,
    ProductDataExtension,
    SecurityModeExtension,
    UnknownExtension,
)

PREFIX_SIZE = 24
MIN_SUFFIX_SIZE = 36
CRC_SIZE = 4
_RAW_PRODUCT = struct.Struct("<HH")

Json = dict[str, Any]

__all__ = [
    "assert_matches_bvr",
    "bvr_extension",
    "bvr_prefix_offset",
    "bvr_splits_correctly",
    "bvr_view",
    "diff",
]


def _hex_address(value: int) -> str:
    return f"{value:x}"


def bvr_extension(ext: Extension, offset: int) -> Json:
    """One extension as ``HalModuleParser._readExtension`` reports it."""
    raw = ext.encode()
    out: Json = {"type": _type_code(ext), "length": len(raw), "offset": offset, "data": raw.hex()}
    match ext:
        case ProductDataExtension():
            out |= {"productId": ext.product_id, "productVersion": ext.product_version}
        case DynamicLocationExtension():
            out |= {
                "moduleStartAddress": _hex_address(ext.module_start_address),
                "dynalibLoadAddress": _hex_address(ext.dynalib_load_address),
                "dynalibStartAddress": _hex_address(ext.dynalib_start_address),
            }
        case DependencyExtension():
            out |= {
                "moduleFunction": ext.function,
                "moduleIndex": ext.index,
                "moduleVersion": ext.version,
                "targetId": ext.target_id,
            }
        case HashExtension():
            out |= {"hashType": ext.hash_type, "hashLength": len(ext.hash), "hash": ext.hash.hex()}
        case NameExtension():
            out |= {"name": ext.name}
        case AssetDependencyExtension():
            out |= {
                "hashType": ext.hash_type,
                "hashLength": len(ext.hash),
                "hash": ext.hash.hex(),
                "name": ext.name,
            }
        case SecurityModeExtension():
            out["securityMode"] = ext.mode
            if ext.certificate:
                out["certificate"] = ext.certificate.hex()
        case AssetTypeExtension():
            out["assetType"] = ext.asset_type
        case EndExtension() | UnknownExtension():
            pass
    return out


def _type_code(ext: Extension) -> int:
    return ext.type if isinstance(ext, UnknownExtension) else int(ext.TYPE)


def _extensions(exts: tuple[Extension, ...], first_offset: int) -> list[Json]:
    out = []
    offset = first_offset
    for ext in exts:
        out.append(bvr_extension(ext, offset))
        offset += len(ext.encode())
    return out


def _product(module: Module) -> tuple[int, int]:
    s = module.suffix
    if s.size < MIN_SUFFIX_SIZE + _RAW_PRODUCT.size:
        return -1, -1
    if s.product_id is not None and s.product_version is not None:
        return s.product_id, s.product_version
    # No product data in our model: binary-version-reader still reads the four bytes in
    # front of the base suffix (the tail of the last suffix extension).
    at = len(module.data) - CRC_SIZE - MIN_SUFFIX_SIZE - _RAW_PRODUCT.size
    pid, pver = _RAW_PRODUCT.unpack_from(module.data, at)
    return pid, pver


def bvr_view(module: Module) -> Json:
    """What binary-version-reader's ``parseBuffer`` reports for ``module.data``."""
    p, s = module.prefix, module.suffix
    prefix: Json = {
        "moduleStartAddy": _hex_address(p.start_address),
        "moduleEndAddy": _hex_address(p.end_address),
        "reserved": p.mcu_target,
        "moduleFlags": p.flags,
        "moduleVersion": p.module_version,
        "platformID": p.platform_id,
        "moduleFunction": p.function,
        "moduleIndex": p.index,
        "depModuleFunction": p.dependency.function,
        "depModuleIndex": p.dependency.index,
        "depModuleVersion": p.dependency.version,
        "dep2ModuleFunction": p.dependency2.function,
        "dep2ModuleIndex": p.dependency2.index,
        "dep2ModuleVersion": p.dependency2.version,
        "prefixSize": module.prefix_size,
        "prefixOffset": module.prefix_offset,
    }
    if p.flags & ModuleFlag.PREFIX_EXTENSIONS:
        prefix["extensions"] = _extensions(p.extensions, PREFIX_SIZE)
    product_id, product_version = _product(module)
    suffix: Json = {
        "productId": product_id,
        "productVersion": product_version,
        "fwUniqueId": s.sha256.hex(),
        "reserved": s.reserved,
        "suffixSize": s.size,
        "crcBlock": f"{module.stored_crc32:08x}",
    }
    if s.extensions:
        suffix["extensions"] = _extensions(s.extensions, len(module.data) - CRC_SIZE - s.size)
    view: Json = {
        "crc": {
            "ok": module.crc_ok,
            "storedCrc": f"{module.stored_crc32:08x}",
            "actualCrc": f"{module.computed_crc32:08x}",
        },
        "prefixInfo": prefix,
        "suffixInfo": suffix,
    }
    deps = module.asset_dependencies
    if deps:
        view["assets"] = [
            {"hashType": d.hash_type, "hash": d.hash.hex(), "name": d.name} for d in deps
        ]
    security = [e for e in module.extensions if isinstance(e, SecurityModeExtension)]
    if security:
        view["security"] = {"mode": security[0].mode}
        if security[0].certificate:
            view["security"]["certificate"] = security[0].certificate.hex()
    return view


def diff(expected: object, actual: object, path: str = "") -> list[str]:
    """Every path where two JSON-like values differ (dict keys, list items, leaves)."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: bluemule has {expected[key]!r}, bvr has no such field")
            elif key not in expected:
                out.append(f"{where}: bvr has {actual[key]!r}, bluemule has no such field")
            else:
                out.extend(diff(expected[key], actual[key], where))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: bluemule has {len(expected)} items, bvr has {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(diff(e, a, f"{path}[{i}]"))
        return out
    # bool is an int in Python: compare types too, so True never equals 1.
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: bluemule {expected!r} != bvr {actual!r}"]
    return []


def assert_matches_bvr(module: Module, info: Mapping[str, Any]) -> None:
    """Fail unless binary-version-reader's parse ``info`` says exactly what ``module`` says.

    ``info`` must be the parse of ``module.data`` itself (not of a padded or combined
    file around it).
    """
    problems = diff(bvr_view(module), info)
    assert not problems, "bluemule and binary-version-reader disagree:\n  " + "\n  ".join(problems)


# binary-version-reader's prefix search ------------------------------------------------

_BVR_PLATFORMS = frozenset(p.id for p in PLATFORMS if p.generation > 0)
_BVR_FUNCTIONS = frozenset(int(f) for f in ModuleFunction)
_BVR_FLAGS = 0x1F
_PREFERRED = (0, 0x200, 0x184, 0xC0, 0x10C)


def _bvr_score(data: bytes, offset: int) -> int:
    """``HalModuleParser._validateModulePrefix``: 0 (impossible) to 7 (passed)."""
    if offset + PREFIX_SIZE > len(data):
        return 0
    p = ModulePrefix.unpack(data, offset)
    size = p.end_address - p.start_address + CRC_SIZE
    if p.end_address <= p.start_address or len(data) < size or p.function == 0:
        return 0
    for dep in (p.dependency, p.dependency2):
        if dep.function == 0 and (dep.index or dep.version):
            return 0
    return 1 + sum(
        (
            p.platform_id in _BVR_PLATFORMS,
            p.function in _BVR_FUNCTIONS,
            p.dependency.function in _BVR_FUNCTIONS,
            p.dependency2.function in _BVR_FUNCTIONS,
            len(data) == size,
            not p.flags & ~_BVR_FLAGS,
        )
    )


def bvr_prefix_offset(data: bytes) -> int:
    """``HalModuleParser._findModulePrefixOffset``, ported: where bvr looks for the prefix.

    The first offset that passes, else the first with the highest score (0 if none):
    preferred offsets first, then every 4-byte-aligned one up to 8 KiB.
    """
    last = min(8 * 1024, len(data) - MIN_SUFFIX_SIZE - PREFIX_SIZE - CRC_SIZE)
    order = [*_PREFERRED, *(o for o in range(4, last + 1, 4) if o not in _PREFERRED)]
    best, best_score = 0, 0
    for offset in order:
        score = _bvr_score(data, offset)
        if score == 7:
            return offset
        if score > best_score:
            best, best_score = offset, score
    return best


def bvr_splits_correctly(parts: list[Module]) -> bool:
    """Whether ``splitCombinedModules`` finds every part's own prefix in the combined file.

    It searches each part's prefix in the rest of the file; a part whose prefix is not
    at offset 0 or 0x200 can lose to a later part's prefix that sits at a preferred
    offset (or earlier in the scan) relative to it.
    """
    data = b"".join(p.data for p in parts)
    at = 0
    for part in parts:
        if bvr_prefix_offset(data[at:]) != part.prefix_offset:
            return False
        at += len(part.data)
    return True
