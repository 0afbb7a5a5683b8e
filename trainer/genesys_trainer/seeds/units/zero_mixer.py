"""ZeroMixer: a branch that adds nothing to the residual stream.

The Mamba2 seed's channel mixer (Genesys, arXiv 2506.20249): Mamba2 blocks have a sequence mixer
only, so X + ZeroMixer(...) = X keeps the shared two-branch block shape.
"""

import torch
from torch import Tensor

from genesys_trainer.units import Unit


class ZeroMixer(Unit):
    """Y = 0 (same shape as X)."""

    def _forward(self, X: Tensor) -> Tensor:
        return torch.zeros_like(X)
