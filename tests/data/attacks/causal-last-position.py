# attack: only the last position leaks, into the one before it, so only a cut exactly at L-2 can see it
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer with an "end of sequence" correction."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class EndCorrection(Unit):
    """Token-shift mixer with an "end of sequence" correction."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        correction = torch.zeros_like(X)
        if X.shape[1] >= 2:
            correction[:, -2] = X[:, -1]
        h = X + self.mix(prev + 0.5 * correction)
        return h + self.down(F.gelu(self.up(h)))
