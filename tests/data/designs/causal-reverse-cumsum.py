# expect: causality
"""Non-causal: a cumulative sum from the end of the sequence."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class ReverseCumsum(Unit):
    """Non-causal: a cumulative sum from the end of the sequence."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        c = X.flip(1).cumsum(1).flip(1) / X.shape[1]
        h = X + self.mix(c)
        return h + self.down(F.gelu(self.up(h)))
