"""The relay API: sync and signed manifests, blobs with Range, idempotent reports and events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bluemule.emulator import make_app
from bluemule.emulator.services import set_trusted_keys
from bluemule.image import write_bundle
from bluemule.protocol.client_session import Outcome
from bluemule.protocol.constants import PartKind
from bluemule.protocol.manifest import verify_manifest
from bluemule.protocol.release import Release as SignedRelease
from bluemule.relay.update import UpdatePolicy, push_update
from bluemule.server import relay_api
from bluemule.server.app import create_app
from bluemule.server.config import Settings
from bluemule.server.models import DeviceUpdate, Event, Report
from bluemule.server.relay_api import on_events_stored
from tests.e2e.harness import DEVICE_IDS, new_device, served
from tests.server import test_server_cli
from tests.server.conftest import Api, assert_problem

running = test_server_cli.running
BORON = 13  # platform id, and make_app's default product id
NORTH = ["e00fce680000000000000001", "e00fce680000000000000002", "e00fce680000000000000003"]
SOUTH = "e00fce680000000000000009"
ASSETS = {"sound.wav": b"RIFF" + bytes(range(256)) * 8, "readme.txt": b"hello assets\n"}
FAST = UpdatePolicy(notification_timeout=0.5, reboot_timeout=10.0)


def add_relay(api: Api, name: str, site: str) -> str:
    response = api.post("/api/admin/v1/relays", json={"name": name, "site": site})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def add_device(
    api: Api, device_id: str, site: str = "north", *, groups: Sequence[str] = (), **extra: Any
) -> None:
    body: dict[str, Any] = {
        "id": device_id,
        "platform": "boron",
        "site": site,
        "groups": list(groups),
    }
    body.setdefault("product_id", BORON)
    response = api.post("/api/admin/v1/devices", json={**body, **extra})
    assert response.status_code == 201, response.text


def upload(api: Api, tag: str, version: int, assets: dict[str, bytes] | None = None) -> int:
    app = make_app("boron", tag=tag, product_version=version, assets=assets)
    data = write_bundle("app.bin", app, sorted((assets or {}).items())) if assets else app
    response = api.upload(data, f"{tag}.zip" if assets else f"{tag}.bin")
    assert response.status_code == 201, response.text
    release_id: int = response.json()["id"]
    return release_id


def publish(api: Api, release_id: int, **body: Any) -> dict[str, Any]:
    response = api.post(f"/api/admin/v1/releases/{release_id}/publish", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def relay_call(api: Api, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return api.request(method, f"/api/relay/v1{path}", auth=False, headers=headers, **kwargs)


def sync(api: Api, token: str) -> dict[str, Any]:
    response = relay_call(api, token, "GET", "/sync")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wanted(api: Api, token: str) -> dict[str, int]:
    return {d["device_id"]: d["release_id"] for d in sync(api, token)["devices"]}


def report(device_id: str, rid: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "device_id": device_id, "kind": "sighting", "at": "2026-01-01T10:00:00Z"} | (
        extra
    )


def test_sync_signed_manifest_etag_and_stable_body(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0], groups=["beta"], mobile_secret="SECRET-0123456")  # noqa: S106
    release_id = upload(api, "v2", 2, ASSETS)
    release_key = base64.b64encode(api.state.signing_key.public_key).decode()
    assert sync(api, token) == {"site": "north", "release_key": release_key, "devices": []}
    result = publish(api, release_id, groups=["beta"])
    assert result["impacted"] == {"count": 1, "device_ids": [NORTH[0]]}
    first = relay_call(api, token, "GET", "/sync")
    assert first.status_code == 200 and "SECRET-0123456" not in first.text
    (item,) = first.json()["devices"]
    assert (item["device_id"], item["release_id"], item["allow_downgrade"]) == (
        NORTH[0],
        release_id,
        False,
    )
    raw = base64.b64decode(item["manifest"])
    assert item["manifest_sha256"] == hashlib.sha256(raw).hexdigest()
    manifest = verify_manifest(raw, [api.state.signing_key.public_key])
    assert manifest.device_id == bytes.fromhex(NORTH[0])
    assert (manifest.platform_id, manifest.product_id, manifest.product_version) == (BORON, 13, 2)
    assert manifest.release_counter == release_id and not manifest.allow_downgrade
    stored = api.get(f"/api/admin/v1/releases/{release_id}").json()
    assert [p.sha256.hex() for p in manifest.parts] == [p["blob_sha256"] for p in stored["parts"]]
    assert [p["blob"] for p in item["parts"]] == [p["blob_sha256"] for p in stored["parts"]]
    assert [p.kind for p in manifest.parts] == [
        PartKind.ASSET,
        PartKind.ASSET,
        PartKind.APPLICATION,
    ]
    assert manifest.app is not None and manifest.app.content_sha256.hex() == stored["app_sha256"]
    assert sorted(a.name for a in manifest.app_assets) == sorted(ASSETS)
    assert {a.name: a.sha256 for a in manifest.app_assets} == {
        n: hashlib.sha256(b).digest() for n, b in ASSETS.items()
    }
    # stable body, ETag and 304
    second = relay_call(api, token, "GET", "/sync")
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2  # from revisions
    cached = relay_call(api, token, "GET", "/sync", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    # the device reports running the release: nothing left to do, a new ETag
    posted = relay_call(
        api, token, "POST", "/reports",
        json={"reports": [report(NORTH[0], "r1", state={"app_sha256": stored["app_sha256"],
                                                          "release_counter": release_id})]},
    )  # fmt: skip
    assert posted.json() == {"accepted": 1, "duplicates": 0}
    after = relay_call(api, token, "GET", "/sync", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.json()["devices"] == []


def test_targeting_precedence_through_the_api(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0], groups=["beta"])
    add_device(api, NORTH[1])
    add_device(api, NORTH[2], groups=["beta"], development=True)
    locked = "e00fce680000000000000004"
    add_device(api, locked, groups=["beta"])
    other_product = "e00fce680000000000000005"
    add_device(api, other_product, product_id=99)
    r1, r2, r3 = upload(api, "v1", 1), upload(api, "v2", 2), upload(api, "v3", 3)
    assert (
        api.request("PUT", f"/api/admin/v1/devices/{locked}/lock", json={"release_id": r1}).json()[
            "desired_release_id"
        ]
        == r1
    )

    dry = publish(api, r2, product_default=True, dry_run=True)
    assert dry["dry_run"] and dry["release"]["product_default"] is True
    assert dry["impacted"] == {"count": 2, "device_ids": [NORTH[0], NORTH[1]]}
    assert api.get(f"/api/admin/v1/releases/{r2}").json()["product_default"] is False
    assert wanted(api, token) == {locked: r1}

    publish(api, r2, product_default=True)
    assert wanted(api, token) == {NORTH[0]: r2, NORTH[1]: r2, locked: r1}
    moved = publish(api, r3, groups=["beta"])
    assert moved["impacted"]["device_ids"] == [NORTH[0]]  # locked and development stay
    assert wanted(api, token) == {NORTH[0]: r3, NORTH[1]: r2, locked: r1}
    moved = publish(api, r1, product_default=True)  # moves the default from r2 to r1
    assert moved["impacted"]["device_ids"] == [NORTH[1]]
    assert api.get(f"/api/admin/v1/releases/{r2}").json()["product_default"] is False

    # a downgrade is allowed only when the server asks for it
    relay_call(api, token, "POST", "/reports",
               json={"reports": [report(locked, "s1", state={"release_counter": r3})]})  # fmt: skip
    (item,) = [d for d in sync(api, token)["devices"] if d["device_id"] == locked]
    manifest = verify_manifest(
        base64.b64decode(item["manifest"]), [api.state.signing_key.public_key]
    )
    assert item["allow_downgrade"] and manifest.allow_downgrade and manifest.release_counter == r1
    unlocked = api.request("DELETE", f"/api/admin/v1/devices/{locked}/lock").json()
    assert unlocked["desired_release_id"] == r3 and unlocked["device"]["locked_release_id"] is None
    assert wanted(api, token)[locked] == r3
    bad = api.request("PUT", f"/api/admin/v1/devices/{other_product}/lock", json={"release_id": r1})
    assert_problem(bad, 422, "product")
    assert_problem(
        api.request("PUT", f"/api/admin/v1/devices/{locked}/lock", json={"release_id": 99}), 404
    )
    assert_problem(api.post("/api/admin/v1/releases/99/publish", json={}), 404)


def test_blob_download_resumes_with_range(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    south = add_relay(api, "gw-south", "south")
    add_device(api, NORTH[0])
    release_id = upload(api, "v2", 2, ASSETS)
    unpublished = upload(api, "v3", 3)
    publish(api, release_id, product_default=True)
    app_part = sync(api, token)["devices"][0]["parts"][-1]
    sha, size = app_part["blob"], app_part["size"]
    half = size // 2
    head = relay_call(api, token, "GET", f"/blobs/{sha}", headers={"Range": f"bytes=0-{half - 1}"})
    assert head.status_code == 206 and len(head.content) == half
    assert head.headers["content-range"] == f"bytes 0-{half - 1}/{size}"
    assert head.headers["etag"] == f'"{sha}"'
    rest = relay_call(api, token, "GET", f"/blobs/{sha}", headers={"Range": f"bytes={half}-"})
    assert (
        rest.status_code == 206
        and rest.headers["content-range"] == f"bytes {half}-{size - 1}/{size}"
    )
    assert hashlib.sha256(head.content + rest.content).hexdigest() == sha
    whole = relay_call(api, token, "GET", f"/blobs/{sha}")
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == sha
    assert whole.headers["accept-ranges"] == "bytes"
    tail = relay_call(api, token, "GET", f"/blobs/{sha}", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    beyond = relay_call(api, token, "GET", f"/blobs/{sha}", headers={"Range": f"bytes={size}-"})
    assert_problem(beyond, 416)
    assert beyond.headers["content-range"] == f"bytes */{size}"
    # another site's relay, an unpublished release's blob, an unknown hash: 404
    assert_problem(relay_call(api, south, "GET", f"/blobs/{sha}"), 404)
    other = api.get(f"/api/admin/v1/releases/{unpublished}").json()["parts"][-1]["blob_sha256"]
    assert_problem(relay_call(api, token, "GET", f"/blobs/{other}"), 404)
    assert_problem(relay_call(api, token, "GET", f"/blobs/{'0' * 64}"), 404)


def test_auth_cross_site_and_malformed_store_nothing(api: Api) -> None:
    north = add_relay(api, "gw", "north")
    south = add_relay(api, "gw-south", "south")
    add_device(api, NORTH[0])
    add_device(api, SOUTH, site="south")
    before = api.counts()
    event = {"id": "x1", "device_id": NORTH[0], "name": "temp", "data": "21"}
    for path, body in (
        ("/reports", {"reports": [report(SOUTH, "a1"), report(NORTH[0], "a2")]}),
        ("/events", {"events": [event, {**event, "id": "x2", "device_id": SOUTH}]}),
    ):
        assert_problem(relay_call(api, north, "POST", path, json=body), 403, SOUTH)
        assert_problem(api.post(f"/api/relay/v1{path}", json=body, auth=False), 401)
        assert_problem(relay_call(api, "bmr_wrong", "POST", path, json=body), 401)
        assert_problem(api.post(f"/api/relay/v1{path}", json=body), 401)  # the admin token
        assert_problem(
            relay_call(api, north, "POST", path, content=b"{nope",
                       headers={"Content-Type": "application/json"}),
            400,
        )  # fmt: skip
    unknown = report("e00fce68ffffffffffffffff", "u1")
    assert_problem(relay_call(api, north, "POST", "/reports", json={"reports": [unknown]}), 403)
    for bad in (
        {"name": "particle/x"},
        {"name": "a" * 65},
        {"name": "sp ace"},
        {"data": "x" * 16385},
    ):
        response = relay_call(api, north, "POST", "/events", json={"events": [{**event, **bad}]})
        assert_problem(response, 422)
    missing_update = {**report(NORTH[0], "m1"), "kind": "update"}
    no_release = {**missing_update, "update": {"release_id": 42, "state": "transferring"}}
    for bad_report in (missing_update, no_release):
        response = relay_call(api, north, "POST", "/reports", json={"reports": [bad_report]})
        assert_problem(response, 422)
    assert_problem(relay_call(api, "", "GET", "/sync"), 401)
    assert api.counts() == before
    assert sync(api, south)["devices"] == [] and sync(api, south)["site"] == "south"


def test_reports_idempotent_and_update_state(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0])
    release_id = upload(api, "v2", 2)
    sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]
    update = {"release_id": release_id, "state": "transferring", "progress": 0.5}
    batch = {
        "reports": [
            report(NORTH[0], "r1", rssi=-70, state={"app_sha256": "ab" * 32, "mode": "normal"}),
            {**report(NORTH[0], "r2", at="2026-01-01T10:05:00Z"), "kind": "update",
             "update": update},
            report(NORTH[0], "r1"),  # the same id twice in one batch
        ]
    }  # fmt: skip
    first = relay_call(api, token, "POST", "/reports", json=batch)
    assert first.json() == {"accepted": 2, "duplicates": 1}
    again = relay_call(api, token, "POST", "/reports", json=batch)
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert api.counts()["reports"] == 2
    device = api.get(f"/api/admin/v1/devices/{NORTH[0]}").json()
    assert device["state"] == {"app_sha256": "ab" * 32, "mode": "normal"}
    assert device["last_seen_at"].startswith("2026-01-01T10:05:00")
    assert (device["last_seen_relay"], device["last_rssi"]) == ("gw", -70)
    listed = {d["id"]: d for d in api.get("/api/admin/v1/devices").json()}
    assert listed[NORTH[0]]["last_seen_relay"] == "gw"
    # confirmed_running only when the device runs the release's app
    confirm = {"release_id": release_id, "state": "confirmed_running"}
    claim = {**report(NORTH[0], "r3", at="2026-01-01T10:06:00Z"), "kind": "update",
             "update": confirm}  # fmt: skip
    relay_call(api, token, "POST", "/reports", json={"reports": [claim]})
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, NORTH[0])
        assert row is not None and (row.state, row.release_id) == ("installed", release_id)
    real = {**claim, "id": "r4", "at": "2026-01-01T10:07:00Z", "state": {"app_sha256": sha}}
    relay_call(api, token, "POST", "/reports", json={"reports": [real]})
    stale = {**report(NORTH[0], "r5", at="2026-01-01T09:00:00Z"), "kind": "update",
             "update": {"release_id": release_id, "state": "failed", "reason": "old"}}  # fmt: skip
    relay_call(api, token, "POST", "/reports", json={"reports": [stale]})
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, NORTH[0])
        assert row is not None and (row.state, row.report_id) == ("confirmed_running", "r4")
        assert session.scalar(select(Report.kind).where(Report.id == "r5")) == "update"


def test_events_idempotent_and_hook(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, NORTH[0])
    seen: list[list[str]] = []

    def hook(session: Session, ids: Sequence[str]) -> None:
        assert isinstance(session, Session)
        seen.append(sorted(ids))

    monkeypatch.setattr(relay_api, "_events_stored_hooks", [])
    on_events_stored(hook)
    events = [
        {"id": f"{NORTH[0]}:{n}", "device_id": NORTH[0], "name": "env/temp", "data": str(n),
         "captured_at": "2026-01-01T10:00:00Z"}
        for n in range(3)
    ]  # fmt: skip
    first = relay_call(api, token, "POST", "/events", json={"events": events[:2]})
    assert first.json() == {"accepted": 2, "duplicates": 0}
    second = relay_call(api, token, "POST", "/events", json={"events": events})
    assert second.json() == {"accepted": 1, "duplicates": 2}
    assert seen == [[events[0]["id"], events[1]["id"]], [events[2]["id"]]]
    assert api.counts()["events"] == 3
    big = {"id": "big", "device_id": NORTH[0], "name": "blob", "data": "é" * 8192}
    assert relay_call(api, token, "POST", "/events", json={"events": [big]}).status_code == 200
    assert relay_call(api, token, "POST", "/events", json={"events": []}).json() == {
        "accepted": 0,
        "duplicates": 0,
    }


@pytest.fixture
def second_server(api: Api) -> Iterator[Api]:
    """Another server process's app on the same database."""
    app = create_app(api.settings)
    try:
        yield Api(app, api.settings)
    finally:
        app.state.bluemule.engine.dispose()


def test_concurrent_posts_store_each_id_once(api: Api, second_server: Api) -> None:
    if api.settings.database_url is None:
        pytest.skip("concurrent writers: PostgreSQL")
    token = add_relay(api, "gw", "north")
    for device_id in NORTH:
        add_device(api, device_id)
    events = [
        {"id": f"{d}:{n}", "device_id": d, "name": "tick", "data": str(n)}
        for d in NORTH
        for n in range(40)
    ]
    reports = [report(d, f"rep-{d}-{n}", rssi=-n) for d in NORTH for n in range(40)]
    results: list[dict[str, int]] = []
    barrier = threading.Barrier(4)
    lock = threading.Lock()

    def post(server: Api, path: str, body: dict[str, Any]) -> None:
        barrier.wait()
        response = relay_call(server, token, "POST", path, json=body)
        assert response.status_code == 200, response.text
        with lock:
            results.append(response.json())

    jobs = [
        (api, "/events", {"events": events}),
        (second_server, "/events", {"events": list(reversed(events))}),
        (api, "/reports", {"reports": reports}),
        (second_server, "/reports", {"reports": list(reversed(reports))}),
    ]
    threads = [threading.Thread(target=post, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4
    assert sum(r["accepted"] for r in results) == len(events) + len(reports)
    assert sum(r["duplicates"] for r in results) == len(events) + len(reports)
    with api.state.sessions() as session:
        assert len(session.scalars(select(Event.id)).all()) == len(events)
        assert len(session.scalars(select(Report.id)).all()) == len(reports)


def test_sync_then_push_to_an_emulated_device(api: Api, tmp_path: Path) -> None:
    device_id = DEVICE_IDS["boron"]
    token = add_relay(api, "phone", "field")
    add_device(api, device_id, site="field", groups=["pilot"])
    release_id = upload(api, "from-server", 5, ASSETS)
    publish(api, release_id, groups=["pilot"])
    (item,) = sync(api, token)["devices"]
    payloads = []
    for part in item["parts"]:
        blob = relay_call(api, token, "GET", f"/blobs/{part['blob']}")
        assert (
            blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == part["sha256"]
        )
        payloads.append(blob.content)
    manifest = verify_manifest(
        base64.b64decode(item["manifest"]), [api.state.signing_key.public_key]
    )
    device = new_device(tmp_path / "dev", "boron")
    set_trusted_keys(device, [api.state.signing_key.public_key])

    async def run() -> None:
        async with served(device) as rig:
            result = await push_update(
                rig.connector(), SignedRelease(manifest, tuple(payloads)), policy=FAST
            )
            assert result.result.outcome == Outcome.APPLIED, result.result

    asyncio.run(run())
    shown = device.show()
    app_sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]
    assert shown["mode"] == "normal" and shown["app"]["sha256"] == app_sha
    assert sorted(a["name"] for a in shown["assets"]) == sorted(ASSETS)
    confirmed = {
        "id": "done", "device_id": device_id, "kind": "update", "at": "2026-01-02T00:00:00Z",
        "state": {"app_sha256": shown["app"]["sha256"], "release_counter": release_id},
        "update": {"release_id": release_id, "state": "confirmed_running"},
    }  # fmt: skip
    relay_call(api, token, "POST", "/reports", json={"reports": [confirmed]})
    assert sync(api, token)["devices"] == []
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, device_id)
        assert row is not None and row.state == "confirmed_running"


def test_admin_cli_publish_lock(
    settings: Settings, running: tuple[str, subprocess.Popen[str]]
) -> None:
    url, _proc = running
    token = settings.admin_token_path.read_text().strip()
    admin = test_server_cli.admin
    device = NORTH[0]
    added = admin(url, token, "device", "add", device, "--platform", "boron", "--site", "north",
                  "--group", "beta", "--product", str(BORON))  # fmt: skip
    assert added.returncode == 0, added.stderr
    app = make_app("boron", tag="cli")
    path = settings.data_dir.parent / "app.bin"
    path.write_bytes(app)
    uploaded = admin(url, token, "release", "upload", path, "--json")
    release_id = json.loads(uploaded.stdout)["id"]
    dry = admin(url, token, "release", "publish", str(release_id), "--group", "beta", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would move 1 device(s): " + device in dry.stdout
    done = admin(url, token, "release", "publish", str(release_id), "--group", "beta",
                 "--product-default", "--json")  # fmt: skip
    result = json.loads(done.stdout)
    assert result["impacted"] == {"count": 1, "device_ids": [device]} and not result["dry_run"]
    assert result["release"]["groups"] == ["beta"] and result["release"]["product_default"]
    locked = admin(url, token, "device", "lock", device, str(release_id), "--json")
    assert json.loads(locked.stdout)["device"]["locked_release_id"] == release_id
    unlocked = admin(url, token, "device", "unlock", device)
    assert unlocked.returncode == 0 and f"desired release: {release_id}" in unlocked.stdout
    missing = admin(url, token, "device", "lock", device, "999")
    assert missing.returncode == 2 and "no release 999" in missing.stderr


def test_a_revoked_relay_is_locked_out_at_once(api: Api, second_server: Api) -> None:
    lost, kept = add_relay(api, "lost-phone", "north"), add_relay(api, "gw", "north")
    add_device(api, NORTH[0])
    publish(api, upload(api, "v1", 1), product_default=True)
    first = relay_call(api, lost, "GET", "/sync")
    assert first.status_code == 200  # cached in this process now
    event = {"id": "e1", "device_id": NORTH[0], "name": "t"}
    revoked = api.post("/api/admin/v1/relays/lost-phone/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    again = api.post("/api/admin/v1/relays/lost-phone/revoke")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # idempotent
    for server in (api, second_server):  # every process, cached answer or not
        poll = {"If-None-Match": first.headers["etag"]}
        assert_problem(relay_call(server, lost, "GET", "/sync", headers=poll), 401)
        assert_problem(relay_call(server, lost, "GET", "/sync"), 401, "wrong relay token")
        posted = relay_call(server, lost, "POST", "/events", json={"events": [event]})
        assert_problem(posted, 401)
        assert relay_call(server, kept, "GET", "/sync").status_code == 200
    listed = {r["name"]: r for r in api.get("/api/admin/v1/relays").json()}
    assert listed["lost-phone"]["revoked_at"] and listed["gw"]["revoked_at"] is None
    assert_problem(api.post("/api/admin/v1/relays/nobody/revoke"), 404, "no relay")
    assert api.counts()["events"] == 0
