# expect: causality
"""Non-causal: a convolution padded on both sides."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class CenteredConv(Unit):
    """Non-causal: a convolution padded on both sides."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        w = torch.ones(X.shape[-1], 1, 3, device=X.device) / 3
        c = F.conv1d(X.transpose(1, 2), w, padding=1, groups=X.shape[-1]).transpose(1, 2)
        h = X + self.mix(c)
        return h + self.down(F.gelu(self.up(h)))
