"""Stock devices: Particle's setup advertising, matching a sighting to a site device, and
the trust checks that stand in for the signature check a stock device does not make."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.emulator.apps import make_app
from bluemule.particle_ctrl.gatt import decode_setup_manufacturer_data as setup_data
from bluemule.particle_ctrl.gatt import setup_advertising_data
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.messages import Advertisement
from bluemule.protocol.release import build_release
from bluemule.relay.scan import StockSighting, stock_sighting
from bluemule.relay.server_client import DesiredPart, DesiredUpdate
from bluemule.relay.stock import MAX_GUESSES, TrustError, stock_candidates, trusted_release

KEY = SigningKey.from_seed(bytes([1]) * 32)
DEVICE = "e00fce68000000000000a1b2"
EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))

# Device OS's listening-mode advertisement of a Boron with setup code A1B2C3 (§5.1)
GOLDEN_SETUP_AD = bytes.fromhex(
    "0d09426f726f6e2d413142324333"  # complete local name "Boron-A1B2C3"
    "0bff62060d00413142324333"  # 0x0662, platform 13, "A1B2C3"
)


def test_golden_setup_advertisement() -> None:
    assert setup_advertising_data("Boron", 13, "A1B2C3") == GOLDEN_SETUP_AD
    assert stock_sighting("AA", GOLDEN_SETUP_AD, -60) == StockSighting("AA", 13, "A1B2C3", -60)
    assert setup_data(GOLDEN_SETUP_AD[16:]) == (13, "A1B2C3")


def test_other_advertisements_are_not_stock_devices() -> None:
    bluemule = Advertisement(bytes.fromhex(DEVICE), 13, 2, 0).encode()
    assert stock_sighting("AA", bytes((len(bluemule) + 1, 0xFF)) + bluemule, -60) is None
    assert setup_data(bytes.fromhex("63060d00413142324333")) is None  # other company
    assert setup_data(bytes.fromhex("62060d004131423243")) is None  # 5 characters
    assert setup_data(bytes.fromhex("62060d0041314232c3a9")) is None  # not ASCII


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5))
@given(st.binary(max_size=64))
def test_any_advertisement_parses_or_is_ignored(data: bytes) -> None:
    found = stock_sighting("AA", data, 0)
    assert found is None or (len(found.setup_code) == 6 and found.setup_code.isalnum())


@pytest.mark.fuzz
@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.integers(0, len(GOLDEN_SETUP_AD)))
def test_a_truncated_setup_advertisement_is_never_misread(cut: int) -> None:
    found = stock_sighting("AA", GOLDEN_SETUP_AD[:cut], 0)
    assert found is None or found == StockSighting("AA", 13, "A1B2C3", 0)


def desired(device_id: str, *, platform: int = 13, code: str | None = None) -> DesiredUpdate:
    return DesiredUpdate(
        device_id, 2, b"m", "0" * 64, (), platform_id=platform, setup_code=code,
        mobile_secret_sealed="sealed",  # noqa: S106
    )  # fmt: skip


def test_the_setup_code_names_the_device() -> None:
    named = desired("e00fce680000000000000002", code="A1B2C3")
    pool = {u.device_id: u for u in (desired("e00fce680000000000000001"), named)}
    found = stock_candidates(StockSighting("AA", 13, "A1B2C3", 0), pool, lambda _: False)
    assert found == ([named], True)
    # two serials ending alike: both are candidates (the device's id tells them apart)
    twin = desired("e00fce680000000000000003", code="A1B2C3")
    both = stock_candidates(
        StockSighting("AA", 13, "A1B2C3", 0), {**pool, twin.device_id: twin}, lambda _: False
    )
    assert both == ([named, twin], True)
    # named but backing off: nobody is tried
    assert stock_candidates(StockSighting("AA", 13, "A1B2C3", 0), pool, lambda _: True) == (
        [],
        True,
    )


def test_without_a_code_only_a_few_devices_of_the_platform_with_secrets() -> None:
    ids = [f"e00fce6800000000000000{i:02x}" for i in range(6)]
    pool = {i: desired(i) for i in ids}
    pool["e00fce6800000000000000ff"] = desired("e00fce6800000000000000ff", platform=32)
    pool[ids[0]] = dataclasses.replace(pool[ids[0]], mobile_secret_sealed=None)
    pool[ids[1]] = dataclasses.replace(pool[ids[1]], setup_code="ZZZZZZ")  # another's code
    tried, named = stock_candidates(
        StockSighting("AA", 13, "A1B2C3", 0), pool, lambda u: u.device_id == ids[2]
    )
    assert not named
    assert [u.device_id for u in tried] == ids[3 : 3 + MAX_GUESSES]


def release_update(key: SigningKey = KEY) -> tuple[DesiredUpdate, dict[str, bytes]]:
    assets = (("font.bin", bytes(range(256)) * 8),)
    release = build_release(
        key=key,
        device_id=bytes.fromhex(DEVICE),
        app=make_app("boron", tag="t", assets=dict(assets)),
        assets=assets,
        release_counter=2,
    )
    blobs = {hashlib.sha256(p).hexdigest(): p for p in release.payloads}
    manifest = release.manifest.encode()
    parts = tuple(
        DesiredPart(i, p.name, p.sha256.hex(), p.size) for i, p in enumerate(release.manifest.parts)
    )
    update = DesiredUpdate(DEVICE, 2, manifest, hashlib.sha256(manifest).hexdigest(), parts)
    return update, blobs


def test_a_verified_release_is_sent_in_manifest_order() -> None:
    update, blobs = release_update()
    manifest, files = trusted_release(update, KEY.public_key, blobs.__getitem__)
    assert [f.name for f in files] == [p.name for p in manifest.parts] == ["font.bin", "app.bin"]
    assert [hashlib.sha256(f.data).digest() for f in files] == [p.sha256 for p in manifest.parts]


def test_a_tampered_part_is_refused() -> None:
    update, blobs = release_update()
    app_blob = update.parts[-1].sha256
    blobs[app_blob] = blobs[app_blob][:-1] + bytes([blobs[app_blob][-1] ^ 1])
    with pytest.raises(TrustError, match=r"'app\.bin' does not match the signed manifest"):
        trusted_release(update, KEY.public_key, blobs.__getitem__)


def test_a_tampered_or_foreign_manifest_is_refused() -> None:
    update, blobs = release_update()
    flipped = bytearray(update.manifest)
    flipped[20] ^= 1
    forged = dataclasses.replace(
        update, manifest=bytes(flipped), manifest_sha256=hashlib.sha256(flipped).hexdigest()
    )
    with pytest.raises(TrustError, match="does not verify"):
        trusted_release(forged, KEY.public_key, blobs.__getitem__)
    with pytest.raises(TrustError, match="SHA-256 in the sync answer"):
        trusted_release(
            dataclasses.replace(update, manifest=bytes(flipped)), KEY.public_key, blobs.__getitem__
        )
    other, other_blobs = release_update(SigningKey.from_seed(bytes([9]) * 32))
    with pytest.raises(TrustError, match="does not verify against the pinned key"):
        trusted_release(other, KEY.public_key, other_blobs.__getitem__)
    with pytest.raises(TrustError, match="signed for device"):
        trusted_release(
            dataclasses.replace(update, device_id="e00fce680000000000000001"),
            KEY.public_key,
            blobs.__getitem__,
        )
    with pytest.raises(TrustError, match="no release key is pinned"):
        trusted_release(update, None, blobs.__getitem__)
