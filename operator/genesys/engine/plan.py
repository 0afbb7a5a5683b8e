"""``plan(spec, observed, now) -> Plan``: the whole discovery logic, as one pure function.

From the run's spec, what the backend observed (:class:`~genesys.engine.state.Observed`: the
archive rebuilt from the store, the sessions and jobs running, failed attempts, USD spent) and
the time, it returns the actions to take now and a summary for status. ``plan`` only assembles:

- until the seeds are in the archive, the one action is ``InitSeeds``;
- a stop (:func:`~genesys.engine.phase.stop_reason`: USD cap, deadline) or ``spec.suspend``
  starts nothing new;
- otherwise the guards of :mod:`genesys.engine.guards` decide the work, in this order: give-ups,
  seed verifications, the lowest rung, promotions rung by rung (the top rung behind its gate),
  then design sessions;
- :func:`~genesys.engine.phase.decide_phase` decides the phase and whether the run finishes
  (``Error``, phase ``Failed``, when it would finish with no successful verification at all);
  a finishing plan ends with ``Finish(reason)``.

What must stay true: no I/O and no clock reads (``now`` is an argument); the same inputs give the
same plan; ids are deterministic (``s0007``/``d0007`` for session 7), so re-applying a plan after
a crash duplicates nothing. ``tests/unit/test_plan_replay.py`` replays whole simulated runs
against recorded traces, so a change of behaviour shows there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from genesys.api.discoveryrun import DiscoveryRunSpec, FinishReason, Phase
from genesys.api.ladder import RungConfig, resolve_ladder
from genesys.api.seeds import SEED_NAMES
from genesys.engine import guards
from genesys.engine.actions import (
    Action,
    CancelVerification,
    Finish,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.guards import Capacity, Jobs, Selector
from genesys.engine.phase import Progress, decide_phase, stop_reason
from genesys.engine.state import (
    Observed,
    RungSummary,
    design_id,
    rung_summaries,
    session_id,
)
from genesys.evolution.ranking import fitness as compute_fitness
from genesys.evolution.selection import confidence
from genesys.store.archive import Archive


@dataclass(slots=True)
class Plan:
    """Actions to take now, and the run's summary."""

    actions: list[Action]
    phase: Phase
    rungs: list[RungSummary]
    fitness: dict[str, float]
    best: str | None
    sessions_done: int
    sessions_running: int
    finish: FinishReason | None = None  # set when ``actions`` end with Finish(finish)
    message: str = ""  # why the run stops, when its finish reason alone does not say it


def _verifications(
    spec: DiscoveryRunSpec,
    rungs: Sequence[RungConfig],
    summaries: Sequence[RungSummary],
    observed: Observed,
    selector: Selector,
    proposing_over: bool,
    now: datetime,
) -> list[Action]:
    """Give-ups and capacity timeouts, then verifications: seeds, the lowest rung, promotions.

    The top rung's gate sees this plan's own pending work: a give-up or a cancelled job (its
    error result is not in the archive yet) or a start below the top rung keeps the top rung
    closed for one more plan.
    """
    archive = observed.archive
    verification = spec.verification
    given_up = guards.give_ups(
        archive, observed.running_jobs, observed.failed_attempts, verification.max_retries
    )
    cancelled = guards.capacity_timeouts(
        observed.waiting_jobs, now, verification.capacity_timeout_seconds
    )
    ended: list[RecordFailure | CancelVerification] = [*given_up, *cancelled]
    jobs = Jobs(
        archive,
        observed.running_jobs | {(e.design_id, e.rung) for e in ended},
        observed.failed_attempts,
    )
    summaries = guards.counting_give_ups(summaries, ended, archive, rungs)
    designs = archive.ordered()
    capacity = Capacity.of(
        rungs,
        observed.running_jobs,
        verification.max_parallel_jobs_per_rung,
        waiting=len(observed.waiting_jobs),
        max_waiting=verification.max_pending_jobs,
    )
    seeds, capacity = guards.seed_verifications(jobs, designs, rungs[0].name, capacity)
    bottom, capacity = guards.bottom_rung(jobs, designs, summaries[0], capacity)
    middle: list[StartVerification] = []  # promotions to every rung between lowest and top
    for index in range(1, len(rungs) - 1):
        climbed, capacity = guards.promotions(
            jobs, designs, summaries[index], rungs[index - 1].name, capacity, selector
        )
        middle += climbed
    actions: list[Action] = [*ended, *seeds, *bottom, *middle]
    if len(rungs) > 1 and guards.top_rung_open(
        summaries[:-1],
        proposing_over=proposing_over,
        jobs_running=bool(observed.running_jobs),
        pending=bool(ended or seeds or bottom or middle),
    ):
        top, _ = guards.promotions(jobs, designs, summaries[-1], rungs[-2].name, capacity, selector)
        actions += top
    return actions


def _sessions(
    spec: DiscoveryRunSpec, observed: Observed, lowest: RungSummary, selector: Selector
) -> list[StartSession]:
    max_designs = spec.sessions.max_designs
    return guards.sessions(
        observed.archive,
        observed.running_sessions,
        target=lowest.budget if max_designs is None else min(lowest.budget, max_designs),
        parallel=spec.sessions.parallel,
        operators=spec.sessions.operators,
        selector=selector,
    )


def _work(
    spec: DiscoveryRunSpec,
    rungs: Sequence[RungConfig],
    summaries: Sequence[RungSummary],
    observed: Observed,
    selector: Selector,
    now: datetime,
) -> list[Action]:
    """What a seeded run that may start work does now: verifications, then sessions."""
    sessions = _sessions(spec, observed, summaries[0], selector)
    proposing_over = not sessions and not observed.running_sessions
    verifications = _verifications(spec, rungs, summaries, observed, selector, proposing_over, now)
    return [*verifications, *sessions]


def failed_in_a_row(archive: Archive) -> tuple[int, str]:
    """How many of the latest sessions failed in an unbroken row, and the last one's reason."""
    count, last = 0, ""
    for key in sorted(archive.sessions, reverse=True):
        outcome = archive.sessions[key]
        if outcome.status == "implemented":
            break
        count += 1
        last = last or outcome.reason
    return count, last


def plan(spec: DiscoveryRunSpec, observed: Observed, now: datetime) -> Plan:
    """The actions to take now, and the run's summary (pure)."""
    archive = observed.archive
    rungs = resolve_ladder(spec.ladder, vocab_size=spec.verification.data.vocab_size)
    summaries = rung_summaries(rungs, observed)
    fitness = compute_fitness(archive, spec.selection)
    points = {r.name: r.confidence_points for r in rungs}
    confidence_of = {d.id: confidence(d, points) for d in archive.ordered()}
    selector = Selector(spec.seed, spec.selection, fitness, confidence_of)
    seeded = any(d.is_seed for d in archive.designs.values())
    failed, last_reason = failed_in_a_row(archive)
    stop = stop_reason(spec, spend_usd=observed.spend_usd, now=now, failed_in_a_row=failed)
    actions: list[Action] = []
    if not seeded:
        actions = [InitSeeds()]
    elif stop is None and not spec.suspend:
        actions = _work(spec, rungs, summaries, observed, selector, now)
    elif stop is not None:
        actions = [*guards.unscheduled_at_stop(observed.waiting_jobs, stop)]
    implemented = sum(1 for d in archive.designs.values() if not d.is_seed)
    max_designs = spec.sessions.max_designs
    decision = decide_phase(
        Progress(
            seeded=seeded,
            stop=stop,
            suspended=spec.suspend,
            idle=observed.idle,
            starting=bool(actions),
            proposing=bool(observed.running_sessions)
            or any(isinstance(a, StartSession) for a in actions),
            max_designs_reached=max_designs is not None and implemented >= max_designs,
            ranked=bool(fitness),
            stop_message=(
                f"the last {failed} design sessions all failed; the last: {last_reason}"[:1000]
                if stop is FinishReason.SESSIONS_FAILED
                else ""
            ),
        )
    )
    if decision.finish is not None:
        actions = [*actions, Finish(decision.finish)]
    return Plan(
        actions,
        decision.phase,
        summaries,
        fitness,
        best=max(fitness, key=lambda i: (fitness[i], i)) if fitness else None,
        sessions_done=len(archive.sessions),
        sessions_running=len(observed.running_sessions),
        finish=decision.finish,
        message=decision.message,
    )


__all__ = [
    "SEED_NAMES",
    "Observed",
    "Plan",
    "RungSummary",
    "design_id",
    "failed_in_a_row",
    "plan",
    "session_id",
]
