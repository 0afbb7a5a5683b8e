"""The planner's guards one at a time: genesys.engine.guards, .phase and .state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genesys.api.discoveryrun import (
    TERMINAL_PHASES,
    DiscoveryRunSpec,
    FinishReason,
    GeneticOperators,
    Phase,
    Selection,
)
from genesys.api.ladder import RungConfig, preset_rung, resolve_ladder
from genesys.api.seeds import SEED_NAMES
from genesys.engine import guards
from genesys.engine.actions import (
    CancelVerification,
    Finish,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.guards import Capacity, Jobs, Selector
from genesys.engine.phase import (
    NOTHING_RANKED_MESSAGE,
    Decision,
    Progress,
    decide_phase,
    finished_phase,
    reported_phase,
    stop_reason,
)
from genesys.engine.plan import plan
from genesys.engine.state import Observed, RungSummary, Waiting, rung_summaries
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.documents import SessionOutcome

NOW = datetime(2026, 11, 26, tzinfo=UTC)
SELECTOR = Selector(0, Selection(), {}, {})


def spec(**fields: Any) -> DiscoveryRunSpec:
    document: dict[str, Any] = {
        "ladder": {
            "rungs": [
                {"name": "nano", "preset": "nano", "budget": 4},
                {"name": "micro", "preset": "micro", "budget": 2},
            ]
        },
        "agents": {"offline": True},
        "verification": {"data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256}},
        **fields,
    }
    return DiscoveryRunSpec.model_validate(document)


def rungs() -> list[RungConfig]:
    return resolve_ladder(spec().ladder, vocab_size=256)


def store(designs: int = 0) -> Archive:
    """The seeds and ``designs`` designs, none verified."""
    archive = Archive("r")
    for seq, name in enumerate(SEED_NAMES):
        archive.designs[f"seed-{name}"] = DesignRecord(f"seed-{name}", name, "seed", [], seq)
    for index in range(designs):
        design = f"d{index:04d}"
        archive.designs[design] = DesignRecord(
            design, design, "mutation", ["seed-gpt2"], len(SEED_NAMES) + index
        )
    return archive


def result(archive: Archive, design: str, rung: str, status: str = "succeeded") -> Archive:
    archive.designs[design].verifications[rung] = Verification(rung, status, val_loss=2.0)
    return archive


def jobs(
    archive: Archive,
    blocked: set[tuple[str, str]] | None = None,
    attempts: dict[tuple[str, str], int] | None = None,
) -> Jobs:
    return Jobs(archive, frozenset(blocked or set()), attempts or {})


def summary(name: str = "nano", budget: int = 4, used: int = 0, running: int = 0) -> RungSummary:
    return RungSummary(name, budget, used, running)


# ---------------------------------------------------------------------------- capacity


def test_capacity_counts_every_running_job_seeds_too() -> None:
    running = [("seed-gpt2", "nano"), ("d0000", "nano"), ("d0001", "micro")]
    capacity = Capacity.of(rungs(), running, per_rung=3, max_waiting=100)
    assert capacity.free == {"nano": 1, "micro": 2}


def test_capacity_take_returns_a_new_value_and_never_goes_below_zero() -> None:
    capacity = Capacity({"nano": 1}, waiting_room=100)
    taken = capacity.take("nano", 2)
    assert capacity.at("nano") == 1  # unchanged
    assert taken.free == {"nano": -1}
    assert taken.at("nano") == 0


def test_jobs_can_start_only_what_is_neither_blocked_nor_finished() -> None:
    archive = result(store(2), "d0000", "nano", "failed")
    book = jobs(archive, blocked={("d0001", "nano")}, attempts={("d0001", "micro"): 2})
    assert not book.can_start("d0000", "nano")  # finished (a failure is final too)
    assert not book.can_start("d0001", "nano")  # running or given up
    assert book.can_start("d0001", "micro")
    assert book.start("d0001", "micro") == StartVerification("d0001", "micro", 2)


# ---------------------------------------------------------------------------- give-ups


def test_give_ups_record_a_verification_past_its_retries() -> None:
    attempts = {("d0000", "nano"): 3, ("d0001", "nano"): 2}
    given = guards.give_ups(store(2), frozenset(), attempts, max_retries=2)
    assert given == [RecordFailure("d0000", "nano", "failed 3 attempts")]


def test_give_ups_wait_for_a_running_attempt() -> None:
    running = frozenset({("d0000", "nano")})
    assert guards.give_ups(store(1), running, {("d0000", "nano"): 5}, max_retries=0) == []


def test_give_ups_skip_a_verification_already_recorded() -> None:
    archive = result(store(1), "d0000", "nano", "error")
    assert guards.give_ups(archive, frozenset(), {("d0000", "nano"): 5}, max_retries=0) == []


def test_give_ups_come_in_sorted_order() -> None:
    attempts = {("d0001", "nano"): 1, ("d0000", "micro"): 1, ("d0000", "nano"): 1}
    given = guards.give_ups(store(2), frozenset(), attempts, max_retries=0)
    assert [(g.design_id, g.rung) for g in given] == [
        ("d0000", "micro"),
        ("d0000", "nano"),
        ("d0001", "nano"),
    ]


# ---------------------------------------------------------------------------- seeds


def test_seed_verifications_start_every_seed_the_capacity_allows() -> None:
    archive = store(1)
    started, left = guards.seed_verifications(
        jobs(archive),
        archive.ordered(),
        "nano",
        Capacity({"nano": 3, "micro": 3}, waiting_room=100),
    )
    assert [s.design_id for s in started] == ["seed-gpt2", "seed-mamba2", "seed-retnet"]
    assert left.free == {"nano": 0, "micro": 3}


def test_seed_verifications_skip_seeds_running_or_finished() -> None:
    archive = result(store(0), "seed-gpt2", "nano")
    book = jobs(archive, blocked={("seed-mamba2", "nano")}, attempts={("seed-retnet", "nano"): 1})
    started, _ = guards.seed_verifications(
        book, archive.ordered(), "nano", Capacity({"nano": 8}, waiting_room=100)
    )
    assert started == [
        StartVerification("seed-retnet", "nano", 1),
        StartVerification("seed-rwkv6", "nano", 0),
        StartVerification("seed-ttt", "nano", 0),
    ]


def test_seed_verifications_with_no_capacity_start_nothing() -> None:
    archive = store(0)
    started, left = guards.seed_verifications(
        jobs(archive), archive.ordered(), "nano", Capacity({"nano": -1}, waiting_room=100)
    )
    assert started == []
    assert left.free == {"nano": -1}


# ---------------------------------------------------------------------------- bottom rung


def test_bottom_rung_starts_designs_in_creation_order_within_the_budget() -> None:
    archive = store(5)
    started, left = guards.bottom_rung(
        jobs(archive),
        archive.ordered(),
        summary(budget=4, used=1, running=1),
        Capacity({"nano": 8}, waiting_room=100),
    )
    assert [s.design_id for s in started] == ["d0000", "d0001"]
    assert left.at("nano") == 6


def test_bottom_rung_never_starts_a_seed() -> None:
    archive = store(0)
    started, _ = guards.bottom_rung(
        jobs(archive), archive.ordered(), summary(), Capacity({"nano": 8}, waiting_room=100)
    )
    assert started == []


def test_bottom_rung_is_held_to_the_capacity() -> None:
    archive = store(4)
    started, left = guards.bottom_rung(
        jobs(archive), archive.ordered(), summary(budget=4), Capacity({"nano": 1}, waiting_room=100)
    )
    assert [s.design_id for s in started] == ["d0000"]
    assert left.at("nano") == 0


def test_bottom_rung_with_an_overspent_budget_starts_nothing() -> None:
    archive = store(2)
    started, _ = guards.bottom_rung(
        jobs(archive),
        archive.ordered(),
        summary(budget=1, used=2),
        Capacity({"nano": 8}, waiting_room=100),
    )
    assert started == []


# ---------------------------------------------------------------------------- promotions


def test_promotions_take_only_designs_that_passed_the_rung_below() -> None:
    archive = store(3)
    result(archive, "d0000", "nano")
    result(archive, "d0001", "nano", "failed")
    started, left = guards.promotions(
        jobs(archive),
        archive.ordered(),
        summary("micro", budget=2),
        "nano",
        Capacity({"nano": 8, "micro": 8}, waiting_room=100),
        SELECTOR,
    )
    assert started == [StartVerification("d0000", "micro", 0)]
    assert left.at("micro") == 7


def test_promotions_never_take_a_quarantined_design() -> None:
    archive = store(2)
    result(archive, "d0000", "nano")
    result(archive, "d0001", "nano")
    archive.designs["d0001"].verifications["extra"] = Verification("extra", "quarantined")
    started, _ = guards.promotions(
        jobs(archive),
        archive.ordered(),
        summary("micro", budget=2),
        "nano",
        Capacity({"micro": 8}, waiting_room=100),
        SELECTOR,
    )
    assert [s.design_id for s in started] == ["d0000"]


def test_promotions_stop_at_the_room_of_the_budget() -> None:
    archive = store(4)
    for index in range(4):
        result(archive, f"d{index:04d}", "nano")
    started, _ = guards.promotions(
        jobs(archive),
        archive.ordered(),
        summary("micro", budget=3, used=1, running=1),
        "nano",
        Capacity({"micro": 8}, waiting_room=100),
        SELECTOR,
    )
    assert len(started) == 1


def test_promotions_without_capacity_start_nothing() -> None:
    archive = result(store(1), "d0000", "nano")
    started, left = guards.promotions(
        jobs(archive),
        archive.ordered(),
        summary("micro", budget=2),
        "nano",
        Capacity({"micro": 0}, waiting_room=100),
        SELECTOR,
    )
    assert started == []
    assert left.free == {"micro": 0}


def test_promotions_are_deterministic() -> None:
    archive = store(6)
    for index in range(6):
        result(archive, f"d{index:04d}", "nano")
    args = (summary("micro", budget=3), "nano", Capacity({"micro": 8}, waiting_room=100), SELECTOR)
    first, _ = guards.promotions(jobs(archive), archive.ordered(), *args)
    again, _ = guards.promotions(jobs(archive), archive.ordered(), *args)
    assert first == again
    assert len({s.design_id for s in first}) == 3


# ---------------------------------------------------------------------------- top-rung gate


def test_top_rung_open_when_every_lower_budget_is_spent() -> None:
    lower = [summary(budget=4, used=4), summary("micro", budget=2, used=3)]
    assert guards.top_rung_open(lower, proposing_over=False, jobs_running=True, pending=True)


def test_top_rung_open_closed_while_a_lower_budget_is_unspent_and_proposing() -> None:
    lower = [summary(budget=4, used=3)]
    assert not guards.top_rung_open(lower, proposing_over=False, jobs_running=False, pending=False)


def test_top_rung_open_when_proposing_is_over_and_nothing_is_pending() -> None:
    lower = [summary(budget=4, used=3)]
    assert guards.top_rung_open(lower, proposing_over=True, jobs_running=False, pending=False)


def test_top_rung_open_closed_while_work_is_pending_below() -> None:
    lower = [summary(budget=4, used=3)]
    assert not guards.top_rung_open(lower, proposing_over=True, jobs_running=False, pending=True)
    assert not guards.top_rung_open(lower, proposing_over=True, jobs_running=True, pending=False)


def test_top_rung_open_closed_while_a_lower_rung_runs_jobs() -> None:
    lower = [summary(budget=4, used=4, running=1)]
    assert not guards.top_rung_open(lower, proposing_over=True, jobs_running=True, pending=False)


# ---------------------------------------------------------------------------- sessions


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"implemented": 0, "running": 0, "known": 0, "target": 4, "parallel": 2}, 2),
        ({"implemented": 3, "running": 0, "known": 3, "target": 4, "parallel": 2}, 1),
        ({"implemented": 2, "running": 2, "known": 4, "target": 4, "parallel": 8}, 0),
        ({"implemented": 0, "running": 0, "known": 16, "target": 4, "parallel": 2}, 1),
        ({"implemented": 0, "running": 3, "known": 3, "target": 4, "parallel": 2}, 0),
    ],
    ids=["parallel", "target", "covered", "failure-bound", "over-parallel"],
)
def test_session_count_is_the_tightest_limit(counts: dict[str, int], expected: int) -> None:
    assert guards.session_count(seeds=5, **counts) == expected  # failure bound: 3 * 4 + 5 = 17


def test_session_start_numbers_the_session_and_its_design() -> None:
    archive = store(0)
    start = guards.session_start(
        7, implemented=0, designs=archive.ordered(), operators=GeneticOperators(), selector=SELECTOR
    )
    assert (start.session, start.design_id, start.seq) == ("s0007", "d0007", len(SEED_NAMES) + 7)
    assert start.operator == "mutation"  # crossover and scratch are still warming up
    assert len(start.parents) == 1
    assert start.parents[0].startswith("seed-")


def test_session_start_falls_back_to_mutation_without_enough_parents() -> None:
    archive = Archive("r")
    archive.designs["seed-gpt2"] = DesignRecord("seed-gpt2", "gpt2", "seed", [], 0)
    operators = GeneticOperators(mutation=0.0, crossover=1.0, scratch=0.0, crossover_warmup=0)
    start = guards.session_start(
        0, implemented=0, designs=archive.ordered(), operators=operators, selector=SELECTOR
    )
    assert start.operator == "mutation"
    assert start.parents == ("seed-gpt2",)


def test_sessions_continue_after_every_known_session() -> None:
    archive = store(1)
    archive.sessions["s0000"] = SessionOutcome(status="implemented", design="d0000", reason="-")
    archive.sessions["s0001"] = SessionOutcome(status="failed", design=None, reason="x")
    started = guards.sessions(
        archive,
        frozenset({"s0002"}),
        target=4,
        parallel=3,
        operators=GeneticOperators(),
        selector=SELECTOR,
    )
    assert [s.session for s in started] == ["s0003", "s0004"]
    assert all(isinstance(s, StartSession) for s in started)


def test_sessions_stop_at_the_target() -> None:
    started = guards.sessions(
        store(4),
        frozenset(),
        target=4,
        parallel=3,
        operators=GeneticOperators(),
        selector=SELECTOR,
    )
    assert started == []


# ---------------------------------------------------------------------------- budgets


def test_rung_summaries_leave_the_seeds_lowest_rung_out_of_its_budget() -> None:
    archive = store(2)
    result(archive, "seed-gpt2", "nano")
    result(archive, "seed-gpt2", "micro")  # a promoted seed counts above the lowest rung
    result(archive, "d0000", "nano", "error")
    running = frozenset({("seed-mamba2", "nano"), ("d0001", "nano"), ("d0000", "micro")})
    summaries = rung_summaries(rungs(), Observed(archive, running_jobs=running))
    assert summaries == [RungSummary("nano", 4, 1, 1), RungSummary("micro", 2, 1, 1)]
    assert summaries[0].room == 2
    assert not summaries[0].spent


# ---------------------------------------------------------------------------- phase


def progress(**facts: Any) -> Progress:
    base: dict[str, Any] = {
        "seeded": True,
        "stop": None,
        "suspended": False,
        "idle": True,
        "starting": False,
        "proposing": False,
        "max_designs_reached": False,
        "ranked": True,
    }
    return Progress(**{**base, **facts})


def test_decide_phase_pending_until_seeded() -> None:
    assert decide_phase(progress(seeded=False, stop=FinishReason.DEADLINE_PASSED)) == Decision(
        Phase.PENDING
    )


def test_decide_phase_stop_waits_for_running_work() -> None:
    waiting = progress(stop=FinishReason.USD_CAP_REACHED, idle=False, suspended=True)
    assert decide_phase(waiting) == Decision(Phase.VERIFYING)


def test_decide_phase_stop_finishes_when_idle() -> None:
    assert decide_phase(progress(stop=FinishReason.DEADLINE_PASSED)) == Decision(
        Phase.SUCCEEDED, FinishReason.DEADLINE_PASSED
    )


def test_decide_phase_suspended() -> None:
    assert decide_phase(progress(suspended=True, idle=False)) == Decision(Phase.SUSPENDED)


@pytest.mark.parametrize(
    ("facts", "phase"),
    [
        ({"starting": True, "proposing": True}, Phase.PROPOSING),
        ({"idle": False, "proposing": True}, Phase.PROPOSING),
        ({"starting": True}, Phase.VERIFYING),
        ({"idle": False}, Phase.VERIFYING),
    ],
)
def test_decide_phase_working(facts: dict[str, bool], phase: Phase) -> None:
    assert decide_phase(progress(**facts)) == Decision(phase)


def test_decide_phase_finishes_budgets_spent() -> None:
    assert decide_phase(progress()) == Decision(Phase.SUCCEEDED, FinishReason.BUDGETS_SPENT)


def test_decide_phase_finishes_max_designs_reached() -> None:
    assert decide_phase(progress(max_designs_reached=True)) == Decision(
        Phase.SUCCEEDED, FinishReason.MAX_DESIGNS_REACHED
    )


def test_decide_phase_fails_a_run_with_nothing_ranked() -> None:
    assert decide_phase(progress(ranked=False, max_designs_reached=True)) == Decision(
        Phase.FAILED, FinishReason.ERROR, NOTHING_RANKED_MESSAGE
    )


def test_stop_reason_usd_cap_comes_before_the_deadline() -> None:
    late = spec(
        agents={"offline": True, "maxUsdPerRun": 5},
        deadline=(NOW - timedelta(hours=1)).isoformat(),
    )
    assert stop_reason(late, spend_usd=5.0, now=NOW) == FinishReason.USD_CAP_REACHED
    assert stop_reason(late, spend_usd=4.9, now=NOW) == FinishReason.DEADLINE_PASSED
    assert stop_reason(late, spend_usd=0.0, now=NOW - timedelta(hours=2)) is None


def test_stop_reason_none_without_limits() -> None:
    assert stop_reason(spec(), spend_usd=1e9, now=NOW) is None


@pytest.mark.parametrize("reason", list(FinishReason))
def test_finished_phase_is_terminal_and_failed_only_without_a_result(
    reason: FinishReason,
) -> None:
    phase = finished_phase(reason)
    assert phase in TERMINAL_PHASES
    failing = reason in (FinishReason.ERROR, FinishReason.SESSIONS_FAILED)
    assert (phase is Phase.FAILED) == failing


def test_reported_phase_keeps_a_running_phase_until_finished() -> None:
    assert reported_phase(Phase.PROPOSING, None) is Phase.PROPOSING
    assert reported_phase(Phase.VERIFYING, FinishReason.USD_CAP_REACHED) is Phase.SUCCEEDED
    assert reported_phase(Phase.VERIFYING, FinishReason.ERROR) is Phase.FAILED


def test_terminal_phases_have_one_definition() -> None:
    assert {p for p in Phase if p.is_terminal()} == TERMINAL_PHASES
    assert "SpecInvalid" in TERMINAL_PHASES  # a raw status string is looked up too
    assert "Verifying" not in TERMINAL_PHASES


def test_counting_give_ups_fills_the_budget_place_of_each_give_up() -> None:
    rungs = [preset_rung("nano", vocab_size=256), preset_rung("micro", vocab_size=256)]
    rungs = [r.model_copy(update={"index": i}) for i, r in enumerate(rungs)]
    summaries = [RungSummary(r.name, 4, 1, 0) for r in rungs]
    given_up = [RecordFailure("d0001", rungs[1].name, "failed 3 attempts")]
    counted = guards.counting_give_ups(summaries, given_up, Archive(run="r"), rungs)
    assert [(s.name, s.used) for s in counted] == [(rungs[0].name, 1), (rungs[1].name, 2)]
    assert [s.used for s in summaries] == [1, 1]  # the argument is left as it was


# ------------------------------------------------------------------ waiting for capacity


def test_capacity_counts_waiting_jobs_against_every_rung() -> None:
    capacity = Capacity.of(rungs(), set(), per_rung=8, waiting=14, max_waiting=16)
    assert capacity.at("nano") == 2
    assert capacity.take("nano", 2).at("micro") == 0  # one room for every rung together


def test_capacity_with_more_waiting_than_allowed_starts_nothing() -> None:
    capacity = Capacity.of(rungs(), set(), per_rung=8, waiting=20, max_waiting=16)
    assert [capacity.at(r.name) for r in rungs()] == [0] * len(rungs())


def test_capacity_timeouts_cancel_only_jobs_that_waited_too_long_for_capacity() -> None:
    waiting = {
        ("d0001", "nano"): Waiting(NOW - timedelta(seconds=700), "Unschedulable", "0/3 nodes"),
        ("d0002", "nano"): Waiting(NOW - timedelta(seconds=100), "Unschedulable", "0/3 nodes"),
        ("d0003", "nano"): Waiting(NOW - timedelta(seconds=900), "Scheduling"),
        ("d0004", "micro"): Waiting(NOW - timedelta(seconds=601), "Queued", "queue gpus"),
    }
    cancelled = guards.capacity_timeouts(waiting, NOW, 600)
    assert [(c.design_id, c.rung) for c in cancelled] == [("d0001", "nano"), ("d0004", "micro")]
    assert isinstance(cancelled[0], CancelVerification)
    assert "waited 700s for capacity" in cancelled[0].reason
    assert "0/3 nodes" in cancelled[0].reason


def test_capacity_timeouts_without_a_timeout_cancel_nothing() -> None:
    waiting = {("d0001", "nano"): Waiting(NOW - timedelta(days=3), "Unschedulable")}
    assert guards.capacity_timeouts(waiting, NOW, None) == []


def test_unscheduled_jobs_are_cancelled_when_the_run_stops() -> None:
    waiting = {
        ("d0002", "micro"): Waiting(NOW, "Scheduling"),
        ("d0001", "nano"): Waiting(NOW - timedelta(hours=1), "Unschedulable", "0/3 nodes"),
    }
    cancelled = guards.unscheduled_at_stop(waiting, FinishReason.DEADLINE_PASSED)
    assert [(c.design_id, c.rung) for c in cancelled] == [("d0001", "nano"), ("d0002", "micro")]
    assert all("the run stopped (DeadlinePassed)" in c.reason for c in cancelled)


def test_a_stopped_run_cancels_its_unscheduled_jobs_and_waits_for_the_rest() -> None:
    stopped = spec(deadline=NOW - timedelta(minutes=1))
    waiting = {("d0001", "nano"): Waiting(NOW - timedelta(minutes=5), "Unschedulable")}
    observed = Observed(
        store(designs=2),
        running_jobs=frozenset({("d0000", "nano"), ("d0001", "nano")}),
        waiting_jobs=waiting,
    )
    result_ = plan(stopped, observed, NOW)
    assert [type(a).__name__ for a in result_.actions] == ["CancelVerification"]
    assert result_.phase == Phase.VERIFYING  # d0000 trains on: the run ends when it is done
    idle = plan(stopped, Observed(store(designs=2)), NOW)
    assert idle.actions[-1] == Finish(FinishReason.DEADLINE_PASSED)
