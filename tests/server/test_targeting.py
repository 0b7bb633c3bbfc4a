"""Particle's targeting precedence."""

from __future__ import annotations

from dataclasses import replace

from bluemule.server.targeting import TargetDevice, TargetRelease, desired_release, impacted

BORON = 13
DEVICE = TargetDevice("a" * 24, BORON, 4242, frozenset({"north", "pilot"}))
V1 = TargetRelease(1, BORON, 4242, 1, product_default=True)
V2 = TargetRelease(2, BORON, 4242, 2, groups=frozenset({"north"}))
V3 = TargetRelease(3, BORON, 4242, 3, groups=frozenset({"south"}))
V4 = TargetRelease(4, BORON, 4242, 4, groups=frozenset({"pilot"}))
OTHER_PRODUCT = TargetRelease(5, BORON, 1, 9, groups=frozenset({"north"}), product_default=True)
OTHER_PLATFORM = TargetRelease(6, 35, 4242, 9, groups=frozenset({"north"}))


def test_highest_release_in_any_group_wins() -> None:
    assert desired_release(DEVICE, [V1, V2, V3, V4]) == 4
    assert desired_release(DEVICE, [V1, V2, V3]) == 2


def test_product_default_when_no_group_release() -> None:
    assert desired_release(replace(DEVICE, groups=frozenset()), [V1, V2, V3, V4]) == 1
    assert desired_release(replace(DEVICE, groups=frozenset({"east"})), [V2, V3]) is None


def test_lock_overrides_everything_but_development() -> None:
    locked = replace(DEVICE, locked_release=1)
    assert desired_release(locked, [V1, V2, V4]) == 1
    assert desired_release(replace(locked, development=True), [V1, V2, V4]) is None
    assert desired_release(replace(DEVICE, development=True), [V1, V2, V4]) is None


def test_only_the_same_platform_and_product_count() -> None:
    assert desired_release(DEVICE, [OTHER_PRODUCT, OTHER_PLATFORM]) is None
    assert desired_release(DEVICE, [V1, OTHER_PRODUCT, OTHER_PLATFORM]) == 1


def test_ties_go_to_the_newer_release() -> None:
    again = TargetRelease(7, BORON, 4242, 4, groups=frozenset({"north"}))
    assert desired_release(DEVICE, [V4, again]) == 7


def test_impact_of_releasing_to_a_group() -> None:
    south = TargetDevice("b" * 24, BORON, 4242, frozenset({"south"}))
    dev = replace(south, device_id="c" * 24, development=True)
    released = replace(V3, groups=frozenset({"south", "north"}))
    assert impacted([DEVICE, south, dev], [V1, V2], [V1, V2, released]) == ["a" * 24, "b" * 24]
