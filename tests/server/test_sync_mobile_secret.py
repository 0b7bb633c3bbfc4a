"""Mobile secrets in sync: sealed for the asking relay only, never elsewhere."""

from __future__ import annotations

import pytest

from bluemule.relay.sealed import SealedSecretError, open_mobile_secret
from tests.server.conftest import Api
from tests.server.test_relay_api import (
    NORTH,
    SOUTH,
    add_device,
    add_relay,
    publish,
    relay_call,
    upload,
)

NORTH_SECRET = "NORTH-SECRET-01"  # noqa: S105 (test data)
SOUTH_SECRET = "SOUTH-SECRET-09"  # noqa: S105 (test data)


def test_sealed_for_each_relay_of_the_site_and_nowhere_else(api: Api) -> None:
    gw1, gw2 = add_relay(api, "gw1", "north"), add_relay(api, "gw2", "north")
    south = add_relay(api, "gs", "south")
    add_device(api, NORTH[0], mobile_secret=NORTH_SECRET)
    add_device(api, NORTH[1])  # no secret
    add_device(api, SOUTH, site="south", mobile_secret=SOUTH_SECRET)
    publish(api, upload(api, "v1", 1), product_default=True)

    answers = {t: relay_call(api, t, "GET", "/sync") for t in (gw1, gw2, south)}
    for response in answers.values():
        assert response.status_code == 200
        for secret in (NORTH_SECRET, SOUTH_SECRET):
            assert secret not in response.text
    one = {d["device_id"]: d for d in answers[gw1].json()["devices"]}
    two = {d["device_id"]: d for d in answers[gw2].json()["devices"]}
    sealed = one[NORTH[0]]["mobile_secret_sealed"]
    assert "mobile_secret_sealed" not in one[NORTH[1]]
    assert open_mobile_secret(gw1, NORTH[0], sealed) == NORTH_SECRET.encode()
    # the other relay of the site gets its own sealing, which only its token opens
    other = two[NORTH[0]]["mobile_secret_sealed"]
    assert other != sealed and open_mobile_secret(gw2, NORTH[0], other) == NORTH_SECRET.encode()
    for token, value in ((gw2, sealed), (gw1, other), (south, sealed)):
        with pytest.raises(SealedSecretError):
            open_mobile_secret(token, NORTH[0], value)
    assert answers[gw1].headers["etag"] != answers[gw2].headers["etag"]
    # the south relay sees only its own device, sealed for it
    (only,) = answers[south].json()["devices"]
    assert only["device_id"] == SOUTH
    assert open_mobile_secret(south, SOUTH, only["mobile_secret_sealed"]) == b"SOUTH-SECRET-09"
    assert only["mobile_secret_sealed"] not in answers[gw1].text
    # deterministic: the same answer and ETag on the next poll, from a fresh build too
    api.state.sync_cache.answers = type(api.state.sync_cache.answers)(8)
    again = relay_call(api, gw1, "GET", "/sync")
    assert again.content == answers[gw1].content
    assert again.headers["etag"] == answers[gw1].headers["etag"]
    # never in the admin lists
    for path in ("/api/admin/v1/devices", f"/api/admin/v1/devices/{NORTH[0]}"):
        listed = api.get(path)
        assert NORTH_SECRET not in listed.text and "sealed" not in listed.text
