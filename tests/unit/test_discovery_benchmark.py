"""The discovery benchmark's arithmetic: margins, intervals and the pooled noise floor."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` does not put the repository root on the path
    sys.path.insert(0, str(REPO))

from benchmarks.discovery import (  # noqa: E402
    Comparison,
    RunOutcome,
    comparisons,
    run_spec,
    summary_table,
)


def test_a_lower_loss_is_a_positive_margin_and_a_higher_score_too() -> None:
    loss = Comparison("val_loss", discovered=[2.0, 2.2], seed=[2.5, 2.7])
    assert loss.margin == pytest.approx(0.5)
    score = Comparison("genesys_mqar/acc_norm", discovered=[0.4, 0.5], seed=[0.3, 0.3])
    assert score.margin == pytest.approx(0.15)


def test_interval_and_noise_floor() -> None:
    row = Comparison("val_loss", discovered=[2.0, 2.2, 2.4], seed=[2.5, 2.6])
    var_d, var_s = statistics.variance([2.0, 2.2, 2.4]), statistics.variance([2.5, 2.6])
    assert row.interval == pytest.approx(2 * math.sqrt(var_d / 3 + var_s / 2))
    assert row.noise_floor == pytest.approx(math.sqrt((var_d * 2 + var_s * 1) / 3))


def test_comparisons_take_the_loss_then_the_tasks_both_records_have() -> None:
    ours = {"values": {"val_loss": [1, 2], "a/acc_norm": [0.1, 0.2], "b/acc_norm": [0.3, 0.3]}}
    theirs = {"values": {"val_loss": [3, 4], "a/acc_norm": [0.2, 0.2], "a/acc": [0.1, 0.1]}}
    assert [row.metric for row in comparisons(ours, theirs)] == ["val_loss", "a/acc_norm"]


def test_each_run_gets_its_own_name_and_seed(tmp_path: Path) -> None:
    base = {"metadata": {"name": "quickstart"}, "spec": {"seed": 7}}
    written = yaml.safe_load(run_spec(base, 2, tmp_path).read_text())
    assert written["metadata"]["name"] == "quickstart-disc2"
    assert written["spec"]["seed"] == 9
    assert base["spec"]["seed"] == 7  # the base is not changed


def test_a_win_needs_a_loss_margin_beyond_twice_the_floor() -> None:
    clear = Comparison("val_loss", discovered=[2.00, 2.02], seed=[2.50, 2.52])
    inside = Comparison("val_loss", discovered=[2.00, 2.10], seed=[2.05, 2.15])
    assert RunOutcome("a", 60, "d1", "seed-gpt2", clear).won
    assert not RunOutcome("b", 60, "d1", "seed-gpt2", inside).won
    assert not RunOutcome("c", 60, None, "seed-gpt2", None).won


def test_the_summary_table_has_a_row_per_run_with_its_verdict() -> None:
    clear = Comparison("val_loss", discovered=[2.00, 2.02], seed=[2.50, 2.52])
    table = summary_table(
        [
            RunOutcome("q-disc0", 540, "d7", "seed-mamba2", clear),
            RunOutcome("q-disc1", 90, None, None, None),
        ]
    )
    assert table[0].startswith("| run | wall time |")
    assert table[2] == "| q-disc0 | 9.0 min | d7 | seed-mamba2 | +0.500 ± 0.028 | 0.028 | yes |"
    assert table[3] == "| q-disc1 | 1.5 min | - | - | - | - | no |"
