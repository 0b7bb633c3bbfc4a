"""Hostile files and device reports: the planner returns a plan or a :class:`PlanError`,
never anything else, and every plan it returns is one Device OS could install (marker
``fuzz``; ``BLUEMULE_FUZZ_EXAMPLES`` examples per test, 400 by default)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluemule.image import ModuleFunction, parse_module
from bluemule.particle_ctrl.plan import (
    DeviceAsset,
    DeviceModule,
    DeviceState,
    InputFile,
    PlanError,
    make_plan,
)
from tests.image.test_fuzz import FUZZ, any_input

pytestmark = pytest.mark.fuzz

MODULES = st.lists(
    st.builds(
        DeviceModule,
        st.sampled_from([2, 4, 5, 8, 9, 0, 77]),
        st.integers(0, 3),
        st.integers(0, 0xFFFF),
    ),
    max_size=5,
)
STATES = st.builds(
    DeviceState,
    st.sampled_from([12, 13, 23, 26, 32, 35, 0, 999]),
    MODULES.map(tuple),
    st.lists(st.builds(DeviceAsset, st.text(max_size=8), st.binary(min_size=32, max_size=32))).map(
        tuple
    ),
    st.just(()),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@FUZZ
@given(st.lists(any_input(), min_size=1, max_size=3), STATES)
def test_make_plan_refuses_with_plan_errors_only(files: list[bytes], device: DeviceState) -> None:
    inputs = [InputFile(f"f{i}.bin", data) for i, data in enumerate(files)]
    try:
        plan = make_plan(inputs, device)
    except PlanError as exc:
        refusal: PlanError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert refusal.reason and str(refusal)
        return
    assert not device.protected
    staged = [i for i, s in enumerate(plan.steps) if s.staged]
    assets = [i for i, s in enumerate(plan.steps) if not s.staged]
    assert all(a > s for a in assets for s in staged)  # assets after every staged module
    assert len({(s.function, s.index) for s in plan.steps if s.staged}) == len(staged)
    for step in plan.steps:
        module = parse_module(step.data)
        assert module.crc_ok
        assert step.sha256 == module.suffix.sha256
        if step.function != ModuleFunction.ASSET:
            assert module.prefix.platform_id == device.platform_id
