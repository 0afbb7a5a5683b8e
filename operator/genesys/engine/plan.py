"""``plan(spec, observed, now) -> Plan``: the whole discovery logic, as one pure function.

From the run's spec, what the backend observed (the archive rebuilt from the store, the sessions
and jobs running, failed attempts) and the time, it returns the actions to take now and a
summary for status. Rules (Genesys, "Ladder of scales" and "Selection"):

- The seed designs enter the archive first; they are verified at the lowest rung outside its
  budget, as the reference every design is compared with.
- Every implemented design is verified at the lowest rung first; a design climbs one rung at a
  time, chosen by quadrant selection; all rungs below the top run in parallel; the top rung opens
  only when every lower budget is spent. A quarantined design (the trainer's leak guard or the
  plausibility margin set its result apart, :mod:`genesys.store.quarantine`) never climbs.
- Design sessions run while the lowest rung's budget (and ``maxDesigns``) can still take new
  designs, ``sessions.parallel`` at a time; the operator (mutation/crossover/scratch) and parents
  come from the selector, seeded by (run seed, session index).
- A failed verification is retried up to ``verification.maxRetries`` times, then recorded as an
  error; a failed session consumes its index and a new one is started.
- Stop reasons: budgets spent, maximum designs, deadline (nothing new starts; finish when idle),
  USD cap; ``suspend`` starts nothing new.

What must stay true: no I/O and no clock reads (``now`` is an argument); the same inputs give the
same plan; ids are deterministic (``s0007``/``d0007`` for session 7), so re-applying a plan after
a crash duplicates nothing.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from genesys.api.discoveryrun import DiscoveryRunSpec, FinishReason, Phase
from genesys.api.ladder import RungConfig, resolve_ladder
from genesys.engine.actions import (
    Action,
    Finish,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.evolution.ranking import fitness as compute_fitness
from genesys.evolution.selection import (
    choose_operator,
    confidence,
    select_parents,
    select_promotions,
)
from genesys.store.archive import Archive

SEED_NAMES = ("gpt2", "mamba2", "retnet", "rwkv6", "ttt")
SESSION_FAILURE_FACTOR = 3  # at most this many sessions per design the run may still take


@dataclass(slots=True)
class Observed:
    """What the backend saw: the archive plus in-flight work."""

    archive: Archive
    running_sessions: frozenset[str] = frozenset()
    running_jobs: frozenset[tuple[str, str]] = frozenset()  # (design id, rung)
    failed_attempts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    spend_usd: float = 0.0


@dataclass(slots=True)
class RungSummary:
    """Budget accounting of one rung."""

    name: str
    budget: int
    used: int
    running: int


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


def session_id(index: int) -> str:
    """The id of the index-th design session."""
    return f"s{index:04d}"


def design_id(index: int) -> str:
    """The id of the design the index-th session may add."""
    return f"d{index:04d}"


def _seeds(archive: Archive) -> list[str]:
    return sorted(d.id for d in archive.designs.values() if d.is_seed)


def _finished(archive: Archive, design: str, rung: str) -> bool:
    record = archive.designs.get(design)
    return record is not None and rung in record.verifications


def _succeeded(archive: Archive, design: str, rung: str) -> bool:
    record = archive.designs.get(design)
    return (
        record is not None
        and record.verifications.get(rung) is not None
        and (record.verifications[rung].status == "succeeded")
    )


def _rung_summaries(
    rungs: list[RungConfig], archive: Archive, observed: Observed
) -> list[RungSummary]:
    summaries = []
    for rung in rungs:
        used = sum(
            1
            for d in archive.designs.values()
            if rung.name in d.verifications and not (d.is_seed and rung.index == 0)
        )
        running = sum(
            1
            for design, name in observed.running_jobs
            if name == rung.name
            and not (
                archive.designs.get(design) and archive.designs[design].is_seed and rung.index == 0
            )
        )
        summaries.append(RungSummary(rung.name, rung.budget, used, running))
    return summaries


def _verifications(
    spec: DiscoveryRunSpec,
    rungs: list[RungConfig],
    summaries: list[RungSummary],
    observed: Observed,
    fitness: dict[str, float],
    proposing_over: bool,
) -> list[Action]:
    archive = observed.archive
    actions: list[Action] = []
    retries = spec.verification.max_retries
    per_rung = spec.verification.max_parallel_jobs_per_rung
    running_at = {r.name: 0 for r in rungs}  # every job counts for concurrency, seeds too
    for _design, name in observed.running_jobs:
        if name in running_at:
            running_at[name] += 1
    for design, rung in sorted(observed.failed_attempts):
        attempts = observed.failed_attempts[(design, rung)]
        if (design, rung) in observed.running_jobs or _finished(archive, design, rung):
            continue
        if attempts > retries:
            actions.append(RecordFailure(design, rung, f"failed {attempts} attempts"))
    retrying = {(a.design_id, a.rung) for a in actions if isinstance(a, RecordFailure)}

    def can_start(design: str, rung: str) -> bool:
        key = (design, rung)
        return (
            key not in observed.running_jobs
            and key not in retrying
            and not _finished(archive, design, rung)
            and running_at[rung] < per_rung
        )

    def start(design: str, rung: str) -> None:
        actions.append(
            StartVerification(design, rung, observed.failed_attempts.get((design, rung), 0))
        )
        running_at[rung] += 1

    lowest = rungs[0].name
    ordered = archive.ordered()
    # 1. seeds at the lowest rung, outside its budget
    for record in ordered:
        if record.is_seed and can_start(record.id, lowest):
            start(record.id, lowest)
    # 2. every implemented design at the lowest rung, in creation order, within the budget
    bottom = summaries[0]
    room = bottom.budget - bottom.used - bottom.running
    for record in ordered:
        if room <= 0:
            break
        if not record.is_seed and can_start(record.id, lowest):
            start(record.id, lowest)
            room -= 1
    # 3. promotions, one rung at a time; the top rung waits for every lower budget
    points = {r.name: r.confidence_points for r in rungs}
    confidence_of = {d.id: confidence(d, points) for d in ordered}
    for index in range(1, len(rungs)):
        target_rung, below = rungs[index], rungs[index - 1]
        summary = summaries[index]
        if index == len(rungs) - 1 and len(rungs) > 1:
            # the top rung opens when every lower budget is spent, or when no new design can
            # still reach the lower rungs (proposing is over and nothing below is in flight)
            idle_below = proposing_over and not observed.running_jobs and not actions
            if not all(
                (s.used >= s.budget or idle_below) and s.running == 0 for s in summaries[:-1]
            ):
                continue
        room = summary.budget - summary.used - summary.running
        room = min(room, per_rung - running_at[target_rung.name])
        if room <= 0:
            continue
        candidates = [
            d.id
            for d in ordered
            if _succeeded(archive, d.id, below.name)
            and d.quarantine is None
            and can_start(d.id, target_rung.name)
        ]
        rng = random.Random(
            f"{spec.seed}:promote:{target_rung.name}:{summary.used + summary.running}"
        )
        for chosen in select_promotions(
            rng, candidates, fitness, confidence_of, room, spec.selection
        ):
            start(chosen, target_rung.name)
    return actions


def _sessions(
    spec: DiscoveryRunSpec,
    summaries: list[RungSummary],
    observed: Observed,
    fitness: dict[str, float],
    rungs: list[RungConfig],
) -> list[Action]:
    archive = observed.archive
    implemented = [d for d in archive.designs.values() if not d.is_seed]
    known_sessions = set(archive.sessions) | set(observed.running_sessions)
    target = summaries[0].budget
    if spec.sessions.max_designs is not None:
        target = min(target, spec.sessions.max_designs)
    running = len(observed.running_sessions)
    actions: list[Action] = []
    index = len(known_sessions)
    points = {r.name: r.confidence_points for r in rungs}
    designs = archive.ordered()
    confidence_of = {d.id: confidence(d, points) for d in designs}
    while (
        len(implemented) + running < target
        and running < spec.sessions.parallel
        and index < SESSION_FAILURE_FACTOR * target + len(_seeds(archive))
    ):
        rng = random.Random(f"{spec.seed}:session:{index}")
        operator = choose_operator(rng, len(implemented), spec.sessions.operators)
        wanted = {"mutation": 1, "crossover": 2, "scratch": 0}[operator]
        parents = select_parents(rng, designs, fitness, confidence_of, wanted, spec.selection)
        if len(parents) < wanted:
            operator, parents = "mutation", parents[:1]
        actions.append(
            StartSession(
                session=session_id(index),
                design_id=design_id(index),
                seq=len(SEED_NAMES) + index,
                operator=operator,
                parents=tuple(parents),
                seed=rng.randrange(2**31),
            )
        )
        index += 1
        running += 1
    return actions


def plan(spec: DiscoveryRunSpec, observed: Observed, now: datetime) -> Plan:
    """The actions to take now (pure)."""
    archive = observed.archive
    rungs = resolve_ladder(spec.ladder, vocab_size=spec.verification.data.vocab_size)
    summaries = _rung_summaries(rungs, archive, observed)
    fitness = compute_fitness(
        archive,
        margin=spec.selection.baseline_margin,
        rating_weight=spec.selection.proposal_rating_weight,
    )
    best = max(fitness, key=lambda i: (fitness[i], i)) if fitness else None
    running_sessions = len(observed.running_sessions)
    done_sessions = len(archive.sessions)

    def result(actions: list[Action], phase: Phase) -> Plan:
        return Plan(actions, phase, summaries, fitness, best, done_sessions, running_sessions)

    if not _seeds(archive):
        return result([InitSeeds()], Phase.PENDING)
    idle = not observed.running_sessions and not observed.running_jobs
    cap = spec.agents.max_usd_per_run
    if cap is not None and observed.spend_usd >= cap:
        return result([Finish(FinishReason.USD_CAP_REACHED)] if idle else [], Phase.VERIFYING)
    if spec.deadline is not None and now >= spec.deadline:
        return result([Finish(FinishReason.DEADLINE_PASSED)] if idle else [], Phase.VERIFYING)
    if spec.suspend:
        return result([], Phase.SUSPENDED)
    sessions = _sessions(spec, summaries, observed, fitness, rungs)
    proposing_over = not sessions and not observed.running_sessions
    actions = _verifications(spec, rungs, summaries, observed, fitness, proposing_over)
    actions += sessions
    if actions or not idle:
        busy = observed.running_sessions or any(isinstance(a, StartSession) for a in actions)
        return result(actions, Phase.PROPOSING if busy else Phase.VERIFYING)
    implemented = sum(1 for d in archive.designs.values() if not d.is_seed)
    if spec.sessions.max_designs is not None and implemented >= spec.sessions.max_designs:
        return result([Finish(FinishReason.MAX_DESIGNS_REACHED)], Phase.SUCCEEDED)
    return result([Finish(FinishReason.BUDGETS_SPENT)], Phase.SUCCEEDED)


__all__ = ["SEED_NAMES", "Observed", "Plan", "RungSummary", "design_id", "plan", "session_id"]
