"""RWKV6ChannelMix: RWKV-6 channel mixing, token-shifted squared-ReLU MLP with a receptance gate.

The RWKV6 seed's channel mixer in Genesys (arXiv 2506.20249), after Peng et al. (2024).
"""

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class RWKV6ChannelMix(Unit):
    """sigmoid(receptance(x_r)) * value(relu(key(x_k))^2), x_* lerped with the previous token."""

    def __init__(self, d_model: int, hidden_ratio: float = 3.5, **context: Any) -> None:
        super().__init__(d_model, **context)
        hidden = 8 * int(hidden_ratio * d_model / 8)
        fade = 1.0 - self.layer_index / self.n_layer
        ramp = torch.arange(d_model, dtype=torch.float32) / d_model
        self.maa_k = nn.Parameter(1.0 - ramp.pow(fade))
        self.maa_r = nn.Parameter(1.0 - ramp.pow(fade))
        self.key = nn.Linear(d_model, hidden, bias=False)
        self.value = self.residual(nn.Linear(hidden, d_model, bias=False))
        self.receptance = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, X: Tensor) -> Tensor:
        delta = F.pad(X, (0, 0, 1, -1)) - X  # x[t-1] - x[t]
        xk = X + delta * self.maa_k
        xr = X + delta * self.maa_r
        hidden = torch.relu(self.key(xk)).square()  # (B, L, hidden)
        return torch.sigmoid(self.receptance(xr)) * self.value(hidden)
