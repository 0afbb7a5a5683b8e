# expect: forbidden
"""Reads /etc/passwd."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class ReadsPasswd(Unit):
    """Reads /etc/passwd."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        with open("/etc/passwd") as handle:
            self.leak = handle.read()
        return X + self.down(F.gelu(self.up(X)))
