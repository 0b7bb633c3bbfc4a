"""Staged rollouts in the spirit of hawkBit, as pure functions over plain data.

A rollout pushes one release through ordered stages; each stage is a set of device
groups or a percentage of the devices not yet in a stage. A stage's devices may update
once the stage is open. When the share of its devices *confirmed running* the release
reaches the success threshold the next stage opens; when the share that *failed*
exceeds the error threshold the rollout pauses itself. An operator can pause, resume,
open the next stage by hand, abort, and retry a failed device
(``shared/reference/fleet-server-anchors.md`` §3.2).
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace


class UpdateState(enum.StrEnum):
    """Where one device stands with the rollout's release (the dashboard's vocabulary)."""

    PENDING = "pending"
    CACHED = "cached_on_relay"
    TRANSFERRING = "transferring"
    INSTALLED = "installed"
    CONFIRMED = "confirmed_running"
    """Success: the device reported the new release running (nothing less counts)."""
    FAILED = "failed"


@dataclass(frozen=True)
class Stage:
    """Devices in any of ``groups``, or ``percent`` of those left (not both)."""

    groups: frozenset[str] = frozenset()
    percent: int | None = None

    def __post_init__(self) -> None:
        if bool(self.groups) == (self.percent is not None):
            raise ValueError("a stage names groups or a percentage")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError("a stage's percentage is 1–100")


@dataclass(frozen=True)
class RolloutPlan:
    """What to roll out and how fast."""

    release_id: int
    stages: tuple[Stage, ...]
    success_threshold: float = 0.9
    error_threshold: float = 0.1

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a rollout needs at least one stage")
        if not 0 < self.success_threshold <= 1 or not 0 <= self.error_threshold < 1:
            raise ValueError("thresholds are fractions: success in (0, 1], error in [0, 1)")


class Status(enum.StrEnum):
    """The rollout as a whole."""

    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    ABORTED = "aborted"
    """Stopped by an operator for good: no device not yet updated is offered the release."""


DONE = (Status.FINISHED, Status.ABORTED)
"""Statuses no control changes any more."""


@dataclass(frozen=True)
class RolloutState:
    """Mutable only through the functions below (each returns a new state)."""

    stage: int = 0
    status: Status = Status.RUNNING
    reason: str | None = None


@dataclass(frozen=True)
class StageCounts:
    """How a stage is doing."""

    total: int
    confirmed: int
    failed: int

    @property
    def success_rate(self) -> float:
        """Confirmed share (1.0 for an empty stage)."""
        return self.confirmed / self.total if self.total else 1.0

    @property
    def error_rate(self) -> float:
        """Failed share."""
        return self.failed / self.total if self.total else 0.0


def _order(rollout_key: str, device_id: str) -> bytes:
    return hashlib.sha256(f"{rollout_key}:{device_id}".encode()).digest()


def assign_stages(plan: RolloutPlan, devices: Mapping[str, frozenset[str]]) -> dict[str, int]:
    """Stage index of each device (device id → its groups); devices in no stage are left out.

    Percent stages take a stable pseudo-random share (by the device id and release) of
    the devices not yet assigned, so re-evaluating never moves a device between stages.
    """
    assigned: dict[str, int] = {}
    for index, stage in enumerate(plan.stages):
        left = sorted(
            (d for d in devices if d not in assigned), key=lambda d: _order(str(plan.release_id), d)
        )
        if stage.groups:
            chosen = [d for d in left if devices[d] & stage.groups]
        else:
            assert stage.percent is not None
            chosen = left[: math.ceil(len(left) * stage.percent / 100)]
        assigned.update(dict.fromkeys(chosen, index))
    return assigned


def counts(
    stage: int, assignments: Mapping[str, int], states: Mapping[str, UpdateState]
) -> StageCounts:
    """Totals of one stage."""
    members = [d for d, s in assignments.items() if s == stage]
    got = [states.get(d, UpdateState.PENDING) for d in members]
    return StageCounts(
        len(members), got.count(UpdateState.CONFIRMED), got.count(UpdateState.FAILED)
    )


def evaluate(
    plan: RolloutPlan,
    state: RolloutState,
    assignments: Mapping[str, int],
    states: Mapping[str, UpdateState],
) -> RolloutState:
    """Advance or pause after new reports; stable when nothing changed."""
    while state.status == Status.RUNNING:
        c = counts(state.stage, assignments, states)
        if c.error_rate > plan.error_threshold:
            return replace(
                state,
                status=Status.PAUSED,
                reason=(
                    f"stage {state.stage + 1}: {c.failed} of {c.total} devices failed, "
                    f"above the error threshold {plan.error_threshold:.0%}"
                ),
            )
        if c.success_rate < plan.success_threshold:
            return state
        if state.stage + 1 >= len(plan.stages):
            return replace(state, status=Status.FINISHED, reason=None)
        state = replace(state, stage=state.stage + 1)
    return state


def eligible(state: RolloutState, assignments: Mapping[str, int]) -> set[str]:
    """Devices that may update now (none while paused or after an abort)."""
    if state.status in (Status.PAUSED, Status.ABORTED):
        return set()
    return {d for d, s in assignments.items() if s <= state.stage}


def pause(state: RolloutState, reason: str = "paused by an operator") -> RolloutState:
    """Stop handing the release to further devices."""
    return state if state.status in DONE else replace(state, status=Status.PAUSED, reason=reason)


def abort(state: RolloutState, reason: str = "aborted by an operator") -> RolloutState:
    """Stop for good (a finished rollout stays finished)."""
    return state if state.status in DONE else replace(state, status=Status.ABORTED, reason=reason)


def resume(state: RolloutState) -> RolloutState:
    """Continue (re-evaluation may pause again if errors are still above the threshold)."""
    return (
        state
        if state.status != Status.PAUSED
        else replace(state, status=Status.RUNNING, reason=None)
    )


def next_stage(plan: RolloutPlan, state: RolloutState) -> RolloutState:
    """Open the next stage now, whatever the thresholds say."""
    if state.status in DONE or state.stage + 1 >= len(plan.stages):
        return state
    return replace(state, stage=state.stage + 1, status=Status.RUNNING, reason=None)


def retry(states: Mapping[str, UpdateState], device_id: str) -> dict[str, UpdateState]:
    """A failed device goes back to pending."""
    out = dict(states)
    if out.get(device_id) == UpdateState.FAILED:
        out[device_id] = UpdateState.PENDING
    return out


def stage_table(
    plan: RolloutPlan, assignments: Mapping[str, int], states: Mapping[str, UpdateState]
) -> Sequence[StageCounts]:
    """Counts of every stage, for status displays."""
    return [counts(i, assignments, states) for i in range(len(plan.stages))]
