"""Whole runs of the pure planner against a simulated backend, as traces to record and replay.

A scenario is a spec (``examples/quickstart.yaml`` with a few fields changed) and the odds of
what can go wrong (a session that implements nothing, a training attempt that crashes, a guard
stop, a quarantined result). :func:`simulate` starts from an empty archive and repeats: observe
(the in-memory archive, running sessions and jobs, failed attempts, USD spent), ``plan()``, apply
the actions (seeds, designs and verification results written into the archive when their work
ends, with losses and accuracies drawn from ``random.Random`` seeded by the scenario's seed and
the work's id), advance the clock by one tick, until the plan finishes the run.

Each step's trace holds a summary of what was observed, the actions, the phase and finish reason
the run reports (through :func:`genesys.controller.status.run_status`), the rung accounting and
the best design. ``tests/unit/test_plan_replay.py`` replays every scenario and compares it with
the recorded ``tests/fixtures/plan_trace_<scenario>.json``; regenerate those only on purpose,
after a deliberate change of the planner's behaviour, with::

    python tests/support/plan_trace.py --write

What must stay true: the simulation is deterministic (no clock, no hash-seeded randomness, sorted
iteration), so a change of a trace is a change of the planner.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from genesys.api.discoveryrun import DiscoveryRunSpec
from genesys.api.validation import parse_discovery_run
from genesys.api.yamlio import load_spec_bytes
from genesys.controller.status import run_status
from genesys.engine.actions import (
    Action,
    Finish,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import SEED_NAMES, Observed, Plan, plan
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.documents import SessionOutcome

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
QUICKSTART = REPO / "examples" / "quickstart.yaml"
START = datetime(2026, 11, 26, tzinfo=UTC)
TICK = timedelta(minutes=1)
MAX_STEPS = 1000


@dataclass(frozen=True)
class Scenario:
    """A spec (quickstart with ``changes``, dotted paths) and the odds of failures."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    seed: int = 1  # of the simulated outcomes, not the run's spec.seed
    session_failure: float = 0.15
    attempt_crash: float = 0.1
    guard_stop: float = 0.05
    quarantine: float = 0.03
    usd_per_session: tuple[float, float] = (0.2, 0.8)
    suspended_steps: tuple[int, int] | None = None  # [first, last) steps with spec.suspend


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        # the embedded default: maxDesigns equals the lowest budget; finishes MaxDesignsReached
        Scenario("quickstart"),
        # three rungs, no maxDesigns, one retry, many crashes, a suspended stretch: BudgetsSpent
        Scenario(
            "three-rungs",
            changes={
                "spec.ladder.rungs": [
                    {"name": "nano", "preset": "nano", "budget": 9, "tokens": 250000},
                    {"name": "micro", "preset": "micro", "budget": 4, "tokens": 500000},
                    {"name": "mini", "preset": "mini", "budget": 1, "tokens": 800000},
                ],
                "spec.sessions.maxDesigns": None,
                "spec.sessions.parallel": 3,
                "spec.verification.maxRetries": 1,
                "spec.verification.maxParallelJobsPerRung": 3,
                "spec.seed": 7,
            },
            seed=2,
            session_failure=0.25,
            attempt_crash=0.3,
            guard_stop=0.08,
            quarantine=0.05,
            suspended_steps=(12, 18),
        ),
        # fewer designs than the lowest budget: the top rung opens once proposing is over
        Scenario(
            "top-gate",
            changes={
                "spec.ladder.rungs": [
                    {"name": "nano", "preset": "nano", "budget": 8, "tokens": 250000},
                    {"name": "micro", "preset": "micro", "budget": 2, "tokens": 500000},
                ],
                "spec.sessions.maxDesigns": 5,
                "spec.seed": 3,
            },
            seed=3,
        ),
        # budgets far beyond the deadline: nothing new starts after it, then DeadlinePassed
        Scenario(
            "deadline",
            changes={
                "spec.ladder.rungs": [
                    {"name": "nano", "preset": "nano", "budget": 40, "tokens": 250000},
                    {"name": "micro", "preset": "micro", "budget": 6, "tokens": 500000},
                ],
                "spec.sessions.maxDesigns": None,
                "spec.sessions.parallel": 3,
                "spec.deadline": (START + 25 * TICK).isoformat().replace("+00:00", "Z"),
                "spec.seed": 11,
            },
            seed=4,
            attempt_crash=0.2,
        ),
        # a USD cap the sessions reach before the budgets are spent: UsdCapReached
        Scenario(
            "usd-cap",
            changes={
                "spec.ladder.rungs": [
                    {"name": "nano", "preset": "nano", "budget": 30, "tokens": 250000},
                    {"name": "micro", "preset": "micro", "budget": 4, "tokens": 500000},
                ],
                "spec.sessions.maxDesigns": None,
                "spec.agents.maxUsdPerRun": 6,
                "spec.agents.maxUsdPerSession": 2,
                "spec.seed": 5,
            },
            seed=5,
        ),
    )
}


def load_spec(scenario: Scenario) -> DiscoveryRunSpec:
    """The quickstart spec with the scenario's changes, validated like any spec file."""
    document = load_spec_bytes(QUICKSTART.read_bytes(), source=str(QUICKSTART))
    for path, value in scenario.changes.items():
        *parents, last = path.split(".")
        node = document
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return parse_discovery_run(document).spec


@dataclass
class Running:
    """Work in flight: what ends it and when."""

    ends: datetime
    action: StartSession | StartVerification


@dataclass
class World:
    """The simulated backend: the archive and the work in flight."""

    scenario: Scenario
    spec: DiscoveryRunSpec
    archive: Archive = field(default_factory=lambda: Archive("trace"))
    sessions: dict[str, Running] = field(default_factory=dict)
    jobs: dict[tuple[str, str], Running] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)
    spend: float = 0.0
    quality: dict[str, float] = field(default_factory=dict)

    def rng(self, *parts: object) -> random.Random:
        """A generator seeded by the scenario and the work's id (never by hash())."""
        return random.Random(":".join(str(p) for p in (self.scenario.seed, *parts)))

    def observed(self) -> Observed:
        return Observed(
            archive=self.archive,
            running_sessions=frozenset(self.sessions),
            running_jobs=frozenset(self.jobs),
            failed_attempts=dict(self.failed),
            spend_usd=round(self.spend, 6),
        )

    # ------------------------------------------------------------------ applying actions

    def apply(self, action: Action, now: datetime) -> None:
        if isinstance(action, InitSeeds):
            self.init_seeds()
        elif isinstance(action, StartSession):
            ticks = self.rng("session-ticks", action.session).randint(2, 5)
            self.sessions[action.session] = Running(now + ticks * TICK, action)
        elif isinstance(action, StartVerification):
            key = (action.design_id, action.rung)
            rung_index = self.rung_index(action.rung)
            ticks = self.rng("job-ticks", *key, action.attempt).randint(1, 3) + rung_index
            self.jobs[key] = Running(now + ticks * TICK, action)
        elif isinstance(action, RecordFailure):
            record = self.archive.designs[action.design_id]
            record.verifications[action.rung] = Verification(
                action.rung, "error", reason=action.reason
            )

    def init_seeds(self) -> None:
        for seq, name in enumerate(SEED_NAMES):
            design = f"seed-{name}"
            if design not in self.archive.designs:
                self.archive.designs[design] = DesignRecord(design, name, "seed", [], seq)
                self.quality[design] = round(self.rng("quality", design).uniform(0.3, 0.45), 4)

    def rung_index(self, rung: str) -> int:
        return [r.name for r in self.spec.ladder.rungs].index(rung)

    # ------------------------------------------------------------------ work that ends

    def finish_due(self, now: datetime) -> None:
        for session in sorted(s for s, r in self.sessions.items() if r.ends <= now):
            running = self.sessions.pop(session)
            assert isinstance(running.action, StartSession)
            self.end_session(running.action)
        for key in sorted(k for k, r in self.jobs.items() if r.ends <= now):
            running = self.jobs.pop(key)
            assert isinstance(running.action, StartVerification)
            self.end_job(running.action)

    def end_session(self, action: StartSession) -> None:
        rng = self.rng("session", action.session)
        low, high = self.scenario.usd_per_session
        self.spend += rng.uniform(low, high)
        if rng.random() < self.scenario.session_failure:
            self.archive.sessions[action.session] = SessionOutcome(
                status="failed", design=None, reason="no candidate passed the checks"
            )
            return
        rating = round(rng.uniform(2.5, 5.0), 1)
        parents = [self.quality.get(p, 0.35) for p in action.parents] or [0.35]
        self.quality[action.design_id] = round(
            sum(parents) / len(parents) + rng.gauss(0.01, 0.04), 4
        )
        self.archive.designs[action.design_id] = DesignRecord(
            action.design_id,
            f"design {action.design_id}",
            action.operator,
            list(action.parents),
            action.seq,
            session=action.session,
            proposal_rating=rating,
        )
        self.archive.sessions[action.session] = SessionOutcome(
            status="implemented", design=action.design_id, reason="implemented", rating=rating
        )

    def end_job(self, action: StartVerification) -> None:
        key = (action.design_id, action.rung)
        rng = self.rng("job", *key, action.attempt)
        draw = rng.random()
        odds = self.scenario
        record = self.archive.designs[action.design_id]
        if draw < odds.attempt_crash:
            self.failed[key] = self.failed.get(key, 0) + 1  # an attempt record; retried
        elif draw < odds.attempt_crash + odds.guard_stop:
            record.verifications[action.rung] = Verification(
                action.rung, "failed", reason="loss above maxLoss"
            )
        elif not record.is_seed and draw < odds.attempt_crash + odds.guard_stop + odds.quarantine:
            record.verifications[action.rung] = Verification(
                action.rung, "quarantined", val_loss=0.1, reason="leak guard"
            )
        else:
            record.verifications[action.rung] = self.result(action, rng)

    def result(self, action: StartVerification, rng: random.Random) -> Verification:
        quality = self.quality[action.design_id] + 0.03 * self.rung_index(action.rung)
        tasks = self.spec.verification.eval_tasks
        metrics = {
            task: {"acc_norm": round(min(1.0, max(0.0, quality + rng.gauss(0, 0.03))), 4)}
            for task in tasks
        }
        return Verification(
            action.rung,
            "succeeded",
            val_loss=round(3.6 - 2 * quality + rng.gauss(0, 0.03), 4),
            train_loss=round(3.5 - 2 * quality, 4),
            params=100_000,
            metrics=metrics,
        )


# ---------------------------------------------------------------------------------- the trace


def action_json(action: Action) -> dict[str, Any]:
    """An action as JSON: its kind and fields."""
    fields = {
        name: (value.value if isinstance(value, Enum) else value)
        for name, value in asdict(action).items()
    }
    return {"kind": type(action).__name__, **{k: _plain(v) for k, v in fields.items()}}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def observed_json(world: World, spec: DiscoveryRunSpec) -> dict[str, Any]:
    """What the planner was shown, summarised."""
    archive = world.archive
    verified = {
        rung.name: [
            f"{d.id}:{d.verifications[rung.name].status}"
            for d in archive.ordered()
            if rung.name in d.verifications
        ]
        for rung in spec.ladder.rungs
    }
    return {
        "designs": sum(1 for d in archive.designs.values() if not d.is_seed),
        "seeds": sum(1 for d in archive.designs.values() if d.is_seed),
        "sessions": len(archive.sessions),
        "verified": verified,
        "runningSessions": sorted(world.sessions),
        "runningJobs": [list(key) for key in sorted(world.jobs)],
        "failedAttempts": {f"{d}/{r}": n for (d, r), n in sorted(world.failed.items())},
        "spendUsd": round(world.spend, 4),
        "suspend": spec.suspend,
    }


def step_json(
    step: int, now: datetime, observed: dict[str, Any], result: Plan, status: dict[str, Any]
) -> dict[str, Any]:
    """One step of a trace."""
    return {
        "step": step,
        "now": now.isoformat(),
        "observed": observed,
        "actions": [action_json(a) for a in result.actions],
        "phase": status["phase"],
        "reason": status.get("finishReason"),
        "rungs": [[r.name, r.budget, r.used, r.running] for r in result.rungs],
        "best": result.best,
        "sessions": [result.sessions_done, result.sessions_running],
    }


def simulate(scenario: Scenario) -> list[dict[str, Any]]:
    """Every step of a scenario's run, from an empty archive to Finish."""
    base = load_spec(scenario)
    world = World(scenario, base)
    now = START
    steps: list[dict[str, Any]] = []
    for step in range(MAX_STEPS):
        window = scenario.suspended_steps
        suspended = window is not None and window[0] <= step < window[1]
        spec = base.model_copy(update={"suspend": True}) if suspended else base
        summary = observed_json(world, spec)
        observed = world.observed()
        result = plan(spec, observed, now)
        finish = next((a.reason for a in result.actions if isinstance(a, Finish)), None)
        status = run_status(
            {},
            result,
            world.archive,
            now=now,
            generation=1,
            finish=finish,
            llm_usd=observed.spend_usd,
            gpu_hours=0.0,
        )
        steps.append(step_json(step, now, summary, result, status))
        if finish is not None:
            return steps
        for action in result.actions:
            world.apply(action, now)
        now += TICK
        world.finish_due(now)
    raise AssertionError(f"scenario {scenario.name} did not finish in {MAX_STEPS} steps")


def fixture_path(name: str) -> Path:
    """Where a scenario's recorded trace lives."""
    return FIXTURES / f"plan_trace_{name}.json"


def render(name: str, steps: list[dict[str, Any]]) -> str:
    """A trace file's text."""
    document = {
        "scenario": name,
        "regenerate": "python tests/support/plan_trace.py --write",
        "steps": steps,
    }
    return json.dumps(document, indent=1) + "\n"


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    """Print a summary of every scenario; with ``--write``, record their traces."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="write tests/fixtures/plan_trace_*")
    args = parser.parse_args(argv)
    for name, scenario in SCENARIOS.items():
        steps = simulate(scenario)
        last = steps[-1]
        out(f"{name}: {len(steps)} steps, {last['phase']} ({last['reason']})")
        if args.write:
            fixture_path(name).write_text(render(name, steps), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
