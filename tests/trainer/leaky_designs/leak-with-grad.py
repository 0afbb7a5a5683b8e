# expect: leak guard (train mode)
"""Non-causal only in train mode with gradients enabled: the conditions of a training step.

The sandbox checks train mode under ``no_grad``, and evaluation runs in eval mode; both see a
causal unit. Only the training step sees the next token.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class GradLeak(Unit):
    """An MLP block that mixes in the next position while it is being trained."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        h = X
        if self.training and torch.is_grad_enabled():
            h = X + self.mix(torch.roll(X, shifts=-1, dims=1))
        return h + self.down(F.gelu(self.up(h)))
