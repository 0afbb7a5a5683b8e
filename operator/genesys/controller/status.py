"""Statuses of DiscoveryRuns and Designs, computed from the engine's plan and the archive.

Pure functions: the handlers observe, plan, apply, then write the dicts these return in one
status patch. Every status is built as the API's model (:class:`DiscoveryRunStatus`,
:class:`DesignStatus`; their schema is the CRD's ``genesys.dev/v1alpha1``) and written as its
JSON, so nothing reaches the API server that the CRD would not describe. A previous status is
read back through the same model. Conditions follow the Kubernetes API conventions: a
condition's ``lastTransitionTime`` changes only when its status does.

Run conditions: ``SpecValid``, ``Progressing`` (work is under way; ``False`` with reason
``ArchiveConflict`` or ``ReconcileError`` when the run is held back), ``Ready`` (finished with
results), ``BudgetExhausted`` (the ladder or the USD cap is spent) and ``Failed`` (finished with
reason ``Error``: every seed design failed its verification).

What must stay true: these functions read nothing and write nothing; the same inputs give the
same status (apart from transition times of changed conditions). A valid run's phase and finish
reason are the engine's (:mod:`genesys.engine.phase`), never derived again here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pydantic

from genesys.api.base import Condition
from genesys.api.design import DesignPhase, DesignStatus, RungResult
from genesys.api.discoveryrun import (
    DesignCounts,
    DiscoveryRunStatus,
    FinishReason,
    Phase,
    RungStatus,
    Spend,
)
from genesys.engine.phase import reported_phase
from genesys.engine.plan import Plan
from genesys.engine.state import Job, Waiting
from genesys.evolution.selection import confidence
from genesys.report.headline import headline
from genesys.store.archive import Archive, DesignRecord


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """A condition's wanted state."""

    type: str
    status: bool
    reason: str
    message: str = ""


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(status: pydantic.BaseModel) -> dict[str, Any]:
    """A status model as the JSON written to the API server (camelCase, unset fields left out)."""
    data: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def read_run_status(old: Mapping[str, Any]) -> DiscoveryRunStatus:
    """A run's previous status; one that does not parse (edited by hand) counts as empty."""
    try:
        return DiscoveryRunStatus.model_validate(dict(old))
    except pydantic.ValidationError:
        return DiscoveryRunStatus()


def merge_conditions(
    old: Sequence[Mapping[str, Any]],
    wanted: Sequence[ConditionSpec],
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The conditions list: transition times kept for conditions whose status did not change."""
    previous = {str(c.get("type")): c for c in old}
    merged = []
    for spec in wanted:
        status = "True" if spec.status else "False"
        before = previous.get(spec.type)
        changed = before is None or before.get("status") != status
        kept = before.get("lastTransitionTime") if before and not changed else None
        condition = Condition.model_validate(
            {
                "type": spec.type,
                "status": status,
                "reason": spec.reason,
                "message": spec.message[:1024],
                "lastTransitionTime": str(kept) if kept else _timestamp(now),
                "observedGeneration": generation,
            }
        )
        merged.append(as_json(condition))
    return merged


def _with_conditions(
    old: Mapping[str, Any],
    wanted: Sequence[ConditionSpec],
    now: datetime,
    generation: int | None,
    **changes: Any,
) -> dict[str, Any]:
    """The previous status with new conditions (by type) and ``changes``; other fields kept."""
    previous = read_run_status(old)
    replaced = {w.type for w in wanted}
    kept = [c for c in as_json(previous).get("conditions", []) if c["type"] not in replaced]
    merged = merge_conditions(old.get("conditions") or [], wanted, now, generation)
    conditions = sorted(kept + merged, key=lambda c: CONDITION_ORDER.get(c["type"], 99))
    status = previous.model_copy(
        update={
            **changes,
            "observed_generation": generation,
            "conditions": [Condition.model_validate(c) for c in conditions],
        }
    )
    return as_json(status)


CONDITION_ORDER = {"SpecValid": 0, "Progressing": 1, "Ready": 2, "BudgetExhausted": 3, "Failed": 4}


def invalid_status(
    old: Mapping[str, Any], messages: Sequence[str], now: datetime, generation: int | None
) -> dict[str, Any]:
    """The status of a run whose spec is invalid: phase SpecInvalid, the fields named."""
    wanted = [
        ConditionSpec("SpecValid", False, "Invalid", "; ".join(messages)),
        ConditionSpec("Progressing", False, "SpecInvalid", "fix the spec to start the run"),
        ConditionSpec("Ready", False, "SpecInvalid"),
    ]
    return _with_conditions(old, wanted, now, generation, phase=Phase.SPEC_INVALID)


def conflict_status(
    old: Mapping[str, Any], message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    """A run held back because its store prefix holds another run's archive."""
    wanted = [
        ConditionSpec("SpecValid", True, "Valid"),
        ConditionSpec("Progressing", False, "ArchiveConflict", message),
        ConditionSpec("Ready", False, "ArchiveConflict"),
    ]
    return _with_conditions(old, wanted, now, generation, phase=Phase.PENDING)


def finished_edit_status(
    old: Mapping[str, Any], problems: Sequence[str], now: datetime, generation: int | None
) -> dict[str, Any]:
    """A finished run whose spec was edited: the result kept, the edit's validity reported."""
    valid = ConditionSpec("SpecValid", True, "Valid")
    if problems:
        valid = ConditionSpec("SpecValid", False, "Invalid", "; ".join(problems))
    return _with_conditions(old, [valid], now, generation)


def error_status(
    old: Mapping[str, Any], message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    """A run whose reconcile failed with a permanent error: recorded, phase kept."""
    wanted = [ConditionSpec("Progressing", False, "ReconcileError", message)]
    return _with_conditions(old, wanted, now, old.get("observedGeneration"))


def run_conditions(phase: Phase, reason: FinishReason | None, message: str) -> list[ConditionSpec]:
    """The wanted conditions of a valid run in ``phase``."""
    progressing = phase in (Phase.PENDING, Phase.PROPOSING, Phase.VERIFYING)
    spent = reason in (FinishReason.BUDGETS_SPENT, FinishReason.USD_CAP_REACHED)
    finished_reason = reason.value if reason else "Running"
    progress_reason = {
        Phase.SUSPENDED: "Suspended",
        Phase.SUCCEEDED: "Finished",
        Phase.FAILED: "Failed",
    }.get(phase, phase.value)
    failed = phase is Phase.FAILED
    return [
        ConditionSpec("SpecValid", True, "Valid"),
        ConditionSpec("Progressing", progressing, progress_reason, message),
        ConditionSpec("Ready", phase is Phase.SUCCEEDED, finished_reason),
        ConditionSpec("BudgetExhausted", spent, finished_reason if spent else "BudgetLeft"),
        ConditionSpec(
            "Failed", failed, "Error" if failed else "NoError", message if failed else ""
        ),
    ]


def capacity_condition(waiting: Mapping[Job, Waiting]) -> ConditionSpec:
    """``WaitingForCapacity``: True while training pods wait for a node or for Kueue's quota.

    The message counts them and quotes the one that has waited longest, since when and why.
    """
    stuck = sorted(
        ((state.since, job, state) for job, state in waiting.items() if state.for_capacity),
        key=lambda item: (item[0], item[1]),
    )
    if not stuck:
        return ConditionSpec("WaitingForCapacity", False, "NoneWaiting")
    since, (design, rung), first = stuck[0]
    words = f": {first.message}" if first.message else ""
    message = (
        f"{len(stuck)} training pod(s) wait for capacity, the first since "
        f"{_timestamp(since)} ({design} at {rung}, {first.reason}{words})"
    )
    return ConditionSpec("WaitingForCapacity", True, first.reason, message[:1024])


def design_counts(archive: Archive, running_sessions: int) -> DesignCounts:
    """Designs by state (seeds excluded)."""
    designs = [d for d in archive.designs.values() if not d.is_seed]
    failed_sessions = sum(1 for s in archive.sessions.values() if s.status == "failed")
    return DesignCounts(
        total=len(designs),
        proposing=running_sessions,
        implemented=len(designs),
        verified=sum(1 for d in designs if d.verifications),
        rejected=len(archive.rejections),
        failed=failed_sessions,
    )


def run_status(
    old: Mapping[str, Any],
    plan: Plan,
    archive: Archive,
    *,
    now: datetime,
    generation: int | None,
    finish: FinishReason | None = None,
    llm_usd: float,
    gpu_hours: float,
    waiting: Mapping[Job, Waiting] | None = None,
) -> dict[str, Any]:
    """The status of a valid run after one reconcile.

    The phase and finish reason are the plan's (:mod:`genesys.engine.phase` decides both);
    ``finish`` (default: the plan's) is the reason of the ``Finish`` the backend applied.
    """
    finish = finish if finish is not None else plan.finish
    phase = reported_phase(plan.phase, finish)
    rungs = [
        RungStatus(name=r.name, budget=r.budget, used=r.used, running=r.running) for r in plan.rungs
    ]
    current = next((r.name for r in reversed(rungs) if r.used or r.running), None)
    best = plan.best
    message = plan.message or f"{plan.sessions_done} sessions done, {plan.sessions_running} running"
    previous = read_run_status(old)
    wanted = [*run_conditions(phase, finish, message), capacity_condition(waiting or {})]
    conditions = merge_conditions(old.get("conditions") or [], wanted, now, generation)
    status = DiscoveryRunStatus(
        phase=phase,
        observed_generation=generation,
        conditions=[Condition.model_validate(c) for c in conditions],
        current_rung=current,
        rungs=rungs,
        designs=design_counts(archive, plan.sessions_running),
        best_design=best,
        best_fitness=round(plan.fitness[best], 6) if best in plan.fitness else None,
        headline=headline(archive, plan.fitness, [r.name for r in plan.rungs]).text(),
        spend=Spend(llm_usd=round(llm_usd, 6), gpu_hours=round(gpu_hours, 4)),
        start_time=previous.start_time or now.replace(microsecond=0),
        finish_time=(previous.finish_time or now.replace(microsecond=0)) if finish else None,
        finish_reason=finish,
    )
    return as_json(status)


def _rung_result(
    record: DesignRecord, rung: str, running: bool, attempts: int, waiting: bool = False
) -> RungResult:
    verification = record.verifications.get(rung)
    if verification is None:
        if running:
            phase: Literal["WaitingForCapacity", "Running"] = (
                "WaitingForCapacity" if waiting else "Running"
            )
            return RungResult(rung=rung, phase=phase, attempts=attempts)
        return RungResult(rung=rung, phase="Failed" if attempts else "Pending", attempts=attempts)
    scores = [m.get("acc_norm", m.get("acc")) for m in verification.metrics.values()]
    values = [float(s) for s in scores if s is not None]
    succeeded = verification.status == "succeeded"
    return RungResult(
        rung=rung,
        phase="Succeeded" if succeeded else "Failed",
        attempts=attempts + 1,
        params=verification.params,
        train_loss=verification.train_loss,
        val_loss=verification.val_loss,
        score=round(sum(values) / len(values), 6) if values else None,
        reason=None if succeeded else (verification.reason[:1024] or verification.status),
    )


def design_status(
    record: DesignRecord,
    *,
    rung_order: Sequence[str],
    fitness: Mapping[str, float],
    rank: Mapping[str, int],
    running: set[tuple[str, str]],
    attempts: Mapping[tuple[str, str], int],
    rung_points: Mapping[str, int],
    artifact_uri: str,
    waiting: Collection[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The status of one Design resource (``waiting``: its jobs that wait for capacity)."""
    rungs = [
        _rung_result(
            record,
            rung,
            (record.id, rung) in running,
            attempts.get((record.id, rung), 0),
            waiting=(record.id, rung) in waiting,
        )
        for rung in rung_order
        if rung in record.verifications
        or (record.id, rung) in running
        or attempts.get((record.id, rung), 0)
    ]
    verified = [r.rung for r in rungs if r.phase == "Succeeded"]
    if any(r.phase in ("Running", "WaitingForCapacity") for r in rungs):
        phase = DesignPhase.VERIFYING
    elif verified:
        phase = DesignPhase.VERIFIED
    elif any(r.phase == "Failed" for r in rungs):
        phase = DesignPhase.FAILED
    else:
        phase = DesignPhase.IMPLEMENTED
    failed = [r for r in rungs if r.phase == "Failed"]
    status = DesignStatus(
        phase=phase,
        rungs=rungs,
        highest_rung=verified[-1] if verified else None,
        fitness=round(fitness[record.id], 6) if record.id in fitness else None,
        rank=rank.get(record.id),
        confidence=confidence(record, rung_points),
        artifact_uri=artifact_uri,
        proposal_rating=record.proposal_rating,
        reason=(failed[-1].reason or "verification failed")
        if phase is DesignPhase.FAILED and failed
        else None,
    )
    return as_json(status)


def ranks(fitness: Mapping[str, float]) -> dict[str, int]:
    """Rank 1 for the fittest design, ties broken by id."""
    order = sorted(fitness, key=lambda design: (-fitness[design], design))
    return {design: index + 1 for index, design in enumerate(order)}


__all__ = [
    "ConditionSpec",
    "as_json",
    "conflict_status",
    "design_counts",
    "design_status",
    "error_status",
    "finished_edit_status",
    "invalid_status",
    "merge_conditions",
    "ranks",
    "read_run_status",
    "run_conditions",
    "run_status",
]
