"""Quarantine: verification results that must never score, and why.

A design that sees the future while it trains reaches a loss no causal model of its size can,
and would win the run. Two rules set such a result apart; the archive applies both when it is
loaded (:func:`genesys.store.archive.load_archive`), so the planner, the ranking, the selector,
the status and the report all see the same quarantine:

- **The leak guard** (the trainer's, :mod:`genesys_trainer.leak_guard`): a design found
  non-causal on real validation data ends with ``status: failed`` and
  :attr:`~genesys.store.documents.VerificationResult.quarantine` set to the reason.
- **Plausibility**: a design's validation loss implausibly far below the best seed's at the same
  rung. The margin is a perplexity ratio: quarantined when ``exp(loss - best seed loss)`` is
  below :data:`MIN_PERPLEXITY_RATIO` (0.5), i.e. when the design's loss is more than ``ln 2``
  (0.69) nats below the best seed's. A difference of losses, not a ratio, because the loss has
  an arbitrary floor (the data's own entropy): a ratio of losses would tolerate a much larger
  gain on hard data than on easy data. At ``nano`` the seeds span 0.9 nats (GPT-2 2.34, Mamba2
  1.45, docs/verification.md); beating the *best* of them by another 0.69 nats at the same
  parameters and tokens would halve its perplexity, while a model that reads the next token
  drives its loss towards 0. Seeds are never checked (they are the reference); a rung where no
  seed succeeded has no reference and quarantines nothing by plausibility.

A quarantined verification is finished (it is not run again) but not succeeded; a design with
any quarantined verification is quarantined as a whole: never ranked, promoted or chosen as a
parent, and shown as quarantined with its reason.

What must stay true: these functions are pure and deterministic, and the margin is the one
named constant below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from genesys.store.documents import VerificationResult

QUARANTINED = "quarantined"
"""The status an archive verification takes when it is quarantined."""

MIN_PERPLEXITY_RATIO = 0.5
"""Quarantine a validation perplexity below this fraction of the best seed's at the same rung."""


def perplexity_ratio(val_loss: float, reference_loss: float) -> float:
    """``exp(val_loss) / exp(reference_loss)``: the design's perplexity over the reference's."""
    return math.exp(val_loss - reference_loss)


def best_seed_losses(seed_results: Iterable[tuple[str, str, float | None]]) -> dict[str, float]:
    """Rung -> the lowest finite validation loss among succeeded seed results.

    ``seed_results`` holds (rung, status, validation loss) of the seeds' verifications.
    """
    best: dict[str, float] = {}
    for rung, status, loss in seed_results:
        if status != "succeeded" or loss is None or not math.isfinite(loss):
            continue
        best[rung] = min(loss, best.get(rung, math.inf))
    return best


def implausible_loss(
    rung: str,
    val_loss: float | None,
    best_seed_loss: float | None,
    *,
    min_ratio: float = MIN_PERPLEXITY_RATIO,
) -> str | None:
    """The reason to quarantine a validation loss, or None when it is plausible (or unknown)."""
    if val_loss is None or best_seed_loss is None:
        return None
    if not (math.isfinite(val_loss) and math.isfinite(best_seed_loss)):
        return None
    ratio = perplexity_ratio(val_loss, best_seed_loss)
    if ratio >= min_ratio:
        return None
    return (
        f"implausible validation loss at {rung}: {val_loss:.4f} against the best seed's "
        f"{best_seed_loss:.4f} (perplexity ratio {ratio:.3f} < {min_ratio:g}); a causality "
        "leak is likely"
    )


def leak_guard_reason(result: VerificationResult) -> str | None:
    """The trainer's quarantine of a result (its leak guard's finding), or None."""
    return result.quarantine or None


__all__ = [
    "MIN_PERPLEXITY_RATIO",
    "QUARANTINED",
    "best_seed_losses",
    "implausible_loss",
    "leak_guard_reason",
    "perplexity_ratio",
]
