"""RotaryMHA: causal multi-head attention with rotary position embeddings, on SDPA.

The GPT-2 seed's sequence mixer in Genesys (arXiv 2506.20249): "MHA with rotary embeddings".
Rotary embeddings: Su et al., RoFormer (2021).
"""

from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit, apply_rotary, rotary_tables


class RotaryMHA(Unit):
    """softmax(QK^T / sqrt(d)) V over past positions, with rotary Q and K."""

    def __init__(
        self, d_model: int, rotary_base: float = 10000.0, dropout: float = 0.0, **context: Any
    ) -> None:
        super().__init__(d_model, **context)
        if d_model % self.n_head != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={self.n_head}")
        self.head_dim = d_model // self.n_head
        self.rotary_base = rotary_base
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = self.residual(nn.Linear(d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        B, L, D = X.shape
        q, k, v = self.qkv(X).split(D, dim=-1)
        q, k, v = (t.view(B, L, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        cos, sin = rotary_tables(L, self.head_dim, self.rotary_base, like=q)  # (L, hd)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (B, H, L, hd)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, L, D))
