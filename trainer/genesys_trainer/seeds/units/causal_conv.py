"""CausalConv: a short depthwise causal convolution over time.

The TTT seed's "causal conv" (Genesys, arXiv 2506.20249; Sun et al., "Learning to (Learn at Test
Time)", 2024): it mixes each token with the few before it, ahead of the TTT layer's Q and K.
"""

import math

import torch
from torch import Tensor, nn

from genesys_trainer.units import Unit, causal_depthwise_conv


class CausalConv(Unit):
    """Y[:, t] = sum_j w_j * X[:, t - j] for j < kernel_size (per channel)."""

    def __init__(self, d_model: int, kernel_size: int = 4, **context: int) -> None:
        super().__init__(d_model, **context)
        bound = 1 / math.sqrt(kernel_size)
        self.weight = nn.Parameter(torch.empty(d_model, kernel_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def _forward(self, X: Tensor) -> Tensor:
        return causal_depthwise_conv(X, self.weight, self.bias)  # (B, L, D)
