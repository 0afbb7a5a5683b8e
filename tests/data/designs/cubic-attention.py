# expect: complexity
# timeout: 300
# memory-gib: 8
"""Causal but cubic: a three-way interaction over positions."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class CubicAttention(Unit):
    """Causal but cubic: a three-way interaction over positions."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        L = X.shape[1]
        s = torch.einsum("bid,bjd,bkd->bijk", X, X, X) / X.shape[-1]  # (B, L, L, L)
        i = torch.arange(L, device=X.device)
        mask = (i[None, :, None] <= i[:, None, None]) & (i[None, None, :] <= i[:, None, None])
        s = s.masked_fill(~mask, 0.0)
        h = X + self.mix(torch.einsum("bijk,bkd->bid", s, X) / (L * L))
        return h + self.down(F.gelu(self.up(h)))
