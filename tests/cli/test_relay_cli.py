"""``bluemule relay run`` (one-line errors, exit 2 for bad settings and a refused token) and
``bluemule relay status``.

The full command (a killed relay process resuming) is tests/e2e/test_relay_restart.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.services import set_trusted_keys
from bluemule.relay.journal import Journal
from tests.relay.conftest import api, server, settings, token
from tests.relay.fleet import OTHER_KEY
from tests.relay.helpers import DEVICE, reported_states
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.support.hci import linked_controllers
from tests.support.live_server import LiveServer

__all__ = ["api", "server", "settings", "token"]
BLUEMULE = str(Path(sys.executable).parent / "bluemule")


def relay(*args: str | Path, command: str = "run") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEMULE_")}
    return subprocess.run(
        [BLUEMULE, "relay", command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def status(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return relay(*args, command="status")


def one_line(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("bluemule: error: ") and text in result.stderr


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    one_line(relay("--token", "t"), "server-url is not set")
    one_line(relay("--server", "http://127.0.0.1:9", "--cache-dir", tmp_path), "token")
    bad = tmp_path / "relay.toml"
    bad.write_text("scan = 1\n")
    one_line(relay("--config", bad), "unknown setting 'scan'")
    one_line(
        relay("--server", "x", "--token", "t", "--cache-dir", tmp_path, "--transport", "usb:0"),
        "http",
    )
    one_line(
        relay(
            "--server", "http://127.0.0.1:9", "--token", "t", "--cache-dir", tmp_path,
            "--maintenance-window", "late",
        ),
        "maintenance window",
    )  # fmt: skip


def test_a_refused_token_is_a_one_line_error_without_the_token(
    server: LiveServer, tmp_path: Path
) -> None:
    wrong = "rly_wrong_token_value_1234"
    with linked_controllers(1) as hci:
        result = relay(
            "--server", server.url, "--token", wrong, "--cache-dir", tmp_path / "cache",
            "--transport", f"bumble:{hci.monikers[0]}", "--once",
        )  # fmt: skip
    assert result.returncode == 2 and "refused the relay token" in result.stderr
    assert wrong not in result.stderr and wrong not in result.stdout
    assert result.stderr.splitlines()[-1].startswith("bluemule: error: ")


def test_once_with_no_device_in_range(server: LiveServer, token: str, tmp_path: Path) -> None:
    with linked_controllers(1) as hci:
        result = relay(
            "--server", server.url, "--token", token, "--cache-dir", tmp_path / "cache",
            "--transport", f"bumble:{hci.monikers[0]}", "--once",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("online=True desired=0 uploaded=0 reports, 0 events")
    logged = [line.split(" ")[2] for line in result.stderr.splitlines()]
    assert logged[0] == "event=relay_started" and logged[-1] == "event=relay_stopped"
    assert token not in result.stderr


def test_status_shows_what_the_relay_owes_refused_and_updates(tmp_path: Path) -> None:
    one_line(status("--cache-dir", tmp_path), "holds no relay journal")
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.save_sync('"e"', {"site": "north", "devices": [{}, {}]}, 1700000000.0)
    journal.add_events([{"id": "d:1", "device_id": "d"}, {"id": "d:2", "device_id": "d"}])
    journal.refuse(journal.pending("event")[0], "403 device d is not at this relay's site")
    journal.add_report({"device_id": "d", "kind": "sighting"})
    journal.set_checkpoint("e00fce680000000000000001", 3, "transferring", progress=0.25)
    journal.close()
    shown = status("--cache-dir", tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "pending  1 reports, 1 events",
        "synced   1700000000.0",
        "update   e00fce680000000000000001 release 3: transferring 25%",
        "refused  event d:1: 403 device d is not at this relay's site",
    ]
    doc = json.loads(status("--cache-dir", tmp_path, "--json").stdout)
    assert doc["pending"] == {"report": 1, "event": 1} and doc["desired_devices"] == 2
    assert [r["id"] for r in doc["refused"]] == ["d:1"]
    assert doc["updates"][0]["stage"] == "transferring"


def test_once_exits_1_when_a_device_refuses_its_update(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, DEVICE, groups=["beta"])
    publish(api, upload(api, "v2", 2), groups=["beta"])
    device = EmulatedDevice.create(tmp_path / "dev", "boron", device_id=DEVICE)
    set_trusted_keys(device, [OTHER_KEY])  # not the server's key: every release is refused
    config = tmp_path / "relay.toml"
    config.write_text(
        f'server_url = "{server.url}"\ntoken = "{token}"\ncache_dir = "{tmp_path / "cache"}"\n'
        "scan_seconds = 1.0\n"
    )
    config.chmod(0o644)
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}
    with linked_controllers(2) as hci:
        emulator = subprocess.Popen(
            [BLUEMULE, "emulator", "run", str(tmp_path / "dev"), "--transport", hci.monikers[0]],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert emulator.stdout is not None and DEVICE in emulator.stdout.readline()
            result = relay("--config", config, "--transport", f"bumble:{hci.monikers[1]}", "--once")
        finally:
            emulator.terminate()
            emulator.communicate(timeout=10)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == f"{DEVICE}: rejected MANIFEST_COMMIT: UNKNOWN_KEY"
    assert "event=config_readable" in result.stderr and token not in result.stderr
    assert reported_states(api, DEVICE)[-1] == "failed"
