"""SwiGLUMLP: the gated MLP of the GPT-2 and TTT seeds (Shazeer, 2020; Genesys seed table).

Hidden width 8/3 x d_model (rounded up to a multiple of 8), so the block's parameters match a
GPT-2 block's 12 d^2 together with attention.
"""

import math

from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class SwiGLUMLP(Unit):
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, d_model: int, hidden_ratio: float = 8 / 3, **context: int) -> None:
        super().__init__(d_model, **context)
        hidden = 8 * math.ceil(hidden_ratio * d_model / 8)
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = self.residual(nn.Linear(hidden, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        gate, up = self.gate_up(X).chunk(2, dim=-1)  # (B, L, H) each
        return self.down(F.silu(gate) * up)
