"""Golden byte records for every extension type, checked both ways and byte by byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bluemule.image import (
    AssetDependencyExtension,
    AssetTypeExtension,
    DependencyExtension,
    DynamicLocationExtension,
    EndExtension,
    Extension,
    ExtensionError,
    HashExtension,
    NameExtension,
    ProductDataExtension,
    SecurityModeExtension,
    UnknownExtension,
)
from bluemule.image.extensions import decode_extensions

RECORDS = json.loads((Path(__file__).parent / "golden" / "extensions.json").read_text())


def expected(record: dict[str, Any]) -> Extension:
    f = dict(record)
    kind = f.pop("kind")
    f.pop("source")
    f.pop("hex")
    match kind:
        case "END":
            return EndExtension(**f)
        case "PRODUCT_DATA":
            return ProductDataExtension(**f)
        case "DYNAMIC_LOCATION":
            return DynamicLocationExtension(**f)
        case "DEPENDENCY":
            return DependencyExtension(**f)
        case "HASH":
            return HashExtension(bytes.fromhex(f["hash"]), f["hash_type"])
        case "NAME":
            return NameExtension(**f)
        case "ASSET_DEPENDENCY":
            return AssetDependencyExtension(f["name"], bytes.fromhex(f["hash"]), f["hash_type"])
        case "SECURITY_MODE":
            return SecurityModeExtension(f["mode"], bytes.fromhex(f["certificate"]))
        case "ASSET_TYPE":
            return AssetTypeExtension(**f)
        case "UNKNOWN":
            return UnknownExtension(f["type"], bytes.fromhex(f["payload"]))
    raise AssertionError(kind)


def test_every_extension_type_has_a_golden_record() -> None:
    kinds = {r["kind"] for r in RECORDS}
    assert kinds == {
        "END",
        "PRODUCT_DATA",
        "DYNAMIC_LOCATION",
        "DEPENDENCY",
        "HASH",
        "NAME",
        "ASSET_DEPENDENCY",
        "SECURITY_MODE",
        "ASSET_TYPE",
        "UNKNOWN",
    }


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['kind']}-{r['hex'][:12]}")
def test_golden_decode_and_encode(record: dict[str, Any]) -> None:
    raw = bytes.fromhex(record["hex"])
    exts, end = decode_extensions(raw, 0, len(raw))
    assert end == len(raw)
    assert exts == [expected(record)]
    assert expected(record).encode() == raw


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['kind']}-{r['hex'][:12]}")
def test_golden_every_truncation_is_a_typed_error(record: dict[str, Any]) -> None:
    raw = bytes.fromhex(record["hex"])
    for cut in range(1, len(raw)):
        with pytest.raises(ExtensionError):
            decode_extensions(raw[:cut], 0, cut)


def test_sequence_stops_after_end_and_reports_offset() -> None:
    raw = b"".join(bytes.fromhex(r["hex"]) for r in RECORDS[:4])  # 3 asset deps then END
    exts, end = decode_extensions(raw + b"\x99" * 7, 0, len(raw) + 7)
    assert [type(e) for e in exts] == [AssetDependencyExtension] * 3 + [EndExtension]
    assert end == len(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes.fromhex("01000000"), "declares length 0"),
        (bytes.fromhex("01000300ff"), "declares length 3"),
        (bytes.fromhex("ffff0400"), "INVALID"),
        (bytes.fromhex("01000c00ffff2300040000"), "runs 1 B past"),
        (bytes.fromhex("01000800ffff2300"), "PRODUCT_DATA extension payload is 4 B"),
        (bytes.fromhex("1100060080ff"), "not valid UTF-8"),
        (bytes.fromhex("12000800002000ff"), "runs past the extension"),
        (bytes.fromhex("13000400"), "no mode byte"),
    ],
)
def test_malformed_extensions(raw: bytes, message: str) -> None:
    with pytest.raises(ExtensionError, match=message):
        decode_extensions(raw, 0, len(raw))
