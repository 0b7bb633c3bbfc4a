"""Air time, packets per event and capacity against the reference's own figures."""

from __future__ import annotations

import pytest

from bluemule.linkmodel.radio import LinkParams, Phy


@pytest.mark.parametrize(
    ("phy", "dle", "pair_us"),
    [
        # ble-dfu-anchors.md §7.1: data PDU + T_IFS + empty PDU + T_IFS
        (Phy.LE_1M, False, 296 + 150 + 80 + 150),
        (Phy.LE_2M, False, 152 + 150 + 44 + 150),
        (Phy.LE_1M, True, 2088 + 150 + 80 + 150),
        (Phy.LE_2M, True, 1048 + 150 + 44 + 150),
    ],
)
def test_pair_air_time_matches_the_reference(phy: Phy, dle: bool, pair_us: int) -> None:
    params = LinkParams(phy=phy, dle=dle)
    assert params.pair_us(params.ll_payload) == pair_us


@pytest.mark.parametrize(
    ("phy", "packets", "ceiling_kbps"),
    [(Phy.LE_2M, 5, 81), (Phy.LE_1M, 3, 49)],  # device-library.md §3.4, 15 ms interval
)
def test_boron_capacity_matches_the_reference_ceilings(
    phy: Phy, packets: int, ceiling_kbps: float
) -> None:
    params = LinkParams(phy=phy)  # defaults: DLE, MTU 247, 15 ms, 7.5 ms event
    assert params.packets_per_event == packets
    assert params.capacity_bytes_per_s / 1000 == pytest.approx(ceiling_kbps, rel=0.03)


@pytest.mark.parametrize(
    ("interval_ms", "ceiling_1m", "ceiling_2m"),
    [(7.5, 98, 163), (30, 24, 41), (45, 16, 27)],  # the rest of the §3.4 table
)
def test_capacity_follows_the_interval(
    interval_ms: float, ceiling_1m: float, ceiling_2m: float
) -> None:
    us = round(interval_ms * 1000)
    one = LinkParams(phy=Phy.LE_1M, interval_us=us).capacity_bytes_per_s / 1000
    two = LinkParams(phy=Phy.LE_2M, interval_us=us).capacity_bytes_per_s / 1000
    assert one == pytest.approx(ceiling_1m, rel=0.03)
    assert two == pytest.approx(ceiling_2m, rel=0.03)


def test_without_dle_a_full_write_takes_several_packets() -> None:
    params = LinkParams(dle=False)
    assert params.fragments(3 + 244) == [27] * 9 + [8]
    assert params.fragments(3 + 6) == [13]
    assert params.fragments_per_write == 10


def test_phone_packet_cap_and_parameter_checks() -> None:
    assert LinkParams(central_max_packets=4).packets_per_event == 4
    with pytest.raises(ValueError, match="interval"):
        LinkParams(interval_us=1000)
    with pytest.raises(ValueError, match="MTU"):
        LinkParams(att_mtu=600)
