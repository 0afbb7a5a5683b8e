"""Behaviour preservation of the planner: whole simulated runs replayed against recorded traces.

Each scenario of :mod:`support.plan_trace` drives ``plan()`` from an empty archive to ``Finish``
against a simulated backend; every step's actions, reported phase and finish reason, rung
accounting and best design must equal the trace recorded in
``tests/fixtures/plan_trace_<scenario>.json``. These tests only read the traces. After a
deliberate change of the planner's behaviour, regenerate them and review their diff::

    python tests/support/plan_trace.py --write
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.plan_trace import SCENARIOS, fixture_path, simulate


def recorded(name: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = json.loads(fixture_path(name).read_text("utf-8"))["steps"]
    return steps


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replayed_run_takes_the_recorded_steps(name: str) -> None:
    expected = recorded(name)
    replayed = json.loads(json.dumps(simulate(SCENARIOS[name])))
    for old, new in zip(expected, replayed, strict=False):
        assert new == old, f"{name}: step {old['step']} differs from the recorded trace"
    assert len(replayed) == len(expected)


def test_the_traces_cover_every_finish_and_the_planner_rules() -> None:
    traces = {name: recorded(name) for name in SCENARIOS}
    reasons = {steps[-1]["reason"] for steps in traces.values()}
    assert reasons == {"MaxDesignsReached", "BudgetsSpent", "DeadlinePassed", "UsdCapReached"}
    actions = [a for steps in traces.values() for step in steps for a in step["actions"]]
    assert any(a["kind"] == "RecordFailure" for a in actions)
    assert any(a["kind"] == "StartVerification" and a["attempt"] > 0 for a in actions)
    assert any(a["kind"] == "StartVerification" and a["rung"] == "mini" for a in actions)
    phases = {step["phase"] for steps in traces.values() for step in steps}
    assert {"Pending", "Proposing", "Verifying", "Suspended", "Succeeded"} <= phases
    # the top rung of "top-gate" opened with the lowest budget unspent (proposing was over)
    gate = traces["top-gate"]
    opened = next(s for s in gate if any(a.get("rung") == "micro" for a in s["actions"]))
    assert opened["rungs"][0][2] < opened["rungs"][0][1]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_rung_ever_verifies_more_than_its_budget(name: str) -> None:
    for step in recorded(name):
        for rung, budget, used, running in step["rungs"]:
            assert used + running <= budget, f"{name}: step {step['step']}, rung {rung}"
