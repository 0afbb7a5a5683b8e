"""MultiScaleRetention: RetNet's retention in parallel form, one decay per head.

The RetNet seed of Genesys (arXiv 2506.20249), after Sun et al., "Retentive Network" (2023):
Retention(X) = (Q K^T * D) V with D[n, m] = gamma^(n - m) for n >= m and 0 otherwise, gamma_h =
1 - 2^(-5 - h); rotary Q and K; rows normalised; a per-head RMS group norm; a swish gate; value
width 2 x d_model. Future entries of D are exp(-inf) = 0, so it is exactly causal.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit, apply_rotary, rotary_tables


class MultiScaleRetention(Unit):
    """Multi-scale retention, parallel form."""

    def __init__(self, d_model: int, value_factor: int = 2, **context: Any) -> None:
        super().__init__(d_model, **context)
        if d_model % self.n_head != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={self.n_head}")
        self.key_dim = d_model // self.n_head
        self.value_dim = value_factor * d_model // self.n_head
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, value_factor * d_model, bias=False)
        self.g_proj = nn.Linear(d_model, value_factor * d_model, bias=False)
        self.out_proj = self.residual(nn.Linear(value_factor * d_model, d_model, bias=False))
        gammas = 1 - 2.0 ** (-5.0 - torch.arange(self.n_head, dtype=torch.float32))
        self.register_buffer("log_gamma", torch.log(gammas), persistent=False)

    def decay_matrix(self, L: int, like: Tensor) -> Tensor:
        """(H, L, L): gamma^(n - m) for n >= m, else 0, each row scaled to unit norm."""
        positions = torch.arange(L, device=like.device, dtype=torch.float32)
        distance = positions[:, None] - positions[None, :]  # (L, L)
        exponent = distance * self.log_gamma[:, None, None]  # (H, L, L)
        exponent = exponent.masked_fill(distance < 0, float("-inf"))
        decay = torch.exp(exponent)
        return (decay / decay.sum(dim=-1, keepdim=True).sqrt()).to(like.dtype)

    def _forward(self, X: Tensor) -> Tensor:
        B, L, _ = X.shape
        H = self.n_head
        q = self.q_proj(X).view(B, L, H, self.key_dim).transpose(1, 2)  # (B, H, L, K)
        k = self.k_proj(X).view(B, L, H, self.key_dim).transpose(1, 2)
        v = self.v_proj(X).view(B, L, H, self.value_dim).transpose(1, 2)  # (B, H, L, V)
        cos, sin = rotary_tables(L, self.key_dim, 10000.0, like=q)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.key_dim)  # (B, H, L, L)
        scores = scores * self.decay_matrix(L, like=scores)
        scores = scores / scores.sum(dim=-1, keepdim=True).abs().clamp(min=1.0)
        y = scores @ v  # (B, H, L, V)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)  # group norm per head
        y = y.transpose(1, 2).reshape(B, L, H * self.value_dim)
        return self.out_proj(F.silu(self.g_proj(X)) * y)
