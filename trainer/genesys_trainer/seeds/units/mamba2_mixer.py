"""Mamba2Mixer: the Mamba2 layer with the SSD algorithm in chunked pure-torch form.

The Mamba2 seed of Genesys (arXiv 2506.20249), after Dao and Gu, "Transformers are SSMs" (2024).
Input projection to (z, x, B, C, dt); a causal depthwise conv and SiLU on (x, B, C); the scalar-
decay SSM per head computed by state-space duality: quadratic attention-like form inside chunks,
a linear recurrence of chunk states between them; then a gated RMSNorm and the output projection.
Masked entries are exp(-inf) = 0, so the layer is exactly causal.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit, causal_depthwise_conv


def segment_sums(a: Tensor) -> Tensor:
    """(..., T) -> (..., T, T): out[i, j] = a[j+1] + ... + a[i] for i >= j, else -inf."""
    T = a.shape[-1]
    expanded = a.unsqueeze(-1).expand(*a.shape, T).transpose(-1, -2)  # [i, j] = a[i]
    strictly_lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    sums = expanded.masked_fill(~strictly_lower, 0).cumsum(dim=-2)
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0)
    return sums.masked_fill(~lower, float("-inf"))


def ssd(x: Tensor, a: Tensor, b: Tensor, c: Tensor, chunk: int) -> Tensor:
    """Chunked SSD. x: (B, L, H, P) (already times dt), a: (B, L, H) log decays, b, c: (B, L, N).

    Returns y: (B, L, H, P) with y[t] = sum_{s<=t} c[t].b[s] exp(a[s+1] + ... + a[t]) x[s].
    """
    Bsz, L, H, P = x.shape
    pad = (-L) % chunk
    if pad:
        x, a, b, c = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, a, b, c))
    n = x.shape[1] // chunk
    x = x.reshape(Bsz, n, chunk, H, P)
    b = b.reshape(Bsz, n, chunk, -1)
    c = c.reshape(Bsz, n, chunk, -1)
    a = a.reshape(Bsz, n, chunk, H).permute(0, 3, 1, 2)  # (B, H, n, Q)
    a_cum = a.cumsum(dim=-1)
    # 1. within each chunk: the quadratic (attention-like) form
    decay = torch.exp(segment_sums(a))  # (B, H, n, Q, Q)
    y_diag = torch.einsum("bcln,bcsn,bhcls,bcshp->bclhp", c, b, decay, x)
    # 2. each chunk's final state
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (B, H, n, Q)
    states = torch.einsum("bcsn,bhcs,bcshp->bchpn", b, to_end, x)  # (B, n, H, P, N)
    # 3. recurrence over chunks: the state entering each chunk
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # (B, n+1, H, P, N)
    chunk_decay = torch.exp(segment_sums(F.pad(a_cum[..., -1], (1, 0))))  # (B, H, n+1, n+1)
    entering = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)[:, :-1]
    # 4. entering state -> outputs
    y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", c, entering, torch.exp(a_cum))
    return (y_diag + y_off).reshape(Bsz, n * chunk, H, P)[:, :L]


class Mamba2Mixer(Unit):
    """Mamba2 selective state-space layer (SSD), scalar decay per head, one B/C group."""

    def __init__(
        self,
        d_model: int,
        expand: int = 2,
        d_state: int = 32,
        head_dim: int = 32,
        d_conv: int = 4,
        chunk_size: int = 32,
        **context: Any,
    ) -> None:
        super().__init__(d_model, **context)
        self.d_inner = expand * d_model
        if self.d_inner % head_dim != 0:
            raise ValueError(f"expand*d_model={self.d_inner} is not divisible by {head_dim}")
        self.head_dim, self.d_state, self.chunk_size = head_dim, d_state, chunk_size
        self.n_ssm_heads = self.d_inner // head_dim
        conv_channels = self.d_inner + 2 * d_state
        self.in_proj = nn.Linear(
            d_model, 2 * self.d_inner + 2 * d_state + self.n_ssm_heads, bias=False
        )
        bound = 1 / math.sqrt(d_conv)
        self.conv_weight = nn.Parameter(torch.empty(conv_channels, d_conv).uniform_(-bound, bound))
        self.conv_bias = nn.Parameter(torch.zeros(conv_channels))
        # dt in [1e-3, 1e-1] log-uniformly, stored through softplus's inverse
        dt = torch.exp(
            torch.rand(self.n_ssm_heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)
        )
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_ssm_heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_ssm_heads))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = self.residual(nn.Linear(self.d_inner, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        B, L, _ = X.shape
        z, xbc, dt = self.in_proj(X).split(
            [self.d_inner, self.d_inner + 2 * self.d_state, self.n_ssm_heads], dim=-1
        )
        xbc = F.silu(causal_depthwise_conv(xbc, self.conv_weight, self.conv_bias))
        x, b, c = xbc.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (B, L, H)
        A = -torch.exp(self.A_log.float())  # (H,)
        x = x.reshape(B, L, self.n_ssm_heads, self.head_dim)  # (B, L, H, P)
        y = ssd(x * dt.unsqueeze(-1), A * dt, b, c, self.chunk_size)
        y = y + x * self.D.unsqueeze(-1)
        y = y.reshape(B, L, self.d_inner) * F.silu(z)  # gate
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5) * self.norm_weight
        return self.out_proj(y)
