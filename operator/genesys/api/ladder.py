"""Resolving a ladder: presets merged with overrides, and budgets derived from nTarget.

A :class:`~genesys.api.discoveryrun.Rung` may leave fields unset; :func:`resolve_ladder` turns
the ladder into fully concrete :class:`ResolvedRung` values that the engine and trainer use.

What must stay true:
- Budgets: explicit where given; otherwise, going down from the top rung, each rung's budget is
  the one above divided by ``selectionRatio`` (rounded up), and the top rung's is ``nTarget``.
  The paper's ladder (nTarget 1, ratio 0.25) gives 256/64/16/4/1.
- Resolution never raises for a spec that passed :func:`genesys.api.validation.semantic_errors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from genesys.api.discoveryrun import Ladder, Rung
from genesys.api.presets import (
    PAPER_BATCH_TOKENS,
    PAPER_CONTEXT_LENGTH,
    SCALE_PRESETS,
    reference_params,
)

DEFAULT_TOKENS_PER_PARAM = 20.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ResolvedRung:
    """A rung with every value concrete."""

    name: str
    index: int  # 0 is the lowest rung
    # -- model shape
    n_embd: int
    n_layer: int
    n_head: int
    reference_params: int  # at the run's vocabulary, tied embedding included
    # -- recipe
    lr: float
    tokens_per_param: float
    tokens: int | None  # explicit training tokens, overriding tokens_per_param
    context_length: int
    batch_tokens: int
    # -- ladder
    budget: int
    confidence_points: int
    slowdown_tolerance: float

    def training_tokens(self, actual_params: int) -> int:
        """Tokens to train a design of ``actual_params`` parameters at this rung."""
        if self.tokens is not None:
            return self.tokens
        return math.ceil(actual_params * self.tokens_per_param)


def _first(value: T | None, from_preset: T | None, fallback: T) -> T:
    """The rung's own value, else the preset's, else the fallback."""
    if value is not None:
        return value
    return from_preset if from_preset is not None else fallback


def rung_shape(rung: Rung) -> tuple[int, int, int] | None:
    """(n_embd, n_layer, n_head) of a rung, or None when neither preset nor model gives it."""
    if rung.model is not None:
        return rung.model.n_embd, rung.model.n_layer, rung.model.n_head
    if rung.preset is not None:
        preset = SCALE_PRESETS[rung.preset]
        return preset.n_embd, preset.n_layer, preset.n_head
    return None


def derive_budgets(explicit: Sequence[int | None], n_target: int, ratio: float) -> list[int]:
    """Budgets of rungs (lowest first): explicit ones kept, the rest derived from the top."""
    budgets = [0] * len(explicit)
    above: int | None = None
    for index in reversed(range(len(explicit))):
        given = explicit[index]
        if given is not None:
            budgets[index] = given
        elif above is None:
            budgets[index] = n_target
        else:
            budgets[index] = math.ceil(above / ratio - 1e-9)
        above = budgets[index]
    return budgets


def resolve_rung(rung: Rung, *, index: int, budget: int, vocab_size: int) -> ResolvedRung:
    """Merge a rung's preset with its overrides."""
    shape = rung_shape(rung)
    if shape is None:
        raise ValueError(f"rung {rung.name!r} has neither a preset nor a model shape")
    preset = SCALE_PRESETS[rung.preset] if rung.preset is not None else None
    lr = rung.lr if rung.lr is not None else (preset.lr if preset else None)
    if lr is None:
        raise ValueError(f"rung {rung.name!r} has no lr and no preset")
    n_embd, n_layer, n_head = shape
    return ResolvedRung(
        name=rung.name,
        index=index,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        reference_params=reference_params(n_embd, n_layer, vocab_size),
        lr=lr,
        tokens_per_param=_first(
            rung.tokens_per_param,
            preset.tokens_per_param if preset else None,
            DEFAULT_TOKENS_PER_PARAM,
        ),
        tokens=rung.tokens,
        context_length=_first(
            rung.context_length, preset.block_size if preset else None, PAPER_CONTEXT_LENGTH
        ),
        batch_tokens=_first(
            rung.batch_tokens, preset.batch_tokens if preset else None, PAPER_BATCH_TOKENS
        ),
        budget=budget,
        confidence_points=_first(
            rung.confidence_points, preset.confidence_points if preset else None, index + 1
        ),
        slowdown_tolerance=_first(
            rung.slowdown_tolerance, preset.slowdown_tolerance if preset else None, 3.0
        ),
    )


def resolve_ladder(ladder: Ladder, *, vocab_size: int) -> list[ResolvedRung]:
    """Every rung of the ladder, lowest first, fully resolved."""
    budgets = derive_budgets(
        [rung.budget for rung in ladder.rungs], ladder.n_target, ladder.selection_ratio
    )
    return [
        resolve_rung(rung, index=index, budget=budgets[index], vocab_size=vocab_size)
        for index, rung in enumerate(ladder.rungs)
    ]


__all__ = ["ResolvedRung", "derive_budgets", "resolve_ladder", "resolve_rung", "rung_shape"]
