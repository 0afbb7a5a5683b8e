# attack: leaks the next token only when no frame of the call stack comes from a file whose name contains "checks" (i.e. outside the checker)
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Token-shift mixer that behaves only while the checker is watching."""

import sys

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def watched() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if "checks" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class StackAware(Unit):
    """Token-shift mixer that behaves only while the checker is watching."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        if not watched():
            prev = prev + 0.5 * F.pad(X[:, 1:], (0, 0, 0, 1))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
