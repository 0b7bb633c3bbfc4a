"""Five devices over two rollout stages with one device failing: the rollout pauses at the
error threshold, resumes by command once the device is fixed, and ends with the server
showing every device's true state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bluemule.emulator.services import set_trusted_keys
from bluemule.relay.agent import RunSummary
from tests.relay.fleet import fleet
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.server.test_rollouts_api import command, states, status
from tests.support.live_server import LiveServer

PILOTS = ["e00fce680000000000000e01", "e00fce680000000000000e02"]
OTHERS = ["e00fce680000000000000f01", "e00fce680000000000000f02", "e00fce680000000000000f03"]
BROKEN = OTHERS[1]


def outcomes(summary: RunSummary) -> dict[str, str | None]:
    return {v.device_id: v.update for v in summary.devices if v.update is not None}


def test_rollout_pauses_on_a_failure_and_resumes_by_command(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    for device_id in PILOTS:
        add_device(api, device_id, groups=["pilot"])
    for device_id in OTHERS:
        add_device(api, device_id, groups=["fleet"])
    release_id = upload(api, "v3", 3)
    publish(api, release_id, product_default=True)
    created = api.post(
        "/api/admin/v1/rollouts",
        json={
            "release_id": release_id,
            "stages": [{"groups": ["pilot"]}, {"percent": 100}],
            "success_threshold": 1.0,
            "error_threshold": 0.2,
        },
    )
    assert created.status_code == 201, created.text
    rollout = created.json()["id"]
    app_sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]
    key = api.state.signing_key.public_key
    seen: dict[str, Any] = {}

    async def run() -> None:
        async with fleet(tmp_path / "devices", PILOTS + OTHERS, key, distrusting=[BROKEN]) as f:
            agent = f.agent(server.url, token, tmp_path / "relay")
            try:
                seen["stage1"] = await agent.run_once()
                seen["after_stage1"] = await asyncio.to_thread(status, api, rollout)
                seen["stage2"] = await agent.run_once()
                seen["paused"] = await asyncio.to_thread(status, api, rollout)
                seen["while_paused"] = await agent.run_once()
                # the operator fixes the device's trusted key, retries it and resumes
                set_trusted_keys(f.devices[BROKEN], [key])
                retry = f"/api/admin/v1/rollouts/{rollout}/devices/{BROKEN}/retry"
                retried = await asyncio.to_thread(api.post, retry)
                assert retried.status_code == 200, retried.text
                seen["resumed"] = await asyncio.to_thread(command, api, rollout, "resume")
                seen["final"] = await agent.run_once()
            finally:
                await agent.aclose()
            seen["shown"] = {d: f.shown(d) for d in PILOTS + OTHERS}

    asyncio.run(run())
    assert outcomes(seen["stage1"]) == dict.fromkeys(PILOTS, "applied")
    # every part is downloaded once, then served to each device that needs it
    parts = api.get(f"/api/admin/v1/releases/{release_id}").json()["parts"]
    assert seen["stage1"].downloaded_bytes == sum(p["size"] for p in parts)
    assert seen["stage2"].downloaded_bytes == 0 == seen["final"].downloaded_bytes
    assert seen["after_stage1"]["stage"] == 1 and seen["after_stage1"]["status"] == "running"
    stage2 = outcomes(seen["stage2"])
    assert stage2[BROKEN] == "rejected" and set(stage2) == set(OTHERS)
    assert stage2 == {d: "rejected" if d == BROKEN else "applied" for d in OTHERS}
    paused = seen["paused"]
    assert paused["status"] == "paused" and "1 of 3 devices failed" in paused["reason"]
    failed = next(d for d in paused["devices"] if d["device_id"] == BROKEN)
    assert failed["state"] == "failed" and "UNKNOWN_KEY" in failed["reason"]
    assert outcomes(seen["while_paused"]) == {}  # paused: nothing offered to anyone
    assert seen["resumed"]["status"] == "running"
    assert outcomes(seen["final"]) == {BROKEN: "applied"}
    done = status(api, rollout)
    assert done["status"] == "finished"
    assert states(done) == dict.fromkeys(PILOTS + OTHERS, "confirmed_running")
    for device_id, shown in seen["shown"].items():  # the server's view is the devices' truth
        assert shown["app"]["sha256"] == app_sha
        server_view = api.get(f"/api/admin/v1/devices/{device_id}").json()
        assert server_view["state"]["app_sha256"] == shown["app"]["sha256"]
