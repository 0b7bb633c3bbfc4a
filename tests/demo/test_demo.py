"""``bluemule demo``: the real command, and ``run_demo`` with ``keep``, checked against what
the webhook receiver got and what the fleet server holds; nothing survives a run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from bluemule.demo import DemoError, DemoOptions, DemoStatus, DemoSummary, run_demo
from bluemule.demo.fleet import plan_devices
from bluemule.demo.receiver import EVENT_ID_HEADER, Delivery, ReceiverLog
from bluemule.server.webhook_format import USER_AGENT
from tests.server.test_webhooks import Receiver, receiver

__all__ = ["receiver"]
BLUEMULE = str(Path(sys.executable).parent / "bluemule")
FIELDS = [
    "devices",
    "updated",
    "failed",
    "events_published",
    "events_delivered",
    "duplicate_deliveries",
    "seconds",
    "dashboard_url",
]
PUBLISHED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def demo(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``bluemule demo ARGS`` with its temporary files under ``tmp``."""
    return subprocess.run(
        [BLUEMULE, "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp), **env},
    )


def refused(url: str) -> bool:
    """Nothing listens on the URL's port any more."""
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_json_is_the_whole_story_and_leaves_nothing(tmp_path: Path) -> None:
    proxy = "http://127.0.0.1:9"  # a proxy in the environment must not catch loopback traffic
    started = time.monotonic()
    result = demo(tmp_path, "--devices", "4", "--json", HTTP_PROXY=proxy, ALL_PROXY=proxy)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    summary = json.loads(result.stdout)  # stdout is the JSON object and nothing else
    assert list(summary) == FIELDS
    assert (summary["devices"], summary["updated"], summary["failed"]) == (4, 4, 0)
    # 2 events before the rollout, at least 1 during it, 1 after the update, per device
    assert summary["events_published"] >= 4 * 4
    assert summary["events_delivered"] == summary["events_published"]
    assert summary["duplicate_deliveries"] == 0
    assert 0 < summary["seconds"] < wall  # start to summary, within the process's life
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/dashboard/", summary["dashboard_url"])
    assert refused(summary["dashboard_url"])
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_webhook_url_gets_every_event_once_in_particles_format(
    receiver: Receiver, tmp_path: Path
) -> None:
    result = demo(tmp_path, "--devices", "3", "--seed", "7", "--json", "--webhook-url",
                  f"{receiver.url}/particle")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    hits = list(receiver.hits)
    ids: list[str] = []
    per_device: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
    for hit in hits:
        headers = {k.lower(): v for k, v in hit.headers.items()}
        assert (hit.method, hit.path) == ("POST", "/particle")
        assert headers["user-agent"] == USER_AGENT
        assert headers["content-type"] == "application/x-www-form-urlencoded"
        form = hit.form()
        assert {"event", "data", "coreid", "published_at"} <= set(form)
        assert form["event"].startswith("demo/") and PUBLISHED_AT.match(form["published_at"])
        ids.append(headers[EVENT_ID_HEADER.lower()])
        assert ids[-1].startswith(form["coreid"] + ":")
        per_device[form["coreid"]].append(form)
    # the receiver's own count: every event once, and the demo says the same
    assert len(ids) == len(set(ids)) == summary["events_published"] == summary["events_delivered"]
    assert summary["duplicate_deliveries"] == 0
    assert set(per_device) == {p.device_id for p in plan_devices(3, 7)}
    assert summary["updated"] == 3 == summary["devices"] and summary["failed"] == 0
    for device_id, forms in per_device.items():
        sequences = sorted(int(i.partition(":")[2]) for i in ids if i.startswith(device_id))
        assert sequences == list(range(1, len(forms) + 1))  # nothing missing
        names = Counter(f["event"] for f in forms)
        assert names["demo/boot"] == 1 and names["demo/updated"] == 1
        assert names["demo/reading"] >= 2
        numbers = sorted(json.loads(f["data"])["n"] for f in forms)
        assert numbers == list(range(1, len(forms) + 1))
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_webhook_is_exit_1_with_what_is_missing(tmp_path: Path) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        result = demo(tmp_path, "--devices", "1", "--webhook-url", url)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    verdict = r"FAILED: 1 of 1 devices updated, 0 failed; [\d.]+ s"
    assert any(re.fullmatch(verdict, line) for line in lines), result.stdout
    counts = r"events: (\d+) published, 0 delivered, 0 duplicate deliveries"
    match = next(m for line in lines if (m := re.fullmatch(counts, line)))
    assert f"{match[1]} events did not reach the webhook (see its delivery log)" in lines
    assert "running v2" in result.stdout  # the final table, for a log file
    assert list(tmp_path.iterdir()) == []


def children() -> set[str]:
    """Process ids of this process's children (Linux)."""
    return {
        pid for c in Path("/proc/self/task").glob("*/children") for pid in c.read_text().split()
    }


class KeepUI:
    """Records what the demo shows; while kept, looks at the running system over HTTP."""

    def __init__(self) -> None:
        self.phases: list[str] = []
        self.last: DemoStatus | None = None
        self.seen: dict[str, Any] = {}

    def show(self, status: DemoStatus) -> None:
        if not self.phases or self.phases[-1] != status.phase:
            self.phases.append(status.phase)
        self.last = status

    async def keep(self, summary: DemoSummary) -> None:
        import asyncio  # noqa: PLC0415

        await asyncio.to_thread(self._look, summary)

    def _look(self, summary: DemoSummary) -> None:
        self.seen["children"] = children()
        assert summary.admin_token_path is not None
        token = summary.admin_token_path.read_text().strip()
        self.seen["root"] = summary.admin_token_path.parent.parent
        with httpx.Client(base_url=summary.server_url, timeout=10) as client:
            login = client.post("/dashboard/login", data={"token": token})
            assert login.status_code == 303, login.text
            page = client.get(summary.dashboard_url)
            assert page.status_code == 200
            self.seen["dashboard"] = page.text
            admin = {"Authorization": f"Bearer {token}"}
            api = "/api/admin/v1"
            self.seen["devices"] = client.get(f"{api}/devices", headers=admin).json()
            self.seen["releases"] = client.get(f"{api}/releases", headers=admin).json()
            self.seen["rollouts"] = [
                client.get(f"{api}/rollouts/{n}", headers=admin).json() for n in (1, 2)
            ]
            log = client.get(f"{api}/deliveries", params={"limit": 1000}, headers=admin)
            self.seen["deliveries"] = log.json()


def test_run_demo_keep_serves_the_dashboard_and_the_servers_truth() -> None:
    threads_before, children_before = set(threading.enumerate()), children()
    ui = KeepUI()
    summary = run_demo(DemoOptions(devices=4, keep=True, seed=3), ui)
    seen = ui.seen
    assert summary.ok and summary.devices == summary.updated == 4
    plans = plan_devices(4, 3)
    for plan in plans:
        assert plan.device_id in seen["dashboard"]
    # the server: each device runs the release of its platform, and says so
    releases = {r["platform"]: r for r in seen["releases"]}
    assert set(releases) == {"boron", "msom"}
    assert all(len(r["parts"]) == 4 for r in releases.values())  # 3 assets + the app
    devices = {d["id"]: d for d in seen["devices"]}
    assert set(devices) == {p.device_id for p in plans}
    for plan in plans:
        app_sha = devices[plan.device_id]["state"]["app_sha256"]
        assert app_sha == releases[plan.platform]["app_sha256"]
    platform_of = {r["id"]: r["platform"] for r in seen["releases"]}
    for rollout in seen["rollouts"]:  # two stages per platform: its pilots, then the rest
        assert rollout["status"] == "finished" and len(rollout["stages"]) == 2
        assert {d["state"] for d in rollout["devices"]} == {"confirmed_running"}
        stages = {d["device_id"]: d["stage"] for d in rollout["devices"]}
        platform = platform_of[rollout["release_id"]]
        assert stages == {p.device_id: 1 - p.pilot for p in plans if p.platform == platform}
    # the delivery log agrees with the receiver's count
    delivered = [d["event_id"] for d in seen["deliveries"] if d["outcome"] == "delivered"]
    assert len(delivered) == len(set(delivered)) == summary.events_delivered
    assert summary.events_delivered == summary.events_published
    # what the live display showed last
    assert ui.last is not None and ui.last.phase == "done"
    assert ui.phases[0].startswith("registering") and len(ui.phases) >= 6
    for row in ui.last.devices:
        assert (row.state, row.progress) == ("confirmed_running", 1.0)
        assert row.published == row.delivered >= 4
    assert seen["children"] <= children_before  # all in this process, even while kept
    # nothing survives: no directory, no listening port, no thread
    assert not seen["root"].exists()
    assert refused(summary.server_url)
    assert set(threading.enumerate()) <= threads_before


def test_ctrl_c_mid_run_and_after_keep_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    mid = subprocess.Popen(
        [BLUEMULE, "demo", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob("bluemule-demo-*/devices/*")):  # devices exist: mid-run
        assert time.monotonic() < deadline and mid.poll() is None
        time.sleep(0.05)
    mid.send_signal(signal.SIGINT)
    out, err = mid.communicate(timeout=60)
    assert mid.returncode == 130 and out == ""
    assert err == "bluemule: interrupted; the demo stopped and removed its files\n"
    assert list(tmp_path.iterdir()) == []

    kept = subprocess.Popen(
        [BLUEMULE, "demo", "--devices", "2", "--keep", "--json"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert kept.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "}\n":
        lines.append(kept.stdout.readline())
        assert lines[-1], "the demo ended before printing its summary"
    summary = json.loads("".join(lines))
    assert summary["updated"] == 2
    assert httpx.get(summary["dashboard_url"], timeout=10).status_code in (200, 303, 307)
    kept.send_signal(signal.SIGTERM)
    out, err = kept.communicate(timeout=60)
    assert kept.returncode == 0 and out == ""
    assert "running until Ctrl-C" in err
    assert refused(summary["dashboard_url"])
    assert list(tmp_path.iterdir()) == []


def test_bad_usage_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = demo(tmp_path, "--webhook-url", "ftp://example.invalid/x")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "bluemule: error: webhook URL 'ftp://example.invalid/x' must start with http(s)://\n"
    )
    assert demo(tmp_path, "--devices", "0").returncode == 2
    with pytest.raises(DemoError, match="1 to 64"):
        DemoOptions(devices=65)


def test_plan_mixes_platforms_and_puts_a_third_of_each_in_the_first_stage() -> None:
    plans = plan_devices(7, 11)
    assert [p.platform for p in plans] == ["boron", "msom"] * 3 + ["boron"]
    assert [p.pilot for p in plans] == [True, True, True, False, False, False, False]
    assert len({p.device_id for p in plans}) == 7
    assert all(re.fullmatch(r"e00fce68[0-9a-f]{16}", p.device_id) for p in plans)
    assert plan_devices(7, 11) == plans and plan_devices(7, 12) != plans
    assert [p.product_id for p in plans[:2]] == [13, 35]


def test_receiver_log_counts_duplicates_by_event_id_or_content() -> None:
    log = ReceiverLog()

    def hit(coreid: str, data: str, event_id: str | None = None) -> Delivery:
        headers = {EVENT_ID_HEADER.lower(): event_id} if event_id else {}
        form = {"coreid": coreid, "published_at": "2026-01-01T00:00:00.000Z", "data": data}
        return Delivery("POST", "/hook", headers, form)

    for delivery in (
        hit("a", "1", "a:1"),
        hit("a", "1", "a:1"),  # the same event again
        hit("a", "1", "a:2"),  # same content, another event
        hit("b", "x"),
        hit("b", "x"),  # no id: known by coreid, published_at and data
        hit("b", "y"),
    ):
        log.add(delivery)
    assert (log.distinct(), log.duplicates()) == (4, 2)
    assert log.per_device() == Counter({"a": 2, "b": 2})
