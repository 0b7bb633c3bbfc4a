"""Stock devices (no bluemule library) through the relay: the server on 127.0.0.1, a
RelayAgent and emulated ``--stock`` Borons on Bumble's virtual link. The relay recognises
Particle's setup advertising, opens the device's sealed mobile secret, verifies the
signed manifest and the parts against the pinned key, and updates the device over Device
OS's control channel; the server ends up showing ``confirmed_running``."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bluemule.emulator.apps import make_app
from bluemule.relay.agent import RunSummary
from bluemule.relay.config import LOGGER, MaintenanceWindow, StructuredFormatter
from bluemule.relay.server_client import RejectedError
from bluemule.server.models import DeviceUpdate
from tests.particle_ctrl.test_plan import boron_system_part
from tests.relay.fleet import fleet
from tests.server.conftest import Api
from tests.server.test_relay_api import add_device, publish, upload
from tests.support.live_server import LiveServer

STOCK = "e00fce68000000000000a1b2"
SECRET = "PX7M3K9QW2LRT4N"  # noqa: S105 - the test device's mobile secret
WRONG = "WRONGWRONGWRONG"
PIN_ANOTHER = ("00" * 32, "release_key")
ASSETS = {"font.bin": bytes(range(256)) * 20, "lut.csv": b"0,1,2,3\n" * 200}


def server_update(api: Api, device_id: str) -> tuple[str, str | None]:
    with api.state.sessions() as session:
        row = session.get(DeviceUpdate, device_id)
        assert row is not None
        return row.state, row.reason


@contextmanager
def captured_logs(token: str) -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """The relay's log lines as the CLI writes them, and the raw records before scrubbing."""
    text = io.StringIO()
    records: list[logging.LogRecord] = []
    formatted = logging.StreamHandler(text)
    formatted.setFormatter(StructuredFormatter(as_json=True, secrets=(token,)))

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    raw = Keep()
    old_level = LOGGER.level
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.addHandler(formatted)
    LOGGER.addHandler(raw)
    try:
        yield text, records
    finally:
        LOGGER.removeHandler(formatted)
        LOGGER.removeHandler(raw)
        LOGGER.setLevel(old_level)


def run_relay(
    api: Api,
    server: LiveServer,
    token: str,
    root: Path,
    rounds: int,
    device_os: int = 6200,
    **settings: Any,
) -> tuple[list[RunSummary], dict[str, Any]]:
    """``rounds`` of sync, BLE pass, upload; the summaries and the device's own view after."""
    key = api.state.signing_key.public_key
    summaries: list[RunSummary] = []

    async def go() -> None:
        async with fleet(
            root / "devices", [STOCK], key, stock={STOCK: SECRET}, device_os=device_os
        ) as f:
            agent = f.agent(server.url, token, root / "relay", **settings)
            try:
                for _ in range(rounds):
                    summaries.append(await agent.run_once())
            finally:
                await agent.aclose()
            shown.update(f.shown(STOCK))

    shown: dict[str, Any] = {}
    asyncio.run(go())
    return summaries, shown


def files_contain(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_stock_boron_gets_app_and_assets_over_the_control_channel(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=SECRET, serial=f"P40LAB{STOCK[-6:].upper()}")
    release_id = upload(api, "v2", 2, assets=ASSETS)
    publish(api, release_id, product_default=True)
    app_sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]

    with captured_logs(token) as (text, records):
        summaries, _ = run_relay(api, server, token, tmp_path, rounds=2)

    (visit,) = summaries[0].devices
    assert (visit.device_id, visit.connected, visit.update) == (STOCK, True, "applied"), visit
    assert summaries[1].devices == []  # confirmed: nothing more to do
    assert server_update(api, STOCK) == ("confirmed_running", None)
    shown = api.get(f"/api/admin/v1/devices/{STOCK}").json()
    assert shown["state"]["app_sha256"] == app_sha
    assert shown["state"]["device_os_version"] == 6200
    assert shown["serial"] == f"P40LAB{STOCK[-6:].upper()}"
    # (c) the secret is nowhere the relay writes: cache, journal, logs (raw or formatted)
    secret = SECRET.encode()
    assert files_contain(tmp_path / "relay", secret) == []
    assert SECRET not in text.getvalue()
    for record in records:
        assert SECRET not in repr(record.__dict__)
    assert "stock_update_started" in text.getvalue()


def test_a_wrong_secret_fails_with_a_name_once_then_backs_off(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=WRONG, serial=STOCK)
    publish(api, upload(api, "v2", 2), product_default=True)

    summaries, _ = run_relay(api, server, token, tmp_path, rounds=3, retry_base=600.0)

    first = summaries[0].devices
    assert [(v.device_id, v.update) for v in first] == [(STOCK, "rejected")]
    assert first[0].reason is not None and first[0].reason.startswith("WRONG_MOBILE_SECRET")
    state, reason = server_update(api, STOCK)
    assert state == "failed" and reason is not None and "WRONG_MOBILE_SECRET" in reason
    assert summaries[1].devices == [] == summaries[2].devices  # one attempt, then backoff


def test_a_part_tampered_in_the_relay_cache_is_never_sent(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=SECRET, serial=STOCK)
    release_id = upload(api, "v2", 2, assets=ASSETS)
    publish(api, release_id, product_default=True)
    key = api.state.signing_key.public_key
    seen: dict[str, Any] = {}

    async def go() -> None:
        async with fleet(tmp_path / "devices", [STOCK], key, stock={STOCK: SECRET}) as f:
            before = f.shown(STOCK)
            agent = f.agent(server.url, token, tmp_path / "relay", retry_base=600.0)
            try:
                await agent.sync()
                (update,) = agent.desired.values()
                app_blob = agent.cache.root / update.parts[-1].sha256
                data = bytearray(app_blob.read_bytes())
                data[-1] ^= 1  # flipped on disk after the download was verified
                app_blob.write_bytes(bytes(data))
                seen["visits"] = await agent.ble_pass()
                await agent.upload()
            finally:
                await agent.aclose()
            seen["unchanged"] = f.shown(STOCK) == before

    asyncio.run(go())
    (visit,) = seen["visits"]
    assert visit.update == "rejected" and visit.bytes_sent == 0
    assert seen["unchanged"]  # not one module reached the device
    state, reason = server_update(api, STOCK)
    assert state == "failed" and reason is not None
    # the cache re-hashes on read; trusted_release re-checks against the manifest as well
    assert reason.startswith("UNTRUSTED: the cached copy cannot be read")


def test_a_changed_release_key_is_refused(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=SECRET, serial=STOCK)
    publish(api, upload(api, "v2", 2), product_default=True)
    key = api.state.signing_key.public_key

    async def go() -> str:
        async with fleet(tmp_path / "devices", [STOCK], key, stock={STOCK: SECRET}) as f:
            agent = f.agent(server.url, token, tmp_path / "relay")
            try:
                await agent.sync()
                assert agent.journal.pinned_release_key() == key
                agent.journal.pin_release_key(bytes(32))  # a pin is never replaced
                assert agent.journal.pinned_release_key() == key
                # as if the server now signed with another key: the relay pinned another
                db = sqlite3.connect(agent.config.journal_path)
                with db:
                    db.execute("UPDATE sync_state SET value = ? WHERE key = ?", PIN_ANOTHER)
                db.close()
                agent.etag = None
                with pytest.raises(RejectedError, match="release key changed"):
                    await agent.sync()
                return "refused"
            finally:
                await agent.aclose()

    assert asyncio.run(go()) == "refused"


def test_a_device_below_the_minimum_gets_the_system_part_first(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=SECRET, serial=STOCK)
    system = boron_system_part(6300)
    stored = api.post(
        "/api/admin/v1/deviceos",
        content=system,
        params={"filename": "boron-system-part1@6.3.0.bin"},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert stored.status_code == 201, stored.text
    app = make_app("boron", device_os=6300, tag="v3", product_version=3)
    created = api.upload(app, "v3.bin")
    assert created.status_code == 201, created.text
    assert created.json()["min_device_os"] == 6300
    publish(api, created.json()["id"], product_default=True)

    summaries, shown = run_relay(api, server, token, tmp_path, rounds=2, device_os=6200)

    (visit,) = summaries[0].devices
    assert visit.update == "applied", visit
    assert visit.bytes_sent >= len(system)
    assert summaries[1].devices == []
    assert server_update(api, STOCK) == ("confirmed_running", None)
    state = api.get(f"/api/admin/v1/devices/{STOCK}").json()["state"]
    assert state["device_os_version"] == 6300
    assert state["app_sha256"] == created.json()["app_sha256"]
    assert shown["device_os_version"] == 6300
    assert shown["app"]["sha256"] == created.json()["app_sha256"]


def test_without_a_serial_the_relay_asks_the_device_its_id(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    ghost = "e00fce68000000000000a0a0"  # sorts first, same platform, not in range
    add_device(api, ghost, mobile_secret=WRONG)
    add_device(api, STOCK, mobile_secret=SECRET)  # no serial: no setup code in sync
    release_id = upload(api, "v2", 2)
    publish(api, release_id, product_default=True)

    summaries, shown = run_relay(api, server, token, tmp_path, rounds=2)

    (visit,) = summaries[0].devices
    assert (visit.device_id, visit.update) == (STOCK, "applied"), visit
    assert server_update(api, STOCK) == ("confirmed_running", None)
    # the failed guess is not the ghost's failure: it stays merely cached
    assert server_update(api, ghost) == ("cached_on_relay", None)
    assert summaries[1].devices == []  # the guess backs off; the device is confirmed
    assert (
        shown["app"]["sha256"]
        == api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]
    )


def test_outside_the_window_a_stock_device_is_sighted_once_not_polled(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    add_device(api, STOCK, mobile_secret=SECRET, serial=STOCK)
    release_id = upload(api, "v2", 2)
    publish(api, release_id, product_default=True)
    app_sha = api.get(f"/api/admin/v1/releases/{release_id}").json()["app_sha256"]
    hour = dt.datetime.now(dt.UTC).hour
    closed = MaintenanceWindow.parse(f"{(hour + 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00")

    summaries, shown = run_relay(api, server, token, tmp_path, rounds=3, maintenance_window=closed)

    assert [len(s.devices) for s in summaries] == [1, 0, 0]  # one handshake, then quiet
    (visit,) = summaries[0].devices
    assert visit.connected and visit.update is None
    assert server_update(api, STOCK) == ("cached_on_relay", None)
    assert api.get(f"/api/admin/v1/devices/{STOCK}").json()["state"]["device_os_version"] == 6200
    assert (shown["app"] or {}).get("sha256") != app_sha  # nothing was sent


def test_a_bluemule_device_below_the_minimum_gets_device_os_over_the_control_channel(
    api: Api, server: LiveServer, token: str, tmp_path: Path
) -> None:
    device = "e00fce68000000000000b0b0"
    add_device(api, device, mobile_secret=SECRET)
    stored = api.post(
        "/api/admin/v1/deviceos",
        content=boron_system_part(6300),
        params={"filename": "boron-system-part1@6.3.0.bin"},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert stored.status_code == 201, stored.text
    created = api.upload(make_app("boron", device_os=6300, tag="v3", product_version=3), "v3.bin")
    assert created.status_code == 201, created.text
    publish(api, created.json()["id"], product_default=True)
    key = api.state.signing_key.public_key
    seen: dict[str, Any] = {}

    async def go() -> None:
        async with fleet(
            tmp_path / "devices", [device], key, secrets={device: SECRET}, device_os=6200
        ) as f:
            agent = f.agent(server.url, token, tmp_path / "relay")
            try:
                seen["first"] = await agent.run_once()
            finally:
                await agent.aclose()
            seen["shown"] = f.shown(device)

    asyncio.run(go())
    (visit,) = seen["first"].devices
    assert visit.update == "applied", visit  # Device OS by the control channel, app by ours
    assert seen["shown"]["device_os_version"] == 6300
    assert seen["shown"]["app"]["sha256"] == created.json()["app_sha256"]
    assert server_update(api, device) == ("confirmed_running", None)
