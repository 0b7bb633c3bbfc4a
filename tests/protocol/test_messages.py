"""Golden byte records for every message, decoded whole, truncated at every length, fuzzed."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluemule.protocol.constants import Opcode, Status
from bluemule.protocol.errors import DecodeError, ManifestError
from bluemule.protocol.manifest import decode_manifest
from bluemule.protocol.messages import (
    Advertisement,
    AssetEntry,
    DataWrite,
    DeviceStatus,
    Progress,
    Request,
    Response,
    decode_advertisement,
    decode_data,
    decode_progress,
    decode_request,
    decode_response,
    decode_status,
)

RECORDS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "golden" / "messages.json").read_text()
)
Message = DataWrite | Progress | Request | Response | DeviceStatus | Advertisement


def build(record: dict[str, Any]) -> Message:
    f = dict(record["fields"])
    match record["message"]:
        case "DataWrite":
            return DataWrite(f["stream"], f["offset"], bytes.fromhex(f["payload"]))
        case "Progress":
            return Progress(**f)
        case "Request":
            args = tuple(bytes.fromhex(a) if isinstance(a, str) else a for a in f["args"])
            return Request(Opcode[f["opcode"]], f["seq"], args)
        case "Response":
            assets = tuple(AssetEntry(n, bytes.fromhex(h)) for n, h in f.get("assets", []))
            return Response(
                Opcode[f["opcode"]],
                f["seq"],
                Status[f["status"]],
                tuple(f.get("values", [])),
                f.get("detail", 0),
                assets,
                bytes.fromhex(f.get("chunk", "")),
            )
        case "DeviceStatus":
            for key in ("device_id", "app_sha256", "manifest_sha256"):
                f[key] = bytes.fromhex(f[key])
            return DeviceStatus(**f)
        case "Advertisement":
            f["device_id"] = bytes.fromhex(f["device_id"])
            return Advertisement(**f)
    raise AssertionError(record["message"])


DECODERS = {
    "DataWrite": decode_data,
    "Progress": decode_progress,
    "Request": decode_request,
    "Response": decode_response,
    "DeviceStatus": decode_status,
    "Advertisement": decode_advertisement,
}


def test_every_message_type_has_records() -> None:
    assert {r["message"] for r in RECORDS} == set(DECODERS)
    assert {r["fields"]["opcode"] for r in RECORDS if r["message"] == "Request"} == {
        o.name for o in Opcode
    }


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['message']}-{r['hex'][:14]}")
def test_golden(record: dict[str, Any]) -> None:
    raw = bytes.fromhex(record["hex"])
    message = build(record)
    assert message.encode() == raw
    assert DECODERS[record["message"]](raw) == message


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['message']}-{r['hex'][:14]}")
def test_every_truncation_is_refused(record: dict[str, Any]) -> None:
    """Messages arrive whole; any prefix of one is malformed, never a different message."""
    raw = bytes.fromhex(record["hex"])
    decode = DECODERS[record["message"]]
    for cut in range(len(raw)):
        if record["message"] == "Advertisement":
            assert decode_advertisement(raw[:cut]) is None
            continue
        if record["message"] == "DataWrite" and cut > 5:
            assert decode(raw[:cut]) == DataWrite(2, 1024, raw[5:cut])  # a shorter payload
            continue
        with pytest.raises(DecodeError):
            decode(raw[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decoders_raise_only_decode_errors(data: bytes) -> None:
    for decode in DECODERS.values():
        with contextlib.suppress(DecodeError):
            decode(data)
    with contextlib.suppress(ManifestError):
        decode_manifest(data)
