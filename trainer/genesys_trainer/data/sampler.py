"""Deterministic, resumable sampling of training windows.

The token stream of a split is cut into non-overlapping windows of ``block_size + 1`` tokens.
Sample ``i`` is window ``perm_e[i mod W]`` of epoch ``e = i // W``, where ``perm_e`` is a
permutation seeded by (seed, e). A global optimiser step ``s`` uses samples
``[s * G, (s + 1) * G)``; rank ``r`` of ``R`` takes every R-th of them.

What must stay true: the samples of a step depend only on (seed, step, rank, world size), so a
run resumed at step ``s`` sees exactly the data an uninterrupted run would have seen, and the
token count per step is the same for any world size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray


class WindowSampler:
    """Batches of (input, target) windows for a step, rank and micro-batch."""

    def __init__(self, tokens: NDArray[Any], block_size: int, seed: int) -> None:
        self.tokens, self.block_size, self.seed = tokens, block_size, seed
        self.windows = (len(tokens) - 1) // block_size
        if self.windows < 1:
            raise ValueError(f"{len(tokens)} tokens hold no window of {block_size + 1}")

    @lru_cache(maxsize=4)  # noqa: B019 - a handful of epochs, released with the sampler
    def _permutation(self, epoch: int) -> NDArray[np.int64]:
        return np.random.default_rng([self.seed, epoch]).permutation(self.windows)

    def window(self, sample: int) -> NDArray[Any]:
        """Tokens of one sample (block_size + 1)."""
        epoch, index = divmod(sample, self.windows)
        start = int(self._permutation(epoch)[index]) * self.block_size
        return np.asarray(self.tokens[start : start + self.block_size + 1], dtype=np.int64)

    def samples(self, step: int, per_step: int, rank: int, world: int) -> list[int]:
        """The sample indices of one rank at one optimiser step."""
        first = step * per_step
        return list(range(first + rank, first + per_step, world))

    def batch(self, samples: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of shape (len(samples), block_size)."""
        rows = np.stack([self.window(s) for s in samples])
        data = torch.from_numpy(rows)
        return data[:, :-1], data[:, 1:]


__all__ = ["WindowSampler"]
