"""Ladder resolution: presets, overrides and budget derivation."""

from __future__ import annotations

import pytest

from genesys.api.discoveryrun import Ladder, ModelShape, Rung
from genesys.api.ladder import derive_budgets, resolve_ladder, resolve_rung
from genesys.api.presets import CPU_LADDER, PAPER_LADDER, SCALE_PRESETS, reference_params

# The paper's "reference params (non-embedding, tied)" column, which includes the tied
# embedding at vocab 32000.
PAPER_REFERENCE = {"14M": 5.28e6, "31M": 12.9e6, "70M": 35.3e6, "125M": 109.6e6, "350M": 334.9e6}


@pytest.mark.parametrize("name", PAPER_LADDER)
def test_reference_params_match_paper_table(name: str) -> None:
    preset = SCALE_PRESETS[name]
    got = reference_params(preset.n_embd, preset.n_layer, 32000)
    assert got == pytest.approx(PAPER_REFERENCE[name], rel=0.005)


def test_reference_params_recomputed_for_other_vocab() -> None:
    preset = SCALE_PRESETS["14M"]
    at_bytes = reference_params(preset.n_embd, preset.n_layer, 256)
    assert at_bytes == 256 * 128 + 12 * 128 * 128 * 6
    assert at_bytes < reference_params(preset.n_embd, preset.n_layer, 32000)


@pytest.mark.parametrize("ladder", [PAPER_LADDER, CPU_LADDER], ids=["paper", "cpu"])
def test_preset_ladders_grow_strictly(ladder: tuple[str, ...]) -> None:
    sizes = [reference_params(SCALE_PRESETS[n].n_embd, SCALE_PRESETS[n].n_layer) for n in ladder]
    assert sizes == sorted(set(sizes))


@pytest.mark.parametrize("name", list(SCALE_PRESETS))
def test_preset_heads_divide_width(name: str) -> None:
    preset = SCALE_PRESETS[name]
    assert preset.n_embd % preset.n_head == 0
    assert preset.batch_tokens >= preset.block_size


@pytest.mark.parametrize(
    ("explicit", "n_target", "ratio", "expected"),
    [
        ([None] * 5, 1, 0.25, [256, 64, 16, 4, 1]),
        ([None] * 3, 2, 0.5, [8, 4, 2]),
        ([None, 10, None], 1, 0.25, [40, 10, 1]),
        ([7, None, None], 1, 0.25, [7, 4, 1]),
        ([None] * 3, 1, 1.0, [1, 1, 1]),
        ([None] * 3, 1, 0.3, [14, 4, 1]),  # 1/0.3 = 3.3 -> 4; 4/0.3 = 13.3 -> 14
        ([None], 5, 0.25, [5]),
    ],
    ids=["paper", "half", "explicit-middle", "explicit-bottom", "ratio-one", "rounds-up", "single"],
)
def test_derive_budgets(
    explicit: list[int | None], n_target: int, ratio: float, expected: list[int]
) -> None:
    assert derive_budgets(explicit, n_target, ratio) == expected


def test_rung_overrides_win_over_preset() -> None:
    rung = Rung(name="small", preset="14M", lr=5e-4, context_length=1024, tokens=1000)
    resolved = resolve_rung(rung, index=0, budget=3, vocab_size=32000)
    assert (resolved.lr, resolved.context_length, resolved.tokens) == (5e-4, 1024, 1000)
    assert resolved.tokens_per_param == 50  # from the preset
    assert resolved.training_tokens(actual_params=10**6) == 1000


def test_explicit_model_shape_without_preset() -> None:
    ladder = Ladder(
        rungs=[Rung(name="tiny", model=ModelShape(n_embd=32, n_layer=1, n_head=2), lr=1e-2)]
    )
    (rung,) = resolve_ladder(ladder, vocab_size=256)
    assert (rung.n_embd, rung.n_layer, rung.n_head) == (32, 1, 2)
    assert rung.reference_params == 256 * 32 + 12 * 32 * 32
    assert rung.training_tokens(actual_params=1000) == 20_000  # default 20 tokens/param
    assert rung.confidence_points == 1


def test_resolve_rung_without_shape_raises() -> None:
    with pytest.raises(ValueError, match="neither a preset nor a model"):
        resolve_rung(Rung(name="x", lr=1e-3), index=0, budget=1, vocab_size=256)
