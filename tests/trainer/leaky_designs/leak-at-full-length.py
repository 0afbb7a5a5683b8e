# expect: leak guard (eval and train)
"""Non-causal only at the full context length: each position mixes in the next one.

The sandbox checks causality on shorter random sequences, where this unit is causal; on real
training windows (nano: 256 tokens) it sees the next token.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class FullLengthLeak(Unit):
    """An MLP block that mixes in the next position when the sequence is 256 long."""

    CONTEXT_LENGTH = 256  # the nano rung's context length

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        h = X
        if X.shape[1] == self.CONTEXT_LENGTH:
            h = X + self.mix(torch.roll(X, shifts=-1, dims=1))
        return h + self.down(F.gelu(self.up(h)))
