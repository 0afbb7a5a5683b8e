"""What the planner is shown, and the budget accounting it derives from it.

:class:`Observed` is the backend's view of a run (the archive rebuilt from the store, the sessions
and training jobs running, which of those wait to be scheduled (:class:`Waiting`), failed
training attempts, USD spent); :class:`RungSummary` is one
rung's budget, what it used and what runs on it. The ids of sessions and the designs they may
add are deterministic: session ``s0007`` may add design ``d0007``.

What must stay true: the seeds' verifications at the lowest rung never count against its budget
(they are the reference, verified outside it); every other verification that finished, passed or
not, counts as used at its rung; running jobs count as running, seeds at the lowest rung excepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from genesys.api.ladder import RungConfig
from genesys.store.archive import Archive

Job = tuple[str, str]  # (design id, rung name)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A running training job whose pod is not placed yet, and why."""

    since: datetime  # when it started waiting
    reason: str  # "Unschedulable" (no node fits), "Queued" (not admitted by Kueue), "Scheduling"
    message: str = ""  # the scheduler's or the queue's words

    @property
    def for_capacity(self) -> bool:
        """True when it waits for capacity (no node fits, or no quota), not just a moment."""
        return self.reason in ("Unschedulable", "Queued")


@dataclass(slots=True)
class Observed:
    """What the backend saw: the archive plus in-flight work."""

    archive: Archive
    running_sessions: frozenset[str] = frozenset()
    running_jobs: frozenset[Job] = frozenset()
    failed_attempts: Mapping[Job, int] = field(default_factory=dict)
    spend_usd: float = 0.0
    waiting_jobs: Mapping[Job, Waiting] = field(default_factory=dict)  # a part of running_jobs

    @property
    def idle(self) -> bool:
        """True when no session and no training job is running."""
        return not self.running_sessions and not self.running_jobs


@dataclass(slots=True)
class RungSummary:
    """Budget accounting of one rung."""

    name: str
    budget: int
    used: int
    running: int

    @property
    def room(self) -> int:
        """Verifications the budget can still take (negative when overspent)."""
        return self.budget - self.used - self.running

    @property
    def spent(self) -> bool:
        """True when every verification of the budget has finished."""
        return self.used >= self.budget


def session_id(index: int) -> str:
    """The id of the index-th design session."""
    return f"s{index:04d}"


def design_id(index: int) -> str:
    """The id of the design the index-th session may add."""
    return f"d{index:04d}"


def in_budget(archive: Archive, design: str, rung: RungConfig) -> bool:
    """False for a seed at the lowest rung, whose verification is outside the budget."""
    record = archive.designs.get(design)
    return not (record is not None and record.is_seed and rung.index == 0)


def rung_summaries(rungs: Sequence[RungConfig], observed: Observed) -> list[RungSummary]:
    """The budget accounting of every rung, lowest first."""
    archive = observed.archive
    return [
        RungSummary(
            rung.name,
            rung.budget,
            used=sum(
                1
                for d in archive.designs.values()
                if rung.name in d.verifications and in_budget(archive, d.id, rung)
            ),
            running=sum(
                1
                for design, name in observed.running_jobs
                if name == rung.name and in_budget(archive, design, rung)
            ),
        )
        for rung in rungs
    ]


__all__ = [
    "Job",
    "Observed",
    "RungSummary",
    "Waiting",
    "design_id",
    "in_budget",
    "rung_summaries",
    "session_id",
]
