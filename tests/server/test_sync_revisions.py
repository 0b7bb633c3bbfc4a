"""The sync ETag comes from revisions: every change that can alter a site's answer bumps it.

Each step below makes one kind of change through the API and checks three things: the
ETag moved exactly when it should, a poll with the old ETag gets the new answer (not 304),
and the (possibly cached) answer equals one built from scratch with empty caches.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bluemule.server.models import Relay
from bluemule.server.sync import sync_body
from bluemule.server.sync_cache import SyncCache
from tests.server.conftest import Api
from tests.server.test_relay_api import (
    NORTH,
    SOUTH,
    add_device,
    add_relay,
    publish,
    relay_call,
    report,
    upload,
)
from tests.server.test_rollouts_api import URL, app_sha


class Poller:
    """A relay polling with If-None-Match, checking every answer against a fresh build."""

    def __init__(self, api: Api, relay_name: str, site: str) -> None:
        self.api, self.relay_name = api, relay_name
        self.token = add_relay(api, relay_name, site)
        self.etag = ""
        self.body = b""

    def fresh(self) -> bytes:
        """The answer built with empty caches."""
        state = self.api.state
        saved, state.sync_cache = state.sync_cache, SyncCache()
        try:
            with state.sessions() as session:
                relay = session.scalar(select(Relay).where(Relay.name == self.relay_name))
                assert relay is not None
                return sync_body(session, state, relay)
        finally:
            state.sync_cache = saved

    def poll(self) -> tuple[bool, bool]:
        """(ETag changed, body changed) since the last poll."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = relay_call(self.api, self.token, "GET", "/sync", headers=headers)
        etag = response.headers["etag"]
        if response.status_code == 304:
            assert etag == self.etag
            assert self.fresh() == self.body, "304 although the answer changed"
            return False, False
        assert response.status_code == 200, response.text
        assert response.content == self.fresh(), "a stale cached answer"
        changed = (etag != self.etag, response.content != self.body)
        self.etag, self.body = etag, response.content
        return changed


def expect(poller: Poller, *, etag: bool, body: bool | None = None) -> None:
    changed_etag, changed_body = poller.poll()
    assert changed_etag == etag
    if body is not None:
        assert changed_body == body
    if changed_body:
        assert changed_etag, "the body changed under the same ETag"


def lock(api: Api, device_id: str, release_id: int | None) -> None:
    path = f"/api/admin/v1/devices/{device_id}/lock"
    if release_id is None:
        response = api.request("DELETE", path)
    else:
        response = api.request("PUT", path, json={"release_id": release_id})
    assert response.status_code == 200, response.text


def rollout_command(api: Api, rollout_id: int, action: str) -> dict[str, Any]:
    response = api.post(f"{URL}/{rollout_id}/{action}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_kind_of_change_moves_the_etag(api: Api) -> None:
    north = Poller(api, "gw", "north")
    expect(north, etag=True)  # first poll
    expect(north, etag=False)  # nothing changed: 304

    add_device(api, NORTH[0], groups=["beta"])
    expect(north, etag=True, body=False)  # a new device (wants nothing yet)
    add_device(api, SOUTH, site="south")
    expect(north, etag=False)  # another site's device: this site's answer stands

    r1 = upload(api, "v1", 1)
    expect(north, etag=True, body=False)  # a release (unpublished)
    publish(api, r1, groups=["beta"])
    expect(north, etag=True, body=True)  # released to the device's group
    publish(api, r1, groups=["beta"], dry_run=True)
    expect(north, etag=False)  # a dry run changes nothing

    r2 = upload(api, "v2", 2)
    lock(api, NORTH[0], r2)
    expect(north, etag=True, body=True)  # locked to another release
    lock(api, NORTH[0], None)
    expect(north, etag=True, body=True)  # unlocked

    sighting = report(NORTH[0], "s1", rssi=-60, at="2026-01-01T10:00:00Z")
    assert (
        relay_call(api, north.token, "POST", "/reports", json={"reports": [sighting]}).json()[
            "accepted"
        ]
        == 1
    )
    expect(north, etag=False)  # a sighting moves only last_seen: same answer

    counter = report(NORTH[0], "s2", at="2026-01-01T10:01:00Z", state={"release_counter": 9})
    relay_call(api, north.token, "POST", "/reports", json={"reports": [counter]})
    expect(north, etag=True, body=True)  # reported counter: the manifest now allows downgrade

    running = report(
        NORTH[0], "s3", at="2026-01-01T10:02:00Z", state={"app_sha256": app_sha(api, r1)}
    )
    relay_call(api, north.token, "POST", "/reports", json={"reports": [running]})
    expect(north, etag=True, body=True)  # runs its release: nothing left to send

    add_device(api, NORTH[1], groups=["beta"])
    add_device(api, NORTH[2], groups=["beta"])
    expect(north, etag=True, body=True)
    publish(api, r2, groups=["beta"])
    expect(north, etag=True, body=True)

    started = api.post(URL, json={"release_id": r2, "stages": [{"percent": 34}, {"percent": 100}]})
    assert started.status_code == 201, started.text
    rollout = started.json()
    expect(north, etag=True, body=True)  # the rollout gates stage 2
    rollout_command(api, rollout["id"], "pause")
    expect(north, etag=True, body=True)  # paused: no new device
    rollout_command(api, rollout["id"], "resume")
    expect(north, etag=True, body=True)
    first = next(d["device_id"] for d in rollout["devices"] if d["stage"] == 0)
    failed = report(
        first,
        "u1",
        kind="update",
        at="2026-01-01T11:00:00Z",
        update={"release_id": r2, "state": "failed", "reason": "flash error"},
    )
    relay_call(api, north.token, "POST", "/reports", json={"reports": [failed]})
    expect(north, etag=True, body=True)  # failed (and the rollout paused itself)
    retried = api.post(f"{URL}/{rollout['id']}/devices/{first}/retry")
    assert retried.status_code == 200, retried.text
    expect(north, etag=True)  # retried: back to pending
    rollout_command(api, rollout["id"], "next")
    expect(north, etag=True, body=True)  # next stage opened by hand
    expect(north, etag=False)


def test_sites_have_their_own_etags(api: Api) -> None:
    north_token = add_relay(api, "gw", "north")
    south_token = add_relay(api, "gs", "south")
    add_device(api, NORTH[0])
    add_device(api, SOUTH, site="south")
    r1 = upload(api, "v1", 1)
    publish(api, r1, product_default=True)
    north = relay_call(api, north_token, "GET", "/sync")
    south = relay_call(api, south_token, "GET", "/sync")
    assert north.headers["etag"] != south.headers["etag"]
    # a south ETag never makes a north poll answer 304
    again = relay_call(
        api, north_token, "GET", "/sync", headers={"If-None-Match": south.headers["etag"]}
    )
    assert again.status_code == 200 and again.content == north.content
    # a report from the south site leaves the north answer's ETag alone
    sighting = report(SOUTH, "x1", state={"release_counter": 0})
    relay_call(api, south_token, "POST", "/reports", json={"reports": [sighting]})
    later = relay_call(api, north_token, "GET", "/sync")
    assert later.headers["etag"] == north.headers["etag"]
