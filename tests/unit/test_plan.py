"""plan(): table tests of the pure engine, and seeded statistics of the selector."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genesys.api.discoveryrun import (
    DiscoveryRunSpec,
    FinishReason,
    GeneticOperators,
    Phase,
    Selection,
)
from genesys.api.seeds import SEED_NAMES
from genesys.engine.actions import Finish, InitSeeds, RecordFailure, StartSession, StartVerification
from genesys.engine.phase import NOTHING_RANKED_MESSAGE
from genesys.engine.plan import Observed, plan
from genesys.evolution.ranking import fitness, massey, ranking_matrix
from genesys.evolution.selection import choose_operator, credit, operator_record, select_parents
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.documents import SessionOutcome

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def make_spec(**overrides: Any) -> DiscoveryRunSpec:
    spec: dict[str, Any] = {
        "ladder": {
            "rungs": [
                {"name": "nano", "preset": "nano", "budget": 4},
                {"name": "micro", "preset": "micro", "budget": 2},
            ]
        },
        "sessions": {"parallel": 2, "operators": {"crossoverWarmup": 2, "scratchWarmup": 3}},
        "agents": {"offline": True},
        "verification": {
            "maxParallelJobsPerRung": 2,
            "maxRetries": 1,
            "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
        },
    }
    for key, value in overrides.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return DiscoveryRunSpec.model_validate(spec)


def verification(rung: str, score: float, status: str = "succeeded") -> Verification:
    return Verification(
        rung=rung, status=status, val_loss=3 - score, metrics={"genesys_cloze": {"acc_norm": score}}
    )


def archive(
    designs: int = 0,
    *,
    nano: dict[str, float] | None = None,
    micro: dict[str, float] | None = None,
    sessions: int | None = None,
) -> Archive:
    result = Archive("r")
    for seq, name in enumerate(SEED_NAMES):
        result.designs[f"seed-{name}"] = DesignRecord(f"seed-{name}", name, "seed", [], seq)
    for index in range(designs):
        design = f"d{index:04d}"
        result.designs[design] = DesignRecord(
            design, design, "mutation", ["seed-gpt2"], len(SEED_NAMES) + index
        )
    for design, score in (nano or {}).items():
        result.designs[design].verifications["nano"] = verification("nano", score)
    for design, score in (micro or {}).items():
        result.designs[design].verifications["micro"] = verification("micro", score)
    for index in range(designs if sessions is None else sessions):
        result.sessions[f"s{index:04d}"] = SessionOutcome(
            status="implemented", design=f"d{index:04d}", reason="-"
        )
    return result


def of(actions: list[Any], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def test_plan_empty_archive_initialises_seeds() -> None:
    result = plan(make_spec(), Observed(Archive("r")), NOW)
    assert result.actions == [InitSeeds()]
    assert result.phase == Phase.PENDING


def test_plan_verifies_seeds_outside_the_budget_and_starts_sessions() -> None:
    result = plan(make_spec(), Observed(archive()), NOW)
    starts = of(result.actions, StartVerification)
    assert {(a.design_id, a.rung) for a in starts} == {
        ("seed-gpt2", "nano"),
        ("seed-mamba2", "nano"),
    }
    sessions = of(result.actions, StartSession)
    assert [s.session for s in sessions] == ["s0000", "s0001"]  # parallel 2
    assert [s.design_id for s in sessions] == ["d0000", "d0001"]
    assert result.rungs[0].used == 0  # seeds do not count


def test_plan_session_ids_continue_after_known_sessions() -> None:
    observed = Observed(archive(2, sessions=3), running_sessions=frozenset())
    sessions = of(plan(make_spec(), observed, NOW).actions, StartSession)
    assert [s.session for s in sessions] == ["s0003", "s0004"]  # 2 implemented + 2 < budget 4
    assert sessions[0].seq == len(SEED_NAMES) + 3


def test_plan_stops_proposing_when_the_lowest_budget_is_covered() -> None:
    observed = Observed(archive(3), running_sessions=frozenset({"s0003"}))
    assert of(plan(make_spec(), observed, NOW).actions, StartSession) == []


def test_plan_respects_max_designs() -> None:
    spec = make_spec(sessions={"maxDesigns": 1})
    assert of(plan(spec, Observed(archive(1)), NOW).actions, StartSession) == []


def test_plan_operator_warmups_hold_back_crossover_and_scratch() -> None:
    spec = make_spec(
        sessions={"parallel": 1, "operators": {"crossoverWarmup": 100, "scratchWarmup": 100}}
    )
    operators = set()
    for index in range(40):
        observed = Observed(archive(0, sessions=index))
        for action in of(plan(spec, observed, NOW).actions, StartSession):
            operators.add(action.operator)
    assert operators == {"mutation"}


def test_plan_limits_jobs_per_rung() -> None:
    spec = make_spec(verification={"maxParallelJobsPerRung": 1})
    observed = Observed(archive(2), running_sessions=frozenset({"s0002", "s0003"}))
    starts = of(plan(spec, observed, NOW).actions, StartVerification)
    assert len([a for a in starts if a.rung == "nano"]) == 1


def test_plan_verifies_designs_at_the_lowest_rung_in_creation_order_within_budget() -> None:
    seeds = {f"seed-{n}": 0.3 for n in SEED_NAMES}
    observed = Observed(archive(6, nano=seeds, sessions=6))
    spec = make_spec(verification={"maxParallelJobsPerRung": 10})
    starts = [
        (a.design_id, a.rung) for a in of(plan(spec, observed, NOW).actions, StartVerification)
    ]
    assert starts == [("d0000", "nano"), ("d0001", "nano"), ("d0002", "nano"), ("d0003", "nano")]


def test_plan_top_rung_waits_until_lower_budget_is_spent() -> None:
    seeds = {f"seed-{n}": 0.3 for n in SEED_NAMES}
    partial = Observed(
        archive(4, nano={**seeds, "d0000": 0.5, "d0001": 0.4}),
        running_jobs=frozenset({("d0002", "nano")}),
    )
    assert not [
        a
        for a in of(plan(make_spec(), partial, NOW).actions, StartVerification)
        if a.rung == "micro"
    ]
    spent = Observed(
        archive(4, nano={**seeds, "d0000": 0.5, "d0001": 0.4, "d0002": 0.6, "d0003": 0.2})
    )
    promoted = [
        a for a in of(plan(make_spec(), spent, NOW).actions, StartVerification) if a.rung == "micro"
    ]
    assert len(promoted) == 2
    assert len({a.design_id for a in promoted}) == 2
    assert all(
        spent.archive.designs[a.design_id].verifications["nano"].status == "succeeded"
        for a in promoted
    )


def test_plan_promotes_only_designs_that_passed_the_rung_below() -> None:
    seeds = {f"seed-{n}": 0.3 for n in SEED_NAMES}
    record = archive(4, nano={**seeds, "d0000": 0.5, "d0001": 0.4, "d0002": 0.6, "d0003": 0.2})
    for name in [*list(seeds), "d0000", "d0001", "d0003"]:
        record.designs[name].verifications["nano"].status = "failed"
    promoted = [
        a.design_id
        for a in of(plan(make_spec(), Observed(record), NOW).actions, StartVerification)
        if a.rung == "micro"
    ]
    assert promoted == ["d0002"]


def test_plan_retries_failed_jobs_then_records_the_failure() -> None:
    spec = make_spec(verification={"maxParallelJobsPerRung": 10})
    observed = Observed(archive(1), failed_attempts={("d0000", "nano"): 1})
    retry = [
        a
        for a in of(plan(spec, observed, NOW).actions, StartVerification)
        if a.design_id == "d0000"
    ]
    assert retry == [StartVerification("d0000", "nano", 1)]
    exhausted = Observed(archive(1), failed_attempts={("d0000", "nano"): 2})
    actions = plan(make_spec(), exhausted, NOW).actions
    assert RecordFailure("d0000", "nano", "failed 2 attempts") in actions
    assert not [a for a in of(actions, StartVerification) if a.design_id == "d0000"]


def test_plan_failed_sessions_consume_their_index() -> None:
    record = archive(0, sessions=0)
    record.sessions["s0000"] = SessionOutcome(status="failed", design=None, reason="x")
    sessions = of(plan(make_spec(), Observed(record), NOW).actions, StartSession)
    assert [s.session for s in sessions] == ["s0001", "s0002"]


def test_plan_finishes_when_budgets_are_spent() -> None:
    seeds = {f"seed-{n}": 0.3 for n in SEED_NAMES}
    record = archive(
        4,
        nano={**seeds, "d0000": 0.5, "d0001": 0.4, "d0002": 0.6, "d0003": 0.2},
        micro={"d0000": 0.5, "d0002": 0.6},
    )
    result = plan(make_spec(), Observed(record), NOW)
    assert result.actions == [Finish(FinishReason.BUDGETS_SPENT)]
    assert result.phase == Phase.SUCCEEDED
    assert result.best == "d0002"


def test_plan_deadline_finishes_when_idle_and_starts_nothing() -> None:
    spec = make_spec(deadline=(NOW - timedelta(minutes=1)).isoformat())
    busy = Observed(archive(1), running_jobs=frozenset({("d0000", "nano")}))
    assert plan(spec, busy, NOW).actions == []
    assert plan(spec, Observed(archive(1)), NOW).actions == [Finish(FinishReason.DEADLINE_PASSED)]


def test_plan_usd_cap_finishes() -> None:
    spec = make_spec(agents={"offline": True, "maxUsdPerRun": 10})
    result = plan(spec, Observed(archive(1), spend_usd=10.5), NOW)
    assert result.actions == [Finish(FinishReason.USD_CAP_REACHED)]


def test_plan_suspend_starts_nothing() -> None:
    result = plan(make_spec(suspend=True), Observed(archive(1)), NOW)
    assert result.actions == []
    assert result.phase == Phase.SUSPENDED


def test_plan_is_deterministic() -> None:
    observed = Observed(archive(2, nano={"seed-gpt2": 0.4, "d0000": 0.5}, sessions=2))
    assert plan(make_spec(), observed, NOW).actions == plan(make_spec(), observed, NOW).actions


# ------------------------------------------------------------------------ evolution statistics


def test_operator_choice_frequencies_match_probabilities() -> None:
    rng = random.Random(0)
    counts = Counter(choose_operator(rng, 100, GeneticOperators()) for _ in range(20_000))
    assert counts["mutation"] / 20_000 == pytest.approx(0.80, abs=0.015)
    assert counts["crossover"] / 20_000 == pytest.approx(0.15, abs=0.015)
    assert counts["scratch"] / 20_000 == pytest.approx(0.05, abs=0.01)


def test_operator_choice_renormalises_during_warmup() -> None:
    rng = random.Random(1)
    counts = Counter(choose_operator(rng, 15, GeneticOperators()) for _ in range(20_000))
    assert counts["scratch"] == 0
    assert counts["crossover"] / 20_000 == pytest.approx(0.15 / 0.95, abs=0.015)


def lineage(*designs: tuple[str, str, list[str]]) -> list[DesignRecord]:
    return [DesignRecord(d, d, op, parents, seq) for seq, (d, op, parents) in enumerate(designs)]


def test_an_operator_improved_when_its_design_beats_its_best_parent() -> None:
    designs = lineage(
        ("seed-a", "seed", []),
        ("seed-b", "seed", []),
        ("m1", "mutation", ["seed-a"]),  # 0.5 > 0.4: improved
        ("m2", "mutation", ["seed-b"]),  # 0.1 < 0.9: not
        ("x1", "crossover", ["seed-a", "seed-b"]),  # 0.6 < 0.9, its best parent: not
        ("s1", "scratch", []),  # 0.3 < the median 0.45: not
        ("m3", "mutation", ["unranked"]),  # no ranked parent: 0.45 > the median? no
    )
    scores = {"seed-a": 0.4, "seed-b": 0.9, "m1": 0.5, "m2": 0.1, "x1": 0.6, "s1": 0.3, "m3": 0.45}
    record = operator_record(designs, scores)
    assert record == {"mutation": (1, 3), "crossover": (0, 1), "scratch": (0, 1)}
    assert credit(record, "mutation") == pytest.approx(2 * 2 / 5)
    assert credit(record, "crossover") == pytest.approx(2 / 3)
    assert credit({}, "mutation") == 1.0  # no record: the probability as given


def test_adaptive_operators_shift_towards_the_one_that_improved() -> None:
    record = {"mutation": (0, 8), "crossover": (6, 6)}
    fixed, adaptive = GeneticOperators(), GeneticOperators(adaptive=True)
    rng = random.Random(3)
    same = Counter(choose_operator(rng, 100, fixed, record) for _ in range(20_000))
    assert same["crossover"] / 20_000 == pytest.approx(0.15, abs=0.015)  # ignored unless adaptive
    counts = Counter(choose_operator(rng, 100, adaptive, record) for _ in range(20_000))
    weights = {"mutation": 0.80 * 0.2, "crossover": 0.15 * 2 * 7 / 8, "scratch": 0.05}
    expected = weights["crossover"] / sum(weights.values())
    assert counts["crossover"] / 20_000 == pytest.approx(expected, abs=0.015)
    assert Counter(choose_operator(rng, 5, adaptive, record) for _ in range(100)) == {
        "mutation": 100
    }  # the warm-ups still hold


def test_selector_first_parent_is_a_seed_until_warmup() -> None:
    record = archive(3, nano={"d0000": 0.6, "d0001": 0.5, "d0002": 0.4, "seed-gpt2": 0.3})
    scores = fitness(record)
    spec = make_spec()
    rng = random.Random(2)
    picks = [
        select_parents(rng, record.ordered(), scores, {}, 1, spec.selection)[0] for _ in range(500)
    ]
    assert all(p.startswith("seed-") for p in picks)  # 3 verified < seed warm-up of 10


def test_selector_exploits_good_high_designs_after_warmup() -> None:
    scores_in = {f"d{i:04d}": 0.3 + 0.03 * i for i in range(16)}
    record = archive(16, nano=scores_in)
    scores = fitness(record)
    spec = make_spec(
        selection={
            "seedWarmup": 0,
            "restartProbability": 0.0,
            "noise": 0.0,
            "exploreProbability": 0.0,
            "confidenceQuantile": 1.0,
        }
    )
    confidence = dict.fromkeys(scores, 5)
    rng = random.Random(3)
    picks = Counter(
        select_parents(rng, record.ordered(), scores, confidence, 1, spec.selection)[0]
        for _ in range(400)
    )
    best_quarter = set(sorted(scores, key=lambda d: -scores[d])[:4])
    assert set(picks) <= best_quarter


def test_selector_explore_probability_is_honoured() -> None:
    scores_in = {f"d{i:04d}": 0.3 + 0.03 * i for i in range(16)}
    record = archive(16, nano=scores_in)
    scores = fitness(record)
    spec = make_spec(
        selection={
            "seedWarmup": 0,
            "restartProbability": 0.0,
            "noise": 0.0,
            "exploreProbability": 0.2,
            "confidenceQuantile": 1.0,
        }
    )
    confidence = dict.fromkeys(scores, 5)
    rng = random.Random(4)
    best_quarter = set(sorted(scores, key=lambda d: -scores[d])[:4])  # the top 25% of 16
    picks = [
        select_parents(rng, record.ordered(), scores, confidence, 1, spec.selection)[0]
        for _ in range(4000)
    ]
    explored = sum(1 for p in picks if p not in best_quarter) / len(picks)
    assert explored == pytest.approx(0.2, abs=0.03)


def test_ranking_drops_columns_no_design_beats_baseline() -> None:
    record = archive(2, nano={"d0000": 0.26, "d0001": 0.255})
    ids, columns, _, _ = ranking_matrix(record.ordered())
    assert "genesys_cloze" not in columns  # nobody beats 0.25 by 0.02
    assert "neg_val_loss" in columns
    assert set(ids) == {"d0000", "d0001"}


def test_massey_orders_a_dominant_design_first() -> None:
    ratings = massey(["a", "b", "c"], [[0.9, -1.0], [0.5, -2.0], [0.1, -3.0]])
    assert ratings["a"] > ratings["b"] > ratings["c"]
    assert sum(ratings.values()) == pytest.approx(0.0, abs=1e-9)


def test_proposal_rating_weight_decides_how_much_the_rating_counts() -> None:
    """Two designs: ``low`` wins on loss, ``rated`` on the reviewer's rating."""
    record = Archive("r")
    for design, val_loss, rating in (("low", 2.0, 1.0), ("rated", 2.1, 5.0)):
        item = DesignRecord(design, design, "mutation", [], 1, proposal_rating=rating)
        item.verifications["nano"] = Verification("nano", "succeeded", val_loss=val_loss)
        record.designs[design] = item
    ignored = fitness(record, Selection(proposal_rating_weight=0.0))
    assert ignored["low"] > ignored["rated"]  # the rating does not count
    weighed = fitness(record, Selection(proposal_rating_weight=5.0))
    assert weighed["rated"] > weighed["low"]  # the rating outweighs the loss
    assert fitness(record) == fitness(record, Selection(proposal_rating_weight=1.0))  # the paper's


def test_fitness_honours_the_baseline_margin_of_the_spec() -> None:
    """``low`` wins on loss; ``acc`` on an accuracy that beats random by less than 0.02."""
    record = Archive("r")
    for design, val_loss, accuracy in (("low", 2.0, 0.255), ("acc", 2.01, 0.265)):
        item = DesignRecord(design, design, "mutation", [], 1)
        item.verifications["nano"] = Verification(
            "nano", "succeeded", val_loss=val_loss, metrics={"genesys_cloze": {"acc": accuracy}}
        )
        record.designs[design] = item
    paper = fitness(record, Selection())
    assert paper["low"] > paper["acc"]  # the accuracy column is dropped: loss alone decides
    kept = fitness(record, Selection(baseline_margin=0.0))
    assert kept["low"] == pytest.approx(kept["acc"])  # one column each way: a draw
    spec = make_spec(selection={"baselineMargin": 0.0})
    assert plan(spec, Observed(record), NOW).fitness == kept  # the planner uses the spec's


# ------------------------------------------------------------------------ the run fails


def nothing_succeeded(designs: int = 1, status: str = "error") -> Archive:
    record = archive(designs)
    for design in record.designs.values():
        design.verifications["nano"] = verification("nano", 0.3, status)
    return record


def test_plan_fails_a_run_that_ends_without_one_successful_verification() -> None:
    spec = make_spec(sessions={"maxDesigns": 1})
    result = plan(spec, Observed(nothing_succeeded()), NOW)
    assert result.actions == [Finish(FinishReason.ERROR)]
    assert result.phase == Phase.FAILED
    assert result.finish == FinishReason.ERROR
    assert result.message == NOTHING_RANKED_MESSAGE
    assert result.best is None


def test_plan_without_successes_still_does_its_work_first() -> None:
    result = plan(make_spec(), Observed(nothing_succeeded(status="failed")), NOW)
    assert [a.session for a in of(result.actions, StartSession)] == ["s0001", "s0002"]
    assert result.phase == Phase.PROPOSING
    assert result.finish is None


def test_plan_with_one_seed_verified_finishes_as_it_would() -> None:
    record = nothing_succeeded()
    record.designs["seed-ttt"].verifications["nano"] = verification("nano", 0.3)
    record.designs["seed-ttt"].verifications["micro"] = verification("micro", 0.3, "failed")
    result = plan(make_spec(sessions={"maxDesigns": 1}), Observed(record), NOW)
    assert result.actions == [Finish(FinishReason.MAX_DESIGNS_REACHED)]
    assert result.phase == Phase.SUCCEEDED


def failing_sessions(record: Archive, count: int, *, first: int = 1) -> Archive:
    for number in range(first, first + count):
        record.sessions[f"s{number:04d}"] = SessionOutcome(
            status="failed", reason=f"LLMError: HTTP 401 (session {number})"
        )
    return record


def test_a_run_whose_sessions_keep_failing_stops_and_finishes_failed_saying_why() -> None:
    spec = make_spec(sessions={"maxConsecutiveFailures": 3})
    record = failing_sessions(archive(2), 3)
    result = plan(spec, Observed(record), NOW)
    assert not of(result.actions, StartSession)
    assert result.actions == [Finish(FinishReason.SESSIONS_FAILED)]
    assert result.phase == Phase.FAILED
    assert result.message.startswith("the last 3 design sessions all failed")
    assert "HTTP 401 (session 3)" in result.message  # the latest failure's reason


def test_a_success_breaks_the_row_and_unset_means_never() -> None:
    record = failing_sessions(archive(2), 3)
    record.sessions["s0004"] = SessionOutcome(status="implemented", design="d0004", reason="ok")
    failing_sessions(record, 2, first=5)
    spec = make_spec(sessions={"maxConsecutiveFailures": 3})
    assert plan(spec, Observed(record), NOW).finish is None
    endless = failing_sessions(archive(2), 50)
    spec = make_spec(sessions={"maxConsecutiveFailures": None})
    assert plan(spec, Observed(endless), NOW).finish is None
