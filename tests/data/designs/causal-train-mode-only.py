# expect: causality
"""Non-causal only in train mode: a roll applied while training."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class TrainOnlyLeak(Unit):
    """Non-causal only in train mode: a roll applied while training."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        h = torch.roll(X, shifts=-1, dims=1) if self.training else X
        h = X + self.mix(h)
        return h + self.down(F.gelu(self.up(h)))
