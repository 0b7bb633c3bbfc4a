"""Staged rollouts through the admin API, relay reports and sync, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

from sqlalchemy import select

from bluemule.server.config import Settings
from bluemule.server.models import Release, Rollout
from tests.server import test_server_cli
from tests.server.conftest import Api, assert_problem
from tests.server.test_relay_api import BORON, add_device, add_relay, publish, relay_call, upload
from tests.server.test_relay_api import wanted as offered

running = test_server_cli.running
PILOTS = ["e00fce680000000000000a01", "e00fce680000000000000a02"]
OTHERS = ["e00fce680000000000000b01", "e00fce680000000000000b02", "e00fce680000000000000b03"]
URL = "/api/admin/v1/rollouts"
_clock = itertools.count(1)


def app_sha(api: Api, release_id: int) -> str:
    with api.state.sessions() as session:
        release = session.get(Release, release_id)
        assert release is not None
        return release.app_sha256


def send(
    api: Api,
    token: str,
    device_id: str,
    release_id: int,
    state: str,
    *,
    sha: bool = True,
    **extra: Any,
) -> None:
    n = next(_clock)
    item: dict[str, Any] = {
        "id": f"r{n}",
        "device_id": device_id,
        "kind": "update",
        "at": f"2026-01-01T10:{n // 60:02d}:{n % 60:02d}Z",
        "update": {"release_id": release_id, "state": state, **extra},
    }
    if state == "confirmed_running" and sha:
        item["state"] = {"app_sha256": app_sha(api, release_id)}
    response = relay_call(api, token, "POST", "/reports", json={"reports": [item]})
    assert response.status_code == 200, response.text


def status(api: Api, rollout_id: int) -> dict[str, Any]:
    response = api.get(f"{URL}/{rollout_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def command(api: Api, rollout_id: int, action: str) -> dict[str, Any]:
    response = api.post(f"{URL}/{rollout_id}/{action}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def states(body: dict[str, Any]) -> dict[str, str]:
    return {d["device_id"]: d["state"] for d in body["devices"]}


def test_rollout_stages_pause_resume_retry_finish(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    for device_id in PILOTS:
        add_device(api, device_id, groups=["pilot"])
    for device_id in OTHERS:
        add_device(api, device_id, groups=["fleet"])
    rid = upload(api, "v2", 2)
    publish(api, rid, product_default=True)
    assert set(offered(api, token)) == {*PILOTS, *OTHERS}  # no rollout: everyone

    assert_problem(api.post(URL, json={"release_id": 999, "stages": [{"percent": 5}]}), 404)
    bad = api.post(URL, json={"release_id": rid, "stages": [{"percent": 5, "groups": ["x"]}]})
    assert bad.status_code == 422
    body = {
        "release_id": rid,
        "stages": [{"groups": ["pilot"]}, {"percent": 100}],
        "success_threshold": 0.9,
        "error_threshold": 0.1,
    }
    created = api.post(URL, json=body)
    assert created.status_code == 201, created.text
    rollout = created.json()
    rollout_id = rollout["id"]
    assert (rollout["status"], rollout["stage"], rollout["reason"]) == ("running", 0, None)
    assert [s["total"] for s in rollout["stages"]] == [2, 3]
    assert set(states(rollout).values()) == {"pending"}
    assert_problem(api.post(URL, json=body), 409, "active rollout")

    # stage 1: only the pilots are offered
    assert set(offered(api, token)) == set(PILOTS)
    send(api, token, PILOTS[0], rid, "confirmed_running")
    send(api, token, PILOTS[1], rid, "transferring", progress=0.5)
    now = status(api, rollout_id)
    assert now["stage"] == 0 and now["stages"][0]["counts"]["confirmed_running"] == 1
    pilot = next(d for d in now["devices"] if d["device_id"] == PILOTS[1])
    assert (pilot["state"], pilot["progress"]) == ("transferring", 0.5)
    assert set(offered(api, token)) == {PILOTS[1]}
    # "confirmed" without the release's SHA-256 running is not a success
    send(api, token, PILOTS[1], rid, "confirmed_running", sha=False)
    assert states(status(api, rollout_id))[PILOTS[1]] == "installed"
    assert status(api, rollout_id)["stage"] == 0

    # the last pilot confirms: stage 2 opens by itself (in the reports' transaction)
    send(api, token, PILOTS[1], rid, "confirmed_running")
    with api.state.sessions() as session:
        stored = session.scalar(select(Rollout).where(Rollout.id == rollout_id))
        assert stored is not None and stored.stage == 1 and stored.status == "running"
    assert set(offered(api, token)) == set(OTHERS)

    # one failure of three is above 10%: the rollout pauses by itself
    send(api, token, OTHERS[0], rid, "cached_on_relay")
    send(api, token, OTHERS[1], rid, "failed", reason="flash write error")
    now = status(api, rollout_id)
    assert now["status"] == "paused" and "1 of 3 devices failed" in now["reason"]
    assert now["stages"][1]["counts"]["failed"] == 1
    failed = next(d for d in now["devices"] if d["device_id"] == OTHERS[1])
    assert (failed["state"], failed["reason"]) == ("failed", "flash write error")
    # paused: no new device; the one already under way may finish; the failed one waits
    assert set(offered(api, token)) == {OTHERS[0]}

    # resuming with the failure still there pauses again at once
    assert command(api, rollout_id, "resume")["status"] == "paused"
    assert_problem(api.post(f"{URL}/{rollout_id}/devices/{OTHERS[2]}/retry"), 409, "pending")
    assert_problem(api.post(f"{URL}/{rollout_id}/devices/{'f' * 24}/retry"), 404)
    retried = api.post(f"{URL}/{rollout_id}/devices/{OTHERS[1]}/retry")
    assert retried.status_code == 200, retried.text
    assert states(retried.json())[OTHERS[1]] == "pending"
    assert retried.json()["status"] == "paused"
    resumed = command(api, rollout_id, "resume")
    assert (resumed["status"], resumed["reason"]) == ("running", None)
    assert set(offered(api, token)) == set(OTHERS)

    for device_id in OTHERS:
        send(api, token, device_id, rid, "confirmed_running")
    done = status(api, rollout_id)
    assert done["status"] == "finished"
    assert set(states(done).values()) == {"confirmed_running"}
    assert [s["counts"]["confirmed_running"] for s in done["stages"]] == [2, 3]
    assert offered(api, token) == {}
    assert [r["id"] for r in api.get(URL).json()] == [rollout_id]
    assert_problem(api.get(f"{URL}/999"), 404)
    # finished: the release may be rolled out again
    assert api.post(URL, json=body).status_code == 201


def test_pause_next_and_new_devices_wait(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    add_device(api, PILOTS[0], groups=["pilot"])
    add_device(api, OTHERS[0])
    rid = upload(api, "v3", 3)
    publish(api, rid, product_default=True)
    stages = [{"groups": ["pilot"]}, {"percent": 50}, {"percent": 100}]
    rollout_id = api.post(URL, json={"release_id": rid, "stages": stages}).json()["id"]
    assert set(offered(api, token)) == {PILOTS[0]}
    assert command(api, rollout_id, "pause")["status"] == "paused"
    assert offered(api, token) == {}
    opened = command(api, rollout_id, "next")
    assert (opened["status"], opened["stage"]) == ("running", 1)
    assert set(offered(api, token)) == {PILOTS[0], OTHERS[0]}
    # a device that wants the release after the start is not in the rollout: it waits
    add_device(api, OTHERS[1])
    assert OTHERS[1] not in offered(api, token)
    assert command(api, rollout_id, "next")["stage"] == 2
    assert command(api, rollout_id, "next")["stage"] == 2  # no stage after the last


def test_abort_stops_for_good_and_frees_the_release(api: Api) -> None:
    token = add_relay(api, "gw", "north")
    for device_id in (*PILOTS, *OTHERS):
        add_device(api, device_id, groups=["pilot"] if device_id in PILOTS else [])
    rid = upload(api, "v3", 3)
    publish(api, rid, product_default=True)
    stages = [{"groups": ["pilot"]}, {"percent": 100}]
    rollout_id = api.post(URL, json={"release_id": rid, "stages": stages}).json()["id"]
    assert set(offered(api, token)) == set(PILOTS)
    send(api, token, PILOTS[0], rid, "cached_on_relay")  # one update under way
    aborted = command(api, rollout_id, "abort")
    assert (aborted["status"], aborted["reason"]) == ("aborted", "aborted by an operator")
    assert offered(api, token) == {}  # nobody, the update under way included
    for action in ("resume", "next", "pause"):  # no control revives it
        assert command(api, rollout_id, action)["status"] == "aborted"
    assert command(api, rollout_id, "abort")["status"] == "aborted"  # idempotent
    failed = api.post(f"{URL}/{rollout_id}/devices/{PILOTS[1]}/retry")
    assert_problem(failed, 409, "aborted")
    # the release is free for a new rollout, which gates as usual
    again = api.post(URL, json={"release_id": rid, "stages": [{"percent": 100}]})
    assert again.status_code == 201, again.text
    assert set(offered(api, token)) == {*PILOTS, *OTHERS}
    assert_problem(api.post(f"{URL}/999/abort"), 404, "no rollout 999")


def test_rollout_cli(settings: Settings, running: tuple[str, subprocess.Popen[str]]) -> None:
    url, _proc = running
    token = settings.admin_token_path.read_text().strip()
    admin = test_server_cli.admin
    for device_id, group in ((PILOTS[0], "pilot"), (OTHERS[0], "fleet")):
        added = admin(url, token, "device", "add", device_id, "--platform", "boron",
                      "--site", "north", "--group", group, "--product", str(BORON))  # fmt: skip
        assert added.returncode == 0, added.stderr
    from bluemule.emulator import make_app  # noqa: PLC0415

    path = settings.data_dir.parent / "app.bin"
    path.write_bytes(make_app("boron", tag="cli-rollout"))
    release_id = json.loads(admin(url, token, "release", "upload", path, "--json").stdout)["id"]
    published = admin(url, token, "release", "publish", str(release_id), "--product-default")
    assert published.returncode == 0, published.stderr

    bad = admin(url, token, "rollout", "start", str(release_id), "--stage", "pilots")
    assert bad.returncode == 2 and "group:NAME" in bad.stderr
    started = admin(url, token, "rollout", "start", str(release_id), "--stage", "group:pilot",
                    "--stage", "100%", "--success", "0.5", "--error", "0.2", "--json")  # fmt: skip
    assert started.returncode == 0, started.stderr
    rollout = json.loads(started.stdout)
    assert rollout["success_threshold"] == 0.5 and rollout["stages"][0]["groups"] == ["pilot"]
    rollout_id = str(rollout["id"])
    shown = admin(url, token, "rollout", "status", rollout_id)
    assert shown.returncode == 0 and "running" in shown.stdout
    assert f"{PILOTS[0]} stage 1: pending" in shown.stdout
    paused = admin(url, token, "rollout", "pause", rollout_id)
    assert paused.returncode == 0 and "paused (paused by an operator)" in paused.stdout
    resumed = admin(url, token, "rollout", "resume", rollout_id, "--json")
    assert json.loads(resumed.stdout)["status"] == "running"
    opened = admin(url, token, "rollout", "next", rollout_id, "--json")
    assert json.loads(opened.stdout)["stage"] == 1
    as_json = json.loads(admin(url, token, "rollout", "status", rollout_id, "--json").stdout)
    assert {d["device_id"] for d in as_json["devices"]} == {PILOTS[0], OTHERS[0]}
    retry = admin(url, token, "rollout", "retry", rollout_id, PILOTS[0])
    assert retry.returncode == 2 and "has not failed" in retry.stderr
    aborted = admin(url, token, "rollout", "abort", rollout_id, "--json")
    assert aborted.returncode == 0 and json.loads(aborted.stdout)["status"] == "aborted"
    shown = admin(url, token, "rollout", "abort", rollout_id)
    assert shown.returncode == 0 and "aborted (aborted by an operator)" in shown.stdout
