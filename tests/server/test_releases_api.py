"""Release uploads: real bundles and apps, the stored parts, and refusals that store nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator

import pytest

from bluemule.emulator import make_app
from bluemule.image import (
    parse_module,
    platform_by_name,
    read_bundle,
    unwrap_asset_module,
    write_bundle,
)
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.release import build_release
from bluemule.server.app import create_app
from bluemule.server.config import Settings
from bluemule.server.files import bootstrap
from tests.image.fixtures import BUNDLES
from tests.server.conftest import Api, assert_problem

ASSETS = {"sound.wav": b"RIFF" + bytes(range(256)) * 8, "readme.txt": b"hello assets\n"}


def _check_parts_mirror_build_release(api: Api, release: dict[str, object], app: bytes) -> None:
    """The stored parts are exactly what build_release sends for this app and assets."""
    parts = release["parts"]
    assert isinstance(parts, list)
    blobs = [api.state.blobs.read(p["blob_sha256"]) for p in parts]
    assets = [
        (p["name"], unwrap_asset_module(parse_module(b)).data)
        for p, b in zip(parts, blobs, strict=True)
        if p["kind"] == "asset"
    ]
    built = build_release(
        key=SigningKey.generate(),
        device_id=bytes(12),
        app=app,
        assets=assets,
        release_counter=int(str(release["id"])),
        app_name=parts[-1]["name"],
    )
    assert list(built.payloads) == blobs
    for part, manifest_part, blob in zip(parts, built.manifest.parts, blobs, strict=True):
        assert part["size"] == manifest_part.size == len(blob)
        assert part["blob_sha256"] == manifest_part.sha256.hex() == hashlib.sha256(blob).hexdigest()
        assert part["content_sha256"] == manifest_part.content_sha256.hex()
        assert part["original_size"] == manifest_part.original_size
        assert part["flags"] == manifest_part.flags
        assert part["compressed"] == bool(manifest_part.flags & 1)
    assert release["min_device_os"] == built.manifest.min_device_os


def test_upload_particle_bundle(api: Api) -> None:
    data = (BUNDLES / "bundle.zip").read_bytes()
    response = api.upload(data, "bundle.zip", notes="first")
    assert response.status_code == 201, response.text
    release = response.json()
    assert (release["platform"], release["platform_id"]) == ("argon", 12)
    assert (release["version"], release["min_device_os"], release["notes"]) == (3, 4006, "first")
    assert [(p["kind"], p["name"]) for p in release["parts"]] == [
        ("asset", "cat.txt"),
        ("asset", "house.txt"),
        ("asset", "water.txt"),
        ("application", "app.bin"),
    ]
    assert all(p["compressed"] and p["flags"] == 1 for p in release["parts"])
    assert api.state.blobs.read(release["original_sha256"]) == data
    assert release["original_name"] == "bundle.zip"
    _check_parts_mirror_build_release(api, release, read_bundle(data).app)
    assert api.get(f"/api/admin/v1/releases/{release['id']}").json() == release
    assert api.get("/api/admin/v1/releases").json() == [release]
    counts = api.counts()
    assert (counts["releases"], counts["release_parts"], counts["blobs"]) == (1, 4, 5)
    assert counts["blob files"] == 5
    # the same upload again is a new release sharing every blob
    again = api.upload(data, "bundle.zip").json()
    assert again["id"] == release["id"] + 1
    assert api.counts()["blob files"] == 5 and api.counts()["blobs"] == 5


@pytest.mark.parametrize("platform", ["boron", "msom"])
def test_upload_built_bundle_and_bin(api: Api, platform: str) -> None:
    app = make_app(platform, tag="server", assets=ASSETS, product_version=7, device_os=6100)
    bundle = write_bundle("firmware.bin", app, sorted(ASSETS.items()))
    release = api.upload(bundle, "firmware.zip").json()
    info = platform_by_name(platform)
    assert info is not None and info.supports_compressed_ota
    assert (release["platform_id"], release["version"], release["min_device_os"]) == (
        info.id,
        7,
        6100,
    )
    assert [p["name"] for p in release["parts"]] == ["readme.txt", "sound.wav", "firmware.bin"]
    assert all(p["compressed"] for p in release["parts"])
    _check_parts_mirror_build_release(api, release, read_bundle(bundle).app)
    plain = make_app(platform, tag="bin-only")
    only_app = api.upload(plain, "app.bin")
    assert only_app.status_code == 201, only_app.text
    parts = only_app.json()["parts"]
    assert [(p["kind"], p["name"]) for p in parts] == [("application", "app.bin")]
    _check_parts_mirror_build_release(api, only_app.json(), plain)
    listed = api.get("/api/admin/v1/releases").json()
    assert [r["id"] for r in listed] == [only_app.json()["id"], release["id"]]


def _bad_uploads() -> Iterator[tuple[str, bytes, int, str]]:
    yield "invalid-bundle.zip", (BUNDLES / "invalid-bundle.zip").read_bytes(), 422, "application"
    hash_bad = (BUNDLES / "bundle-asset-hash-no-match.zip").read_bytes()
    yield "mismatch.zip", hash_bad, 422, "does not match the SHA-256"
    missing = (BUNDLES / "bundle-missing-assets.zip").read_bytes()
    yield "missing.zip", missing, 422, "lacks"
    yield "random.bin", os.urandom(4096), 422, "not a valid bundle or module"
    yield "empty.bin", b"", 422, "empty"
    app = bytearray(make_app("boron", tag="crc"))
    app[100] ^= 0xFF
    yield "crc.bin", bytes(app), 422, "CRC-32"
    yield "truncated.zip", (BUNDLES / "bundle.zip").read_bytes()[:500], 422, "zip"


def test_bad_uploads_store_nothing(api: Api) -> None:
    before = api.counts()
    for name, data, status, text in _bad_uploads():
        assert_problem(api.upload(data, name), status, text)
        assert api.counts() == before, name
    assert_problem(api.upload(b"x", ""), 422)
    assert api.get("/api/admin/v1/releases").json() == []
    assert_problem(api.get("/api/admin/v1/releases/99"), 404)


def test_oversized_upload_stores_nothing(settings: Settings) -> None:
    small = dataclasses.replace(settings, max_upload_bytes=1000)
    bootstrap(small)
    app = create_app(small)
    try:
        api = Api(app, small)
        before = api.counts()
        data = (BUNDLES / "bundle.zip").read_bytes()
        assert len(data) > 1000
        assert_problem(api.upload(data, "bundle.zip"), 413, "limit")
        assert api.counts() == before
    finally:
        app.state.bluemule.engine.dispose()


def test_failed_commit_removes_new_blobs(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    before = api.counts()

    def broken(self: Session) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Session, "commit", broken)
    response = api.upload((BUNDLES / "bundle.zip").read_bytes(), "bundle.zip")
    assert_problem(response, 500, "internal server error")
    monkeypatch.undo()
    assert api.counts() == before
