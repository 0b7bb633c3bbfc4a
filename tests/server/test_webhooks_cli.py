"""``bluemule admin webhook …`` against a real server whose background worker delivers."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

from sqlalchemy import select

from bluemule.server.config import Settings
from bluemule.server.db import make_engine, make_sessionmaker
from bluemule.server.models import Event, Relay
from bluemule.server.webhooks import enqueue_for_events
from tests.server.test_server_cli import DEVICE, admin, one_line_error, running
from tests.server.test_webhooks import Receiver, receiver

__all__ = ["receiver", "running"]  # fixtures


def test_webhook_commands(
    settings: Settings, running: tuple[str, subprocess.Popen[str]], receiver: Receiver
) -> None:
    url, _proc = running
    token = settings.admin_token_path.read_text().strip()

    added = admin(
        url, token, "webhook", "add", "--event", "env", "--url", receiver.url + "/in",
        "--format", "json", "--body", '{"v": "{{PARTICLE_EVENT_VALUE}}"}',
        "--header", "X-Key: k1", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    hook = json.loads(added.stdout)
    assert hook["event"] == "env" and hook["headers"] == {"X-Key": "k1"}
    plain = admin(url, token, "webhook", "add", "--event", "other", "--url", receiver.url)
    assert plain.returncode == 0 and "format=form" in plain.stdout, plain.stderr
    listed = admin(url, token, "webhook", "list", "--json")
    assert [h["event"] for h in json.loads(listed.stdout)] == ["env", "other"]
    assert "other" in admin(url, token, "webhook", "list").stdout

    # refusals: one line, exit 2, nothing stored
    one_line_error(
        admin(url, token, "webhook", "add", "--event", "a b", "--url", receiver.url), "prefix"
    )
    one_line_error(admin(url, token, "webhook", "add", "--event", "a", "--url", "ftp://x"), "url")
    one_line_error(
        admin(url, token, "webhook", "add", "--event", "a", "--url", receiver.url,
              "--header", "nocolon"),
        "NAME:VALUE",
    )  # fmt: skip
    assert len(json.loads(admin(url, token, "webhook", "list", "--json").stdout)) == 2

    # an event stored by another process is delivered by the server's own worker
    assert admin(url, token, "relay", "add", "gw", "--site", "s").returncode == 0
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            relay = session.scalar(select(Relay).where(Relay.name == "gw"))
            assert relay is not None
            now = datetime.now(UTC)
            event_id = f"{DEVICE}:1"
            session.add(
                Event(
                    id=event_id, device_id=DEVICE, name="env/t", data="42",
                    captured_at=None, received_at=now, relay_id=relay.id,
                )
            )  # fmt: skip
            session.flush()
            assert enqueue_for_events(session, [event_id]) == 1
            session.commit()
    finally:
        engine.dispose()
    deadline = time.monotonic() + 20
    while not receiver.hits:
        assert time.monotonic() < deadline, "the server's worker did not deliver"
        time.sleep(0.05)
    [hit] = receiver.hits
    assert json.loads(hit.body)["v"] == "42" and hit.headers["X-Key"] == "k1"
    log = admin(url, token, "webhook", "log", "--json")
    deadline = time.monotonic() + 10
    while not json.loads(log.stdout):  # the attempt is recorded just after the answer
        assert time.monotonic() < deadline
        time.sleep(0.05)
        log = admin(url, token, "webhook", "log", "--json")
    [entry] = json.loads(log.stdout)
    assert entry["outcome"] == "delivered" and entry["status_code"] == 200
    assert entry["event_id"] == event_id and entry["webhook_id"] == hook["id"]
    text = admin(url, token, "webhook", "log", "--webhook", str(hook["id"]), "--event", event_id)
    assert "delivered 200" in text.stdout, text
    assert admin(url, token, "webhook", "log", "--webhook", "999").stdout == ""

    removed = admin(url, token, "webhook", "remove", str(hook["id"]))
    assert removed.returncode == 0 and f"removed webhook {hook['id']}" in removed.stdout
    one_line_error(admin(url, token, "webhook", "remove", str(hook["id"])), "no webhook")
    assert [
        h["event"] for h in json.loads(admin(url, token, "webhook", "list", "--json").stdout)
    ] == ["other"]
