# expect: param_fit
"""Holds a fixed 1.6M-parameter table per block, whatever the width."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class HugeTable(Unit):
    """Holds a fixed 1.6M-parameter table per block, whatever the width."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))
        self.table = nn.Parameter(torch.zeros(200_000, 8))

    def _forward(self, X: Tensor) -> Tensor:
        return X + self.down(F.gelu(self.up(X))) + self.table[: X.shape[-1], 0].sum() * 0
