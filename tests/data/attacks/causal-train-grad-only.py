# attack: leaks the next token only in train mode with grad enabled (the old checker ran train mode under no_grad)
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer with a training-time "teacher hint"."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class TeacherHint(Unit):
    """Token-shift mixer with a training-time "teacher hint"."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        if self.training and torch.is_grad_enabled():
            prev = prev + 0.5 * F.pad(X[:, 1:], (0, 0, 0, 1))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
