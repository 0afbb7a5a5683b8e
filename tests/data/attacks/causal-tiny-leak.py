# attack: leaks the next token scaled by 1e-5, below any allclose tolerance but still information a trained model can amplify
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer with a faint look-ahead."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class FaintLeak(Unit):
    """Token-shift mixer with a faint look-ahead."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev) + 1e-5 * F.pad(X[:, 1:], (0, 0, 0, 1))
        return h + self.down(F.gelu(self.up(h)))
