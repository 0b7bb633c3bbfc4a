"""Staged rollouts: stage assignment, thresholds, self-pausing, manual control, retry."""

from __future__ import annotations

import pytest

from bluemule.server.rollouts import (
    RolloutPlan,
    RolloutState,
    Stage,
    Status,
    UpdateState,
    assign_stages,
    eligible,
    evaluate,
    next_stage,
    pause,
    resume,
    retry,
)

C, F, P = UpdateState.CONFIRMED, UpdateState.FAILED, UpdateState.PENDING


def fleet(n: int, groups: dict[int, str] | None = None) -> dict[str, frozenset[str]]:
    groups = groups or {}
    return {f"{i:024x}": frozenset({groups[i]}) if i in groups else frozenset() for i in range(n)}


def test_stage_assignment_by_group_then_percentage_is_stable() -> None:
    devices = fleet(100, {0: "pilot", 1: "pilot"})
    plan = RolloutPlan(
        1, (Stage(groups=frozenset({"pilot"})), Stage(percent=10), Stage(percent=100))
    )
    assigned = assign_stages(plan, devices)
    assert sorted(d for d, s in assigned.items() if s == 0) == [f"{0:024x}", f"{1:024x}"]
    assert sum(1 for s in assigned.values() if s == 1) == 10  # 10% of the 98 left, rounded up
    assert sum(1 for s in assigned.values() if s == 2) == 88
    assert assign_stages(plan, devices) == assigned


def test_success_threshold_opens_the_next_stage_and_finishes() -> None:
    devices = fleet(10)
    plan = RolloutPlan(7, (Stage(percent=20), Stage(percent=100)), success_threshold=1.0)
    assigned = assign_stages(plan, devices)
    first = [d for d, s in assigned.items() if s == 0]
    state = evaluate(plan, RolloutState(), assigned, {})
    assert (state.stage, eligible(state, assigned)) == (0, set(first))
    state = evaluate(plan, state, assigned, {first[0]: C})
    assert state.stage == 0
    done = dict.fromkeys(first, C)
    state = evaluate(plan, state, assigned, done)
    assert state.stage == 1
    assert eligible(state, assigned) == set(devices)
    state = evaluate(plan, state, assigned, dict.fromkeys(devices, C))
    assert state.status == Status.FINISHED


def test_error_threshold_pauses_by_itself_and_resume_and_retry() -> None:
    devices = fleet(5)
    plan = RolloutPlan(3, (Stage(percent=100),), success_threshold=0.8, error_threshold=0.1)
    assigned = assign_stages(plan, devices)
    ids = sorted(devices)
    states = {ids[0]: F, ids[1]: C}
    state = evaluate(plan, RolloutState(), assigned, states)
    assert state.status == Status.PAUSED
    assert "1 of 5 devices failed" in (state.reason or "")
    assert eligible(state, assigned) == set()
    assert evaluate(plan, resume(state), assigned, states).status == Status.PAUSED  # still bad
    states = retry(states, ids[0])
    assert states[ids[0]] == P
    state = evaluate(plan, resume(state), assigned, states)
    assert state.status == Status.RUNNING
    assert eligible(state, assigned) == set(devices)


def test_manual_pause_and_next_stage() -> None:
    plan = RolloutPlan(1, (Stage(percent=50), Stage(percent=100)))
    state = pause(RolloutState())
    assert (state.status, state.reason) == (Status.PAUSED, "paused by an operator")
    state = next_stage(plan, state)
    assert (state.stage, state.status) == (1, Status.RUNNING)
    assert next_stage(plan, state) == state  # no stage after the last


@pytest.mark.parametrize(
    "stage", [{}, {"groups": frozenset({"a"}), "percent": 5}, {"percent": 0}, {"percent": 101}]
)
def test_bad_stages_are_refused(stage: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="stage"):
        Stage(**stage)  # type: ignore[arg-type]
