"""The protocol cores over the modelled link: results, determinism, targets, faults."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bluemule.linkmodel.baseline import BaselineParams
from bluemule.linkmodel.device import NotifyMode
from bluemule.linkmodel.model import run_bluemule
from bluemule.linkmodel.radio import LinkParams, Phy
from bluemule.linkmodel.scenario import (
    APP_SIZE,
    Scenario,
    check_installed,
    fresh_boron,
    make_release,
    report,
    run_baseline_on,
    run_bluemule_on,
)
from bluemule.protocol.device_services import DeviceOsError
from bluemule.protocol.release import Release

APP = make_release(APP_SIZE)
DEFAULT = Scenario()
COALESCED = replace(DEFAULT, device=replace(DEFAULT.device, notify=NotifyMode.COALESCED))
BLOCKING = replace(DEFAULT, device=replace(DEFAULT.device, notify=NotifyMode.BLOCKING))


def utilisation(scenario: Scenario, release: Release = APP) -> float:
    result = run_bluemule_on(scenario, release)
    return result.throughput_kBps * 1000 / scenario.link.capacity_bytes_per_s


def test_same_inputs_give_the_same_numbers() -> None:
    assert report(DEFAULT, with_assets=False) == report(DEFAULT, with_assets=False)


def test_a_default_update_installs_the_app_and_accounts_for_its_time() -> None:
    device = fresh_boron(DEFAULT.device)
    result = run_bluemule(APP, device, DEFAULT.link, DEFAULT.device)
    check_installed(device, APP)  # reset, bootloader copy, reconnect and verification ran
    assert result.outcome == "applied"
    assert (result.bytes_resent, result.dropped_writes, result.gaps) == (0, 0, 0)
    assert result.erase_seconds == pytest.approx(64 * 0.050)  # 256 KiB in 4 KB sectors
    # the update = erase + streaming + requests, checks and the manifest (well under 1 s)
    rest = result.seconds - result.erase_seconds - result.streaming_seconds
    assert 0 < rest < 1
    assert result.end_to_end_kBps < result.throughput_kBps


@pytest.mark.parametrize("phy", [Phy.LE_2M, Phy.LE_1M])
def test_default_window_meets_the_target_when_acks_do_not_block_the_worker(phy: Phy) -> None:
    """Window 4096 / ack interval 1024 (constants.py) with PROGRESS sent by its own thread."""
    assert utilisation(replace(COALESCED, link=LinkParams(phy=phy))) >= 0.85


def test_blocking_notifications_cap_the_device_at_one_ack_interval_per_event() -> None:
    """The worker waits for each notification until the end of the event that sends it, so
    it takes at most ack_interval bytes per connection event (68 kB/s at 15 ms), 0.84 of the
    2M link. A wider ack interval with a wider window lifts the cap."""
    result = run_bluemule_on(BLOCKING, APP)
    ceiling = BLOCKING.device.ack_interval / (BLOCKING.link.interval_us / 1e6) / 1000
    assert result.throughput_kBps <= ceiling * 1.001
    assert utilisation(BLOCKING) < 0.85
    wide = replace(BLOCKING.device, window=8192, ack_interval=4096, rx_buffer=8192)
    assert utilisation(replace(BLOCKING, device=wide)) >= 0.85
    assert utilisation(replace(BLOCKING, link=LinkParams(phy=Phy.LE_1M))) >= 0.85


def test_speedup_over_the_stop_and_wait_baseline() -> None:
    """A 1 KB request written without response costs two intervals on 2M (34 kB/s), so even
    a full link (81 kB/s) is under 2.4x; written as write requests it is ~10x slower."""
    ours = run_bluemule_on(COALESCED, APP).throughput_kBps
    plain = run_baseline_on(DEFAULT, APP)
    assert plain.outcome == "staged"
    assert plain.throughput_kBps == pytest.approx(1024 / 0.030 / 1000, rel=0.01)
    acked = replace(DEFAULT, baseline=BaselineParams(write_with_response=True))
    assert ours / plain.throughput_kBps >= 2.2
    assert ours / run_baseline_on(acked, APP).throughput_kBps >= 5


def test_dropped_writes_are_resent_and_the_update_completes() -> None:
    """A receive ring of Boron's 2 KB pool, half a window: writes overflow while the worker
    waits for its notifications and programs flash; gaps rewind the sender."""
    release = make_release(64 * 1024, (12_000,))
    device_params = replace(BLOCKING.device, rx_buffer=2048, page_program_us=3000)
    device = fresh_boron(device_params)
    result = run_bluemule(release, device, BLOCKING.link, device_params)
    check_installed(device, release)
    assert result.outcome == "applied"
    assert result.dropped_writes > 0
    assert result.gaps > 0
    # each gap costs at most what was in flight: one window
    assert 0 < result.bytes_resent <= result.gaps * device_params.window


def test_a_wrong_release_fails_on_the_modelled_device() -> None:
    body = bytearray(APP.payloads[0])
    body[5000] ^= 0xFF  # the manifest still names the original bytes
    device = fresh_boron(DEFAULT.device)
    before = device.app
    result = run_bluemule(
        Release(APP.manifest, (bytes(body),)), device, DEFAULT.link, DEFAULT.device
    )
    assert result.outcome == "rejected"
    assert device.app == before and device.staged_app is None


def test_finish_validates_the_module_like_device_os() -> None:
    device = fresh_boron(DEFAULT.device)
    device.prepare_update(len(APP.payloads[0]))
    bad = bytearray(APP.payloads[0])
    bad[-1] ^= 0x01  # CRC-32
    device.save_chunk(0, bytes(bad))
    with pytest.raises(DeviceOsError, match="INTEGRITY"):
        device.finish_update(validate_only=True)


@pytest.mark.parametrize("mtu", [39, 100, 185])
def test_small_mtu_needs_long_reads_and_still_completes(mtu: int) -> None:
    scenario = replace(COALESCED, link=LinkParams(att_mtu=mtu, dle=mtu > 100))
    release = make_release(16 * 1024)
    assert run_bluemule_on(scenario, release).outcome == "applied"
    assert run_baseline_on(scenario, release).outcome == "staged"


def test_mtu_below_the_largest_request_is_refused() -> None:
    with pytest.raises(ValueError, match="MTU of at least 39"):
        run_bluemule(APP, fresh_boron(DEFAULT.device), LinkParams(att_mtu=23), DEFAULT.device)


def test_app_and_assets_scenario() -> None:
    doc = report(DEFAULT)
    big = doc["app_plus_1MB_assets"]
    assert big["bluemule"]["outcome"] == "applied"
    assert big["bluemule"]["payload_bytes"] > APP_SIZE + (1 << 20)
    assert doc["app_plus_1MB_assets_seconds"] == pytest.approx(big["bluemule"]["seconds"], abs=0.01)
    assert big["stop_and_wait"]["seconds"] > big["bluemule"]["seconds"]


def test_the_default_device_sends_acks_from_a_notifier_thread() -> None:
    """docs/protocol.md §9: the default scenario is the specified device library."""
    assert DEFAULT.device.notify is NotifyMode.COALESCED
    assert utilisation(DEFAULT) >= 0.85
