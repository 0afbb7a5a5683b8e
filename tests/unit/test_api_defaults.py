"""The API's defaults are the Genesys paper's numbers."""

from __future__ import annotations

from typing import Any

import pytest

from genesys.api.discoveryrun import PAPER_EVAL_TASKS, SMOLLM_SUBSETS, DiscoveryRunSpec, Phase
from genesys.api.ladder import resolve_ladder

SPEC = DiscoveryRunSpec()

PAPER_DEFAULTS: list[tuple[str, Any]] = [
    ("sessions.operators.mutation", 0.80),
    ("sessions.operators.crossover", 0.15),
    ("sessions.operators.scratch", 0.05),
    ("sessions.operators.crossover_warmup", 10),
    ("sessions.operators.scratch_warmup", 20),
    ("sessions.proposal_pass_rating", 4.0),
    ("sessions.observer_pass_rating", 3.0),
    ("sessions.max_proposal_attempts", 10),
    ("sessions.max_unit_attempts", 7),
    ("sessions.max_failed_rounds", 3),
    ("sessions.max_implementation_sessions", 3),
    ("sessions.flow", "gau"),
    ("selection.design_quantile", 0.25),
    ("selection.confidence_quantile", 0.25),
    ("selection.explore_probability", 0.2),
    ("selection.noise", 0.05),
    ("selection.restart_probability", 0.05),
    ("selection.seed_warmup", 10),
    ("selection.baseline_margin", 0.02),
    ("ladder.n_target", 1),
    ("ladder.selection_ratio", 0.25),
    ("checks.forward_batch_size", 2),
    ("checks.forward_length", 2048),
    ("checks.causality_length", 128),
    ("checks.effectiveness_steps", 10),
    ("checks.max_loss", 1e4),
    ("checks.max_grad_norm", 1e4),
    ("checks.time_ratio_error", 3.0),
    ("checks.memory_ratio_error", 4.0),
    ("checks.flops_ratio_error", 3.0),
    ("checks.loss_ratio_error", 3.0),
    ("checks.time_ratio_warning", 1.5),
    ("checks.memory_ratio_warning", 2.0),
    ("checks.flops_ratio_warning", 1.5),
    ("checks.loss_ratio_warning", 1.5),
    ("checks.param_tolerance", 0.2),
    ("verification.training.min_lr_ratio", 0.1),
    ("verification.training.warmup_fraction", 0.02),
    ("verification.training.max_loss", 1e4),
    ("verification.training.max_grad_norm", 1e4),
    ("verification.data.vocab_size", 32000),
    ("verification.data.dataset", "HuggingFaceTB/smollm-corpus"),
    ("agents.offline", False),
    ("suspend", False),
    ("seed", 0),
]


def lookup(spec: object, dotted: str) -> Any:
    value = spec
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("field", "expected"), PAPER_DEFAULTS, ids=[f for f, _ in PAPER_DEFAULTS])
def test_spec_default_is_paper_value(field: str, expected: Any) -> None:
    assert lookup(SPEC, field) == expected


def test_default_ladder_is_paper_ladder() -> None:
    rungs = resolve_ladder(SPEC.ladder, vocab_size=SPEC.verification.data.vocab_size)
    assert [r.name for r in rungs] == ["14M", "31M", "70M", "125M", "350M"]
    assert [r.budget for r in rungs] == [256, 64, 16, 4, 1]
    assert [(r.n_embd, r.n_layer) for r in rungs] == [
        (128, 6), (256, 6), (512, 6), (768, 12), (1024, 24),
    ]  # fmt: skip
    assert [r.lr for r in rungs] == [1e-3, 1e-3, 1e-3, 6e-4, 3e-4]
    assert [r.tokens_per_param for r in rungs] == [50, 40, 30, 20, 20]
    assert [r.confidence_points for r in rungs] == [1, 2, 3, 4, 5]
    assert {r.context_length for r in rungs} == {2048}
    assert {r.batch_tokens for r in rungs} == {524_288}


def test_default_data_mix_and_eval_tasks_are_the_papers() -> None:
    assert [s.name for s in SPEC.verification.data.subsets] == list(SMOLLM_SUBSETS)
    assert len(SMOLLM_SUBSETS) == 6
    assert SPEC.verification.eval_tasks == list(PAPER_EVAL_TASKS)
    assert {"blimp", "wsc273", "inverse_scaling", "glue"} <= set(PAPER_EVAL_TASKS)


@pytest.mark.parametrize(
    ("phase", "terminal"),
    [(phase, phase in {Phase.SUCCEEDED, Phase.FAILED, Phase.SPEC_INVALID}) for phase in Phase],
    ids=[phase.value for phase in Phase],
)
def test_phase_is_terminal(phase: Phase, terminal: bool) -> None:
    assert phase.is_terminal() is terminal


def test_spec_round_trips_through_camel_case() -> None:
    dumped = SPEC.model_dump(mode="json")
    assert "selectionRatio" in dumped["ladder"]
    assert "proposalPassRating" in dumped["sessions"]
    assert DiscoveryRunSpec.model_validate(dumped) == SPEC


def test_spec_accepts_python_names_too() -> None:
    spec = DiscoveryRunSpec.model_validate({"ladder": {"selection_ratio": 0.5}})
    assert spec.ladder.selection_ratio == 0.5
