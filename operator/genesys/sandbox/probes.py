"""Causality and batch-independence probes, decided outside the design's reach.

The parent draws the probes with a seed from ``os.urandom`` (the design cannot predict it) and
sends them to two sandboxes that cannot see each other: the *reference* sandbox gets the
original token sequences, the *perturbed* one the same sequences with every token after a cut
position replaced by a different random token (batch probe: one whole sample replaced). Each
sandbox builds a fresh model from the same seed for every probe and runs its block stack, in
eval mode and in train mode with gradients on. The supervisor of each sandbox, which never runs
design code, hashes the hidden state at every (sample, position); this module compares the two
sandboxes' hashes:

- causality: positions up to each sample's cut must be bit-identical;
- batch independence: every sample but the replaced one must be bit-identical;
- sensitivity: somewhere after the cuts the outputs must differ (a block whose output ignores
  its input would pass the other two vacuously).

Cut positions cover every position of a short sequence of random length (between half of
``spec.checks.causalityLength`` and all of it) and random positions of the rung's full context
length. A design may leak only on some calls, drawing on the random state both sandboxes share
for a probe (Python's ``random``, torch's generator). Every probe has its own forward seed, and
:data:`REPEATS` more small causality probes at the short length (eval and train in turn) give
such a leak twelve chances to show: one that fires on 30% of the calls of each of three blocks
goes unseen about three times in a million checks.

What must stay true: no torch here (numpy draws the tokens); a probe's result is a pure
function of the two digest tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genesys.sandbox.report import Finding, Status

BATCH_ROWS = 3
LONGEST_SHORT_PROBE = 128  # spec.checks.causalityLength's default: lengths drawn from [64, 128]
REPEATS = 8  # extra small causality probes, each with its own forward seed
REPEAT_ROWS = 8  # random cuts in each
BATCH_LENGTHS = (16, 65)
MICRO_BATCH_TOKENS = 8192  # the trainer's default tokens per micro-batch
FULL_CONTEXT_CUTS = 4
CAUSALITY_HINT = (
    "mask future positions (tril, -inf before softmax, is_causal=True), left-pad convolutions, "
    "and never pool, roll or look ahead over the sequence"
)
BATCH_HINT = "never reduce over the batch dimension (dim 0); normalise per sample"


@dataclass(frozen=True, slots=True)
class Probe:
    """One pair of forwards: reference tokens in one sandbox, perturbed tokens in the other."""

    name: str
    kind: str  # "batch" or "causality"
    train: bool
    forward_seed: int
    reference: np.ndarray  # (rows, length) int64
    perturbed: np.ndarray
    cuts: tuple[int, ...] = ()  # causality: per row, the last position that must not change
    changed_row: int = -1  # batch: the replaced sample

    @property
    def mode(self) -> str:
        """``train`` or ``eval``."""
        return "train" if self.train else "eval"

    def request(self, tokens_file: str) -> dict[str, Any]:
        """What a sandbox needs to run this probe (never which side it is)."""
        rows, length = self.reference.shape
        return {
            "name": self.name,
            "train": self.train,
            "forward_seed": self.forward_seed,
            "rows": rows,
            "length": length,
            "tokens": tokens_file,
        }


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """Every probe of one check, and the seed of the fresh models they run on."""

    model_seed: int
    probes: list[Probe] = field(default_factory=list)

    def write(self, directory: Path, side: str, prefix: str = "in/") -> dict[str, Any]:
        """Write one side's token files into ``directory``; the request part for that side.

        The sandbox sees ``directory`` under ``prefix``.
        """
        entries = []
        for probe in self.probes:
            tokens = probe.reference if side == "reference" else probe.perturbed
            name = f"probe-{probe.name}.i64"
            (directory / name).write_bytes(np.ascontiguousarray(tokens, dtype="<i8").tobytes())
            entries.append(probe.request(prefix + name))
        return {"model_seed": self.model_seed, "probes": entries}


def replace_after(rng: np.random.Generator, row: np.ndarray, cut: int, vocab: int) -> np.ndarray:
    """``row`` with every token after ``cut`` replaced by a different random token."""
    changed = row.copy()
    tail = changed[cut + 1 :]
    changed[cut + 1 :] = (tail + rng.integers(1, vocab, size=tail.shape)) % vocab
    return changed


def causality_probe(
    rng: np.random.Generator, name: str, cuts: Sequence[int], length: int, vocab: int, train: bool
) -> Probe:
    """One sample per cut: the original sequence, and one with the future after the cut replaced."""
    reference = rng.integers(0, vocab, size=(len(cuts), length), dtype=np.int64)
    perturbed = np.stack(
        [replace_after(rng, reference[r], cut, vocab) for r, cut in enumerate(cuts)]
    )
    seed = int(rng.integers(0, 2**62))
    return Probe(name, "causality", train, seed, reference, perturbed, cuts=tuple(cuts))


def batch_probe(
    rng: np.random.Generator, length: int, vocab: int, train: bool, rows: int = BATCH_ROWS
) -> Probe:
    """``rows`` samples; in the perturbed batch one of them is replaced entirely."""
    reference = rng.integers(0, vocab, size=(rows, length), dtype=np.int64)
    changed = int(rng.integers(0, rows))
    perturbed = reference.copy()
    perturbed[changed] = replace_after(rng, reference[changed], -1, vocab)
    seed = int(rng.integers(0, 2**62))
    return Probe(
        f"batch-{'train' if train else 'eval'}",
        "batch",
        train,
        seed,
        reference,
        perturbed,
        changed_row=changed,
    )


def full_context_cuts(rng: np.random.Generator, context: int) -> list[int]:
    """Random cuts over the whole context, one of them in the first half (far look-ahead)."""
    first = int(rng.integers(0, max(1, context // 2)))
    rest = rng.integers(0, max(1, context - 1), size=FULL_CONTEXT_CUTS - 1)
    return [first, *(int(c) for c in rest)]


def training_rows(context_length: int, batch_tokens: int | None) -> int:
    """Sequences per training micro-batch on one process, as the trainer picks them."""
    per_step = max(1, (batch_tokens or MICRO_BATCH_TOKENS) // context_length)
    return max(2, min(per_step, max(1, MICRO_BATCH_TOKENS // context_length)))


def short_lengths(longest: int) -> tuple[int, int]:
    """``[low, high)`` of the exhaustive probe's length: from half of ``longest`` to ``longest``."""
    return max(2, (longest + 1) // 2), max(2, longest) + 1


def plan_probes(
    context_length: int,
    vocab_size: int,
    seed: int | None = None,
    batch_tokens: int | None = None,
    *,
    longest_short: int = LONGEST_SHORT_PROBE,
) -> ProbePlan:
    """The probes of one check at a rung; ``seed`` defaults to fresh OS randomness.

    The exhaustive causality probe's length is drawn from ``short_lengths(longest_short)``
    (``spec.checks.causalityLength``), capped by the rung's context.

    The train-mode batch probe has the shape of a training micro-batch at the rung (a design
    that mixes samples only at that shape is seen); the eval-mode one a small random shape.
    """
    rng = np.random.default_rng(int.from_bytes(os.urandom(16)) if seed is None else seed)
    short = min(context_length, int(rng.integers(*short_lengths(longest_short))))
    batch_length = min(context_length, int(rng.integers(*BATCH_LENGTHS)))
    short_cuts = [int(c) for c in rng.permutation(short)]
    long_cuts = full_context_cuts(rng, context_length)
    probes: list[Probe] = []
    for train in (False, True):
        mode = "train" if train else "eval"
        if train:
            rows = training_rows(context_length, batch_tokens)
            probes.append(batch_probe(rng, context_length, vocab_size, train, rows))
        else:
            probes.append(batch_probe(rng, batch_length, vocab_size, train))
        probes.append(causality_probe(rng, f"short-{mode}", short_cuts, short, vocab_size, train))
        if context_length > short:
            probes.append(
                causality_probe(rng, f"full-{mode}", long_cuts, context_length, vocab_size, train)
            )
    for index in range(REPEATS):
        train = bool(index % 2)
        cuts = [int(c) for c in rng.choice(short, size=min(REPEAT_ROWS, short), replace=False)]
        name = f"repeat{index}-{'train' if train else 'eval'}"
        probes.append(causality_probe(rng, name, cuts, short, vocab_size, train))
    return ProbePlan(int(rng.integers(0, 2**62)), probes)


Digests = list[list[str]]  # [row][position] -> hex digest of that hidden state


def first_difference(reference: Sequence[str], perturbed: Sequence[str], upto: int) -> int | None:
    """The first position <= ``upto`` whose digests differ, or None."""
    for position in range(min(upto + 1, len(reference))):
        if reference[position] != perturbed[position]:
            return position
    return None


def batch_finding(probe: Probe, reference: Digests, perturbed: Digests) -> Finding | None:
    """A failing finding when a sample other than the replaced one changed."""
    for row in range(len(reference)):
        if row == probe.changed_row:
            continue
        if reference[row] != perturbed[row]:
            return Finding(
                "batch_independence",
                Status.FAIL,
                f"samples leak into each other in {probe.mode} mode: replacing sample "
                f"{probe.changed_row} changes sample {row}",
                hint=BATCH_HINT,
            )
    return None


def causality_finding(probe: Probe, reference: Digests, perturbed: Digests) -> Finding | None:
    """A failing finding when an output at or before a cut changed."""
    for row, cut in enumerate(probe.cuts):
        position = first_difference(reference[row], perturbed[row], cut)
        if position is not None:
            length = len(reference[row])
            return Finding(
                "causality",
                Status.FAIL,
                f"not causal in {probe.mode} mode (length {length}): the output at position "
                f"{position} changes when the inputs after position {cut} change",
                hint=CAUSALITY_HINT,
            )
    return None


def responds(probe: Probe, reference: Digests, perturbed: Digests) -> bool:
    """True when some output after a cut differs (the block reads its input)."""
    return any(
        reference[row][cut + 1 :] != perturbed[row][cut + 1 :] for row, cut in enumerate(probe.cuts)
    )


def shape_problem(probe: Probe, digests: Digests | None) -> str | None:
    """Why a digest table does not fit its probe, or None."""
    rows, length = probe.reference.shape
    if digests is None:
        return f"no output for probe {probe.name}"
    if len(digests) != rows or any(len(row) != length for row in digests):
        return f"probe {probe.name}: expected {rows}x{length} outputs"
    return None


def verdicts(
    plan: ProbePlan, reference: Mapping[str, Digests], perturbed: Mapping[str, Digests]
) -> list[Finding]:
    """The batch-independence and causality findings of a plan's two digest tables."""
    for table in (reference, perturbed):
        for probe in plan.probes:
            problem = shape_problem(probe, table.get(probe.name))
            if problem is not None:
                return [
                    Finding(
                        "causality",
                        Status.FAIL,
                        f"the probes did not run: {problem}",
                        hint="the block must map (B, L, D) to (B, L, D)",
                    )
                ]
    batch = [p for p in plan.probes if p.kind == "batch"]
    causal = [p for p in plan.probes if p.kind == "causality"]
    for probe in batch:
        failed = batch_finding(probe, reference[probe.name], perturbed[probe.name])
        if failed is not None:
            return [failed]
    findings = [
        Finding("batch_independence", Status.PASS, "samples are independent, eval and train modes")
    ]
    for probe in causal:
        failed = causality_finding(probe, reference[probe.name], perturbed[probe.name])
        if failed is not None:
            return [*findings, failed]
    if not any(responds(p, reference[p.name], perturbed[p.name]) for p in causal if not p.train):
        return [
            *findings,
            Finding(
                "causality",
                Status.FAIL,
                "the output does not depend on the input: replacing tokens changes nothing",
                hint="the block must transform X; return X plus an update, not a constant",
            ),
        ]
    lengths = sorted({p.reference.shape[1] for p in causal})
    cuts = sum(len(p.cuts) for p in causal if not p.train)
    return [
        *findings,
        Finding(
            "causality",
            Status.PASS,
            f"exact at {cuts} random cuts over lengths {lengths}, eval and train modes",
        ),
    ]


__all__ = ["Digests", "Probe", "ProbePlan", "plan_probes", "verdicts"]
