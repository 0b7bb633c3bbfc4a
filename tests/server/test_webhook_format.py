"""Webhook requests rendered as Particle renders them."""

from __future__ import annotations

import base64
import json
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bluemule.server.webhook_format import (
    USER_AGENT,
    RelayedEvent,
    WebhookSpec,
    particle_time,
    render_request,
)

EVENT = RelayedEvent(
    event_id="e00fce68a1b2c3d4e5f60718:42",
    device_id="e00fce68a1b2c3d4e5f60718",
    name="temperature/outside",
    data='{"celsius": 21.5, "probe": {"id": "p<1>"}, "list": [{"v": 7}]}',
    received_at=datetime(2026, 11, 24, 6, 30, 1, tzinfo=UTC),
    captured_at=datetime(2026, 11, 24, 5, 59, 58, 5_000, tzinfo=UTC),
    relayed_at=datetime(2026, 11, 24, 6, 0, 0, 250_000, tzinfo=UTC),
    product_id=12345,
    product_version=7,
    relay="site-a-phone",
    sequence=42,
)


def test_prefix_match_is_case_sensitive() -> None:
    spec = WebhookSpec(event="temp", url="http://127.0.0.1/h")
    assert spec.matches("temperature/outside")
    assert not spec.matches("Temperature")
    with pytest.raises(ValueError, match="at least one character"):
        WebhookSpec(event="", url="http://x")


def test_default_form_post() -> None:
    request = render_request(WebhookSpec(event="temp", url="http://127.0.0.1/h"), EVENT)
    assert request.method == "POST"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = dict(urllib.parse.parse_qsl(request.body.decode()))
    assert fields["event"] == "temperature/outside"
    assert fields["data"] == EVENT.data
    assert fields["coreid"] == EVENT.device_id
    assert fields["published_at"] == "2026-11-24T05:59:58.005Z"  # the device's capture time
    assert fields["bluemule_relayed_at"] == "2026-11-24T06:00:00.250Z"
    assert fields["bluemule_received_at"] == "2026-11-24T06:30:01.000Z"
    assert (fields["bluemule_relay"], fields["bluemule_sequence"]) == ("site-a-phone", "42")
    assert fields["bluemule_captured"] == "true"


def test_published_at_falls_back_to_relay_then_server_time() -> None:
    received = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    relayed = datetime(2026, 1, 2, 1, 0, 0, 7_000, tzinfo=UTC)
    spec = WebhookSpec(event="x", url="http://h/")

    def fields(event: RelayedEvent) -> dict[str, str]:
        body = render_request(spec, event).body.decode()
        return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))

    server_only = fields(RelayedEvent("id", "d" * 24, "x", None, received))
    assert server_only["published_at"] == "2026-01-02T03:04:05.000Z"
    assert server_only["data"] == "" and server_only["bluemule_relayed_at"] == ""
    assert server_only["bluemule_captured"] == "false"
    by_relay = fields(RelayedEvent("id", "d" * 24, "x", None, received, relayed_at=relayed))
    assert by_relay["published_at"] == "2026-01-02T01:00:00.007Z" == by_relay["bluemule_relayed_at"]
    assert by_relay["bluemule_received_at"] == "2026-01-02T03:04:05.000Z"
    assert by_relay["bluemule_captured"] == "false"
    # a relay clock ahead of the server's: its relayed_at is shown but not used
    ahead = received + timedelta(minutes=6)
    skewed = fields(RelayedEvent("id", "d" * 24, "x", None, received, relayed_at=ahead))
    assert skewed["published_at"] == "2026-01-02T03:04:05.000Z"
    assert skewed["bluemule_relayed_at"] == "2026-01-02T03:10:05.000Z"
    within = fields(
        RelayedEvent(
            "id", "d" * 24, "x", None, received, relayed_at=received + timedelta(minutes=4)
        )
    )
    assert within["published_at"] == "2026-01-02T03:08:05.000Z"
    spec = WebhookSpec(
        event="x", url="http://h/", format="body", template="{{BLUEMULE_RELAYED_AT}}"
    )
    event = RelayedEvent("id", "d" * 24, "x", None, received, relayed_at=relayed)
    assert render_request(spec, event).body == b"2026-01-02T01:00:00.007Z"


def test_json_template_with_particle_variables_and_data_keys() -> None:
    spec = WebhookSpec(
        event="temp",
        url="http://127.0.0.1/{{PARTICLE_DEVICE_ID}}/t",
        format="json",
        template='{"c": "{{celsius}}", "probe": "{{{probe.id}}}", "v": "{{list.0.v}}", '
        '"fw": "{{PRODUCT_VERSION}}", "id": "{{PARTICLE_EVENT_ID}}"}',
        headers={"Authorization": "Bearer {{PRODUCT_ID}}"},
    )
    request = render_request(spec, EVENT)
    assert request.url == f"http://127.0.0.1/{EVENT.device_id}/t"
    assert request.headers["Authorization"] == "Bearer 12345"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert (body["c"], body["probe"], body["v"], body["fw"]) == ("21.5", "p<1>", "7", "7")
    assert body["id"] == EVENT.event_id
    assert body["event"] == EVENT.name  # defaults merged in


def test_double_braces_escape_and_no_defaults_raw_body() -> None:
    spec = WebhookSpec(
        event="temp",
        url="http://h/",
        format="body",
        template="{{probe.id}}|{{{probe.id}}}|{{PARTICLE_EVENT_BASE64}}",
        headers={"Content-Type": "text/plain"},
        no_defaults=True,
    )
    request = render_request(spec, EVENT)
    escaped, raw, b64 = request.body.decode().split("|")
    assert (escaped, raw) == ("p&lt;1&gt;", "p<1>")
    assert base64.b64decode(b64).decode() == EVENT.data
    assert request.headers["Content-Type"] == "text/plain"


def test_get_puts_defaults_in_the_query() -> None:
    request = render_request(
        WebhookSpec(
            event="t", url="http://h/p?x=1", request_type="get", query={"q": "{{celsius}}"}
        ),
        EVENT,
    )
    assert request.method == "GET"
    assert request.body == b""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
    assert (query["x"], query["q"], query["event"]) == ("1", "21.5", EVENT.name)


def test_particle_time_is_utc_with_milliseconds() -> None:
    local = datetime(2026, 11, 24, 8, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert particle_time(local) == "2026-11-24T06:00:00.123Z"
