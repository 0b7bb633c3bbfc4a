"""Staged rollouts in the database: the admin API, and the gate sync passes devices through.

The rules are :mod:`bluemule.server.rollouts`; this module stores a :class:`Rollout` row
per rollout and applies them:

* **Who is in it.** When a rollout starts, the devices whose desired release is the
  rollout's release are assigned to stages (``assign_stages``, stable) and the assignment
  is stored; devices that start to want the release later are not in it and wait until
  it finishes (then nothing gates the release any more).
* **Sync.** While a rollout of release R is active (running or paused), a device whose
  desired release is R is offered only if it is in an open stage (``eligible``) and has
  not failed (a failed device waits for ``retry``). While paused no *new* device is
  offered, but a device whose update already started (cached on its relay, transferring
  or installed) is still offered, so it can finish rather than being left half-way.
* **Per-device state.** A device that reports the release's app SHA-256 running is
  ``confirmed_running`` (nothing less counts as success); otherwise the last update
  report for the release (``device_updates``) says where it stands; otherwise ``pending``.
* **Abort.** An aborted rollout is over (its release's active slot is free for a new
  rollout) but keeps gating: every device still wanting the release waits, updates under
  way included, until a newer rollout of the release starts or targeting moves them.
* **Evaluation.** ``evaluate`` runs in the transaction that stores update reports and on
  every status request and command, so a rollout advances or pauses by itself. Resume
  evaluates too: resuming while a stage is still above the error threshold pauses again
  (retry the failed devices first, or open the next stage by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bluemule.server.app import DB, require_admin
from bluemule.server.desired import desired_releases, reported_app_sha256
from bluemule.server.models import Device, DeviceUpdate, Release, Rollout
from bluemule.server.problems import ConflictError, InvalidContentError, NotFoundError
from bluemule.server.rollouts import (
    DONE,
    RolloutPlan,
    RolloutState,
    Stage,
    Status,
    UpdateState,
    abort,
    assign_stages,
    eligible,
    evaluate,
    next_stage,
    pause,
    resume,
)

STARTED = {UpdateState.CACHED, UpdateState.TRANSFERRING, UpdateState.INSTALLED}
"""Updates under way: still offered while the rollout is paused."""
ACTIVE = (Status.RUNNING.value, Status.PAUSED.value)


# --- bodies ---------------------------------------------------------------------------


class StageIn(BaseModel):
    """Devices in any of ``groups``, or ``percent`` of the devices not yet in a stage."""

    groups: list[str] | None = Field(default=None, min_length=1, max_length=100)
    percent: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _one(self) -> StageIn:
        if (self.groups is None) == (self.percent is None):
            raise ValueError("a stage names groups or a percentage, not both")
        return self


class RolloutIn(BaseModel):
    """Start a rollout of a release."""

    release_id: int
    stages: list[StageIn] = Field(min_length=1, max_length=50)
    success_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    error_threshold: float = Field(default=0.1, ge=0.0, lt=1.0)


class StageOut(BaseModel):
    """One stage and how its devices stand."""

    index: int
    groups: list[str] | None
    percent: int | None
    open: bool
    total: int
    counts: dict[str, int]
    """Devices per update state (every state listed)."""
    success_rate: float
    error_rate: float


class DeviceStateOut(BaseModel):
    """One device of the rollout."""

    device_id: str
    stage: int
    state: str
    progress: float | None
    reason: str | None


class RolloutOut(BaseModel):
    """A rollout's status."""

    id: int
    release_id: int
    status: str
    stage: int
    """Index of the newest open stage."""
    reason: str | None
    success_threshold: float
    error_threshold: float
    created_at: datetime
    updated_at: datetime
    stages: list[StageOut]
    devices: list[DeviceStateOut]


# --- rules over rows -------------------------------------------------------------------


def _stage(stored: Mapping[str, object]) -> Stage:
    groups, percent = stored.get("groups"), stored.get("percent")
    if isinstance(groups, list) and groups:
        return Stage(groups=frozenset(str(g) for g in groups))
    assert isinstance(percent, int)
    return Stage(percent=percent)


def plan_of(rollout: Rollout) -> RolloutPlan:
    """The pure plan of a stored rollout."""
    stages = tuple(_stage(s) for s in rollout.stages)
    return RolloutPlan(
        rollout.release_id, stages, rollout.success_threshold, rollout.error_threshold
    )


def state_of(rollout: Rollout) -> RolloutState:
    """The pure state of a stored rollout."""
    return RolloutState(rollout.stage, Status(rollout.status), rollout.reason)


def _store_state(rollout: Rollout, state: RolloutState) -> None:
    if state == state_of(rollout):
        return
    rollout.stage, rollout.status, rollout.reason = state.stage, state.status.value, state.reason
    rollout.active_release_id = None if state.status in DONE else rollout.release_id
    rollout.updated_at = datetime.now(UTC)


def device_states(
    session: Session, release: Release, device_ids: Collection[str]
) -> dict[str, tuple[UpdateState, DeviceUpdate | None]]:
    """Each device's state with ``release`` (see the module notes), and its update row."""
    if not device_ids:
        return {}
    ids = sorted(device_ids)
    devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
    rows = {
        u.device_id: u
        for u in session.scalars(
            select(DeviceUpdate).where(
                DeviceUpdate.device_id.in_(ids), DeviceUpdate.release_id == release.id
            )
        )
    }
    out: dict[str, tuple[UpdateState, DeviceUpdate | None]] = {}
    for device_id in ids:
        device, row = devices.get(device_id), rows.get(device_id)
        if device is not None and reported_app_sha256(device) == release.app_sha256.lower():
            out[device_id] = (UpdateState.CONFIRMED, row)
        elif row is None:
            out[device_id] = (UpdateState.PENDING, None)
        else:
            state = UpdateState(row.state)
            out[device_id] = (
                UpdateState.INSTALLED if state == UpdateState.CONFIRMED else state,
                row,
            )
    return out


def reevaluate(session: Session, rollout: Rollout) -> dict[str, tuple[UpdateState, Any]]:
    """Advance or pause ``rollout`` from its devices' states; returns those states."""
    release = session.get(Release, rollout.release_id)
    assert release is not None
    states = device_states(session, release, rollout.assignments)
    if rollout.status == Status.RUNNING.value:
        plain = {d: s for d, (s, _row) in states.items()}
        _store_state(
            rollout, evaluate(plan_of(rollout), state_of(rollout), rollout.assignments, plain)
        )
    return dict(states)


def reevaluate_for_devices(session: Session, device_ids: Collection[str]) -> None:
    """Re-evaluate the active rollouts that contain any of the devices (reports' transaction)."""
    wanted = set(device_ids)
    if not wanted:
        return
    query = select(Rollout).where(Rollout.status.in_(ACTIVE)).order_by(Rollout.id)
    for rollout in session.scalars(query.with_for_update()):
        if wanted & rollout.assignments.keys():
            reevaluate(session, rollout)


def withheld(session: Session, desired: Mapping[str, Release | None]) -> set[str]:
    """Devices sync must not offer their desired release now (see the module notes).

    The newest rollout of a release decides: while it is active it gates as above; once
    it is aborted every device still wanting the release waits (until a new rollout of
    it starts, or targeting moves the devices elsewhere); once finished nothing gates.
    """
    releases = {r.id for r in desired.values() if r is not None}
    if not releases:
        return set()
    query = select(Rollout).where(Rollout.release_id.in_(sorted(releases))).order_by(Rollout.id)
    newest = {r.release_id: r for r in session.scalars(query)}
    out: set[str] = set()
    for rollout in newest.values():
        if rollout.status == Status.FINISHED.value:
            continue
        members = [d for d, r in desired.items() if r is not None and r.id == rollout.release_id]
        if rollout.status == Status.ABORTED.value:
            out.update(members)
            continue
        release = next(r for r in desired.values() if r is not None and r.id == rollout.release_id)
        states = device_states(session, release, [d for d in members if d in rollout.assignments])
        open_now = eligible(state_of(rollout), rollout.assignments)
        for device_id in members:
            state = states[device_id][0] if device_id in states else None
            if state is None:
                out.add(device_id)  # not in this rollout: waits for it to finish
            elif state == UpdateState.FAILED:
                out.add(device_id)  # until retried
            elif device_id not in open_now and state not in STARTED:
                out.add(device_id)
    return out


def _load(session: Session, rollout_id: int, *, lock: bool = True) -> Rollout:
    query = select(Rollout).where(Rollout.id == rollout_id)
    rollout = session.scalar(query.with_for_update() if lock else query)
    if rollout is None:
        raise NotFoundError(f"no rollout {rollout_id}")
    return rollout


def status_of(rollout: Rollout, states: Mapping[str, tuple[UpdateState, Any]]) -> RolloutOut:
    """The status document."""
    stages: list[StageOut] = []
    for index, stage in enumerate(rollout.stages):
        members = [d for d, s in rollout.assignments.items() if s == index]
        tally = dict.fromkeys((s.value for s in UpdateState), 0)
        for device_id in members:
            tally[states[device_id][0].value] += 1
        total = len(members)
        groups = stage.get("groups")
        percent = stage.get("percent")
        stages.append(
            StageOut(
                index=index,
                groups=list(groups) if isinstance(groups, list) else None,
                percent=percent if isinstance(percent, int) else None,
                open=index <= rollout.stage,
                total=total,
                counts=tally,
                success_rate=tally[UpdateState.CONFIRMED.value] / total if total else 1.0,
                error_rate=tally[UpdateState.FAILED.value] / total if total else 0.0,
            )
        )
    devices = []
    for device_id, index in sorted(rollout.assignments.items(), key=lambda i: (i[1], i[0])):
        state, row = states[device_id]
        devices.append(
            DeviceStateOut(
                device_id=device_id,
                stage=index,
                state=state.value,
                progress=row.progress if row is not None and state != UpdateState.PENDING else None,
                reason=row.reason if row is not None and state != UpdateState.PENDING else None,
            )
        )
    return RolloutOut(
        id=rollout.id,
        release_id=rollout.release_id,
        status=rollout.status,
        stage=rollout.stage,
        reason=rollout.reason,
        success_threshold=rollout.success_threshold,
        error_threshold=rollout.error_threshold,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
        stages=stages,
        devices=devices,
    )


def _answer(session: Session, rollout: Rollout) -> RolloutOut:
    states = reevaluate(session, rollout)
    session.commit()
    return status_of(rollout, states)


def change_state(
    session: Session, rollout_id: int, change: Callable[[RolloutPlan, RolloutState], RolloutState]
) -> RolloutOut:
    """Apply a manual control (pause, resume, next stage), re-evaluate and commit.

    The admin API and the dashboard both come through here.
    """
    rollout = _load(session, rollout_id)
    _store_state(rollout, change(plan_of(rollout), state_of(rollout)))
    return _answer(session, rollout)


def retry(session: Session, rollout_id: int, device_id: str) -> RolloutOut:
    """Clear a failed device's failure so sync offers it the release again, and commit.

    The admin API and the dashboard both come through here.
    """
    rollout = _load(session, rollout_id)
    if rollout.status in (s.value for s in DONE):
        raise ConflictError(f"rollout {rollout_id} is {rollout.status}")
    device_id = device_id.lower()
    if device_id not in rollout.assignments:
        raise NotFoundError(f"device {device_id} is not in rollout {rollout_id}")
    release = session.get(Release, rollout.release_id)
    assert release is not None
    state, row = device_states(session, release, [device_id])[device_id]
    if state != UpdateState.FAILED or row is None:
        raise ConflictError(f"device {device_id} has not failed (it is {state.value})")
    row.state = UpdateState.PENDING.value
    row.progress = None
    row.reason = None
    row.updated_at = datetime.now(UTC)
    session.flush()
    return _answer(session, rollout)


def start(session: Session, body: RolloutIn) -> Rollout:
    """Store a new rollout of the devices that want its release now."""
    release = session.get(Release, body.release_id)
    if release is None:
        raise NotFoundError(f"no release {body.release_id}")
    try:
        stages = tuple(
            Stage(groups=frozenset(s.groups)) if s.groups else Stage(percent=s.percent)
            for s in body.stages
        )
        plan = RolloutPlan(release.id, stages, body.success_threshold, body.error_threshold)
    except ValueError as exc:
        raise InvalidContentError(str(exc)) from exc
    active = select(Rollout.id).where(Rollout.active_release_id == release.id)
    if (existing := session.scalar(active)) is not None:
        raise ConflictError(f"release {release.id} already has an active rollout ({existing})")
    devices = list(session.scalars(select(Device).order_by(Device.id)))
    desired = desired_releases(session, devices)
    targets = {
        d.id: frozenset(d.groups)
        for d in devices
        if (r := desired[d.id]) is not None and r.id == release.id
    }
    now = datetime.now(UTC)
    rollout = Rollout(
        release_id=release.id,
        stages=[
            {"groups": sorted(s.groups)} if s.groups else {"percent": s.percent}
            for s in plan.stages
        ],
        success_threshold=plan.success_threshold,
        error_threshold=plan.error_threshold,
        assignments=assign_stages(plan, targets),
        stage=0,
        status=Status.RUNNING.value,
        reason=None,
        active_release_id=release.id,
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"release {release.id} already has an active rollout") from exc
    return rollout


def rollouts_router() -> APIRouter:
    """``/api/admin/v1/rollouts`` (admin token)."""
    router = APIRouter(
        prefix="/api/admin/v1/rollouts", tags=["rollouts"], dependencies=[Depends(require_admin)]
    )

    @router.post("", status_code=201)
    def create(body: RolloutIn, session: DB) -> RolloutOut:
        """Start a staged rollout (at most one active rollout per release)."""
        return _answer(session, start(session, body))

    @router.get("")
    def listing(session: DB) -> list[RolloutOut]:
        """Every rollout, newest first (re-evaluated)."""
        rollouts = list(
            session.scalars(select(Rollout).order_by(Rollout.id.desc()).with_for_update())
        )
        out = [status_of(r, reevaluate(session, r)) for r in rollouts]
        session.commit()
        return out

    @router.get("/{rollout_id}")
    def status(rollout_id: int, session: DB) -> RolloutOut:
        """Per-stage counts by update state, per-device states, the overall state and reason."""
        return _answer(session, _load(session, rollout_id))

    @router.post("/{rollout_id}/pause")
    def pause_rollout(rollout_id: int, session: DB) -> RolloutOut:
        """Offer the release to no new device (updates under way may finish)."""
        return change_state(session, rollout_id, lambda _plan, state: pause(state))

    @router.post("/{rollout_id}/resume")
    def resume_rollout(rollout_id: int, session: DB) -> RolloutOut:
        """Continue; pauses again at once if a stage is still above the error threshold."""
        return change_state(session, rollout_id, lambda _plan, state: resume(state))

    @router.post("/{rollout_id}/next")
    def next_rollout_stage(rollout_id: int, session: DB) -> RolloutOut:
        """Open the next stage now, whatever the thresholds say (and run)."""
        return change_state(session, rollout_id, next_stage)

    @router.post("/{rollout_id}/abort")
    def abort_rollout(rollout_id: int, session: DB) -> RolloutOut:
        """Stop for good: devices not yet updated are no longer offered the release.

        The release's active-rollout slot is freed, so a new rollout of it can start.
        """
        return change_state(session, rollout_id, lambda _plan, state: abort(state))

    @router.post("/{rollout_id}/devices/{device_id}/retry")
    def retry_device(rollout_id: int, device_id: str, session: DB) -> RolloutOut:
        """A failed device goes back to pending (sync offers it again once its stage is open)."""
        return retry(session, rollout_id, device_id)

    return router
