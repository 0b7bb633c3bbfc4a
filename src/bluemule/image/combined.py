"""Combined modules: complete modules back to back, every one but the last flagged COMBINED.

Each part keeps its own SHA-256 and CRC-32 (recomputed when the flag changes), as
binary-version-reader ``combineModules`` / ``splitCombinedModules`` do. Device OS
walks at most two parts of an OTA file (``MAX_COMBINED_MODULE_COUNT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bluemule.image.constants import ModuleFlag
from bluemule.image.errors import (
    MalformedModuleError,
    NotAModuleError,
    UnsupportedOperationError,
)
from bluemule.image.module import Module, parse_module, parse_module_at_head, with_flags

DEVICE_MAX_COMBINED: Final = 2
_MAX_PARTS: Final = 64


def combine_modules(parts: Sequence[bytes], *, max_parts: int = DEVICE_MAX_COMBINED) -> bytes:
    """Concatenate modules into one combined file."""
    if not parts:
        raise UnsupportedOperationError("nothing to combine")
    if len(parts) > max_parts:
        raise UnsupportedOperationError(
            f"{len(parts)} modules; Device OS installs at most {max_parts} from one file"
        )
    for part in parts:
        if parse_module_at_head(part).is_combined:
            raise UnsupportedOperationError("a module is already combined; split it first")
    modules = [parse_module(p) for p in parts]
    out = [with_flags(m, m.flags | ModuleFlag.COMBINED) for m in modules[:-1]]
    out.append(modules[-1].data)
    return b"".join(out)


def parse_combined(data: bytes) -> list[Module]:
    """Parse every part of a combined file as stored (COMBINED flags still set)."""
    parts: list[Module] = []
    offset = 0
    while True:
        if len(parts) >= _MAX_PARTS:
            raise MalformedModuleError(f"more than {_MAX_PARTS} combined parts")
        try:
            module = parse_module_at_head(data[offset:])
        except MalformedModuleError as exc:
            raise type(exc)(
                f"part {len(parts) + 1} at byte {offset}: {exc}", offset=offset + (exc.offset or 0)
            ) from None
        except NotAModuleError as exc:
            if not parts:
                raise
            raise MalformedModuleError(
                f"part {len(parts) + 1} at byte {offset}: {exc}", offset=offset
            ) from None
        parts.append(module)
        offset += len(module.data)
        if not module.is_combined:
            break
        if offset >= len(data):
            raise MalformedModuleError(
                "the last part is flagged COMBINED but nothing follows", offset=offset
            )
    if offset != len(data):
        raise MalformedModuleError(
            f"{len(data) - offset} bytes after the last combined part", offset=offset
        )
    return parts


def split_combined(data: bytes) -> list[bytes]:
    """Split a combined file into standalone modules (COMBINED cleared, checksums renewed)."""
    return [
        with_flags(m, m.flags & ~ModuleFlag.COMBINED) if m.is_combined else m.data
        for m in parse_combined(data)
    ]
