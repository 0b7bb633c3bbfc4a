"""What ``bluemule image inspect`` reports: JSON-ready dicts (schema: ``docs/image-json.md``).

``inspect_image`` classifies any bytes as a module, a combined module or a bundle,
runs every integrity and consistency check, and returns the report with ``ok`` and
``problems``. It raises :class:`~bluemule.image.errors.ImageError` only when the
input is not readable as any of these.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from bluemule.image.assets import unwrap_asset_module
from bluemule.image.bundle import check_bundle, looks_like_zip, read_bundle
from bluemule.image.combined import DEVICE_MAX_COMBINED, parse_combined
from bluemule.image.compression import decompress_module, read_compressed_header
from bluemule.image.constants import (
    ExtensionType,
    ModuleFunction,
    SecurityMode,
    flag_names,
    function_label,
)
from bluemule.image.errors import ImageError
from bluemule.image.extensions import Extension, SecurityModeExtension, UnknownExtension
from bluemule.image.module import Module, parse_module_at_head

Json = dict[str, Any]
_NO_PRODUCT: Final = 0xFFFF


@dataclass(frozen=True)
class InspectResult:
    """A report and whether every check passed."""

    report: Json
    ok: bool


def _hex_fields(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def extension_report(ext: Extension, where: str) -> Json:
    """One extension as ``{type, type_code, where, …fields}``."""
    if isinstance(ext, UnknownExtension):
        code = ext.type
        fields: Json = {"payload": ext.payload.hex()}
    else:
        code = int(ext.TYPE)
        fields = {f.name: _hex_fields(getattr(ext, f.name)) for f in dataclasses.fields(ext)}
    try:
        name = ExtensionType(code).name
    except ValueError:
        name = f"0x{code:04x}"
    return {"type": name, "type_code": code, "where": where, **fields}


def _product(value: int | None) -> int | None:
    return None if value is None or value == _NO_PRODUCT else value


def module_problems(m: Module) -> list[str]:
    """Integrity and consistency problems of one module."""
    problems: list[str] = []
    if not m.crc_ok:
        problems.append(
            f"CRC-32 mismatch: stored {m.stored_crc32:08x}, content {m.computed_crc32:08x}"
        )
    if not m.sha256_ok:
        problems.append("SHA-256 mismatch: stored hash does not match the content")
    platform = m.platform
    if m.function != ModuleFunction.ASSET and platform is None:
        problems.append(f"unknown platform id {m.prefix.platform_id}")
    if (
        m.function == ModuleFunction.USER_PART
        and platform is not None
        and platform.max_app_size
        and len(m.data) > platform.max_app_size
    ):
        problems.append(
            f"application is {len(m.data)} bytes; {platform.display_name} allows "
            f"{platform.max_app_size}"
        )
    if m.is_compressed:
        try:
            read_compressed_header(m)
            if m.is_asset and not m.is_combined:
                content = unwrap_asset_module(m)
                if not content.hash_ok:
                    problems.append("asset content does not match its HASH extension")
            elif not m.is_combined:
                decompress_module(m)
        except ImageError as exc:
            problems.append(f"compressed data: {exc}")
    elif m.is_asset:
        try:
            if not unwrap_asset_module(m).hash_ok:
                problems.append("asset content does not match its HASH extension")
        except ImageError as exc:
            problems.append(f"asset: {exc}")
    return problems


def module_report(m: Module) -> Json:
    """The JSON object for one module (``modules`` left empty)."""
    p, s = m.prefix, m.suffix
    compressed: Json | None = None
    if m.is_compressed:
        try:
            compressed = {"original_size": read_compressed_header(m).original_size}
        except ImageError:
            compressed = {"original_size": None}
    platform = m.platform
    asset = None
    if m.is_asset:
        asset = {
            "name": m.asset_name,
            "sha256": m.asset_hash.hex() if m.asset_hash is not None else None,
        }
    security = next((e for e in m.extensions if isinstance(e, SecurityModeExtension)), None)
    return {
        "kind": "module",
        "platform_id": p.platform_id,
        "platform": platform.name if platform else None,
        "function": function_label(p.function),
        "index": p.index,
        "module_version": p.module_version,
        "flags": flag_names(p.flags),
        "mcu_target": p.mcu_target,
        "start_address": p.start_address,
        "end_address": p.end_address,
        "size": len(m.data),
        "prefix_offset": m.prefix_offset,
        "dependencies": [
            {"function": function_label(d.function), "index": d.index, "version": d.version}
            for d in (p.dependency, p.dependency2)
            if not d.is_none
        ],
        "product_id": _product(s.product_id),
        "product_version": _product(s.product_version),
        "sha256": s.sha256.hex(),
        "crc32": f"{m.stored_crc32:08x}",
        "sha256_ok": m.sha256_ok,
        "crc_ok": m.crc_ok,
        "compressed": compressed,
        "asset_dependencies": [
            {"name": d.name, "sha256": d.hash.hex()} for d in m.asset_dependencies
        ],
        "asset": asset,
        "protected": security is not None and security.mode == SecurityMode.PROTECTED,
        "extensions": [extension_report(e, "prefix") for e in p.extensions]
        + [extension_report(e, "suffix") for e in s.extensions],
        "modules": [],
    }


def inspect_module_file(data: bytes) -> InspectResult:
    """Report a module file: a single module (perhaps padded) or a combined module."""
    head = parse_module_at_head(data)
    if head.is_combined:
        parts = parse_combined(data)
        part_reports = []
        problems: list[str] = []
        for i, part in enumerate(parts, 1):
            part_problems = module_problems(part)
            problems.extend(f"part {i}: {p}" for p in part_problems)
            part_reports.append(
                {**module_report(part), "ok": not part_problems, "problems": part_problems}
            )
        if len(parts) > DEVICE_MAX_COMBINED:
            problems.append(
                f"{len(parts)} combined parts; Device OS installs at most {DEVICE_MAX_COMBINED}"
            )
        report = {**module_report(parts[0]), "modules": part_reports}
    else:
        problems = module_problems(head)
        extra = len(data) - len(head.data)
        if extra:
            problems.append(f"{extra} bytes after the module's declared end")
        report = module_report(head)
    return InspectResult({**report, "ok": not problems, "problems": problems}, not problems)


def inspect_bundle_file(data: bytes) -> InspectResult:
    """Report a bundle zip."""
    checked = check_bundle(read_bundle(data))
    b = checked.bundle
    report = {
        "kind": "bundle",
        "app_name": b.app_name,
        "app": {**module_report(checked.app), "ok": not module_problems(checked.app)},
        "assets": [{"name": n, "size": len(d), "sha256": _sha(d)} for n, d in b.assets.items()],
        "env": b.env is not None,
        "ignored": list(b.ignored),
        "ok": checked.ok,
        "problems": checked.problems,
    }
    return InspectResult(report, checked.ok)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inspect_image(data: bytes) -> InspectResult:
    """Inspect any bytes: bundle if it is a zip, else a module or combined module."""
    if looks_like_zip(data):
        return inspect_bundle_file(data)
    return inspect_module_file(data)
