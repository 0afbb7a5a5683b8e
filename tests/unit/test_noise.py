"""Noise floors: collected from repeats, pooled, stored with the archive, and ties in the ranking."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from genesys.api.discoveryrun import DiscoveryRun, Selection
from genesys.backends.noise import needs_training, repeat_name, repeat_run
from genesys.evolution.ranking import (
    column_noise,
    design_errors,
    fitness,
    game_tie,
    massey,
    ranking_matrix,
    tie_margins,
)
from genesys.store.archive import Archive, DesignRecord, Verification, load_archive
from genesys.store.base import LocalStore
from genesys.store.documents import VerificationResult, write_document
from genesys.store.noise import (
    LOSS,
    NoiseFloor,
    collect,
    noise_key,
    pooled_floor,
    pooled_std,
    render,
)


def result(val_loss: float | None, acc: float, status: str = "succeeded") -> VerificationResult:
    return VerificationResult(
        design="seed-gpt2",
        rung="nano",
        status=status,
        reason="" if status == "succeeded" else "the loss was NaN",
        val_loss=val_loss,
        eval={"genesys_mqar": {"acc": acc, "acc_norm": acc, "acc_stderr": 0.01}},
    )


def test_collect_keeps_every_repeat_and_never_averages_a_failure_in() -> None:
    floor = collect(
        "seed-gpt2",
        "nano",
        [result(3.0, 0.30), result(3.2, 0.34), result(None, 0.9, "failed"), "no result.json"],
    )
    assert floor.repeats == 2
    assert floor.values[LOSS] == [3.0, 3.2]
    assert floor.mean[LOSS] == pytest.approx(3.1)
    assert floor.std[LOSS] == pytest.approx(statistics.stdev([3.0, 3.2]))
    assert floor.std["genesys_mqar/acc"] == pytest.approx(statistics.stdev([0.30, 0.34]))
    assert "genesys_mqar/acc_stderr" not in floor.values  # one evaluation's error, not a figure
    assert floor.failures == [
        "repeat 2: failed: the loss was NaN",
        "repeat 3: no result.json",
    ]
    table = render(floor)
    assert table.splitlines()[2].startswith("val_loss")  # the loss first
    assert "failed: repeat 3: no result.json" in table


def test_one_repeat_has_no_spread() -> None:
    floor = collect("seed-gpt2", "nano", [result(3.0, 0.3)])
    assert floor.std == {}
    assert pooled_std([floor], LOSS) is None


def test_pooled_std_weighs_each_floor_by_its_degrees_of_freedom() -> None:
    a = NoiseFloor(design="a", rung="nano", values={LOSS: [1.0, 1.2]})
    b = NoiseFloor(design="b", rung="nano", values={LOSS: [2.0, 2.1, 2.3]})
    expected = math.sqrt((0.02 * 1 + statistics.variance([2.0, 2.1, 2.3]) * 2) / 3)
    assert pooled_std([a, b], LOSS) == pytest.approx(expected)
    assert pooled_floor([a, b]) == {LOSS: pytest.approx(expected)}


def test_the_archive_reads_the_noise_floors_of_its_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    floor = NoiseFloor(design="seed-gpt2", rung="nano", values={LOSS: [3.0, 3.1, 3.3]})
    write_document(store, noise_key("nano", "seed-gpt2"), floor)
    store.put_text("noise/nano/broken.json", "{not json")
    archive = load_archive(store, "run")
    assert list(archive.noise) == ["noise/nano/seed-gpt2.json"]
    assert archive.noise_floor()[LOSS] == pytest.approx(statistics.stdev([3.0, 3.1, 3.3]))
    assert any("broken.json" in problem for problem in archive.problems)


def two_designs(loss_a: float, loss_b: float, noise: list[float] | None) -> Archive:
    archive = Archive("run")
    for seq, (design, loss) in enumerate((("a", loss_a), ("b", loss_b))):
        record = DesignRecord(design, design, "mutation", [], seq)
        record.verifications["nano"] = Verification("nano", "succeeded", val_loss=loss)
        archive.designs[design] = record
    if noise is not None:
        archive.noise["noise/nano/a.json"] = NoiseFloor(
            design="a", rung="nano", values={LOSS: noise}
        )
    return archive


NOISY = [3.0, 3.1, 2.9]  # sigma 0.1: a difference of two trainings ties up to 2 x 0.1 x sqrt 2


def test_a_difference_inside_the_noise_floor_is_a_tie() -> None:
    scores = fitness(two_designs(3.00, 3.20, NOISY), Selection(ties="noise", tie_sigmas=2.0))
    assert scores["a"] == pytest.approx(scores["b"])


def test_a_difference_beyond_the_noise_floor_still_ranks() -> None:
    scores = fitness(two_designs(3.00, 3.40, NOISY), Selection(ties="noise", tie_sigmas=2.0))
    assert scores["a"] > scores["b"]


def test_the_papers_rule_counts_every_difference() -> None:
    scores = fitness(two_designs(3.00, 3.20, NOISY), Selection(ties="exact"))
    assert scores["a"] > scores["b"]


def test_without_a_measured_floor_noise_ties_rank_like_the_papers_rule() -> None:
    archive = two_designs(3.00, 3.01, None)
    assert fitness(archive, Selection(ties="noise")) == fitness(archive, Selection(ties="exact"))


def test_tie_margins_map_columns_to_their_metrics() -> None:
    floor = {LOSS: 0.1, "genesys_mqar/acc_norm": 0.02, "genesys_cloze/acc": 0.03}
    assert column_noise("neg_val_loss", floor) == 0.1
    assert column_noise("genesys_mqar", floor) == 0.02  # acc_norm, as the ranking scores it
    assert column_noise("genesys_cloze", floor) == 0.03
    assert column_noise("rating", floor) is None
    margins = tie_margins(["neg_val_loss", "rating"], floor, 2.0)
    assert margins == [pytest.approx(0.2 * math.sqrt(2)), 0.0]


def test_massey_ties_count_as_games_with_no_margin() -> None:
    ids = ["a", "b", "c"]
    matrix = [[1.0], [1.05], [2.0]]
    tied, untied = massey(ids, matrix, ties=[0.1]), massey(ids, matrix)
    # a and b tie with each other; only their games against c still tell them apart
    assert 0 <= tied["b"] - tied["a"] < untied["b"] - untied["a"]
    assert tied["c"] > tied["b"]
    assert massey(ids[:2], matrix[:2], ties=[0.1]) == {"a": 0.0, "b": 0.0}


def test_repeats_differ_by_seed_and_an_edited_spec_gets_runs_of_its_own() -> None:
    run = DiscoveryRun.model_validate(
        {
            "apiVersion": "genesys.dev/v1alpha1",
            "kind": "DiscoveryRun",
            "metadata": {"name": "quickstart"},
            "spec": {"seed": 5, "ladder": {"rungs": [{"name": "nano", "preset": "nano"}]}},
        }
    )
    first, second = (repeat_run(run, "seed-gpt2", "nano", k) for k in (0, 1))
    assert (first.spec.seed, second.spec.seed) == (5, 6)
    assert first.spec.model_copy(update={"seed": 6}) == second.spec
    assert first.metadata.name.startswith("quickstart-noise-seed-gpt2-nano-")
    assert first.metadata.name != second.metadata.name
    assert len(repeat_name(run, "d" * 80, "nano", 12)) <= 63
    edited = run.model_copy(
        update={"spec": run.spec.model_copy(update={"selection": Selection(tie_sigmas=3.0)})}
    )
    assert repeat_name(edited, "seed-gpt2", "nano", 0) != first.metadata.name


def test_only_a_repeat_that_succeeded_is_not_trained_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = "designs/seed-gpt2/verifications/nano/result.json"
    assert needs_training(store, "seed-gpt2", "nano")  # no result yet
    write_document(store, key, result(3.0, 0.3))
    assert not needs_training(store, "seed-gpt2", "nano")
    write_document(store, key, result(None, 0.3, "failed"))
    assert needs_training(store, "seed-gpt2", "nano")
    assert not store.exists(key)  # removed, so the new training can record its own


def scored(design: str, seq: int, loss: float, tasks: dict[str, float], items: int) -> DesignRecord:
    """A design verified at nano with these accuracies on ``items`` items each."""
    record = DesignRecord(design, design, "mutation", [], seq)
    metrics = {
        task: {"acc": acc, "acc_stderr": math.sqrt(acc * (1 - acc) / (items - 1))}
        for task, acc in tasks.items()
    }
    record.verifications["nano"] = Verification("nano", "succeeded", val_loss=loss, metrics=metrics)
    return record


def test_an_accuracy_averaged_over_rungs_has_the_error_of_a_mean() -> None:
    record = scored("a", 0, 3.0, {"genesys_cloze": 0.4}, 1201)
    record.verifications["micro"] = Verification(
        "micro",
        "succeeded",
        val_loss=2.0,
        metrics={"genesys_cloze": {"acc": 0.5, "acc_stderr": 0.02}},
    )
    first = math.sqrt(0.4 * 0.6 / 1200)
    assert design_errors(record)["genesys_cloze"] == pytest.approx(
        math.sqrt(first**2 + 0.02**2) / 2
    )
    record.verifications["mini"] = Verification(
        "mini", "succeeded", val_loss=1.0, metrics={"genesys_cloze": {"acc": 0.5}}
    )
    assert design_errors(record) == {}  # one score with no recorded error: the mean has none


def test_a_game_ties_within_its_two_scores_errors_or_the_columns_floor() -> None:
    assert game_tie(0.0, 0.01, 0.02, 2.0) == pytest.approx(2 * math.sqrt(0.0005))
    assert game_tie(0.1, 0.01, 0.02, 2.0) == 0.1  # the measured floor is the larger
    assert game_tie(0.05, None, 0.02, 2.0) == 0.05  # an unknown error: the column's tie alone
    ids, matrix = ["a", "b"], [[0.30], [0.32]]
    assert massey(ids, matrix, errors=[[0.0125], [0.0125]], error_sigmas=2.0) == {
        "a": 0.0,
        "b": 0.0,
    }
    assert massey(ids, matrix, errors=[[0.005], [0.005]], error_sigmas=2.0)["b"] > 0


CHANCE_TASKS = ("genesys_mqar", "genesys_selective_copy", "genesys_induction")


def chance_level_run() -> Archive:
    """What was seen: the better loss loses the fitness to chance-level task noise.

    ``seed`` has the better validation loss; ``crossover`` scores 0.26 to 0.27 against the
    seed's 0.24 on three tasks at chance (0.25), on 1,200 items each (a standard error of
    0.0125), and the same on cloze, which both learnt.
    """
    archive = Archive("run")
    seed = {"genesys_cloze": 0.45, **dict.fromkeys(CHANCE_TASKS, 0.24)}
    crossover = {"genesys_cloze": 0.45, **dict.fromkeys(CHANCE_TASKS, 0.27)}
    for seq, record in enumerate(
        (
            scored("seed", 0, 1.327, seed, 1200),
            scored("crossover", 1, 1.383, crossover, 1200),
            scored(
                "other", 2, 1.50, {"genesys_cloze": 0.40, **dict.fromkeys(CHANCE_TASKS, 0.25)}, 1200
            ),
        )
    ):
        record.seq = seq
        archive.designs[record.id] = record
    return archive


def test_chance_level_columns_within_their_item_noise_rank_nothing() -> None:
    archive = chance_level_run()
    paper = fitness(archive, Selection(ties="exact"))
    assert paper["crossover"] > paper["seed"]  # the paper's rule chases the three noisy columns
    aware = fitness(archive, Selection(ties="noise", tie_sigmas=2.0))
    assert aware["seed"] > aware["crossover"] > aware["other"]
    _, kept, _, _ = ranking_matrix(archive.ordered(), margin=0.02, error_sigmas=2.0)
    assert kept == ["genesys_cloze", "neg_val_loss"]  # 0.27 is within 2 x 0.0128 of 0.25
    _, kept, _, _ = ranking_matrix(archive.ordered(), margin=0.02)
    assert kept == ["genesys_cloze", *sorted(CHANCE_TASKS), "neg_val_loss"]
