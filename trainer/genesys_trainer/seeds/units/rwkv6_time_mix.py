"""RWKV6TimeMix: RWKV-6 ("Finch") time mixing with data-dependent decay, in chunked form.

The RWKV6 seed of Genesys (arXiv 2506.20249), after Peng et al., "Eagle and Finch" (2024):
- token shift with data-dependent linear interpolation (ddlerp) whose mixing weights come from a
  low-rank (LoRA) projection of the shifted input;
- a per-channel decay w_t = exp(-exp(d_t)) with d_t = decay + LoRA(x_t), so it depends on data;
- the WKV recurrence S_t = diag(w_t) S_{t-1} + k_t^T v_t, o_t = r_t (S_{t-1} + diag(u) k_t^T v_t);
- a per-head group norm and a SiLU gate.
The recurrence is evaluated in chunks: pairwise decays inside a chunk, a recurrence of chunk
states between chunks. Every exponent is <= 0 and masked entries are exp(-inf) = 0.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


def segment_sums(a: Tensor) -> Tensor:
    """(..., T, K) -> (..., T, T, K): out[i, j] = a[j+1] + ... + a[i] for i >= j, else -inf."""
    T = a.shape[-2]
    cum = a.cumsum(dim=-2)
    sums = cum.unsqueeze(-2) - cum.unsqueeze(-3)  # [i, j] = cum[i] - cum[j]
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0).unsqueeze(-1)
    return sums.masked_fill(~lower, float("-inf"))


def wkv6(r: Tensor, k: Tensor, v: Tensor, log_w: Tensor, u: Tensor, chunk: int) -> Tensor:
    """Chunked WKV-6. r, k, log_w: (B, H, L, K); v: (B, H, L, V); u: (H, K). -> (B, H, L, V)."""
    B, H, L, K = r.shape
    pad = (-L) % chunk
    if pad:
        r, k, v, log_w = (F.pad(t, (0, 0, 0, pad)) for t in (r, k, v, log_w))
    n = r.shape[2] // chunk
    r, k, log_w = (t.reshape(B, H, n, chunk, K) for t in (r, k, log_w))
    v = v.reshape(B, H, n, chunk, -1)
    inclusive = log_w.cumsum(dim=-2)  # (B, H, n, Q, K)
    exclusive = inclusive - log_w
    # within a chunk: decay from s+1 to t-1 for s < t
    exponent = exclusive.unsqueeze(-2) - inclusive.unsqueeze(-3)  # (B, H, n, Q(t), Q(s), K)
    strictly_lower = torch.ones(chunk, chunk, dtype=torch.bool, device=r.device).tril(-1)
    exponent = exponent.masked_fill(~strictly_lower.unsqueeze(-1), float("-inf"))
    scores = torch.einsum("bhntk,bhnsk,bhntsk->bhnts", r, k, torch.exp(exponent))
    y = scores @ v  # (B, H, n, Q, V)
    y = y + ((r * u[None, :, None, None, :] * k).sum(-1, keepdim=True)) * v  # bonus term
    # chunk states: contribution of each chunk, decayed to its end
    to_end = torch.exp(inclusive[..., -1:, :] - inclusive)  # (B, H, n, Q, K)
    chunk_states = torch.einsum("bhnsk,bhnsv->bhnkv", k * to_end, v)
    chunk_states = torch.cat([torch.zeros_like(chunk_states[:, :, :1]), chunk_states], dim=2)
    chunk_log_decay = F.pad(inclusive[..., -1, :], (0, 0, 1, 0))  # (B, H, n+1, K)
    between = torch.exp(segment_sums(chunk_log_decay))  # (B, H, n+1, n+1, K)
    entering = torch.einsum("bhzck,bhckv->bhzkv", between, chunk_states)[:, :, :-1]
    y = y + torch.einsum("bhntk,bhnkv->bhntv", r * torch.exp(exclusive), entering)
    return y.reshape(B, H, n * chunk, -1)[:, :, :L]


class RWKV6TimeMix(Unit):
    """RWKV-6 time mixing (the sequence mixer of the RWKV6 seed)."""

    def __init__(
        self,
        d_model: int,
        mix_rank: int = 32,
        decay_rank: int = 64,
        chunk_size: int = 16,
        **context: Any,
    ) -> None:
        super().__init__(d_model, **context)
        if d_model % self.n_head != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={self.n_head}")
        self.head_size = d_model // self.n_head
        self.chunk_size = chunk_size
        depth = self.layer_index / max(1, self.n_layer - 1)  # 0 -> 1 through the stack
        fade = 1.0 - self.layer_index / self.n_layer  # 1 -> almost 0
        ramp = torch.arange(d_model, dtype=torch.float32) / d_model
        self.maa_x = nn.Parameter(1.0 - ramp.pow(fade))
        self.maa_wkvrg = nn.Parameter(torch.stack([1.0 - ramp.pow(fade)] * 5))  # (5, D)
        self.maa_w1 = nn.Parameter(torch.empty(d_model, 5 * mix_rank).uniform_(-1e-2, 1e-2))
        self.maa_w2 = nn.Parameter(torch.empty(5, mix_rank, d_model).uniform_(-1e-2, 1e-2))
        channel = torch.arange(d_model, dtype=torch.float32) / max(1, d_model - 1)
        self.decay = nn.Parameter(-6.0 + 5.0 * channel.pow(0.7 + 1.3 * depth))
        self.decay_w1 = nn.Parameter(torch.empty(d_model, decay_rank).uniform_(-1e-2, 1e-2))
        self.decay_w2 = nn.Parameter(torch.empty(decay_rank, d_model).uniform_(-1e-2, 1e-2))
        bonus = depth * (1.0 - channel) + ((torch.arange(d_model) + 1) % 3 - 1) * 0.1
        self.bonus = nn.Parameter(bonus.view(self.n_head, self.head_size))
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.output = self.residual(nn.Linear(d_model, d_model, bias=False))
        self.norm_weight = nn.Parameter(torch.ones(d_model))
        self.mix_rank = mix_rank

    def _forward(self, X: Tensor) -> Tensor:
        B, L, D = X.shape
        shifted = F.pad(X, (0, 0, 1, -1))  # x[t-1], zeros at t = 0
        delta = shifted - X
        mixed = X + delta * self.maa_x
        lora = torch.tanh(mixed @ self.maa_w1).view(B, L, 5, self.mix_rank)
        lora = torch.einsum("blfr,frd->fbld", lora, self.maa_w2)  # (5, B, L, D)
        xw, xk, xv, xr, xg = (X + delta * (self.maa_wkvrg[i] + lora[i]) for i in range(5))
        d = self.decay + torch.tanh(xw @ self.decay_w1) @ self.decay_w2  # (B, L, D)
        log_w = -torch.exp(d.float())  # log of the decay, < 0

        def heads(t: Tensor) -> Tensor:
            return t.view(B, L, self.n_head, self.head_size).transpose(1, 2)  # (B, H, L, K)

        r, k, v = heads(self.receptance(xr)), heads(self.key(xk)), heads(self.value(xv))
        y = wkv6(r.float(), k.float(), v.float(), heads(log_w), self.bonus.float(),
                 self.chunk_size).to(X.dtype)  # fmt: skip
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)  # group norm per head
        y = y.transpose(1, 2).reshape(B, L, D) * self.norm_weight
        return self.output(y * F.silu(self.gate(xg)))

    def init_weights(self) -> None:
        """RWKV zero-inits the output projection; keep a small scale instead of zero."""
        nn.init.normal_(self.output.weight, std=0.02 / math.sqrt(2 * self.n_layer))
