"""The leak guard: causality checked again on the trained model, on real data, at full length.

The sandbox's causality check (:mod:`genesys_trainer.checks.dynamic`) runs a fresh block on
random vectors of a short length under ``no_grad``. A design can be non-causal only outside those
conditions (real token data, the full context length, gradients enabled, a given function on the
call stack); it then sees the future while it trains, reaches an impossibly low loss and would
win the run. At the end of training, ``train.py`` therefore runs a probe through the very
function that computes the validation loss, in the same loop as the validation batches:

- a batch of real validation windows at the full context length (the reference), and the same
  batch with every token after a cut ``t`` (one per row) replaced by a different random token;
  windows, cuts, tokens and the dropout seed come from :func:`os.urandom`, so the design cannot
  predict them;
- both batches have the same shape and rows, and the RNG is seeded identically before each, so
  a causal model gives bit-identical logits at every position ``<= t`` of every row
  (``torch.equal``, no tolerance);
- once in eval mode (no gradients), once in train mode with gradients enabled.

This module holds the pure parts: choosing the probe, perturbing the tokens and comparing the
logits. What must stay true:

- the torch functions it compares with are bound when this module is imported, before any
  design code is composed, so a design that patches ``torch.equal`` or ``Tensor.__ne__``
  changes nothing here;
- logits are turned into plain, detached tensors (:func:`plain`) before anything reads them, so
  a tensor subclass returned by design code cannot answer for itself;
- the functions are deterministic given their seeds; only :func:`guard_seed` reads entropy.

Limits: design code runs in this process, so a design that rewrites this module, or that caches
its outputs by input prefix across calls, can still fool it; the sandbox's static checks are
what rule such code out. This guard closes the cheaper gap of conditional leaks.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

# Bound at import, before design code runs (see the module docstring).
_urandom = os.urandom
_equal = torch.equal
_ne = torch.ne
_isnan = torch.isnan
_logical_and = torch.logical_and
_logical_not = torch.logical_not
_nonzero = torch.nonzero
_randint = torch.randint
_remainder = torch.remainder
_generator = torch.Generator
_as_subclass = torch.Tensor.as_subclass
_detach = torch.Tensor.detach
_clone = torch.Tensor.clone
_float = torch.Tensor.float
_cross_entropy = F.cross_entropy
_plain_tensor = torch.Tensor


@dataclass(frozen=True, slots=True)
class Probe:
    """What one leak-guard probe uses: validation samples, one cut per row and two seeds."""

    samples: tuple[int, ...]  # validation sample indices, one per row
    cuts: tuple[int, ...]  # per row: tokens after this position are replaced
    forward_seed: int  # torch.manual_seed before the reference and the perturbed forward
    token_seed: int  # the random replacement tokens


@dataclass(frozen=True, slots=True)
class Leak:
    """A position whose logits changed when only later tokens changed."""

    mode: str  # eval | train
    row: int
    cut: int
    position: int
    length: int

    def describe(self) -> str:
        """The reason recorded in the verification result."""
        return (
            f"leak guard: not causal in {self.mode} mode on real validation data at length "
            f"{self.length}: the logits at position {self.position} changed when the tokens "
            f"after position {self.cut} changed"
        )


def guard_seed() -> int:
    """A seed the design cannot predict (64 bits of :func:`os.urandom`)."""
    return int.from_bytes(_urandom(8), "little")


def plan_probe(seed: int, available: int, rows: int, length: int) -> Probe:
    """``rows`` random validation samples out of ``available``, each with a cut in [0, L - 2].

    The cut leaves at least one position after it to perturb. Samples repeat only when the
    split has fewer than ``rows`` windows.
    """
    if available < 1 or rows < 1 or length < 2:
        raise ValueError(f"no probe from {available} windows, {rows} rows, length {length}")
    rng = random.Random(seed)
    if available >= rows:
        samples = rng.sample(range(available), rows)
    else:
        samples = [rng.randrange(available) for _ in range(rows)]
    cuts = [rng.randrange(length - 1) for _ in range(rows)]
    return Probe(tuple(samples), tuple(cuts), rng.getrandbits(63), rng.getrandbits(63))


def perturb(tokens: Tensor, cuts: tuple[int, ...], vocab_size: int, seed: int) -> Tensor:
    """A CPU copy of ``tokens`` (B, L) whose row ``r`` differs in every position after ``cuts[r]``.

    Each replaced token is ``(old + k) mod vocab`` with ``k`` uniform in [1, vocab), so it is
    random and never equal to the old one.
    """
    if tokens.dim() != 2 or tokens.shape[0] != len(cuts):
        raise ValueError(f"tokens of shape {tuple(tokens.shape)} for {len(cuts)} cuts")
    if vocab_size < 2:
        raise ValueError("a vocabulary of one token cannot be perturbed")
    generator = _generator().manual_seed(seed)
    out = _clone(_as_subclass(tokens, _plain_tensor).cpu())
    offsets = _randint(1, vocab_size, tuple(out.shape), generator=generator, dtype=out.dtype)
    for row, cut in enumerate(cuts):
        out[row, cut + 1 :] = _remainder(out[row, cut + 1 :] + offsets[row, cut + 1 :], vocab_size)
    return out


def plain(tensor: Tensor) -> Tensor:
    """``tensor`` as a detached copy of class ``torch.Tensor`` (no subclass can answer for it)."""
    return _clone(_detach(_as_subclass(tensor, _plain_tensor)))


def mean_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy of plain ``logits`` (B, L, V) against ``targets`` (B, L)."""
    return _cross_entropy(_float(logits.flatten(0, 1)), targets.flatten(), ignore_index=-1)


def first_leak(
    reference: Tensor, perturbed: Tensor, cuts: tuple[int, ...], mode: str
) -> Leak | None:
    """The first (row, position <= cut) whose logits differ, or None when all are bit-identical.

    Both tensors are (B, L, V) logits, already :func:`plain`. A NaN equals a NaN in the same
    place (bit-identical outputs that happen to be NaN are not a leak).
    """
    if reference.shape != perturbed.shape or reference.shape[0] != len(cuts):
        raise ValueError(
            f"logits of shapes {tuple(reference.shape)} and {tuple(perturbed.shape)} for "
            f"{len(cuts)} cuts"
        )
    length = int(reference.shape[1])
    for row, cut in enumerate(cuts):
        before, after = reference[row, : cut + 1], perturbed[row, : cut + 1]
        if _equal(before, after):
            continue
        differs = _logical_and(
            _ne(before, after), _logical_not(_logical_and(_isnan(before), _isnan(after)))
        )
        positions = _nonzero(differs.reshape(differs.shape[0], -1).any(dim=1))
        if positions.numel():
            return Leak(mode, row, cut, int(positions[0, 0]), length)
    return None


__all__ = [
    "Leak",
    "Probe",
    "first_leak",
    "guard_seed",
    "mean_loss",
    "perturb",
    "plain",
    "plan_probe",
]
