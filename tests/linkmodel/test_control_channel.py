"""Particle's control channel on the modelled link: handshake, records, a reset per module."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bluemule.linkmodel.baseline import frame
from bluemule.linkmodel.control_channel import (
    CLIENT_ROUND2,
    CONFIRM,
    RECORD_OVERHEAD,
    ROUND1,
    SERVER_ROUND2,
    ControlChannelParams,
    handshake_frame,
)
from bluemule.linkmodel.scenario import (
    APP_SIZE,
    ASSET_PARTS,
    ASSETS_SIZE,
    Scenario,
    make_release,
    run_baseline_on,
    run_control_channel_on,
)

APP = make_release(APP_SIZE)
DEFAULT = Scenario()


def test_records_carry_16_bytes_around_the_payload() -> None:
    assert RECORD_OVERHEAD == 16
    assert len(frame(1, 253, b"\x0a\x80\x08" + bytes(1024))) == 1024 + 3 + RECORD_OVERHEAD
    # EC-JPAKE messages as mbedTLS encodes them on P-256 (particle.md §5.4)
    assert (ROUND1, SERVER_ROUND2, CLIENT_ROUND2, CONFIRM) == (330, 168, 165, 32)
    assert handshake_frame(CONFIRM) == b"\x20\x00" + bytes(32)


def test_one_module_is_one_handshake_and_no_reset_counted() -> None:
    result = run_control_channel_on(DEFAULT, APP)  # raises unless the app is installed
    t = result.transfer
    assert t.outcome == "installed"
    assert result.sessions == 1
    assert result.reset_seconds == 0
    params = DEFAULT.control
    device_work = params.handshake_device_us / 1e6
    assert device_work < result.handshake_seconds < device_work + 1
    assert t.erase_seconds == pytest.approx(64 * 0.050)
    # everything is accounted for: handshake, erase, streaming, and a short remainder
    rest = t.seconds - result.handshake_seconds - t.erase_seconds - t.streaming_seconds
    assert 0 < rest < 0.5


def test_streaming_matches_the_bare_request_pattern_without_device_latency() -> None:
    bare = replace(
        DEFAULT,
        control=ControlChannelParams(
            system_thread_latency_us=0, crypt_ns_per_byte=DEFAULT.baseline.crypt_ns_per_byte
        ),
    )
    ours = run_control_channel_on(bare, APP).transfer
    baseline = run_baseline_on(DEFAULT, APP)
    assert ours.throughput_kBps == pytest.approx(baseline.throughput_kBps, rel=0.03)
    slow = run_control_channel_on(DEFAULT, APP).transfer
    assert slow.throughput_kBps < 0.75 * baseline.throughput_kBps


def test_every_module_costs_a_session_and_the_resets_between_them_count() -> None:
    sizes = (ASSETS_SIZE // ASSET_PARTS,) * ASSET_PARTS
    release = make_release(APP_SIZE, sizes)
    result = run_control_channel_on(DEFAULT, release)  # app and both assets installed
    assert result.sessions == 3
    assert result.handshake_seconds > 3 * DEFAULT.control.handshake_device_us / 1e6
    p = DEFAULT.control
    app_copy = 64 * p.bootloader_us_per_4k  # the app's reset copies it; assets stage nothing
    expected_resets = (app_copy + 2 * (p.boot_us + p.reconnect_us)) / 1e6
    assert result.reset_seconds == pytest.approx(expected_resets, abs=0.1)


def test_faster_device_crypto_shortens_only_the_handshake() -> None:
    fast = replace(DEFAULT, control=replace(DEFAULT.control, scalar_mult_us=59_000))
    slow_result = run_control_channel_on(DEFAULT, APP)
    fast_result = run_control_channel_on(fast, APP)
    saved = slow_result.transfer.seconds - fast_result.transfer.seconds
    mults = DEFAULT.control.server_round_mults + DEFAULT.control.server_finish_mults
    assert saved == pytest.approx(mults * (0.590 - 0.059), abs=0.1)
    assert fast_result.transfer.streaming_seconds == slow_result.transfer.streaming_seconds
