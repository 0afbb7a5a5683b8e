# expect: format
"""Defines a helper nn.Module instead of declaring a child unit."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Helper(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


from genesys_trainer.units import Unit


class UsesHelper(Unit):
    """Defines a helper nn.Module instead of declaring a child unit."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))
        self.helper = Helper(d_model)

    def _forward(self, X: Tensor) -> Tensor:
        return X + self.down(F.gelu(self.up(X))) + self.helper(X)
