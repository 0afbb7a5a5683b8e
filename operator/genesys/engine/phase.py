"""A run's phase and finish reason: decided here, and only here.

:func:`decide_phase` takes the facts of one plan (:class:`Progress`) and returns the phase and,
when the run is over, why (:class:`Decision`):

- ``Pending`` until the seeds are in the archive;
- a stop (:func:`stop_reason`: the USD cap reached, the deadline passed,
  ``sessions.maxConsecutiveFailures`` sessions failed in a row) starts nothing new; the run
  stays ``Verifying`` until its running work ends, then finishes with that reason;
- ``Suspended`` while ``spec.suspend`` holds (running work finishes, nothing new starts);
- ``Proposing`` while design sessions run or start, ``Verifying`` while only verifications do;
- with nothing left to start and nothing running, the run finishes: ``Error`` when not one
  verification succeeded (no design, not even a seed, has a fitness: there is nothing to rank),
  else ``MaxDesignsReached`` when ``sessions.maxDesigns`` designs exist, else ``BudgetsSpent``.

A finish reason ends the run ``Succeeded``, except ``Error`` and ``SessionsFailed``
(:func:`finished_phase`), which end it ``Failed``. A run that spent its budgets without a single
successful verification has no result, most likely because the training setup itself is broken;
one whose sessions keep failing has an endpoint or a model that yields no design. Calling
either ``Succeeded`` would hide that. It changes no work: the run does all it
would have done, only its end is reported as what it is. ``SpecInvalid`` is the operator's, for
a spec that does not validate; it never comes from here.

What must stay true: pure functions of their arguments (``now`` is one); a stop takes precedence
over ``suspend``; a run finishes only when nothing is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from genesys.api.discoveryrun import DiscoveryRunSpec, FinishReason, Phase

NOTHING_RANKED_MESSAGE = (
    "no verification succeeded, not even a seed design's: there is nothing to rank; check the "
    "training setup (image, data, resources, the rungs' deadlines), then start a new run"
)


@dataclass(frozen=True, slots=True)
class Progress:
    """The facts of one plan that decide the run's phase."""

    seeded: bool  # the seed designs are in the archive
    stop: FinishReason | None  # why nothing new may start (see stop_reason), or None
    suspended: bool  # spec.suspend
    idle: bool  # no session and no training job is running
    starting: bool  # this plan starts or records work
    proposing: bool  # design sessions are running or start now
    max_designs_reached: bool  # sessions.maxDesigns designs exist
    ranked: bool  # some design (a seed counts) has a fitness: a verification succeeded
    stop_message: str = ""  # what the stop's reason alone does not say


@dataclass(frozen=True, slots=True)
class Decision:
    """A run's phase, and why it finished when it did (then a ``Finish`` action is due)."""

    phase: Phase
    finish: FinishReason | None = None
    message: str = ""  # a longer why, for the status's conditions; empty when the reason says it


def stop_reason(
    spec: DiscoveryRunSpec, *, spend_usd: float, now: datetime, failed_in_a_row: int = 0
) -> FinishReason | None:
    """Why the run may start nothing new, or None.

    The USD cap first, then the deadline, then ``sessions.maxConsecutiveFailures`` sessions
    failed in a row (``failed_in_a_row``: the latest sessions' unbroken run of failures).
    """
    cap = spec.agents.max_usd_per_run
    if cap is not None and spend_usd >= cap:
        return FinishReason.USD_CAP_REACHED
    if spec.deadline is not None and now >= spec.deadline:
        return FinishReason.DEADLINE_PASSED
    limit = spec.sessions.max_consecutive_failures
    if limit is not None and failed_in_a_row >= limit:
        return FinishReason.SESSIONS_FAILED
    return None


FAILING_REASONS = frozenset({FinishReason.ERROR, FinishReason.SESSIONS_FAILED})
"""The finish reasons that end a run ``Failed``: it has no result worth ranking."""


def finished_phase(reason: FinishReason) -> Phase:
    """The phase a finish reason ends a run in."""
    return Phase.FAILED if reason in FAILING_REASONS else Phase.SUCCEEDED


def reported_phase(phase: Phase, finish: FinishReason | None) -> Phase:
    """The phase a run reports: ``phase`` while it runs, its finish reason's once finished."""
    return phase if finish is None else finished_phase(finish)


def decide_phase(progress: Progress) -> Decision:
    """The run's phase after one plan, and its finish reason when this plan finishes it."""
    if not progress.seeded:
        return Decision(Phase.PENDING)
    if progress.stop is not None and not progress.idle:
        return Decision(Phase.VERIFYING)  # nothing new starts; finish once running work ends
    if progress.stop is not None:
        return Decision(finished_phase(progress.stop), progress.stop, progress.stop_message)
    if progress.suspended:
        return Decision(Phase.SUSPENDED)
    if progress.starting or not progress.idle:
        return Decision(Phase.PROPOSING if progress.proposing else Phase.VERIFYING)
    if not progress.ranked:
        return Decision(Phase.FAILED, FinishReason.ERROR, NOTHING_RANKED_MESSAGE)
    if progress.max_designs_reached:
        return Decision(Phase.SUCCEEDED, FinishReason.MAX_DESIGNS_REACHED)
    return Decision(Phase.SUCCEEDED, FinishReason.BUDGETS_SPENT)


__all__ = [
    "FAILING_REASONS",
    "NOTHING_RANKED_MESSAGE",
    "Decision",
    "Progress",
    "decide_phase",
    "finished_phase",
    "reported_phase",
    "stop_reason",
]
