"""The BLE link layer as the model sees it: air time, packets per connection event, capacity.

All times are integer microseconds. Sources (``shared/reference``):

* air time of an LL data PDU: preamble (1 B on 1M, 2 B on 2M) + access address 4 + header 2
  + payload + CRC 3, at 8 µs/B (1M) or 4 µs/B (2M); unencrypted (no MIC). A data PDU and
  the peer's reply are separated by T_IFS = 150 µs. A full 251-byte PDU with an empty reply
  and both inter-frame spaces takes 2468 µs on 1M and 1392 µs on 2M
  (``ble-dfu-anchors.md`` §7.1; ``device-library.md`` §3.4);
* the Boron's SoftDevice reserves ``NRF_SDH_BLE_GAP_EVENT_LENGTH`` = 6 × 1.25 ms = 7.5 ms per
  connection event, with no event extension: 3 full writes per event on 1M, 5 on 2M
  (``device-library.md`` §0.7, §3.4);
* without data length extension the LL payload is 27 bytes (``ble-dfu-anchors.md`` §7.1);
  with it the nRF asks for 251 (``device-library.md`` §3.4).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

T_IFS_US: Final = 150
"""Inter-frame space between a packet and its reply (Bluetooth Core, LL)."""
LL_HEADER_BYTES: Final = 2
ACCESS_ADDRESS_BYTES: Final = 4
CRC_BYTES: Final = 3
L2CAP_HEADER_BYTES: Final = 4
ATT_WRITE_HEADER_BYTES: Final = 3
"""Opcode + handle, for writes and notifications."""
LL_PAYLOAD_NO_DLE: Final = 27
LL_PAYLOAD_DLE: Final = 251
BORON_EVENT_LENGTH_US: Final = 7500
"""``NRF_SDH_BLE_GAP_EVENT_LENGTH`` 6 × 1.25 ms (device-library.md §3.4)."""


class Phy(enum.Enum):
    """LE PHY of the connection (Coded is not modelled)."""

    LE_1M = "1M"
    LE_2M = "2M"

    @property
    def us_per_byte(self) -> int:
        """Air time of one byte."""
        return 8 if self is Phy.LE_1M else 4

    @property
    def preamble_bytes(self) -> int:
        """Preamble length."""
        return 1 if self is Phy.LE_1M else 2


@dataclass(frozen=True)
class LinkParams:
    """One connection's parameters, as negotiated by the phone and the device."""

    interval_us: int = 15_000
    """Connection interval (phones at high priority: 11.25–15 ms; device-library.md §3.3)."""
    phy: Phy = Phy.LE_2M
    dle: bool = True
    """Data length extension: LL payload 251 instead of 27."""
    att_mtu: int = 247
    event_length_us: int = BORON_EVENT_LENGTH_US
    central_max_packets: int | None = None
    """The phone's own cap on packets per event (None: only the event length limits)."""
    notifications_per_event: int = 1
    """The device sends at most this many notifications per connection event (§3.5)."""

    def __post_init__(self) -> None:
        if self.interval_us < 7_500 or self.interval_us > 4_000_000:
            raise ValueError("the connection interval must be 7.5 ms to 4 s")
        if not 23 <= self.att_mtu <= 517:
            raise ValueError("the ATT MTU must be 23 to 517")
        if self.event_length_us <= 0:
            raise ValueError("the event length must be positive")
        if self.notifications_per_event < 1:
            raise ValueError("at least one notification per event")

    @property
    def ll_payload(self) -> int:
        """Largest LL data PDU payload."""
        return LL_PAYLOAD_DLE if self.dle else LL_PAYLOAD_NO_DLE

    @property
    def max_value(self) -> int:
        """Largest characteristic value in one write or notification (ATT_MTU − 3)."""
        return self.att_mtu - ATT_WRITE_HEADER_BYTES

    @property
    def event_budget_us(self) -> int:
        """Radio time the device gives one connection event."""
        return min(self.event_length_us, self.interval_us)

    def air_us(self, ll_payload: int) -> int:
        """Air time of one LL data PDU with ``ll_payload`` bytes (0: an empty PDU)."""
        size = self.phy.preamble_bytes + ACCESS_ADDRESS_BYTES + LL_HEADER_BYTES + CRC_BYTES
        return (size + ll_payload) * self.phy.us_per_byte

    def pair_us(self, central_payload: int, peripheral_payload: int = 0) -> int:
        """A central PDU, the device's reply, and both inter-frame spaces."""
        return self.air_us(central_payload) + self.air_us(peripheral_payload) + 2 * T_IFS_US

    def fragments(self, att_pdu_size: int) -> list[int]:
        """LL payload sizes carrying one ATT PDU (plus its L2CAP header)."""
        total = att_pdu_size + L2CAP_HEADER_BYTES
        full, rest = divmod(total, self.ll_payload)
        return [self.ll_payload] * full + ([rest] if rest else [])

    @property
    def write_packet(self) -> int:
        """LL payload of the first packet of a largest write (the size that fills events)."""
        return min(self.ll_payload, ATT_WRITE_HEADER_BYTES + self.max_value + L2CAP_HEADER_BYTES)

    @property
    def packets_per_event(self) -> int:
        """Central packets of ``write_packet`` bytes one event carries.

        ``device-library.md`` §3.4 takes floor(event length / pair time). The model lets
        the event end right after the last reply (no trailing T_IFS), i.e.
        floor((event length + T_IFS) / pair time); at the Boron's 7.5 ms both give 3 (1M)
        and 5 (2M) with DLE and 11 / 15 without, and the slack is what a notification's
        bytes ride on.
        """
        n = (self.event_budget_us + T_IFS_US) // self.pair_us(self.write_packet)
        if self.central_max_packets is not None:
            n = min(n, self.central_max_packets)
        return max(1, n)

    @property
    def fragments_per_write(self) -> int:
        """LL packets one largest write takes."""
        return len(self.fragments(ATT_WRITE_HEADER_BYTES + self.max_value))

    @property
    def capacity_bytes_per_s(self) -> float:
        """Characteristic-value bytes per second with largest writes back to back and empty
        replies: the ceiling of ``device-library.md`` §3.4 (≈ 81 kB/s on 2M, ≈ 49 kB/s on
        1M, at a 15 ms interval with DLE and MTU 247)."""
        per_event = self.packets_per_event * self.max_value / self.fragments_per_write
        return per_event / (self.interval_us / 1e6)

    def describe(self) -> dict[str, object]:
        """The parameters and what follows from them, for reports."""
        return {
            "interval_ms": self.interval_us / 1000,
            "phy": self.phy.value,
            "dle": self.dle,
            "ll_payload": self.ll_payload,
            "att_mtu": self.att_mtu,
            "event_length_ms": self.event_length_us / 1000,
            "central_max_packets": self.central_max_packets,
            "notifications_per_event": self.notifications_per_event,
            "full_packet_pair_us": self.pair_us(self.ll_payload),
            "packets_per_event": self.packets_per_event,
            "writes_per_event": round(self.packets_per_event / self.fragments_per_write, 3),
        }


def kbps(byte_count: int, seconds: float) -> float:
    """kB/s with kB = 1000 bytes (as the reference's ceilings)."""
    return byte_count / seconds / 1000 if seconds > 0 else math.inf
