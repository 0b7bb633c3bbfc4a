"""Webhooks: admin API, enqueueing, and delivery through the outbox to a real HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from bluemule.server.db import make_engine, make_sessionmaker
from bluemule.server.models import DeliveryLog, Device, Event, OutboxItem, Relay
from bluemule.server.outbox import DeliveryWorker
from bluemule.server.webhook_format import USER_AGENT
from bluemule.server.webhooks import enqueue_for_events
from tests.server.conftest import Api, assert_problem
from tests.server.test_relay_api import BORON, add_device

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DEVICE = "e00fce681234567890abcdef"


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers from a script."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Answers in order; 200 once exhausted."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, hit: Hit) -> int:
        time.sleep(self.delay)
        with self.lock:
            self.hits.append(hit)
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hit = Hit(self.command, self.path, dict(self.headers.items()), body)
            status = rec.answer(hit)
            payload = b"ok" if status < 300 else b"nope"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def worker(api: Api) -> Iterator[DeliveryWorker]:
    w = DeliveryWorker(api.state.sessions, worker_id="w1")
    try:
        yield w
    finally:
        w.close()


def add_hook(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post("/api/admin/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def store_events(api: Api, *events: tuple[str, str, str | None, datetime | None]) -> list[str]:
    """Store (id, name, data, captured_at) events from relay r1 and enqueue them."""
    with api.state.sessions() as session:
        relay = session.scalar(select(Relay).where(Relay.name == "r1"))
        if relay is None:
            assert api.post("/api/admin/v1/relays", json={"name": "r1", "site": "s"}).is_success
            relay = session.scalar(select(Relay).where(Relay.name == "r1"))
        assert relay is not None
        for event_id, name, data, captured in events:
            session.add(
                Event(
                    id=event_id,
                    device_id=DEVICE,
                    name=name,
                    data=data,
                    captured_at=captured,
                    received_at=T0 - timedelta(minutes=5),
                    relay_id=relay.id,
                )
            )
        session.flush()
        enqueue_for_events(session, [e[0] for e in events], now=T0)
        session.commit()
    return [e[0] for e in events]


def deliveries(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/admin/v1/deliveries", params=params)
    assert response.status_code == 200, response.text
    out: list[dict[str, Any]] = response.json()
    return out


def states(api: Api) -> dict[str, str]:
    with api.state.sessions() as session:
        return {i.event_id: i.state for i in session.scalars(select(OutboxItem))}


def test_default_form_body_is_particles(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    hook = add_hook(api, event="temp", url=receiver.url + "/hook")
    assert hook["format"] == "form" and hook["request_type"] == "POST"
    captured = datetime(2026, 3, 1, 11, 0, 0, 123456, tzinfo=UTC)
    store_events(
        api,
        (f"{DEVICE}:1", "temperature", "21.5", captured),
        (f"{DEVICE}:2", "Temperature", "x", None),  # case-sensitive prefix
        (f"{DEVICE}:3", "tem", "x", None),
    )
    assert states(api) == {f"{DEVICE}:1": "pending"}
    assert worker.run_once(T0) == 1
    assert worker.run_once(T0 + timedelta(hours=1)) == 0
    [hit] = receiver.hits
    assert (hit.method, hit.path) == ("POST", "/hook")
    assert hit.headers["User-Agent"] == USER_AGENT
    assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = hit.form()
    assert {k: form[k] for k in ("event", "data", "coreid", "published_at")} == {
        "event": "temperature",
        "data": "21.5",
        "coreid": DEVICE,
        "published_at": "2026-03-01T11:00:00.123Z",
    }
    assert set(form) - {"event", "data", "coreid", "published_at"} == {
        "bluemule_relay",
        "bluemule_relayed_at",
        "bluemule_received_at",
        "bluemule_captured",
        "bluemule_sequence",
    }
    assert form["bluemule_sequence"] == "1"
    assert form["bluemule_relay"] == "r1" and form["bluemule_captured"] == "true"
    assert form["bluemule_relayed_at"] == ""  # the relay did not say
    assert form["bluemule_received_at"] == "2026-03-01T11:55:00.000Z"
    [entry] = deliveries(api)
    assert entry["outcome"] == "delivered" and entry["status_code"] == 200
    assert entry["attempt"] == 1 and entry["state"] == "delivered"
    assert entry["webhook_id"] == hook["id"] and entry["event_id"] == f"{DEVICE}:1"
    assert entry["duration_ms"] is not None


def test_json_template_and_custom_headers(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    add_hook(
        api,
        event="env",
        url=receiver.url + "/d/{{PARTICLE_DEVICE_ID}}",
        format="json",
        template='{"t": {{{temp}}}, "id": "{{PARTICLE_EVENT_ID}}", '
        '"at": "{{PARTICLE_PUBLISHED_AT}}"}',
        headers={"X-Key": "k-{{PARTICLE_DEVICE_ID}}", "Authorization": "Bearer s3cret"},
        query={"src": "{{PARTICLE_EVENT_NAME}}"},
    )
    store_events(api, (f"{DEVICE}:7", "env/sensor", '{"temp": 21.5}', None))
    assert worker.run_once(T0) == 1
    [hit] = receiver.hits
    assert hit.path == f"/d/{DEVICE}?src=env%2Fsensor"
    assert hit.headers["X-Key"] == f"k-{DEVICE}"
    assert hit.headers["Authorization"] == "Bearer s3cret"
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["User-Agent"] == USER_AGENT
    document = json.loads(hit.body)
    assert document["t"] == 21.5 and document["id"] == f"{DEVICE}:7"
    # no capture time: published_at is when the relay received the event
    assert document["at"] == document["published_at"] == "2026-03-01T11:55:00.000Z"
    assert document["event"] == "env/sensor" and document["coreid"] == DEVICE


def test_product_version_and_sequence_of_a_relayed_event(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    add_device(api, DEVICE, site="s")
    with api.state.sessions() as session:
        device = session.get(Device, DEVICE)
        assert device is not None
        device.state = {"product_version": 7, "app_sha256": "00" * 32}
        session.commit()
    add_hook(api, event="env", url=receiver.url + "/json", format="json")
    add_hook(
        api,
        event="env",
        url=receiver.url + "/template",
        format="json",
        template='{"v": "{{PRODUCT_VERSION}}", "p": "{{PRODUCT_ID}}"}',
    )
    store_events(
        api, (f"{DEVICE}:5", "env/sensor", "1", None), ("other-client-id", "env", "2", None)
    )
    assert worker.run_once(T0) == 4
    by_path: dict[str, list[dict[str, Any]]] = {}
    for hit in receiver.hits:
        by_path.setdefault(hit.path, []).append(json.loads(hit.body))
    # the sequence comes from an id the relay made from the device's queue, else none
    sequences = sorted(str(d.get("bluemule_sequence")) for d in by_path["/json"])
    assert sequences == ["5", "None"]
    templated = by_path["/template"]
    assert [d["v"] for d in templated] == ["7", "7"]
    assert {d["p"] for d in templated} == {str(BORON)}


def test_raw_body_no_defaults(api: Api, receiver: Receiver, worker: DeliveryWorker) -> None:
    add_hook(
        api,
        event="memfault",
        url=receiver.url + "/chunks/{{PARTICLE_DEVICE_ID}}",
        request_type="PUT",
        format="body",
        template="{{{PARTICLE_EVENT_VALUE}}}",
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "base64"},
        no_defaults=True,
    )
    store_events(api, (f"{DEVICE}:9", "memfault", "AAEC&<>", None))
    worker.run_once(T0)
    [hit] = receiver.hits
    assert (hit.method, hit.body) == ("PUT", b"AAEC&<>")
    assert hit.headers["Content-Type"] == "application/octet-stream"


def test_500_then_200_is_retried_after_30_s_and_delivered_once(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    add_hook(api, event="t", url=receiver.url)
    [event_id] = store_events(api, (f"{DEVICE}:1", "t", "1", None))
    receiver.statuses = [500]
    assert worker.run_once(T0) == 1
    assert states(api) == {event_id: "failed"}
    assert worker.run_once(T0 + timedelta(seconds=29)) == 0
    assert worker.run_once(T0 + timedelta(seconds=30)) == 1
    assert worker.run_once(T0 + timedelta(hours=1)) == 0
    assert len(receiver.hits) == 2
    assert states(api) == {event_id: "delivered"}
    log = deliveries(api, event=event_id)
    assert [(e["attempt"], e["outcome"], e["status_code"]) for e in log] == [
        (2, "delivered", 200),
        (1, "failed", 500),
    ]
    assert log[1]["error"] == "nope"


def test_three_failures_drop_the_delivery(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    add_hook(api, event="t", url=receiver.url)
    [event_id] = store_events(api, (f"{DEVICE}:1", "t", "1", None))
    receiver.statuses = [503] * 10
    for seconds in (0, 30, 90):
        assert worker.run_once(T0 + timedelta(seconds=seconds)) == 1
    assert worker.run_once(T0 + timedelta(days=1)) == 0
    assert len(receiver.hits) == 3
    assert states(api) == {event_id: "dropped"}
    log = deliveries(api)
    assert [(e["attempt"], e["outcome"], e["status_code"]) for e in log] == [
        (3, "failed", 503),
        (2, "failed", 503),
        (1, "failed", 503),
    ]
    assert {e["state"] for e in log} == {"dropped"}


def test_connection_refused_is_a_failure(api: Api, worker: DeliveryWorker) -> None:
    add_hook(api, event="t", url="http://127.0.0.1:9/x")
    store_events(api, (f"{DEVICE}:1", "t", "1", None))
    assert worker.run_once(T0) == 1
    [entry] = deliveries(api)
    assert entry["outcome"] == "failed" and entry["status_code"] is None
    assert "Connect" in entry["error"]


def test_a_throttled_host_is_skipped(api: Api, receiver: Receiver, worker: DeliveryWorker) -> None:
    add_hook(api, event="t", url=receiver.url)
    store_events(api, (f"{DEVICE}:1", "t", "1", None), (f"{DEVICE}:2", "t", "2", None))
    receiver.statuses = [500]
    assert worker.run_once(T0) == 2
    assert len(receiver.hits) == 1  # the second was not sent
    log = deliveries(api)
    assert sorted((e["event_id"], e["outcome"]) for e in log) == [
        (f"{DEVICE}:1", "failed"),
        (f"{DEVICE}:2", "skipped"),
    ]
    skipped = next(e for e in log if e["outcome"] == "skipped")
    assert skipped["status_code"] is None and "throttled" in skipped["error"]
    assert skipped["state"] == "failed"  # a skip counts as an attempt; retried later
    # after the retry delay the host's cooldown has passed: both are delivered
    assert worker.run_once(T0 + timedelta(seconds=30)) == 2
    assert len(receiver.hits) == 3
    assert set(states(api).values()) == {"delivered"}


def test_enqueue_is_idempotent(api: Api) -> None:
    add_hook(api, event="a", url="http://127.0.0.1:9/1")
    add_hook(api, event="ab", url="http://127.0.0.1:9/2")
    add_hook(api, event="b", url="http://127.0.0.1:9/3")
    [event_id] = store_events(api, (f"{DEVICE}:1", "abc", "1", None))
    with api.state.sessions() as session:
        session.execute(delete(OutboxItem))
        assert enqueue_for_events(session, [event_id, event_id], now=T0) == 2
        assert enqueue_for_events(session, [event_id], now=T0) == 0
        assert enqueue_for_events(session, ["no-such-event"], now=T0) == 0
        assert enqueue_for_events(session, [], now=T0) == 0
        session.commit()
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.webhook_id)).all()
    assert [(r.event_id, r.webhook_id) for r in rows] == [(event_id, 1), (event_id, 2)]


def test_an_expired_lease_is_claimed_again(api: Api, receiver: Receiver) -> None:
    add_hook(api, event="t", url=receiver.url)
    store_events(api, (f"{DEVICE}:1", "t", "1", None))
    crashed = DeliveryWorker(api.state.sessions, worker_id="crashed")
    other = DeliveryWorker(api.state.sessions, worker_id="other")
    try:
        assert len(crashed.claim(T0)) == 1  # …and the process dies before delivering
        assert other.run_once(T0 + timedelta(seconds=10)) == 0
        assert other.run_once(T0 + crashed.lease + timedelta(seconds=1)) == 1
        assert len(receiver.hits) == 1
        assert states(api) == {f"{DEVICE}:1": "delivered"}
        # the crashed worker cannot settle a row it no longer holds
        assert crashed.deliver(1, T0) is None
    finally:
        crashed.close()
        other.close()


def test_two_workers_deliver_each_row_exactly_once(api: Api, receiver: Receiver) -> None:
    add_hook(api, event="race", url=receiver.url, headers={"X-Event": "{{PARTICLE_EVENT_ID}}"})
    total = 40
    receiver.delay = 0.005  # keep rows leased long enough for the workers to contend
    ids = store_events(api, *((f"{DEVICE}:{n}", "race", str(n), None) for n in range(total)))
    engines = [make_engine(api.settings.db_url) for _ in range(2)]
    workers = [
        DeliveryWorker(make_sessionmaker(e), worker_id=f"w{i}", batch_size=3)
        for i, e in enumerate(engines)
    ]
    claimed = threading.Barrier(len(workers))
    attempted = [0] * len(workers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        # Both workers hold a claimed batch before either delivers, so both take part
        # however the threads are scheduled (a loaded machine once let one do it all).
        worker = workers[index]
        try:
            first = worker.claim(T0)
            claimed.wait(timeout=30)
            attempted[index] += sum(worker.deliver(i, T0) is not None for i in first)
            while (done := worker.run_once(T0)) > 0:
                attempted[index] += done
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for w in workers:
            w.close()
        for e in engines:
            e.dispose()
    assert not errors, errors
    counts = Counter(hit.headers["X-Event"] for hit in receiver.hits)
    assert counts == Counter(ids)  # every event exactly once
    assert sum(attempted) == total and all(attempted), attempted
    assert set(states(api).values()) == {"delivered"}
    with api.state.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryLog)) == total


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"event": "", "url": "http://h/"}, "prefix"),
        ({"event": "has space", "url": "http://h/"}, "prefix"),
        ({"event": "x" * 65, "url": "http://h/"}, "prefix"),
        ({"event": "t", "url": "ftp://h/"}, "url"),
        ({"event": "t", "url": "not a url"}, "url"),
        ({"event": "t", "url": "http://{{host}}/"}, "url"),
        ({"event": "t", "url": "http://h/{{#x}}"}, "mustache"),
        ({"event": "t", "url": "http://h/", "format": "xml"}, "format"),
        ({"event": "t", "url": "http://h/", "format": "body"}, "body template"),
        ({"event": "t", "url": "http://h/", "template": "a={{x}}"}, "form template"),
        ({"event": "t", "url": "http://h/", "format": "json", "template": '{"a": }'}, "JSON"),
        ({"event": "t", "url": "http://h/", "format": "json", "template": "{{#a}"}, "mustache"),
        ({"event": "t", "url": "http://h/", "headers": {"X": "{{^x}}"}}, "mustache"),
        ({"event": "t", "url": "http://h/", "headers": {"Bad Name": "v"}}, "headers"),
        ({"event": "t", "url": "http://h/", "headers": {"X": "a\r\nB: c"}}, "headers"),
        ({"event": "t", "url": "http://h/", "request_type": "PATCH"}, "request_type"),
    ],
)
def test_bad_webhooks_are_refused_and_nothing_is_stored(
    api: Api, body: dict[str, Any], text: str
) -> None:
    assert_problem(api.post("/api/admin/v1/webhooks", json=body), 422, text)
    assert api.counts()["webhooks"] == 0


def test_webhook_crud_and_auth(api: Api, receiver: Receiver, worker: DeliveryWorker) -> None:
    assert_problem(api.get("/api/admin/v1/webhooks", auth=False), 401)
    assert_problem(api.post("/api/admin/v1/webhooks", json={}, auth=False), 401)
    assert_problem(api.get("/api/admin/v1/deliveries", auth=False), 401)
    hook = add_hook(
        api,
        event="t",
        url=receiver.url,
        format="json",
        template={"v": "{{PARTICLE_EVENT_VALUE}}"},
    )
    assert api.get("/api/admin/v1/webhooks").json() == [hook]
    assert api.get(f"/api/admin/v1/webhooks/{hook['id']}").json() == hook
    store_events(api, (f"{DEVICE}:1", "t", "1", None))
    assert api.request("DELETE", f"/api/admin/v1/webhooks/{hook['id']}").status_code == 204
    assert_problem(api.request("DELETE", f"/api/admin/v1/webhooks/{hook['id']}"), 404)
    assert_problem(api.get(f"/api/admin/v1/webhooks/{hook['id']}"), 404)
    assert api.get("/api/admin/v1/webhooks").json() == []
    assert states(api) == {f"{DEVICE}:1": "dropped"}
    assert worker.run_once(T0) == 0 and receiver.hits == []
    store_events(api, (f"{DEVICE}:2", "t", "1", None))  # a removed webhook no longer fires
    assert len(states(api)) == 1


def test_deliveries_filters_and_limit(api: Api, receiver: Receiver, worker: DeliveryWorker) -> None:
    first = add_hook(api, event="a", url=receiver.url)
    second = add_hook(api, event="ab", url=receiver.url)
    store_events(api, (f"{DEVICE}:1", "ab", "1", None), (f"{DEVICE}:2", "a", "2", None))
    assert worker.run_once(T0) == 3
    assert len(deliveries(api)) == 3
    assert len(deliveries(api, limit=2)) == 2
    assert {e["event_id"] for e in deliveries(api, webhook=second["id"])} == {f"{DEVICE}:1"}
    assert len(deliveries(api, webhook=first["id"])) == 2
    assert [e["webhook_id"] for e in deliveries(api, event=f"{DEVICE}:2")] == [first["id"]]
    assert_problem(api.get("/api/admin/v1/deliveries", params={"limit": 0}), 422)


def test_relay_ingestion_enqueues_once(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    add_hook(api, event="env/", url=receiver.url, headers={"X-Id": "{{PARTICLE_EVENT_ID}}"})
    relay = api.post("/api/admin/v1/relays", json={"name": "gw", "site": "north"}).json()
    device = {"id": DEVICE, "platform": "boron", "site": "north"}
    assert api.post("/api/admin/v1/devices", json=device).status_code == 201
    events = [
        {"id": f"{DEVICE}:{n}", "device_id": DEVICE, "name": name, "data": str(n)}
        for n, name in enumerate(["env/temp", "env/hum", "status"])
    ]
    headers = {"Authorization": f"Bearer {relay['token']}"}
    for _ in range(2):  # a relay retrying the same upload
        response = api.post("/api/relay/v1/events", json={"events": events}, headers=headers)
        assert response.status_code == 200, response.text
    assert sorted(states(api)) == [f"{DEVICE}:0", f"{DEVICE}:1"]
    assert worker.run_once() == 2
    assert sorted(hit.headers["X-Id"] for hit in receiver.hits) == [f"{DEVICE}:0", f"{DEVICE}:1"]


def test_a_slow_receiver_times_out(api: Api, receiver: Receiver) -> None:
    add_hook(api, event="t", url=receiver.url)
    store_events(api, (f"{DEVICE}:1", "t", "1", None))
    receiver.delay = 1.0
    impatient = DeliveryWorker(api.state.sessions, timeout=0.2)
    try:
        assert impatient.run_once(T0) == 1
    finally:
        impatient.close()
    [entry] = deliveries(api)
    assert entry["outcome"] == "failed" and entry["status_code"] is None
    assert entry["error"] == "timeout after 0.2 s" and entry["state"] == "failed"


def test_a_stopping_worker_releases_what_it_has_not_attempted(api: Api, receiver: Receiver) -> None:
    add_hook(api, event="t", url=receiver.url)
    store_events(api, *((f"{DEVICE}:{n}", "t", "1", None) for n in range(3)))
    stopping = DeliveryWorker(api.state.sessions, worker_id="stopping")
    original = stopping.deliver

    def deliver_then_stop(item_id: int, now: datetime) -> Any:
        outcome = original(item_id, now)
        stopping.stopping.set()
        return outcome

    stopping.deliver = deliver_then_stop  # type: ignore[method-assign]
    try:
        assert stopping.run_once(T0) == 1
    finally:
        stopping.close()
    assert sorted(states(api).values()) == ["delivered", "pending", "pending"]
    with api.state.sessions() as session:
        assert session.scalar(select(func.count()).where(OutboxItem.locked_by.is_not(None))) == 0


def test_published_at_of_events_posted_by_a_relay(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    """captured_at if the device knew it, else the relay's relayed_at, else server receipt."""
    add_hook(api, event="t", url=receiver.url + "/hook", format="json")
    token = api.post("/api/admin/v1/relays", json={"name": "phone", "site": "s"}).json()["token"]
    added = api.post("/api/admin/v1/devices", json={"id": DEVICE, "platform": "boron", "site": "s"})
    assert added.status_code == 201, added.text
    events = [
        {"id": "a", "device_id": DEVICE, "name": "t1", "captured_at": "2026-03-01T10:00:00Z",
         "relayed_at": "2026-03-01T10:30:00Z"},
        {"id": "b", "device_id": DEVICE, "name": "t2", "relayed_at": "2026-03-01T10:31:00.5Z"},
        {"id": "c", "device_id": DEVICE, "name": "t3"},
    ]  # fmt: skip
    before = datetime.now(UTC)
    posted = api.post(
        "/api/relay/v1/events",
        auth=False,
        headers={"Authorization": f"Bearer {token}"},
        json={"events": events},
    )
    assert posted.json() == {"accepted": 3, "duplicates": 0}
    assert worker.run_once(datetime.now(UTC) + timedelta(seconds=1)) == 3
    got = {b["event"]: b for b in (json.loads(h.body) for h in receiver.hits)}
    assert got["t1"]["published_at"] == "2026-03-01T10:00:00.000Z"
    assert got["t1"]["bluemule_relayed_at"] == "2026-03-01T10:30:00.000Z"
    assert got["t1"]["bluemule_captured"] == "true"
    assert got["t2"]["published_at"] == "2026-03-01T10:31:00.500Z"
    assert got["t2"]["bluemule_captured"] == "false"
    for body in got.values():
        assert body["bluemule_relay"] == "phone"
        received = datetime.fromisoformat(body["bluemule_received_at"])
        assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
    assert got["t3"]["published_at"] == got["t3"]["bluemule_received_at"]
    assert got["t3"]["bluemule_relayed_at"] == ""
