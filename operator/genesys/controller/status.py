"""Statuses of DiscoveryRuns and Designs, computed from the engine's plan and the archive.

Pure functions: the handlers observe, plan, apply, then write the dicts these return in one
status patch. Conditions follow the Kubernetes API conventions: a condition's
``lastTransitionTime`` changes only when its status does.

Run conditions: ``SpecValid``, ``Progressing`` (work is under way), ``Ready`` (finished with
results), ``BudgetExhausted`` (the ladder or the USD cap is spent) and ``Failed``.

What must stay true: these functions read nothing and write nothing; the same inputs give the
same status (apart from transition times of changed conditions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genesys.api.discoveryrun import FinishReason, Phase
from genesys.engine.plan import Plan
from genesys.evolution.selection import confidence
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


def merge_conditions(
    old: Sequence[Mapping[str, Any]], wanted: Sequence[ConditionSpec], now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The conditions list: transition times kept for conditions whose status did not change."""
    previous = {str(c.get("type")): c for c in old}
    merged = []
    for spec in wanted:
        status = "True" if spec.status else "False"
        before = previous.get(spec.type)
        changed = before is None or before.get("status") != status
        kept = before.get("lastTransitionTime") if before and not changed else None
        merged.append(
            {
                "type": spec.type,
                "status": status,
                "reason": spec.reason,
                "message": spec.message[:1024],
                "lastTransitionTime": str(kept) if kept else _timestamp(now),
                "observedGeneration": generation,
            }
        )
    return merged


def invalid_status(
    old: Mapping[str, Any], messages: Sequence[str], now: datetime, generation: int | None
) -> dict[str, Any]:
    """The status of a run whose spec is invalid: phase SpecInvalid, the fields named."""
    message = "; ".join(messages)
    wanted = [
        ConditionSpec("SpecValid", False, "Invalid", message),
        ConditionSpec("Progressing", False, "SpecInvalid", "fix the spec to start the run"),
        ConditionSpec("Ready", False, "SpecInvalid"),
    ]
    return {
        "phase": Phase.SPEC_INVALID.value,
        "observedGeneration": generation,
        "conditions": merge_conditions(old.get("conditions") or [], wanted, now, generation),
    }


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


def design_counts(archive: Archive, running_sessions: int) -> dict[str, int]:
    """Designs by state (seeds excluded)."""
    designs = [d for d in archive.designs.values() if not d.is_seed]
    failed_sessions = sum(1 for s in archive.sessions.values() if s.get("status") == "failed")
    return {
        "total": len(designs),
        "proposing": running_sessions,
        "implemented": len(designs),
        "verified": sum(1 for d in designs if d.verifications),
        "rejected": len(archive.rejections),
        "failed": failed_sessions,
    }


def run_status(
    old: Mapping[str, Any], plan: Plan, archive: Archive, *, now: datetime,
    generation: int | None, finish: FinishReason | None, llm_usd: float, gpu_hours: float,
) -> dict[str, Any]:  # fmt: skip
    """The status of a valid run after one reconcile."""
    phase = plan.phase
    if finish is not None:
        phase = Phase.FAILED if finish is FinishReason.ERROR else Phase.SUCCEEDED
    rungs = [{"name": r.name, "budget": r.budget, "used": r.used, "running": r.running}
             for r in plan.rungs]  # fmt: skip
    current = next((r["name"] for r in reversed(rungs) if r["used"] or r["running"]), None)
    best = plan.best
    message = f"{plan.sessions_done} sessions done, {plan.sessions_running} running"
    status: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": generation,
        "conditions": merge_conditions(
            old.get("conditions") or [], run_conditions(phase, finish, message), now, generation
        ),
        "currentRung": current,
        "rungs": rungs,
        "designs": design_counts(archive, plan.sessions_running),
        "bestDesign": best,
        "bestFitness": round(plan.fitness[best], 6) if best in plan.fitness else None,
        "spend": {"llmUsd": round(llm_usd, 6), "gpuHours": round(gpu_hours, 4)},
        "startTime": old.get("startTime") or _timestamp(now),
    }
    if finish is not None:
        status["finishTime"] = old.get("finishTime") or _timestamp(now)
        status["finishReason"] = finish.value
    return status


def _rung_result(record: DesignRecord, rung: str, running: bool, attempts: int) -> dict[str, Any]:
    verification = record.verifications.get(rung)
    if verification is None:
        phase = "Running" if running else ("Failed" if attempts else "Pending")
        return {"rung": rung, "phase": phase, "attempts": attempts}
    scores = [m.get("acc_norm", m.get("acc")) for m in verification.metrics.values()]
    values = [float(s) for s in scores if s is not None]
    result: dict[str, Any] = {
        "rung": rung,
        "phase": "Succeeded" if verification.status == "succeeded" else "Failed",
        "attempts": attempts + 1,
        "params": verification.params,
        "trainLoss": verification.train_loss,
        "valLoss": verification.val_loss,
        "score": round(sum(values) / len(values), 6) if values else None,
    }
    if verification.status != "succeeded":
        result["reason"] = verification.reason[:1024] or verification.status
    return {k: v for k, v in result.items() if v is not None}


def design_status(
    record: DesignRecord, *, rung_order: Sequence[str], fitness: Mapping[str, float],
    rank: Mapping[str, int], running: set[tuple[str, str]], attempts: Mapping[tuple[str, str], int],
    rung_points: Mapping[str, int], artifact_uri: str,
) -> dict[str, Any]:  # fmt: skip
    """The status of one Design resource."""
    rungs = [
        _rung_result(record, rung, (record.id, rung) in running, attempts.get((record.id, rung), 0))
        for rung in rung_order
        if rung in record.verifications or (record.id, rung) in running
        or attempts.get((record.id, rung), 0)
    ]  # fmt: skip
    verified = [r["rung"] for r in rungs if r["phase"] == "Succeeded"]
    if any(r["phase"] == "Running" for r in rungs):
        phase = "Verifying"
    elif verified:
        phase = "Verified"
    elif any(r["phase"] == "Failed" for r in rungs):
        phase = "Failed"
    else:
        phase = "Implemented"
    status: dict[str, Any] = {
        "phase": phase,
        "rungs": rungs,
        "highestRung": verified[-1] if verified else None,
        "fitness": round(fitness[record.id], 6) if record.id in fitness else None,
        "rank": rank.get(record.id),
        "confidence": confidence(record, rung_points),
        "artifactUri": artifact_uri,
        "proposalRating": record.proposal_rating,
    }
    failed = [r for r in rungs if r["phase"] == "Failed"]
    if phase == "Failed" and failed:
        status["reason"] = failed[-1].get("reason", "verification failed")
    return {k: v for k, v in status.items() if v is not None}


def ranks(fitness: Mapping[str, float]) -> dict[str, int]:
    """Rank 1 for the fittest design, ties broken by id."""
    order = sorted(fitness, key=lambda design: (-fitness[design], design))
    return {design: index + 1 for index, design in enumerate(order)}


__all__ = [
    "ConditionSpec",
    "design_counts",
    "design_status",
    "invalid_status",
    "merge_conditions",
    "ranks",
    "run_conditions",
    "run_status",
]
