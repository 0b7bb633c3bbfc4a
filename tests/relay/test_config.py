"""Settings from files and flags, the maintenance window, and logs without secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
import struct
from pathlib import Path

import pytest

from bluemule.protocol.messages import Advertisement
from bluemule.relay.config import (
    ConfigError,
    MaintenanceWindow,
    StructuredFormatter,
    build_config,
    read_config_file,
    redact,
    scrub_from_logs,
)
from bluemule.relay.scan import advertisement_from_manufacturer_data

TOKEN = "rly_0123456789abcdef"  # noqa: S105  a test value


def test_file_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "relay.toml"
    toml.write_text(
        'server_url = "http://127.0.0.1:9"\ncache_dir = "~/cache"\n'
        'maintenance_window = "22:00-04:00"\nscan_seconds = 1.5\n'
    )
    values = read_config_file(toml)
    config = build_config({**values, "token": TOKEN, "transport": None})
    assert config.cache_dir == Path("~/cache").expanduser() and config.scan_seconds == 1.5
    assert config.transport == "ble" and config.journal_path.name == "journal.sqlite3"
    assert TOKEN not in repr(config)
    as_json = tmp_path / "relay.json"
    as_json.write_text(json.dumps({"server_url": "https://fleet.example", "token": TOKEN}))
    assert read_config_file(as_json)["token"] == TOKEN
    (tmp_path / "bad.toml").write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        read_config_file(tmp_path / "bad.toml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        read_config_file(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cache_dir": "c", "token": TOKEN}, "server-url is not set"),
        ({"server_url": "http://x", "token": TOKEN}, "cache-dir is not set"),
        ({"server_url": "http://x", "cache_dir": "c"}, "relay token is needed"),
        ({"server_url": "ftp://x", "cache_dir": "c", "token": TOKEN}, "http"),
        ({"server_url": "http://x", "cache_dir": "c", "token": TOKEN, "transport": "usb"}, "ble"),
        ({"server_url": "http://x", "cache_dir": "c", "token": TOKEN, "colour": 1}, "colour"),
        (
            {"server_url": "http://x", "cache_dir": "c", "token": TOKEN, "cache_max_bytes": 0},
            "positive",
        ),
    ],
)
def test_bad_settings(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(values)


def test_maintenance_window_wraps_midnight() -> None:
    night = MaintenanceWindow.parse("22:00-04:00")
    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert night.allows(at.replace(hour=23)) and night.allows(at.replace(hour=3, minute=59))
    assert not night.allows(at.replace(hour=4)) and not night.allows(at.replace(hour=12))
    day = MaintenanceWindow.parse("09:30-17:00")
    assert day.allows(at.replace(hour=9, minute=30)) and not day.allows(at.replace(hour=17))
    for bad in ("9-17", "25:00-01:00", "09:00-09:60"):
        with pytest.raises(ConfigError, match="maintenance window"):
            MaintenanceWindow.parse(bad)


def record(message: str, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("bluemule.relay", logging.INFO, __file__, 1, message, None, None)
    rec.fields = redact(fields)
    return rec


def test_logs_are_structured_and_never_carry_the_token() -> None:
    plain = StructuredFormatter(as_json=False, secrets=(TOKEN,))
    line = plain.format(record("synced", devices=2, token=TOKEN, note=f"Bearer {TOKEN}"))
    assert " event=synced devices=2 token=*** " in line and TOKEN not in line
    assert line.endswith('note="Bearer ***"')
    doc = json.loads(
        StructuredFormatter(as_json=True, secrets=(TOKEN,)).format(
            record("report", device="e00f", mobile_secret="s3cret", url=f"x?t={TOKEN}")  # noqa: S106
        )
    )
    assert doc["event"] == "report" and doc["level"] == "info" and doc["device"] == "e00f"
    assert doc["mobile_secret"] == "***" and doc["url"] == "x?t=***"  # noqa: S105


def test_bleak_manufacturer_data_is_read_as_the_advertisement() -> None:
    advert = Advertisement(bytes.fromhex("e00fce680000000000000b0b"), 13, 42, 0x08)
    raw = advert.encode()
    (company,) = struct.unpack_from("<H", raw)  # bleak keys the data by company id
    assert advertisement_from_manufacturer_data(company, raw[2:]) == advert
    assert advertisement_from_manufacturer_data(0x004C, raw[2:]) is None


def test_an_opened_mobile_secret_is_scrubbed_from_every_line() -> None:
    opened = "QW7M3K9PX2LRT4N"
    formatter = StructuredFormatter(as_json=False, secrets=(TOKEN,))
    before = formatter.format(record("visit", error=f"handshake with {opened} failed"))
    assert opened in before  # unknown to the formatter until the relay opened it
    scrub_from_logs(opened)
    line = formatter.format(record("visit", error=f"handshake with {opened} failed"))
    assert opened not in line and 'error="handshake with *** failed"' in line
