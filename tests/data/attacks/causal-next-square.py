# attack: adds the square of the next position's input to each position (a one-step look-ahead hidden in a nonlinearity)
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer with a quadratic "energy" feature."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class SquaredEnergy(Unit):
    """Token-shift mixer with a quadratic "energy" feature."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        energy = F.pad(X[:, 1:], (0, 0, 0, 1)).square()  # "local energy" -- of position t+1
        h = X + self.mix(prev) + 0.1 * energy
        return h + self.down(F.gelu(self.up(h)))
