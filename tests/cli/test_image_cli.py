"""``bluemule image …`` through the real console script: outputs, JSON and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bluemule.cli.main import cli
from bluemule.image import parse_combined, parse_module, read_bundle, unwrap_asset_module
from tests.image.fixtures import ASSETS, BINARIES, BUNDLES

BLUEMULE = str(Path(sys.executable).parent / "bluemule")

# Every command and the test that covers it; test_every_command_is_covered keeps this honest.
COVERED = {
    "image inspect": "test_inspect_*",
    "image asset-module": "test_asset_module",
    "image bundle": "test_bundle",
    "image compress": "test_compress_decompress",
    "image decompress": "test_compress_decompress",
    "image combine": "test_combine_split",
    "image split": "test_combine_split",
    "keys generate": "test_flash_cli.py::test_keys_generate_and_show",
    "keys show": "test_flash_cli.py::test_keys_generate_and_show",
    "flash": "test_flash_cli.py::test_flash_emulated_device_then_show",
    "emulator create": "test_flash_cli.py::test_emulator_create_and_bad_inputs",
    "emulator show": "test_flash_cli.py::test_flash_emulated_device_then_show",
    "emulator run": "test_emulator_run.py::test_emulator_run_serves_a_relay",
    "particle info": "test_particle_cli.py::test_particle_info_over_tcp",
    "particle flash": "test_particle_cli.py::test_particle_flash_over_tcp",
    "emulator control-stream": "tests/emulator/test_control_stream.py",
    "emulator publish": "test_events_cli.py::test_emulator_publish",
    "bench link": "tests/linkmodel/test_bench_cli.py::test_bench_link_json_and_table",
    "server": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin relay add": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin relay list": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin relay revoke": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin device add": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin device list": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin device show": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin release upload": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin release list": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin deviceos upload": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin deviceos list": "tests/server/test_server_cli.py::test_server_and_admin_commands",
    "admin webhook add": "tests/server/test_webhooks_cli.py::test_webhook_commands",
    "admin webhook list": "tests/server/test_webhooks_cli.py::test_webhook_commands",
    "admin webhook remove": "tests/server/test_webhooks_cli.py::test_webhook_commands",
    "admin webhook log": "tests/server/test_webhooks_cli.py::test_webhook_commands",
    "admin release publish": "tests/server/test_relay_api.py::test_admin_cli_publish_lock",
    "admin device lock": "tests/server/test_relay_api.py::test_admin_cli_publish_lock",
    "admin device unlock": "tests/server/test_relay_api.py::test_admin_cli_publish_lock",
    "admin rollout start": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "admin rollout status": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "admin rollout pause": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "admin rollout resume": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "admin rollout next": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "admin rollout retry": "tests/server/test_rollouts_api.py::test_rollout_cli",
    "relay run": "tests/e2e/test_relay_restart.py::test_relay_killed_mid_transfer_resumes",
    "demo": "tests/demo/test_demo.py::test_demo_json_is_the_whole_story_and_leaves_nothing",
    "relay status": "test_relay_cli.py::test_status_shows_what_the_relay_owes_refused_and_updates",
    "admin rollout abort": "tests/server/test_rollouts_api.py::test_rollout_cli",
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLUEMULE, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.extend(commands(cmd, f"{prefix}{name} "))
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_command_is_covered_and_has_help() -> None:
    assert sorted(commands(cli)) == sorted(COVERED)
    for command in COVERED:
        result = run(*command.split(), "--help")
        assert result.returncode == 0 and "Usage: bluemule" in result.stdout


def test_inspect_valid_module_json() -> None:
    result = run("image", "inspect", BINARIES / "tinker-6.3.4-msom.bin", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "module" and report["ok"] is True
    assert (report["platform_id"], report["function"], report["index"]) == (35, "user_part", 1)
    assert report["dependencies"] == [{"function": "system_part", "index": 1, "version": 6305}]
    assert (report["product_id"], report["product_version"]) == (35, 4)
    assert report["sha256_ok"] and report["crc_ok"] and report["compressed"] is None
    assert report["start_address"] == 0x085F2000


def test_inspect_bundle_json_and_table() -> None:
    result = run("image", "inspect", BUNDLES / "bundle.zip", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["kind"] == "bundle" and report["ok"]
    assert [a["name"] for a in report["assets"]] == ["cat.txt", "house.txt", "water.txt"]
    assert [d["name"] for d in report["app"]["asset_dependencies"]] == [
        "cat.txt",
        "house.txt",
        "water.txt",
    ]
    table = run("image", "inspect", BUNDLES / "bundle.zip")
    assert table.returncode == 0 and "house.txt" in table.stdout and "valid" in table.stdout


@pytest.mark.parametrize(
    ("path", "code", "text"),
    [
        (BUNDLES / "bundle-asset-hash-no-match.zip", 1, "does not match the SHA-256"),
        (BINARIES / "RC4_bootloader_pad_BM-09.bin", 1, "CRC-32 mismatch"),
        (BINARIES / "unknown.bin", 2, "no Particle module prefix"),
        (BINARIES / "emptybin.bin", 2, "too short"),
        (BUNDLES / "invalid-bundle.zip", 2, "exactly one application"),
        (BINARIES / "does-not-exist.bin", 2, "No such file"),
        (BINARIES, 2, "cannot read"),
    ],
)
def test_inspect_failures(path: Path, code: int, text: str) -> None:
    result = run("image", "inspect", path)
    assert result.returncode == code
    output = result.stdout + result.stderr
    assert text in output
    assert "Traceback" not in output
    if code == 2:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("bluemule: error:")


def test_inspect_problem_json_has_problems() -> None:
    result = run("image", "inspect", BUNDLES / "bundle-missing-assets.zip", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False
    assert report["problems"] == ["application needs asset 'water.txt', which the bundle lacks"]
    assert report["ignored"] == ["assets/.DS_Store"]


def test_asset_module(tmp_path: Path) -> None:
    out = tmp_path / "cat.asset"
    result = run("image", "asset-module", "cat.jpg", ASSETS / "cat.jpg", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    module = parse_module(out.read_bytes())
    assert module.is_compressed and info["size"] == len(module.data)
    assert unwrap_asset_module(module).data == (ASSETS / "cat.jpg").read_bytes()
    plain = tmp_path / "plain.asset"
    assert (
        run(
            "image", "asset-module", "x", ASSETS / "blink.bin", "-o", plain, "--no-compress"
        ).returncode
        == 0
    )
    assert not parse_module(plain.read_bytes()).is_compressed
    bad = run("image", "asset-module", "a/b", ASSETS / "blink.bin", "-o", tmp_path / "x")
    assert bad.returncode == 2 and "path separator" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_bundle(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "one.txt").write_text("one")
    (assets / ".hidden").write_text("skipped")
    out = tmp_path / "out.zip"
    result = run(
        "image",
        "bundle",
        BINARIES / "tinker-6.3.4-msom.bin",
        assets,
        ASSETS / "blink.bin",
        "-o",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["assets"] == ["one.txt", "blink.bin"]
    bundle = read_bundle(out.read_bytes())
    assert bundle.app_name == "tinker-6.3.4-msom.bin" and sorted(bundle.assets) == [
        "blink.bin",
        "one.txt",
    ]
    assert run("image", "inspect", out).returncode == 0


def test_compress_decompress(tmp_path: Path) -> None:
    src = BINARIES / "tinker-6.3.4-msom.bin"
    packed, unpacked = tmp_path / "c.bin", tmp_path / "d.bin"
    assert run("image", "compress", src, "-o", packed).returncode == 0
    inspect = json.loads(run("image", "inspect", packed, "--json").stdout)
    assert inspect["compressed"] == {"original_size": src.stat().st_size}
    assert "COMPRESSED" in inspect["flags"]
    assert run("image", "decompress", packed, "-o", unpacked).returncode == 0
    assert unpacked.read_bytes() == src.read_bytes()
    again = run("image", "compress", packed, "-o", tmp_path / "e.bin")
    assert again.returncode == 2 and "already compressed" in again.stderr


def test_combine_split(tmp_path: Path) -> None:
    a, b = BINARIES / "tracker-bootloader@5.6.0.bin", BINARIES / "tracker-tinker@5.3.1.bin"
    combined = tmp_path / "both.bin"
    assert run("image", "combine", a, b, "-o", combined).returncode == 0
    assert len(parse_combined(combined.read_bytes())) == 2
    report = json.loads(run("image", "inspect", combined, "--json").stdout)
    assert [m["function"] for m in report["modules"]] == ["bootloader", "user_part"]
    assert report["modules"][0]["flags"] == ["COMBINED"]
    result = run("image", "split", combined, "-o", tmp_path / "parts", "--json")
    parts = json.loads(result.stdout)["parts"]
    assert [Path(p["output"]).name for p in parts] == ["01-bootloader.bin", "02-user_part.bin"]
    assert (tmp_path / "parts" / "01-bootloader.bin").read_bytes() == a.read_bytes()
    assert (tmp_path / "parts" / "02-user_part.bin").read_bytes() == b.read_bytes()


def test_usage_error_exits_2() -> None:
    result = run("image", "inspect")
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_inspect_reports_device_protection() -> None:
    protected = json.loads(
        run("image", "inspect", BINARIES / "tracker-bootloader-protected.bin", "--json").stdout
    )
    plain = json.loads(
        run("image", "inspect", BINARIES / "tracker-bootloader@5.6.0.bin", "--json").stdout
    )
    assert (protected["protected"], plain["protected"]) == (True, False)
    assert [e["type"] for e in protected["extensions"]] == ["SECURITY_MODE", "END"]
