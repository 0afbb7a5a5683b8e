# expect: format
"""Builds its MLP with nn.Sequential."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class UsesSequential(Unit):
    """Builds its MLP with nn.Sequential."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))
        self.seq = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU())

    def _forward(self, X: Tensor) -> Tensor:
        return X + self.seq(X)
