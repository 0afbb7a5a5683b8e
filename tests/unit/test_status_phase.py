"""A run's status takes its phase and finish reason from the engine's plan, never its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from genesys.api.discoveryrun import FinishReason, Phase
from genesys.controller.status import run_status
from genesys.engine.phase import NOTHING_RANKED_MESSAGE
from genesys.engine.plan import Plan, RungSummary
from genesys.store.archive import Archive

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def finished(phase: Phase, reason: FinishReason | None, message: str = "") -> Plan:
    rungs = [RungSummary("nano", 2, 2, 0)]
    return Plan([], phase, rungs, {}, None, 2, 0, finish=reason, message=message)


def status(plan: Plan, finish: FinishReason | None = None) -> dict[str, Any]:
    return run_status(
        {}, plan, Archive("r"), now=NOW, generation=1, finish=finish, llm_usd=0.0, gpu_hours=0.0
    )


def conditions(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in document["conditions"]}


def test_run_status_reports_the_plans_failure() -> None:
    failed = status(finished(Phase.FAILED, FinishReason.ERROR, NOTHING_RANKED_MESSAGE))
    assert failed["phase"] == "Failed"
    assert failed["finishReason"] == "Error"
    assert "finishTime" in failed
    found = conditions(failed)
    assert found["Failed"]["status"] == "True"
    assert found["Failed"]["message"] == NOTHING_RANKED_MESSAGE
    assert found["Ready"]["status"] == "False"
    assert found["Progressing"]["status"] == "False"


def test_run_status_takes_the_finish_reason_from_the_plan() -> None:
    done = status(finished(Phase.SUCCEEDED, FinishReason.MAX_DESIGNS_REACHED))
    assert done["phase"] == "Succeeded"
    assert done["finishReason"] == "MaxDesignsReached"
    assert conditions(done)["Ready"]["status"] == "True"
    assert conditions(done)["Failed"]["status"] == "False"


def test_run_status_of_a_running_plan_has_no_finish() -> None:
    running = status(finished(Phase.PROPOSING, None))
    assert running["phase"] == "Proposing"
    assert "finishReason" not in running
    assert "finishTime" not in running
    assert conditions(running)["Progressing"]["status"] == "True"
    assert conditions(running)["Progressing"]["message"] == "2 sessions done, 0 running"


def test_run_status_with_an_explicit_finish_reports_its_phase() -> None:
    capped = status(finished(Phase.VERIFYING, None), finish=FinishReason.USD_CAP_REACHED)
    assert capped["phase"] == "Succeeded"
    assert conditions(capped)["BudgetExhausted"]["status"] == "True"
