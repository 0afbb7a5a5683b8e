# expect: leak guard (eval and train)
"""Non-causal only when a frame of a file named ``train.py`` is on the call stack.

The sandbox runs the block from its own modules, where this unit is causal; the trainer calls
it from ``train.py``, both to train and to evaluate.
"""

import inspect

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class StackLeak(Unit):
    """An MLP block that mixes in the next position when called from a train.py."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        h = X
        if any(frame.filename.endswith("train.py") for frame in inspect.stack(context=0)):
            h = X + self.mix(torch.roll(X, shifts=-1, dims=1))
        return h + self.down(F.gelu(self.up(h)))
