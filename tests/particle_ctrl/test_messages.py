"""Control-request payloads: golden byte records both ways, every truncation, fuzz."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.errors import MessageError
from bluemule.particle_ctrl.protobuf import Writer

RECORDS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "golden" / "messages.json").read_text()
)
FUZZ = settings(
    max_examples=int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400")),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)
CLASSES: dict[str, Any] = {
    name: getattr(m, name)
    for name in (
        "Empty",
        "GetDeviceIdReply",
        "GetSystemVersionReply",
        "GetSystemCapabilitiesReply",
        "GetDeviceModeReply",
        "SetStartupModeRequest",
        "StartFirmwareUpdateRequest",
        "StartFirmwareUpdateReply",
        "FirmwareUpdateDataRequest",
        "FinishFirmwareUpdateRequest",
        "AssetInfo",
        "FirmwareModule",
        "LegacyModule",
        "GetModuleInfoReply",
        "GetAssetInfoReply",
    )
}


def _asset(f: dict[str, Any]) -> m.AssetInfo:
    return m.AssetInfo(
        f["name"], bytes.fromhex(f["hash"]), f.get("size", 0), f.get("storage_size", 0)
    )


def _deps(f: dict[str, Any]) -> tuple[m.ModuleDependency, ...]:
    return tuple(m.ModuleDependency(*d) for d in f.get("dependencies", []))


def _module(f: dict[str, Any]) -> m.FirmwareModule:
    return m.FirmwareModule(
        type=f["type"],
        index=f["index"],
        version=f["version"],
        store=f.get("store", 0),
        max_size=f.get("max_size", 0),
        checked_flags=f.get("checked_flags", 0),
        passed_flags=f.get("passed_flags", 0),
        hash=bytes.fromhex(f["hash"]) if "hash" in f else None,
        dependencies=_deps(f),
        asset_dependencies=tuple(_asset(a) for a in f.get("asset_dependencies", [])),
        size=f.get("size", 0),
    )


def _legacy(f: dict[str, Any]) -> m.LegacyModule:
    return m.LegacyModule(f["type"], f["index"], f["version"], f["size"], f["validity"], _deps(f))


def build(record: dict[str, Any]) -> Any:
    f = record["fields"]
    match record["message"]:
        case "AssetInfo":
            return _asset(f)
        case "FirmwareModule":
            return _module(f)
        case "LegacyModule":
            return _legacy(f)
        case "GetModuleInfoReply":
            return m.GetModuleInfoReply(
                tuple(_module(x) for x in f["modules"]),
                tuple(_legacy(x) for x in f["legacy_modules"]),
            )
        case "GetAssetInfoReply":
            return m.GetAssetInfoReply(
                tuple(_asset(a) for a in f["available"]), tuple(_asset(a) for a in f["required"])
            )
        case "FirmwareUpdateDataRequest":
            return m.FirmwareUpdateDataRequest(bytes.fromhex(f["data"]))
        case name:
            return CLASSES[name](**f)


def test_every_message_class_has_a_golden_record() -> None:
    assert {r["message"] for r in RECORDS} == set(CLASSES)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['message']}:{r['hex'][:16]}")
def test_golden(record: dict[str, Any]) -> None:
    message = build(record)
    wire = bytes.fromhex(record["hex"])
    assert message.encode() == wire
    assert type(message).decode(wire) == message


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['message']}:{r['hex'][:16]}")
def test_every_truncation_decodes_or_fails_cleanly(record: dict[str, Any]) -> None:
    cls = CLASSES[record["message"]]
    wire = bytes.fromhex(record["hex"])
    for cut in range(len(wire)):
        with contextlib.suppress(MessageError):
            cls.decode(wire[:cut])


def test_unknown_fields_are_ignored_and_wrong_types_refused() -> None:
    extra = Writer().uint(15, 99).blob(16, b"future").finish()
    wire = m.StartFirmwareUpdateRequest(4096).encode() + extra
    assert m.StartFirmwareUpdateRequest.decode(wire) == m.StartFirmwareUpdateRequest(4096)
    assert m.Empty.decode(extra) == m.Empty()
    with pytest.raises(MessageError, match="StartFirmwareUpdateRequest"):
        m.StartFirmwareUpdateRequest.decode(Writer().blob(1, b"x").finish())
    with pytest.raises(MessageError, match=r"modules\[0\]"):
        m.GetModuleInfoReply.decode(Writer().message(2, b"\x08").finish())


def test_module_failed_flags() -> None:
    module = m.FirmwareModule(5, 1, 6, checked_flags=0x1E, passed_flags=0x1A)
    assert module.failed_flags == m.ModuleValidity.DEPENDENCIES


def test_registry_covers_the_update_requests_and_refuses_unknown_types() -> None:
    start = m.StartFirmwareUpdateRequest(10).encode()
    assert m.decode_request(250, start) == m.StartFirmwareUpdateRequest(10)
    assert m.decode_reply(m.RequestType.START_FIRMWARE_UPDATE, b"\x08\x80\x08") == (
        m.StartFirmwareUpdateReply(1024)
    )
    assert m.decode_reply(90, b"") == m.GetModuleInfoReply()
    for bad in (9999, 10):
        with pytest.raises(MessageError, match="no known payload"):
            m.decode_request(bad, b"")


def test_request_numbers_match_device_os() -> None:
    assert [int(t) for t in m.RequestType] == [
        10, 20, 21, 30, 31, 32, 40, 70, 71, 72, 75, 90, 91, 250, 251, 252, 253
    ]  # fmt: skip


_assets = st.builds(
    m.AssetInfo,
    st.text(max_size=30),
    st.binary(max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
_deps_st = st.builds(
    m.ModuleDependency, st.integers(0, 9), st.integers(0, 255), st.integers(0, 2**16 - 1)
)
_modules = st.builds(
    m.FirmwareModule,
    st.integers(0, 9),
    st.integers(0, 255),
    st.integers(0, 2**16 - 1),
    st.integers(0, 3),
    st.integers(0, 2**32 - 1),
    st.integers(0, 0x1E),
    st.integers(0, 0x1E),
    st.none() | st.binary(max_size=32),
    st.lists(_deps_st, max_size=2).map(tuple),
    st.lists(_assets, max_size=3).map(tuple),
    st.integers(0, 2**32 - 1),
)


@pytest.mark.fuzz
@FUZZ
@given(st.lists(_modules, max_size=4), st.lists(_assets, max_size=4), st.lists(_assets, max_size=4))
def test_fuzz_round_trip(
    modules: list[m.FirmwareModule], available: list[m.AssetInfo], required: list[m.AssetInfo]
) -> None:
    info = m.GetModuleInfoReply(tuple(modules))
    assert m.GetModuleInfoReply.decode(info.encode()) == info
    assets = m.GetAssetInfoReply(tuple(available), tuple(required))
    assert m.GetAssetInfoReply.decode(assets.encode()) == assets


@pytest.mark.fuzz
@FUZZ
@given(st.sampled_from(sorted(CLASSES)), st.binary(max_size=300))
def test_fuzz_decoders_raise_only_message_errors(name: str, data: bytes) -> None:
    with contextlib.suppress(MessageError):
        CLASSES[name].decode(data)
