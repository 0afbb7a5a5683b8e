"""Named scale presets for the ladder of scales: the paper's five rungs and CPU-sized rungs.

Each preset fixes a model shape (``n_embd``, ``n_layer``, ``n_head``) and the training recipe of
its rung. A rung in a DiscoveryRun names a preset and may override any field of it.

What must stay true:
- ``reference_params(preset, vocab_size)`` reproduces the paper's table for a vocabulary of 32000:
  the tied token embedding (``vocab_size * n_embd``) plus ``12 * n_embd**2`` per block, the size of
  a GPT-2 block (attention 4·d², MLP 8·d²). With any other vocabulary the reference is recomputed.
- Presets are ordered by size; the ladder validator relies on :func:`reference_params` to check
  that rungs grow strictly.

Sources: Genesys (arXiv 2506.20249), "Ladder of scales" table. The CPU presets (nano, micro,
mini) are ours, sized so a rung's full token budget trains in one to a few minutes on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_VOCAB_SIZE = 32000
"""Llama-2 tokenizer vocabulary, used by the paper's reference sizes."""

PAPER_CONTEXT_LENGTH = 2048
PAPER_BATCH_TOKENS = 524_288  # ~0.5M tokens per optimiser step (2**19)
HOUR = 3600


@dataclass(frozen=True, slots=True)
class ScalePreset:
    """One rung's model shape and training recipe."""

    # -- model shape (nanoGPT field names)
    n_embd: int
    n_layer: int
    n_head: int
    # -- training recipe
    lr: float  # peak AdamW learning rate
    tokens_per_param: float  # training tokens = actual params x this
    block_size: int = PAPER_CONTEXT_LENGTH  # context length
    batch_tokens: int = PAPER_BATCH_TOKENS  # tokens per optimiser step
    # -- selection
    confidence_points: int = 1  # points a verification at this rung adds to a design
    slowdown_tolerance: float = 3.0  # training is stopped beyond this x the GPT-2 reference time
    deadline_seconds: int = 6 * HOUR  # a training Job still running after this is stopped
    cpu_sized: bool = False  # True for presets meant for the embedded CPU default

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_layer < 1 or self.lr <= 0 or self.tokens_per_param <= 0:
            raise ValueError("n_layer, lr and tokens_per_param must be positive")


def reference_params(n_embd: int, n_layer: int, vocab_size: int = PAPER_VOCAB_SIZE) -> int:
    """Reference parameter count of a GPT-2 model of this shape with a tied embedding."""
    return vocab_size * n_embd + 12 * n_embd * n_embd * n_layer


SCALE_PRESETS: dict[str, ScalePreset] = {
    # -- CPU-sized rungs for the embedded default (params at byte vocab 256; tokens/s measured
    # -- for the GPT-2 seed on 2 cores: nano ~56k, micro ~38k, mini ~20k)
    # 115k params; 2.3M tokens: about half a minute
    "nano": ScalePreset(
        n_embd=64, n_layer=2, n_head=4, lr=3e-3, tokens_per_param=20.0, block_size=256,
        batch_tokens=8192, confidence_points=1, slowdown_tolerance=4.0, deadline_seconds=HOUR,
        cpu_sized=True,
    ),
    # 356k params; 2.9M tokens: one to two minutes
    "micro": ScalePreset(
        n_embd=96, n_layer=3, n_head=4, lr=2e-3, tokens_per_param=8.0, block_size=256,
        batch_tokens=8192, confidence_points=2, slowdown_tolerance=4.0, deadline_seconds=HOUR,
        cpu_sized=True,
    ),
    # 819k params; 3.3M tokens: about three minutes
    "mini": ScalePreset(
        n_embd=128, n_layer=4, n_head=4, lr=1e-3, tokens_per_param=4.0, block_size=256,
        batch_tokens=16384, confidence_points=3, slowdown_tolerance=4.0,
        deadline_seconds=2 * HOUR, cpu_sized=True,
    ),
    # -- the paper's ladder (reference params at vocab 32000, tied embedding included); the
    # -- deadlines leave room for one GPU per Job (the paper's 8-GPU wall times x 8, doubled)
    # 5.28M reference params
    "14M": ScalePreset(n_embd=128, n_layer=6, n_head=4, lr=1e-3, tokens_per_param=50.0,
                       confidence_points=1, slowdown_tolerance=3.0, deadline_seconds=6 * HOUR),
    # 12.9M
    "31M": ScalePreset(n_embd=256, n_layer=6, n_head=4, lr=1e-3, tokens_per_param=40.0,
                       confidence_points=2, slowdown_tolerance=3.0, deadline_seconds=12 * HOUR),
    # 35.3M
    "70M": ScalePreset(n_embd=512, n_layer=6, n_head=8, lr=1e-3, tokens_per_param=30.0,
                       confidence_points=3, slowdown_tolerance=2.5, deadline_seconds=24 * HOUR),
    # 109.6M
    "125M": ScalePreset(n_embd=768, n_layer=12, n_head=12, lr=6e-4, tokens_per_param=20.0,
                        confidence_points=4, slowdown_tolerance=2.0,
                        deadline_seconds=72 * HOUR),
    # 334.9M
    "350M": ScalePreset(n_embd=1024, n_layer=24, n_head=16, lr=3e-4, tokens_per_param=20.0,
                        confidence_points=5, slowdown_tolerance=2.0,
                        deadline_seconds=14 * 24 * HOUR),
}  # fmt: skip

PAPER_LADDER: tuple[str, ...] = ("14M", "31M", "70M", "125M", "350M")
"""The paper's rungs, smallest first."""

CPU_LADDER: tuple[str, ...] = ("nano", "micro", "mini")
"""The embedded default's rungs, smallest first."""

__all__ = [
    "CPU_LADDER",
    "PAPER_BATCH_TOKENS",
    "PAPER_CONTEXT_LENGTH",
    "PAPER_LADDER",
    "PAPER_VOCAB_SIZE",
    "SCALE_PRESETS",
    "ScalePreset",
    "reference_params",
]
