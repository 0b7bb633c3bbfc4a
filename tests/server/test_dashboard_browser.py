"""The dashboard in a real browser: Playwright driving Debian's headless Chromium against a
``bluemule server`` subprocess — log in, pause a rollout, take a screenshot.

Never downloads a browser (no ``playwright install``): it launches ``/usr/bin/chromium``.
Without it the test is skipped locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from bluemule.server.models import Rollout
from tests.server import test_server_cli
from tests.server.conftest import Api
from tests.server.test_dashboard import seed

running = test_server_cli.running
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI installs it: .ci/run)")
    pytest.skip(why)


def test_pause_a_rollout_in_chromium(
    api: Api, running: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        _need(False, "the playwright package is missing (pip install -e '.[dev]')")
        raise
    rollout_id = seed(api)["rollout_id"]
    profile = tmp_path / "profile"
    profile.mkdir()
    shot = tmp_path / "rollout.png"

    url = running[0]
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile),  # a new, empty --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.goto(f"{url}/dashboard/rollouts/{rollout_id}")
            assert "/dashboard/login" in page.url  # not logged in yet
            page.fill("input[name=token]", api.token)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(rf"/dashboard/rollouts/{rollout_id}$"))
            assert page.inner_text("#rollout-status") == "running"
            cookies = browser.cookies()
            assert [c["httpOnly"] for c in cookies] == [True]
            assert api.token not in page.content()

            page.click("#rollout-pause")
            page.wait_for_selector("#rollout-resume")
            assert page.inner_text("#rollout-status") == "paused"
            assert page.is_visible("text=paused by an operator")
            page.screenshot(path=str(shot), full_page=True)

            page.goto(f"{url}/dashboard/devices/e00fce680000000000000001")
            assert "<script>" in page.inner_text("main")  # shown as text, not run
            assert page.locator("main script").count() == 0
        finally:
            browser.close()

    with api.state.sessions() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None and rollout.status == "paused"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    if os.environ.get("BLUEMULE_KEEP_SCREENSHOT"):
        Path(os.environ["BLUEMULE_KEEP_SCREENSHOT"]).write_bytes(data)
