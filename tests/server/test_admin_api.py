"""The admin API in-process: first start, auth, relays, devices, problem responses."""

from __future__ import annotations

import hashlib
import stat

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from bluemule.home import load_signing_key
from bluemule.server.config import Settings
from bluemule.server.db import MIGRATIONS
from bluemule.server.files import bootstrap
from bluemule.server.models import Device, Relay
from tests.server.conftest import Api, assert_problem

DEVICE = "e00fce68aabbccddeeff0011"


def test_first_start_creates_private_files(settings: Settings) -> None:
    first = bootstrap(settings)
    paths = [settings.admin_token_path, settings.signing_key_path, settings.secret_key_path]
    assert first.created == paths
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = settings.admin_token_path.read_text()
    assert len(token) >= 32
    load_signing_key(settings.signing_key_path)
    assert len(settings.secret_key_path.read_bytes()) == 32
    again = bootstrap(settings)  # a second start keeps everything
    assert again.created == []
    assert settings.admin_token_path.read_text() == token


def test_auth_and_openapi(api: Api) -> None:
    missing = api.get("/api/admin/v1/devices", auth=False)
    assert_problem(missing, 401, "missing bearer token")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = api.get("/api/admin/v1/devices", headers={"Authorization": "Bearer nope"})
    assert_problem(wrong, 401, "wrong admin token")
    basic = api.get("/api/admin/v1/relays", headers={"Authorization": "Basic eDp5"})
    assert_problem(basic, 401)
    assert api.get("/healthz", auth=False).json() == {"status": "ok"}
    spec = api.get("/openapi.json", auth=False).json()
    assert "/api/admin/v1/releases" in spec["paths"]
    assert_problem(api.get("/nowhere"), 404)


def test_relays(api: Api) -> None:
    created = api.post("/api/admin/v1/relays", json={"name": "phone-1", "site": "north"})
    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert body["name"] == "phone-1" and body["site"] == "north" and len(token) > 32
    listed = api.get("/api/admin/v1/relays").json()
    assert [r["name"] for r in listed] == ["phone-1"] and "token" not in listed[0]
    with api.state.sessions() as session:
        relay = session.scalars(select(Relay)).one()
        assert relay.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    again = api.post("/api/admin/v1/relays", json={"name": "phone-1", "site": "south"})
    assert_problem(again, 409, "exists")
    assert_problem(api.post("/api/admin/v1/relays", json={"name": "../x", "site": "s"}), 422)
    assert api.counts()["relays"] == 1 and api.counts()["sites"] == 1


def test_devices_never_reveal_the_mobile_secret(api: Api) -> None:
    phrase = "MOBILESECRET123"
    created = api.post(
        "/api/admin/v1/devices",
        json={
            "id": DEVICE.upper(),
            "platform": "boron",
            "site": "north",
            "groups": ["beta", "field", "beta"],
            "mobile_secret": phrase,
        },
    )
    assert created.status_code == 201, created.text
    plain = api.post(
        "/api/admin/v1/devices",
        json={"id": "0" * 24, "platform": "35", "site": "north", "development": True},
    )
    assert plain.status_code == 201, plain.text
    listed = api.get("/api/admin/v1/devices")
    shown = api.get(f"/api/admin/v1/devices/{DEVICE}")
    for response in (created, plain, listed, shown):
        assert phrase not in response.text and '"mobile_secret"' not in response.text
    devices = {d["id"]: d for d in listed.json()}
    assert devices[DEVICE]["has_mobile_secret"] is True
    assert devices[DEVICE]["groups"] == ["beta", "field"]
    assert (devices[DEVICE]["platform"], devices[DEVICE]["platform_id"]) == ("boron", 13)
    assert devices["0" * 24]["has_mobile_secret"] is False
    assert devices["0" * 24]["platform"] == "msom" and devices["0" * 24]["development"]
    assert shown.json() == devices[DEVICE]
    with api.state.sessions() as session:
        device = session.get(Device, DEVICE)
        assert device is not None and device.mobile_secret is not None
        assert phrase.encode() not in device.mobile_secret
        assert api.state.secrets.open(device.mobile_secret, DEVICE) == phrase


def test_device_errors_store_nothing(api: Api) -> None:
    before = api.counts()
    url = "/api/admin/v1/devices"
    assert_problem(api.post(url, json={"id": "xyz", "platform": "boron", "site": "s"}), 422, "id")
    assert_problem(
        api.post(url, json={"id": DEVICE, "platform": "toaster", "site": "s"}), 422, "toaster"
    )
    malformed = api.post(url, content=b'{"id": ', headers={"Content-Type": "application/json"})
    assert_problem(malformed, 400, "not valid JSON")
    assert_problem(api.post(url, json=["not", "an", "object"]), 422)
    assert api.counts() == before
    assert_problem(api.get(f"{url}/{DEVICE}"), 404, DEVICE)
    assert api.post(url, json={"id": DEVICE, "platform": "boron", "site": "s"}).status_code == 201
    assert_problem(api.post(url, json={"id": DEVICE, "platform": "bsom", "site": "s"}), 409)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_schema_is_migrated_and_sqlite_uses_wal(api: Api) -> None:
    with api.state.engine.connect() as conn:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        if api.settings.database_url is None:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (api.settings.data_dir / "bluemule.db").exists() == (api.settings.database_url is None)
