"""The actions the planner returns and the backends execute.

What must stay true: actions are plain, immutable data with deterministic ids, so applying the
same plan twice (after a crash) creates nothing twice: the backend keys every child by its id.
"""

from __future__ import annotations

from dataclasses import dataclass

from genesys.api.discoveryrun import FinishReason


@dataclass(frozen=True, slots=True)
class InitSeeds:
    """Record the seed designs in the archive (ids ``seed-<name>``)."""


@dataclass(frozen=True, slots=True)
class StartSession:
    """Run one design session that may add design ``design_id``."""

    session: str
    design_id: str
    seq: int
    operator: str  # mutation | crossover | scratch
    parents: tuple[str, ...]
    seed: int


@dataclass(frozen=True, slots=True)
class StartVerification:
    """Train and evaluate ``design_id`` at ``rung`` (attempt numbers start at 0)."""

    design_id: str
    rung: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Give up on a verification after its retries: write a final ``error`` result."""

    design_id: str
    rung: str
    reason: str


@dataclass(frozen=True, slots=True)
class CancelVerification:
    """Cancel a training job that waited too long for capacity; write a final ``error`` result."""

    design_id: str
    rung: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The run is over."""

    reason: FinishReason


Action = InitSeeds | StartSession | StartVerification | RecordFailure | CancelVerification | Finish


def count_actions(actions: list[Action]) -> dict[str, int]:
    """How many actions of each kind a plan holds, by class name."""
    counts: dict[str, int] = {}
    for action in actions:
        kind = type(action).__name__
        counts[kind] = counts.get(kind, 0) + 1
    return counts


__all__ = [
    "Action",
    "CancelVerification",
    "Finish",
    "InitSeeds",
    "RecordFailure",
    "StartSession",
    "StartVerification",
    "count_actions",
]
