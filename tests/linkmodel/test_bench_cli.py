"""``bluemule bench link`` and ``bench/link.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bluemule"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_bench_link_json_and_table() -> None:
    result = run("bench", "link", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["capacity_kBps"] > 0
    for key in ("throughput_kBps", "utilization", "seconds", "bytes_resent"):
        assert key in doc["bluemule"], key
    for key in ("throughput_kBps", "seconds"):
        assert key in doc["stop_and_wait"], key
    for key in ("throughput_kBps", "seconds", "handshake_seconds", "reset_seconds"):
        assert key in doc["control_channel"], key
    assert doc["control_channel"]["seconds"] > doc["stop_and_wait"]["seconds"]
    assert doc["speedup"] > 1
    assert doc["app_plus_1MB_assets_seconds"] > doc["bluemule"]["seconds"]
    assert "description" in doc["app_plus_1MB_assets"]
    scenario = doc["scenario"]
    assert scenario["link"]["phy"] == "2M" and scenario["link"]["packets_per_event"] == 5
    assert scenario["device"]["window"] == 4096
    table = run("bench", "link", "--phy", "1M", "--no-assets", "--window", "8192")
    assert table.returncode == 0, table.stderr
    assert "48.80 kB/s" in table.stdout and "stop-and-wait" in table.stdout


def test_bench_link_bad_options() -> None:
    result = run("bench", "link", "--window", "512", "--ack-interval", "1024")
    assert result.returncode == 2
    assert result.stderr.startswith("bluemule: error:")
    assert run("bench", "link", "--mtu", "23").returncode == 2


def test_bench_script_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "link.py"), "--json", "--no-assets", "--sweep"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert "app_plus_1MB_assets_seconds" not in doc
    assert {(r["notify"], r["window"], r["ack_interval"]) for r in doc["sweep"]} >= {
        ("blocking", 4096, 1024),
        ("coalesced", 4096, 1024),
    }
