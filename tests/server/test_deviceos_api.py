"""Device OS modules for stock devices: upload (validated), list, and sync's
``device_os_parts`` for a device whose reported Device OS is below its release's minimum;
serials become setup codes; the release key is in every answer."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from bluemule.emulator.apps import make_app
from bluemule.image import Dependency, ModuleFunction
from tests.particle_ctrl.test_plan import boron_system_part
from tests.server.conftest import Api, assert_problem
from tests.server.test_relay_api import NORTH, add_device, add_relay, publish, relay_call, sync

URL = "/api/admin/v1/deviceos"


def put(api: Api, data: bytes, filename: str) -> httpx.Response:
    return api.post(
        URL,
        content=data,
        params={"filename": filename},
        headers={"Content-Type": "application/octet-stream"},
    )


def app_release(api: Api, device_os: int) -> int:
    created = api.upload(make_app("boron", device_os=device_os, tag=f"os{device_os}"), "a.bin")
    assert created.status_code == 201, created.text
    release_id: int = created.json()["id"]
    return release_id


def report_device_os(api: Api, token: str, device_id: str, version: int, rid: str) -> None:
    body: dict[str, Any] = {
        "id": rid,
        "device_id": device_id,
        "kind": "sighting",
        "at": "2026-01-01T10:00:00Z",
        "state": {"device_os_version": version},
    }
    response = relay_call(api, token, "POST", "/reports", json={"reports": [body]})
    assert response.status_code == 200, response.text


def test_upload_validates_and_lists(api: Api) -> None:
    loader = Dependency(ModuleFunction.BOOTLOADER, 0, 3000)
    created = put(api, boron_system_part(6300, deps=(loader,)), "boron-system-part1@6.3.0.bin")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["platform"], body["kind"], body["index"], body["version"]) == (
        "boron",
        "system_part",
        1,
        6300,
    )
    assert body["bootloader_version"] == 3000
    assert_problem(put(api, boron_system_part(6300), "again.bin"), 409, "already stored")
    assert_problem(put(api, make_app("boron"), "app.bin"), 422, "not a system part")
    assert_problem(put(api, b"\x00" * 100, "junk.bin"), 422, "junk.bin")
    broken = bytearray(boron_system_part(6301))
    broken[0x300] ^= 1
    assert_problem(put(api, bytes(broken), "broken.bin"), 422, "CRC-32")
    assert_problem(put(api, b"", "empty.bin"), 422, "empty")
    listed = api.get(URL).json()
    assert [(p["version"], p["name"]) for p in listed] == [(6300, "boron-system-part1@6.3.0.bin")]
    assert api.counts()["deviceos_parts"] == 1


def test_sync_lists_the_system_part_until_the_device_reports_the_minimum(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0], serial="p40lab123abc")
    add_device(api, NORTH[1])
    for version in (6200, 6300, 6400):
        assert put(api, boron_system_part(version), f"sp{version}.bin").status_code == 201
    publish(api, app_release(api, 6300), product_default=True)

    answer = sync(api, token)
    assert answer["release_key"] == base64.b64encode(api.state.signing_key.public_key).decode()
    items = {d["device_id"]: d for d in answer["devices"]}
    assert items[NORTH[0]]["setup_code"] == "123ABC"
    assert "setup_code" not in items[NORTH[1]]
    assert items[NORTH[0]]["min_device_os"] == 6300
    parts = items[NORTH[0]]["device_os_parts"]
    assert [(p["kind"], p["version"], p["name"]) for p in parts] == [
        ("system_part", 6300, "sp6300.bin")  # the lowest that satisfies the minimum
    ]
    blob = relay_call(api, token, "GET", f"/blobs/{parts[0]['blob']}")
    assert blob.status_code == 200 and blob.content == boron_system_part(6300)

    report_device_os(api, token, NORTH[0], 6200, "r-1")
    assert "device_os_parts" in {d["device_id"]: d for d in sync(api, token)["devices"]}[NORTH[0]]
    report_device_os(api, token, NORTH[0], 6300, "r-2")
    after = {d["device_id"]: d for d in sync(api, token)["devices"]}
    assert "device_os_parts" not in after[NORTH[0]]
    assert "device_os_parts" in after[NORTH[1]]  # never reported: sent, the relay skips
    # a relay of another site is never served the module
    south = add_relay(api, "gs", "south")
    refused = relay_call(api, south, "GET", f"/blobs/{parts[0]['blob']}")
    assert refused.status_code == 404


def test_a_serial_is_validated(api: Api) -> None:
    bad = api.post(
        "/api/admin/v1/devices",
        json={"id": NORTH[0], "platform": "boron", "site": "north", "serial": "12 4"},
    )
    assert_problem(bad, 422, "serial")
