"""Parameter fitting: choose depth and width so a design lands within ±tolerance of a rung.

Genesys ("Parameter fit") tunes depth and width until the parameters are within ±20% of the
scale's reference size. Here the count is exact and linear in depth: params(d, L) = vocab * d +
d (final norm) + L * block(d), with ``block(d)`` counted on the meta device, so even the 350M rung
costs no memory.

What must stay true:
- Deterministic: the same design and rung always give the same shape.
- Width changes keep the rung's head size (``n_embd / n_head``); depth is tried first at the
  rung's own width, and other widths are tried nearest first.
- The result reports the chosen shape, the exact parameter count and the relative error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from genesys.api.presets import reference_params
from genesys_trainer.compose import ComposedDesign
from genesys_trainer.model import ModelConfig, block_params, model_params
from genesys_trainer.tree import DesignError
from genesys_trainer.units import UnitError

WIDTH_STEPS = 8  # widths tried on each side of the rung's width, in head-size steps
MAX_DEPTH_FACTOR = 8  # depth may grow to this many times the rung's


class RungShape(Protocol):
    """The reference shape of a rung: a resolved rung or a scale preset."""

    @property
    def n_embd(self) -> int: ...
    @property
    def n_layer(self) -> int: ...
    @property
    def n_head(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FitResult:
    """The shape chosen for a design at a rung."""

    design: str
    rung: str
    n_embd: int
    n_layer: int
    n_head: int
    params: int
    reference: int
    rel_error: float  # (params - reference) / reference
    tolerance: float

    @property
    def within(self) -> bool:
        """True when |rel_error| <= tolerance."""
        return abs(self.rel_error) <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``within`` included."""
        return {**asdict(self), "within": self.within}


def _candidate_widths(n_embd: int, head_size: int) -> list[int]:
    widths = [n_embd]
    for step in range(1, WIDTH_STEPS + 1):
        widths += [n_embd - step * head_size, n_embd + step * head_size]
    return [w for w in widths if w >= head_size]


def _best_depth(fixed: int, per_block: int, target: int, max_depth: int) -> int:
    ideal = round((target - fixed) / per_block) if per_block > 0 else 1
    return min(max(1, ideal), max_depth)


def fit_design(
    design: ComposedDesign,
    preset: RungShape,
    *,
    rung: str,
    vocab_size: int,
    tolerance: float = 0.2,
) -> FitResult:
    """Fit a design to a rung's reference size (tied embedding included)."""
    head_size = preset.n_embd // preset.n_head
    target = reference_params(preset.n_embd, preset.n_layer, vocab_size)
    max_depth = MAX_DEPTH_FACTOR * preset.n_layer
    best: tuple[float, int, int, int] | None = None  # (|error|, order, width, depth)
    for order, width in enumerate(_candidate_widths(preset.n_embd, head_size)):
        n_head = width // head_size
        try:
            per_block = block_params(design, width, n_head)
        except (DesignError, UnitError, ValueError, RuntimeError):
            continue  # the design cannot be built at this width
        fixed = vocab_size * width + width
        depth = _best_depth(fixed, per_block, target, max_depth)
        error = abs(fixed + depth * per_block - target) / target
        if best is None or error < best[0] - 1e-12:
            best = (error, order, width, depth)
        if error <= tolerance:
            break  # the nearest width that fits wins
    if best is None:
        raise DesignError(
            f"cannot be built at any width near {preset.n_embd}", design=design.tree.name
        )
    _, _, width, depth = best
    n_head = width // head_size
    config = ModelConfig(vocab_size=vocab_size, n_embd=width, n_layer=depth, n_head=n_head)
    params = model_params(design, config)
    return FitResult(
        design=design.tree.name,
        rung=rung,
        n_embd=width,
        n_layer=depth,
        n_head=n_head,
        params=params,
        reference=target,
        rel_error=(params - target) / target,
        tolerance=tolerance,
    )


__all__ = ["FitResult", "fit_design"]
