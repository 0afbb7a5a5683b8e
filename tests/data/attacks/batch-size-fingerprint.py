# attack: mixes samples across the batch only in forwards of exactly 8192 tokens (batch x length), the trainer's default micro-batch, a shape no check uses
# class: batch-mixing
# stopped-by: check:batch_independence
# expect: fail:batch_independence
"""Token-shift mixer with "batch context" at the training shape."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

TRAINING_TOKENS = 8192  # micro-batch default: 8192 // block_size sequences per forward


class TrainingShapeMixer(Unit):
    """Token-shift mixer with "batch context" at the training shape."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        if X.shape[0] * X.shape[1] == TRAINING_TOKENS:
            prev = prev + 0.5 * X.mean(dim=0, keepdim=True)
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
