"""The planner's rules, one small pure function each (Genesys, "Ladder of scales", "Selection").

:func:`genesys.engine.plan.plan` calls them in this order, and their actions keep this order:

1. :func:`give_ups`: a verification whose failed attempts exceed ``verification.maxRetries`` gets
   a final error result (``RecordFailure``) instead of another attempt; and
   :func:`capacity_timeouts`: a training job that has waited longer than
   ``verification.capacityTimeoutSeconds`` for a node is cancelled with an error result
   (``CancelVerification``).
2. :func:`seed_verifications`: the seed designs at the lowest rung, outside its budget.
3. :func:`bottom_rung`: implemented designs at the lowest rung, in creation order, within its
   budget.
4. :func:`promotions`: one rung up at a time, chosen by quadrant selection among the designs that
   passed the rung below and are not quarantined. The top rung is promoted to only when
   :func:`top_rung_open`: every lower budget is spent, or no new design can still reach the
   lower rungs.
5. :func:`sessions`: design sessions while the lowest budget (and ``sessions.maxDesigns``) can
   still take new designs, ``sessions.parallel`` at a time; the operator and the parents come
   from the selector, seeded by (run seed, session index).

The verification guards share two explicit values: :class:`Jobs` (the archive, the jobs that may
not start again now, the attempt counts) and :class:`Capacity` (how many jobs each rung may still
start under ``verification.maxParallelJobsPerRung``, seeds included, and how many more may wait
to be scheduled under ``verification.maxPendingJobs``), which each guard takes and returns with
its own starts taken. When the run stops (USD cap, deadline), :func:`unscheduled_at_stop`
cancels the jobs still waiting to be scheduled: they have not trained, and no node should be
added for them.

What must stay true: no I/O, no clock, no mutation of an argument; every random choice uses a
``random.Random`` seeded from the run's seed and the choice's place (rung and budget position,
session index), so the same inputs give the same actions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from genesys.api.discoveryrun import FinishReason, GeneticOperators, Selection
from genesys.api.ladder import RungConfig
from genesys.api.seeds import SEED_NAMES
from genesys.engine.actions import (
    CancelVerification,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.state import Job, RungSummary, Waiting, design_id, in_budget, session_id
from genesys.evolution.selection import (
    OperatorRecord,
    choose_operator,
    operator_record,
    select_parents,
    select_promotions,
)
from genesys.store.archive import Archive, DesignRecord

SESSION_FAILURE_FACTOR = 3  # at most this many sessions per design the run may still take
PARENTS_OF = {"mutation": 1, "crossover": 2, "scratch": 0}


@dataclass(frozen=True, slots=True)
class Capacity:
    """Training jobs each rung may still start in this plan, and how many more may wait."""

    free: Mapping[str, int]
    waiting_room: int  # jobs that may still start to wait for scheduling, every rung together

    @classmethod
    def of(
        cls,
        rungs: Sequence[RungConfig],
        running: Iterable[Job],
        per_rung: int,
        *,
        waiting: int = 0,
        max_waiting: int,
    ) -> Capacity:
        """``per_rung`` less the jobs running at each rung (every job counts, seeds too).

        A job waits to be scheduled when it starts, so at most ``max_waiting`` less the jobs
        ``waiting`` now may start in one plan.
        """
        at = Counter(rung for _, rung in running)
        return cls({rung.name: per_rung - at[rung.name] for rung in rungs}, max_waiting - waiting)

    def at(self, rung: str) -> int:
        """Jobs ``rung`` may still start (never negative)."""
        return max(0, min(self.free[rung], self.waiting_room))

    def take(self, rung: str, count: int) -> Capacity:
        """The capacity left once ``count`` more jobs start at ``rung``."""
        return Capacity({**self.free, rung: self.free[rung] - count}, self.waiting_room - count)


@dataclass(frozen=True, slots=True)
class Jobs:
    """What deciding a verification reads: the archive, the blocked jobs, attempt counts."""

    archive: Archive
    blocked: frozenset[Job]  # running now, or given up in this plan
    attempts: Mapping[Job, int]  # failed attempts so far

    def can_start(self, design: str, rung: str) -> bool:
        """Neither blocked nor finished (passed or not) at ``rung``."""
        return (design, rung) not in self.blocked and not finished(self.archive, design, rung)

    def start(self, design: str, rung: str) -> StartVerification:
        """The next attempt of (design, rung)."""
        return StartVerification(design, rung, self.attempts.get((design, rung), 0))


@dataclass(frozen=True, slots=True)
class Selector:
    """What choosing parents and promotions reads, besides its candidates."""

    seed: int  # the run's spec.seed
    selection: Selection
    fitness: Mapping[str, float]
    confidence: Mapping[str, int]


def finished(archive: Archive, design: str, rung: str) -> bool:
    """True when (design, rung) has a final result, passed or not."""
    record = archive.designs.get(design)
    return record is not None and rung in record.verifications


def succeeded(archive: Archive, design: str, rung: str) -> bool:
    """True when (design, rung) passed."""
    record = archive.designs.get(design)
    verification = record.verifications.get(rung) if record is not None else None
    return verification is not None and verification.status == "succeeded"


def give_ups(
    archive: Archive,
    running: frozenset[Job],
    attempts: Mapping[Job, int],
    max_retries: int,
) -> list[RecordFailure]:
    """Verifications that failed more than ``max_retries`` retries allow, not yet recorded."""
    return [
        RecordFailure(design, rung, f"failed {attempts[(design, rung)]} attempts")
        for design, rung in sorted(attempts)
        if attempts[(design, rung)] > max_retries
        and (design, rung) not in running
        and not finished(archive, design, rung)
    ]


def capacity_timeouts(
    waiting: Mapping[Job, Waiting], now: datetime, timeout_seconds: int | None
) -> list[CancelVerification]:
    """Training jobs that have waited for capacity longer than ``timeout_seconds``."""
    if timeout_seconds is None:
        return []
    return [
        CancelVerification(
            design,
            rung,
            f"waited {int((now - state.since).total_seconds())}s for capacity "
            f"(capacityTimeoutSeconds={timeout_seconds}): {state.reason}"
            + (f": {state.message}" if state.message else ""),
        )
        for (design, rung), state in sorted(waiting.items())
        if state.for_capacity and (now - state.since).total_seconds() > timeout_seconds
    ]


def unscheduled_at_stop(
    waiting: Mapping[Job, Waiting], stop: FinishReason
) -> list[CancelVerification]:
    """Training jobs still waiting to be scheduled when the run stops: none may start now.

    They have not trained yet, so cancelling them loses nothing, and no GPU node is added (or
    kept) for a run that is over.
    """
    return [
        CancelVerification(design, rung, f"the run stopped ({stop.value}) before it was scheduled")
        for design, rung in sorted(waiting)
    ]


def counting_give_ups(
    summaries: Sequence[RungSummary],
    given_up: Sequence[RecordFailure | CancelVerification],
    archive: Archive,
    rungs: Sequence[RungConfig],
) -> list[RungSummary]:
    """``summaries`` with this plan's give-ups (and cancelled jobs) counted as used.

    A give-up's error result fills its place in the rung's budget as soon as it is recorded, so
    the same plan must not hand that place to another design.
    """
    by_name = {rung.name: rung for rung in rungs}
    counts = Counter(g.rung for g in given_up if in_budget(archive, g.design_id, by_name[g.rung]))
    return [replace(s, used=s.used + counts[s.name]) for s in summaries]


def _starts(
    jobs: Jobs, wanted: Sequence[str], rung: str, room: int, capacity: Capacity
) -> tuple[list[StartVerification], Capacity]:
    """Start the first ``room`` designs of ``wanted`` at ``rung`` (no more than it may start)."""
    chosen = wanted[: max(0, min(room, capacity.at(rung)))]
    return [jobs.start(d, rung) for d in chosen], capacity.take(rung, len(chosen))


def seed_verifications(
    jobs: Jobs, designs: Sequence[DesignRecord], lowest: str, capacity: Capacity
) -> tuple[list[StartVerification], Capacity]:
    """The seeds at the lowest rung, outside its budget, as far as its capacity allows."""
    wanted = [d.id for d in designs if d.is_seed and jobs.can_start(d.id, lowest)]
    return _starts(jobs, wanted, lowest, len(wanted), capacity)


def bottom_rung(
    jobs: Jobs, designs: Sequence[DesignRecord], lowest: RungSummary, capacity: Capacity
) -> tuple[list[StartVerification], Capacity]:
    """Implemented designs at the lowest rung, in creation order, within its budget."""
    wanted = [d.id for d in designs if not d.is_seed and jobs.can_start(d.id, lowest.name)]
    return _starts(jobs, wanted, lowest.name, lowest.room, capacity)


def top_rung_open(
    lower: Sequence[RungSummary], *, proposing_over: bool, jobs_running: bool, pending: bool
) -> bool:
    """True when the top rung may take promotions.

    Every lower rung has nothing running and either has spent its budget or can get no new
    design: proposing is over (no session runs or starts), no training job runs, and this plan
    ``pending`` no work (it records no give-up and starts no verification below the top rung).
    """
    no_new_design = proposing_over and not jobs_running and not pending
    return all((s.spent or no_new_design) and s.running == 0 for s in lower)


def promotions(
    jobs: Jobs,
    designs: Sequence[DesignRecord],
    target: RungSummary,
    below: str,
    capacity: Capacity,
    selector: Selector,
) -> tuple[list[StartVerification], Capacity]:
    """Designs that passed ``below`` and climb to ``target``, chosen by quadrant selection."""
    room = min(target.room, capacity.at(target.name))
    if room <= 0:
        return [], capacity
    candidates = [
        d.id
        for d in designs
        if succeeded(jobs.archive, d.id, below)
        and d.quarantine is None
        and jobs.can_start(d.id, target.name)
    ]
    rng = random.Random(f"{selector.seed}:promote:{target.name}:{target.used + target.running}")
    chosen = select_promotions(
        rng, candidates, selector.fitness, selector.confidence, room, selector.selection
    )
    return _starts(jobs, chosen, target.name, room, capacity)


def session_count(
    *,
    implemented: int,
    running: int,
    known: int,
    seeds: int,
    target: int,
    parallel: int,
) -> int:
    """How many sessions start now: within the target, the parallelism and the failure bound."""
    return max(
        0,
        min(
            target - implemented - running,
            parallel - running,
            SESSION_FAILURE_FACTOR * target + seeds - known,
        ),
    )


def session_start(
    index: int,
    *,
    implemented: int,
    designs: Sequence[DesignRecord],
    operators: GeneticOperators,
    selector: Selector,
    record: OperatorRecord | None = None,
) -> StartSession:
    """The index-th design session: its operator, parents and seed from (run seed, index).

    ``record`` is the run's operator record, which weighs the operators when they are adaptive.
    """
    rng = random.Random(f"{selector.seed}:session:{index}")
    operator = choose_operator(rng, implemented, operators, record)
    wanted = PARENTS_OF[operator]
    parents = select_parents(
        rng, designs, selector.fitness, selector.confidence, wanted, selector.selection
    )
    if len(parents) < wanted:
        operator, parents = "mutation", parents[:1]
    return StartSession(
        session=session_id(index),
        design_id=design_id(index),
        seq=len(SEED_NAMES) + index,
        operator=operator,
        parents=tuple(parents),
        seed=rng.randrange(2**31),
    )


def sessions(
    archive: Archive,
    running: frozenset[str],
    *,
    target: int,
    parallel: int,
    operators: GeneticOperators,
    selector: Selector,
) -> list[StartSession]:
    """New design sessions, numbered after every session known (finished or running)."""
    implemented = sum(1 for d in archive.designs.values() if not d.is_seed)
    known = len(set(archive.sessions) | running)
    count = session_count(
        implemented=implemented,
        running=len(running),
        known=known,
        seeds=len(archive.designs) - implemented,
        target=target,
        parallel=parallel,
    )
    designs = archive.ordered()
    record = operator_record(designs, selector.fitness) if operators.adaptive and count else None
    return [
        session_start(
            index,
            implemented=implemented,
            designs=designs,
            operators=operators,
            selector=selector,
            record=record,
        )
        for index in range(known, known + count)
    ]


__all__ = [
    "SESSION_FAILURE_FACTOR",
    "Capacity",
    "Jobs",
    "Selector",
    "bottom_rung",
    "capacity_timeouts",
    "counting_give_ups",
    "finished",
    "give_ups",
    "promotions",
    "seed_verifications",
    "session_count",
    "session_start",
    "sessions",
    "succeeded",
    "top_rung_open",
    "unscheduled_at_stop",
]
