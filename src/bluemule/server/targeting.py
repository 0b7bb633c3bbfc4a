"""Which release each device should run: Particle's precedence, as a pure function.

``shared/reference/fleet-server-anchors.md`` §1.1: a development device gets nothing
automatically (not even a locked release); a locked device gets its locked release;
otherwise the highest release released to any of its groups; otherwise the product
default; otherwise nothing. Only releases for the device's platform and product count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetDevice:
    """What targeting needs to know about a device."""

    device_id: str
    platform_id: int
    product_id: int | None
    groups: frozenset[str] = frozenset()
    development: bool = False
    locked_release: int | None = None


@dataclass(frozen=True)
class TargetRelease:
    """What targeting needs to know about a release."""

    release_id: int
    platform_id: int
    product_id: int | None
    version: int
    """Product version; ties are broken by the newer release id."""
    groups: frozenset[str] = frozenset()
    product_default: bool = False


def _fits(device: TargetDevice, release: TargetRelease) -> bool:
    return release.platform_id == device.platform_id and release.product_id == device.product_id


def _newest(candidates: Iterable[TargetRelease]) -> TargetRelease | None:
    return max(candidates, key=lambda r: (r.version, r.release_id), default=None)


def desired_release(device: TargetDevice, releases: Sequence[TargetRelease]) -> int | None:
    """The release id ``device`` should run, or None for "no automatic update"."""
    if device.development:
        return None
    if device.locked_release is not None:
        return device.locked_release
    fitting = [r for r in releases if _fits(device, r)]
    in_groups = _newest(r for r in fitting if r.groups & device.groups)
    if in_groups is not None:
        return in_groups.release_id
    default = _newest(r for r in fitting if r.product_default)
    return default.release_id if default is not None else None


def impacted(
    devices: Sequence[TargetDevice], before: Sequence[TargetRelease], after: Sequence[TargetRelease]
) -> list[str]:
    """Devices whose desired release a change of releases (``before`` → ``after``) moves."""
    return [d.device_id for d in devices if desired_release(d, before) != desired_release(d, after)]
