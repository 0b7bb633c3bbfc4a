"""The real ``bluemule server`` process driven by the real ``bluemule admin`` commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bluemule.emulator import make_app
from bluemule.image import write_bundle
from bluemule.server.config import Settings
from tests.image.fixtures import BUNDLES
from tests.particle_ctrl.test_plan import boron_system_part
from tests.support.live_server import free_port

BLUEMULE = str(Path(sys.executable).parent / "bluemule")
DEVICE = "e00fce681234567890abcdef"


def start_server(settings: Settings, *extra: str) -> tuple[str, subprocess.Popen[str]]:
    """A real ``bluemule server`` process on a free port, once it answers ``/healthz``."""
    port = free_port()
    args = [BLUEMULE, "server", "--data-dir", str(settings.data_dir), "--port", str(port), *extra]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0])
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            raise AssertionError("server did not start")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Terminate (kill if it lingers) and reap a server process; idempotent."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture
def running(settings: Settings) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    url, proc = start_server(settings)
    try:
        yield url, proc
    finally:
        stop_server(proc)


def admin(url: str, token: str | None, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEMULE_")}
    env["BLUEMULE_SERVER"] = url
    if token is not None:
        env["BLUEMULE_TOKEN"] = token
    return subprocess.run(
        [BLUEMULE, "admin", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.startswith("bluemule: error:") and result.stderr.count("\n") == 1
    assert text in result.stderr and "Traceback" not in result.stderr


def test_server_and_admin_commands(
    settings: Settings, running: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, _proc = running
    for path in (settings.admin_token_path, settings.signing_key_path, settings.secret_key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = settings.admin_token_path.read_text().strip()

    relay = admin(url, token, "relay", "add", "gateway-1", "--site", "north", "--json")
    assert relay.returncode == 0, relay.stderr
    relay_token = json.loads(relay.stdout)["token"]
    assert relay_token.startswith("bmr_")
    relays = admin(url, token, "relay", "list", "--json")
    assert [r["name"] for r in json.loads(relays.stdout)] == ["gateway-1"]
    assert relay_token not in relays.stdout

    added = admin(
        url, token, "device", "add", DEVICE, "--platform", "boron", "--site", "north",
        "--group", "beta", "--group", "field", "--mobile-secret", "SECRET0123456",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert DEVICE in added.stdout and "SECRET0123456" not in added.stdout
    listed = admin(url, token, "device", "list", "--json")
    assert listed.returncode == 0 and "SECRET0123456" not in listed.stdout
    (device,) = json.loads(listed.stdout)
    assert device["id"] == DEVICE and device["groups"] == ["beta", "field"]
    assert device["has_mobile_secret"] is True and device["site"] == "north"
    shown = admin(url, token, "device", "show", DEVICE)
    assert shown.returncode == 0 and "boron" in shown.stdout
    assert admin(url, token, "device", "list").stdout.startswith(DEVICE)
    elsewhere = "http://127.0.0.1:1"  # the options on the command win over the environment
    by_option = admin(
        elsewhere, None, "device", "show", DEVICE, "--server", url, "--token", token, "--json"
    )
    assert by_option.returncode == 0 and json.loads(by_option.stdout) == device

    uploaded = admin(url, token, "release", "upload", BUNDLES / "bundle.zip", "--notes", "n1")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "release 1: argon" in uploaded.stdout and "compressed" in uploaded.stdout
    app = make_app("boron", tag="cli", assets={"a.txt": b"asset"})
    bundle = tmp_path / "boron.zip"
    bundle.write_bytes(write_bundle("boron.bin", app, [("a.txt", b"asset")]))
    second = admin(url, token, "release", "upload", bundle, "--json")
    assert second.returncode == 0, second.stderr
    release = json.loads(second.stdout)
    assert release["id"] == 2 and release["platform"] == "boron"
    assert [p["kind"] for p in release["parts"]] == ["asset", "application"]
    releases = admin(url, token, "release", "list", "--json")
    assert [r["id"] for r in json.loads(releases.stdout)] == [2, 1]
    assert "release 2: boron" in admin(url, token, "release", "list").stdout

    system = tmp_path / "boron-system-part1@6.3.0.bin"
    system.write_bytes(boron_system_part(6300))
    stored = admin(url, token, "deviceos", "upload", system)
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith("stored boron    system_part 1 v6300")
    again = admin(url, token, "deviceos", "upload", system)
    assert again.returncode == 2 and "already stored" in again.stderr
    assert "Traceback" not in again.stderr
    not_os = admin(url, token, "deviceos", "upload", bundle)
    assert not_os.returncode == 2 and "boron.zip" in not_os.stderr
    listed_os = admin(url, token, "deviceos", "list", "--json")
    assert [(p["kind"], p["version"]) for p in json.loads(listed_os.stdout)] == [
        ("system_part", 6300)
    ]
    assert "system_part 1 v6300" in admin(url, token, "deviceos", "list").stdout
    serial = admin(
        url, token, "device", "add", "e00fce68000000000000a1b2", "--platform", "boron",
        "--site", "north", "--serial", "P40LAB123ABC", "--json",
    )  # fmt: skip
    assert serial.returncode == 0 and json.loads(serial.stdout)["serial"] == "P40LAB123ABC"

    # refusals: one line on stderr, exit 2, nothing stored
    bad = admin(url, token, "release", "upload", BUNDLES / "bundle-asset-hash-no-match.zip")
    one_line_error(bad, "does not match the SHA-256")
    one_line_error(admin(url, "wrong", "device", "list"), "wrong admin token")
    one_line_error(admin(url, None, "device", "list"), "no admin token")
    one_line_error(
        admin(url, token, "device", "add", DEVICE, "--platform", "boron", "--site", "x"),
        "exists",
    )
    one_line_error(admin(url, token, "device", "show", "0" * 24), "no device")
    one_line_error(admin(f"http://127.0.0.1:{free_port()}", token, "relay", "list"), "cannot reach")
    assert len(json.loads(admin(url, token, "release", "list", "--json").stdout)) == 2

    # a lost phone: revoked, its token stops working
    revoked = admin(url, token, "relay", "revoke", "gateway-1")
    assert revoked.returncode == 0 and "relay gateway-1 revoked at" in revoked.stdout
    assert "REVOKED" in admin(url, token, "relay", "list").stdout
    shown = json.loads(admin(url, token, "relay", "revoke", "gateway-1", "--json").stdout)
    assert shown["name"] == "gateway-1" and shown["revoked_at"]
    sync = httpx.get(f"{url}/api/relay/v1/sync", headers={"Authorization": f"Bearer {relay_token}"})
    assert sync.status_code == 401
    one_line_error(admin(url, token, "relay", "revoke", "nobody"), "no relay")

    # the server's own output (logs, access log) never carried a secret
    _, proc = running
    proc.terminate()
    output = proc.communicate(timeout=15)[0]
    assert "Uvicorn running" in output or "bluemule server" in output  # it did log
    for secret in (token, relay_token, "SECRET0123456"):
        assert secret not in output


def test_server_refuses_an_unusable_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [BLUEMULE, "server", "--data-dir", tmp_path / "d", "--database-url", "nosuch://x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    one_line_error(result, "database")
