"""Render ``constants.py`` as the C++ header the device library includes.

``python -m bluemule.protocol.header`` prints it; ``--write`` updates
``device/bluemule_protocol.h``. ``tests/protocol/test_header.py`` fails when the
committed header and this rendering differ, so the two sides cannot drift.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path

from bluemule.protocol import constants as c

_ENUMS: tuple[type[enum.IntEnum] | type[enum.IntFlag], ...] = (
    c.Opcode, c.Status, c.PartKind, c.PartFlag, c.ManifestFlag, c.SignatureAlgorithm,
    c.StatusFlag, c.Capability, c.EventFlag, c.ProgressFlag, c.AdvertisingFlag,
)  # fmt: skip
_SCALARS = (
    "PROTOCOL_VERSION", "MANUFACTURER_ID", "DEVICE_ID_SIZE", "SHA256_SIZE",
    "ED25519_SIGNATURE_SIZE", "ED25519_PUBLIC_KEY_SIZE", "KEY_ID_SIZE", "MAX_MANIFEST_SIZE",
    "MAX_PARTS", "MAX_NAME_SIZE", "DATA_HEADER_SIZE", "MANIFEST_STREAM", "NO_PART",
    "MAX_ATT_MTU", "DEFAULT_WINDOW", "DEFAULT_ACK_INTERVAL", "ASSETS_PER_PAGE",
    "MAX_EVENT_NAME_SIZE", "MAX_EVENT_DATA_SIZE", "EVENT_QUEUE_CAPACITY", "EVENT_QUEUE_BYTES",
    "EVENT_SEGMENT_SIZE", "EVENT_READ_HEADER_SIZE",
)  # fmt: skip
_UUIDS = (
    "SERVICE_UUID",
    "STATUS_UUID",
    "CONTROL_UUID",
    "RESPONSE_UUID",
    "DATA_UUID",
    "PROGRESS_UUID",
)
HEADER_PATH = Path("device") / "bluemule_protocol.h"


def render() -> str:
    """The header text."""
    lines = [
        "// Generated from src/bluemule/protocol/constants.py by",
        "// `python -m bluemule.protocol.header --write`. Do not edit by hand.",
        "#pragma once",
        "",
        "#include <cstdint>",
        "",
        "namespace bluemule::protocol {",
        "",
    ]
    for name in _SCALARS:
        lines.append(f"constexpr uint32_t {name} = {int(getattr(c, name))};")
    lines.append(f'constexpr char ADVERTISING_MAGIC[] = "{c.ADVERTISING_MAGIC.decode()}";')
    lines.append("")
    for name in _UUIDS:
        lines.append(f'constexpr char {name}[] = "{getattr(c, name)}";')
    for cls in _ENUMS:
        lines += ["", f"enum class {cls.__name__} : uint8_t {{"]
        lines += [f"    {member.name} = 0x{member.value:02x}," for member in cls]
        lines.append("};")
    lines += ["", "}  // namespace bluemule::protocol", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the header, or write it with ``--write``."""
    text = render()
    if "--write" in argv:
        HEADER_PATH.parent.mkdir(exist_ok=True)
        HEADER_PATH.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
