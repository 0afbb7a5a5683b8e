# attack: each position sees the input 128 positions ahead, which only exists when the sequence is longer than 128 (the old checker used 100)
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer with a long-range "memory" term."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

SPAN = 128


class LongRange(Unit):
    """Token-shift mixer with a long-range "memory" term."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        far = torch.zeros_like(X)
        if X.shape[1] > SPAN:
            far[:, :-SPAN] = X[:, SPAN:]
        h = X + self.mix(prev + 0.5 * far)
        return h + self.down(F.gelu(self.up(h)))
