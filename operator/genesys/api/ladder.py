"""Resolving a ladder: presets merged with overrides, and budgets derived from nTarget.

A :class:`~genesys.api.discoveryrun.Rung` may leave fields unset; :func:`resolve_ladder` turns
the ladder into fully concrete :class:`RungConfig` values. They travel inside the run config
(:mod:`genesys.api.runconfig`) to every training Job, check and session: nothing downstream
looks a rung up by its name, so rung names are free.

What must stay true:
- Budgets: explicit where given; otherwise, going down from the top rung, each rung's budget is
  the one above divided by ``selectionRatio`` (rounded up), and the top rung's is ``nTarget``.
  The paper's ladder (nTarget 1, ratio 0.25) gives 256/64/16/4/1.
- Resolution never raises for a spec that passed :func:`genesys.api.validation.semantic_errors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar, cast

from pydantic import ConfigDict, Field

from genesys.api.base import ApiModel
from genesys.api.discoveryrun import Ladder, PresetName, Rung
from genesys.api.presets import (
    PAPER_BATCH_TOKENS,
    PAPER_CONTEXT_LENGTH,
    SCALE_PRESETS,
    ScalePreset,
    reference_params,
)

DEFAULT_TOKENS_PER_PARAM = 20.0
DEFAULT_DEADLINE_SECONDS = 6 * 3600

T = TypeVar("T")


class RungConfig(ApiModel):
    """A rung with every value concrete: what the trainer, the checks and the planner read."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Rung name (free; unique in the ladder).")
    index: int = Field(ge=0, description="Position in the ladder; 0 is the lowest rung.")
    # -- model shape
    n_embd: int = Field(ge=1, description="Reference width d_model.")
    n_layer: int = Field(ge=1, description="Reference depth (blocks).")
    n_head: int = Field(ge=1, description="Attention heads of the reference shape.")
    vocab_size: int = Field(ge=2, description="Vocabulary of the run.")
    reference_params: int = Field(
        ge=1, description="GPT-2 parameters of the reference shape, tied embedding included."
    )
    # -- recipe
    lr: float = Field(gt=0, description="Peak AdamW learning rate.")
    tokens_per_param: float = Field(gt=0, description="Training tokens per actual parameter.")
    tokens: int | None = Field(default=None, description="Explicit training tokens, if set.")
    context_length: int = Field(ge=1, description="Context length (block size).")
    batch_tokens: int = Field(ge=1, description="Tokens per optimiser step.")
    # -- ladder and guards
    budget: int = Field(ge=0, description="Designs verified at this rung.")
    confidence_points: int = Field(ge=0, description="Confidence a verification here adds.")
    slowdown_tolerance: float = Field(ge=1, description="Too slow beyond this x GPT-2's time.")
    deadline_seconds: int = Field(ge=1, description="Wall-clock limit of one training Job.")

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


def resolve_rung(rung: Rung, *, index: int, budget: int, vocab_size: int) -> RungConfig:
    """Merge a rung's preset with its overrides."""
    shape = rung_shape(rung)
    if shape is None:
        raise ValueError(f"rung {rung.name!r} has neither a preset nor a model shape")
    preset = SCALE_PRESETS[rung.preset] if rung.preset is not None else None
    lr = rung.lr if rung.lr is not None else (preset.lr if preset else None)
    if lr is None:
        raise ValueError(f"rung {rung.name!r} has no lr and no preset")
    n_embd, n_layer, n_head = shape
    return RungConfig(
        name=rung.name,
        index=index,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        vocab_size=vocab_size,
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
        deadline_seconds=_first(
            rung.deadline_seconds,
            preset.deadline_seconds if preset else None,
            DEFAULT_DEADLINE_SECONDS,
        ),
    )


def resolve_ladder(ladder: Ladder, *, vocab_size: int) -> list[RungConfig]:
    """Every rung of the ladder, lowest first, fully resolved."""
    budgets = derive_budgets(
        [rung.budget for rung in ladder.rungs], ladder.n_target, ladder.selection_ratio
    )
    return [
        resolve_rung(rung, index=index, budget=budgets[index], vocab_size=vocab_size)
        for index, rung in enumerate(ladder.rungs)
    ]


def preset_rung(name: str, *, vocab_size: int | None = None) -> RungConfig:
    """A preset on its own as a rung (``genesys check --rung``, ``genesys train --rung``).

    The vocabulary defaults to the one the preset was sized for: 256 (bytes) for the CPU
    presets, the paper's 32000 otherwise.
    """
    if name not in SCALE_PRESETS:
        known = ", ".join(SCALE_PRESETS)
        raise ValueError(f"unknown rung preset {name!r}; expected one of {known}")
    preset: ScalePreset = SCALE_PRESETS[name]
    vocab = vocab_size or (256 if preset.cpu_sized else 32000)
    rung = Rung(name=name, preset=cast(PresetName, name))
    return resolve_rung(rung, index=0, budget=1, vocab_size=vocab)


__all__ = [
    "RungConfig",
    "derive_budgets",
    "preset_rung",
    "resolve_ladder",
    "resolve_rung",
    "rung_shape",
]
