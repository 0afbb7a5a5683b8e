"""RMSNorm: root-mean-square normalisation over channels (Zhang and Sennrich, 2019).

Used by every seed of Genesys (arXiv 2506.20249) as the norm of both residual branches.
"""

import torch
from torch import Tensor, nn

from genesys_trainer.units import Unit


class RMSNorm(Unit):
    """y = x / rms(x) * weight, computed in float32."""

    def __init__(self, d_model: int, eps: float = 1e-5, **context: int) -> None:
        super().__init__(d_model, **context)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def _forward(self, X: Tensor) -> Tensor:
        x = X.float()
        x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (B, L, D)
        return x.type_as(X) * self.weight
