"""Realistic application images for the emulated platforms (pure).

The shapes copy real Particle files (``shared/reference/particle.md`` §1.6, §1.9, §7):

* Gen 3 (Boron, B-SoM): user part index 2 at 0xB4000, dependency system part 1 ≥ the
  Device OS version, raw product id/version in a 40-byte suffix (like
  ``argon-tinker-620.bin``); asset dependencies go in the suffix.
* RTL872x (M-SoM, P2): user part index 1 whose CRC ends at the fixed 0x08600000,
  growing left, suffix extensions DYNAMIC_LOCATION + PRODUCT_DATA (like
  ``tinker-6.3.4-msom.bin``); asset dependencies go in the prefix.

``PRODUCT_VERSION(x)`` makes the product id the platform id (§1.6), so that is the
default. The body is deterministic filler after an optional :data:`LIBRARY_MARKER`,
the string by which the emulator recognises an application built with the bluemule
library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

from bluemule.emulator.errors import UsageError
from bluemule.emulator.layout import FlashLayout, layout_for
from bluemule.image import (
    Dependency,
    DynamicLocationExtension,
    ModuleFunction,
    ModulePrefix,
    ProductDataExtension,
    asset_dependency,
    build_module,
    parse_module,
    set_asset_dependencies,
)

LIBRARY_MARKER: Final = b"bluemule-lib/1"
"""Present in the body of every application that contains the bluemule library."""
USER_MODULE_VERSION: Final = 6
"""``module_version`` of current user parts: the module API version, not the product's (§1.1)."""
_DYNALIB_TABLE_OFFSET: Final = 0xA8
"""Where the dynalib table sits after the start in the real M-SoM Tinker (§7 fixture)."""
_PSRAM_DYNALIB: Final = 0x023F0000
_VOCABULARY: Final = 64


def _layout(platform: str) -> FlashLayout:
    layout = layout_for(platform)
    if layout is None:
        raise UsageError(f"platform {platform!r} is not emulated")
    return layout


def _body(seed: bytes, library: bool, size: int) -> bytes:
    """Marker, seed, then filler that compresses about as well as machine code: 32-bit
    words drawn from a small vocabulary (Deflate gets it to roughly a third)."""
    head = (LIBRARY_MARKER + b"\0" if library else b"") + seed + b"\0"
    if size < len(head):
        raise UsageError(f"body_size must be at least {len(head)}")
    stream = hashlib.shake_256(b"bluemule-emulator-app:" + seed)
    words = [stream.digest(4 * (i + 1))[-4:] for i in range(_VOCABULARY)]
    picks = stream.digest(4 * _VOCABULARY + size // 4 + 1)[4 * _VOCABULARY :]
    filler = b"".join(words[p % _VOCABULARY] for p in picks)
    return head + filler[: size - len(head)]


def make_app(
    platform: str,
    *,
    device_os: int = 6200,
    library: bool = True,
    product_id: int | None = None,
    product_version: int = 1,
    tag: str = "",
    assets: Mapping[str, bytes] | None = None,
    body_size: int = 2048,
) -> bytes:
    """An application for ``platform`` that depends on system part 1 ≥ ``device_os``.

    Args:
        platform: emulated platform name (``boron``, ``bsom``, ``msom``, ``p2``).
        device_os: minimum Device OS version (system part 1 module version).
        library: put :data:`LIBRARY_MARKER` in the body.
        product_id: defaults to the platform id.
        product_version: the product firmware version.
        tag: extra text in the body, to tell builds apart.
        assets: raw assets (name → bytes) the app declares as ASSET_DEPENDENCY.
        body_size: bytes of body.
    """
    layout = _layout(platform)
    bounds = layout.default_user_part
    pid = layout.platform_id if product_id is None else product_id
    seed = f"{layout.name}/{tag}/{pid}/{product_version}/{device_os}".encode()
    body = _body(seed, library, body_size)
    prefix = ModulePrefix(
        start_address=bounds.start,
        end_address=bounds.end - 4,
        function=ModuleFunction.USER_PART,
        index=bounds.index,
        platform_id=layout.platform_id,
        module_version=USER_MODULE_VERSION,
        dependency=Dependency(ModuleFunction.SYSTEM_PART, 1, device_os),
    )
    if bounds.grows_left:
        product = ProductDataExtension(pid, product_version)
        draft = build_module(
            prefix=prefix,
            body=body,
            suffix_extensions=[DynamicLocationExtension(0, 0, 0), product],
            anchor="end",
        )
        start = parse_module(draft).prefix.start_address
        location = DynamicLocationExtension(
            start, start + _DYNALIB_TABLE_OFFSET, _PSRAM_DYNALIB + (start & 0xFFFF)
        )
        app = build_module(
            prefix=prefix, body=body, suffix_extensions=[location, product], anchor="end"
        )
    else:
        app = build_module(prefix=prefix, body=body, product=(pid, product_version))
    if assets:
        deps = [asset_dependency(name, data) for name, data in sorted(assets.items())]
        app = set_asset_dependencies(parse_module(app), deps)
    return app
