# expect: causality
"""Non-causal: attention without a causal mask."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class UnmaskedAttention(Unit):
    """Non-causal: attention without a causal mask."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        q = k = v = X.unsqueeze(1)  # (B, 1, L, D)
        h = X + self.mix(F.scaled_dot_product_attention(q, k, v).squeeze(1))
        return h + self.down(F.gelu(self.up(h)))
