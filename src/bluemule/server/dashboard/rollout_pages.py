"""Dashboard rollout pages and the rollout actions their buttons post to.

Pages re-evaluate rollouts as ``GET /api/admin/v1/rollouts`` does; actions do what the
admin API's pause/resume/next/abort do.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bluemule.server import rollouts, rollouts_api
from bluemule.server.dashboard.markup import LIMIT, device_link, esc, table, when
from bluemule.server.models import Rollout
from bluemule.server.rollouts import Status, UpdateState


def _stage_label(stage: rollouts_api.StageOut) -> str:
    if stage.groups:
        return "groups " + ", ".join(stage.groups)
    return f"{stage.percent}% of the rest"


def _status(status: str) -> str:
    return f'<span class="status status-{esc(status)}">{esc(status)}</span>'


def rollouts_body(session: Session) -> str:
    """Every rollout, newest first, re-evaluated as ``GET /api/admin/v1/rollouts`` does."""
    found = list(
        session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(LIMIT).with_for_update())
    )
    docs = [rollouts_api.status_of(r, rollouts_api.reevaluate(session, r)) for r in found]
    session.commit()
    rows = [
        (
            f'<a href="/dashboard/rollouts/{r.id}">#{r.id}</a>',
            esc(r.release_id),
            _status(r.status),
            esc(f"{min(r.stage + 1, len(r.stages))} of {len(r.stages)}"),
            esc(len(r.devices)),
            esc(sum(s.counts.get(UpdateState.CONFIRMED.value, 0) for s in r.stages)),
            esc(sum(s.counts.get(UpdateState.FAILED.value, 0) for s in r.stages)),
            esc(r.reason),
            when(r.updated_at),
        )
        for r in docs
    ]
    return "<h1>Rollouts</h1>" + table(
        [
            "rollout",
            "release",
            "status",
            "stage",
            "devices",
            "confirmed",
            "failed",
            "reason",
            "updated",
        ],
        rows,
        "no rollouts",
    )


def rollout_body(session: Session, rollout_id: int, csrf_field: str) -> str | None:
    """One rollout: per-stage counts by update state, its devices, and Pause/Resume."""
    found = session.scalar(select(Rollout).where(Rollout.id == rollout_id).with_for_update())
    if found is None:
        return None
    r = rollouts_api.status_of(found, rollouts_api.reevaluate(session, found))
    session.commit()
    vocabulary = [s.value for s in UpdateState]
    stage_rows = [
        (
            esc(f"{s.index + 1}{' (open)' if s.open else ''}"),
            esc(_stage_label(s)),
            f'<span class="num">{s.total}</span>',
            *(f'<span class="num">{s.counts.get(v, 0)}</span>' for v in vocabulary),
        )
        for s in r.stages
    ]
    live = r.status in (Status.RUNNING, Status.PAUSED)

    def button(path: str, label: str, element_id: str) -> str:
        return (
            f"<form method=post action=/dashboard/rollouts/{r.id}/{path}>{csrf_field}"
            f"<button type=submit id={element_id}>{esc(label)}</button></form>"
        )

    device_rows = [
        (
            device_link(d.device_id),
            esc(d.stage + 1),
            esc(d.state),
            esc("" if d.progress is None else f"{d.progress:.0%}"),
            esc(d.reason),
            button(f"devices/{d.device_id}/retry", "Retry", f"retry-{d.device_id}")
            if live and d.state == UpdateState.FAILED
            else "",
        )
        for d in r.devices[:LIMIT]
    ]
    buttons = ""
    for status, verb in ((Status.RUNNING, "pause"), (Status.PAUSED, "resume")):
        if r.status == status:
            buttons = button(verb, verb.capitalize(), f"rollout-{verb}")
    if live and r.stage + 1 < len(r.stages):
        buttons += button("next", "Next stage", "rollout-next")
    if live:
        buttons += button("abort", "Abort", "rollout-abort")
    reason = f"<p>Reason: {esc(r.reason)}</p>" if r.reason else ""
    return (
        f"<h1>Rollout #{r.id} of release {esc(r.release_id)}</h1>"
        f"<p>Status: <span id=rollout-status>{_status(r.status)}</span>"
        f" · stage {min(r.stage + 1, len(r.stages))} of {len(r.stages)}"
        f" · success threshold {r.success_threshold:.0%}"
        f" · error threshold {r.error_threshold:.0%}</p>{reason}{buttons}<h2>Stages</h2>"
        + table(["stage", "selects", "total", *vocabulary], stage_rows)
        + "<h2>Devices</h2>"
        + table(["device", "stage", "state", "progress", "reason", ""], device_rows, "no devices")
    )


def pause_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/pause`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.pause(state))


def resume_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/resume`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.resume(state))


def next_rollout_stage(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/next`` does."""
    rollouts_api.change_state(session, rollout_id, rollouts.next_stage)


def abort_rollout(session: Session, rollout_id: int) -> None:
    """What ``POST /api/admin/v1/rollouts/{id}/abort`` does."""
    rollouts_api.change_state(session, rollout_id, lambda _plan, state: rollouts.abort(state))
