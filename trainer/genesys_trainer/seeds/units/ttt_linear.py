"""TTTLinear: test-time training with a linear inner model, mini-batch dual form.

The TTT seed of Genesys (arXiv 2506.20249), after Sun et al., "Learning to (Learn at Test Time):
RNNs with Expressive Hidden States" (2024). The hidden state of each head is the weight W (and
bias b) of an inner model f(x) = x + LN(x W + b), trained online on the self-supervised loss
||LN(k W + b) - (v - k)||^2 with one gradient step per mini-batch of tokens. Inside a mini-batch
the dual form gives every token the weights updated by the tokens up to and including itself
(a lower-triangular mask), so the layer is exactly causal. Q and K come from a causal conv child
and get rotary embeddings; a gated, normalised output follows.
"""

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import ChildDecl, Unit, apply_rotary, rotary_tables


def layer_norm(
    x: Tensor, weight: Tensor, bias: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row layer norm; returns (output, normalised input, std)."""
    mean = x.mean(dim=-1, keepdim=True)
    std = torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + eps)
    normed = (x - mean) / std
    return normed * weight + bias, normed, std


def ttt_minibatch(
    q: Tensor, k: Tensor, v: Tensor, eta: Tensor, W: Tensor, b: Tensor,
    ln_weight: Tensor, ln_bias: Tensor, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One mini-batch. q, k, v: (B, H, M, K); eta: (B, H, M, 1); W: (B, H, K, K); b: (B, H, 1, K).

    Returns (outputs (B, H, M, K), W after the mini-batch, b after the mini-batch).
    """
    K = q.shape[-1]
    pred, normed, std = layer_norm(k @ W + b, ln_weight, ln_bias, eps)
    grad_out = (pred - (v - k)) * ln_weight  # d loss / d normed
    grad = (
        K * grad_out
        - grad_out.sum(-1, keepdim=True)
        - normed * (grad_out * normed).sum(-1, keepdim=True)
    ) / (K * std)  # d loss / d (k W + b): layer-norm backward, (B, H, M, K)
    # token t sees the updates of tokens s <= t: eta_s (q_t . k_s + 1), lower-triangular
    mix = (q @ k.transpose(-1, -2) + 1.0).tril() * eta.transpose(-1, -2)  # (B, H, M, M)
    z = q @ W + b - mix @ grad  # the inner model's output for each token
    out = F.layer_norm(z, (K,), eps=eps) * ln_weight + ln_bias
    W_next = W - (k * eta).transpose(-1, -2) @ grad
    b_next = b - (eta * grad).sum(dim=-2, keepdim=True)
    return q + out, W_next, b_next


class TTTLinear(Unit):
    """TTT-Linear sequence mixer."""

    CHILDREN = (ChildDecl("conv", "causal short convolution over time, applied before Q and K"),)

    def __init__(
        self, d_model: int, mini_batch: int = 32, base_lr: float = 1.0, **context: Any
    ) -> None:
        super().__init__(d_model, **context)
        if d_model % self.n_head != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={self.n_head}")
        K = self.head_dim = d_model // self.n_head
        self.mini_batch, self.base_lr = mini_batch, base_lr
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.lr_proj = nn.Linear(d_model, self.n_head, bias=True)
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = self.residual(nn.Linear(d_model, d_model, bias=False))
        self.W0 = nn.Parameter(torch.randn(self.n_head, K, K) * 0.02)
        self.b0 = nn.Parameter(torch.zeros(self.n_head, 1, K))
        self.ln_weight = nn.Parameter(torch.ones(self.n_head, 1, K))
        self.ln_bias = nn.Parameter(torch.zeros(self.n_head, 1, K))
        self.out_norm = nn.Parameter(torch.ones(d_model))

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        B, L, D = X.shape
        H, K, M = self.n_head, self.head_dim, self.mini_batch
        conv, Z = self.conv(X, **Z)

        def heads(t: Tensor) -> Tensor:
            return t.view(B, L, H, -1).transpose(1, 2)  # (B, H, L, K)

        q, k, v = heads(self.q_proj(conv)), heads(self.k_proj(conv)), heads(self.v_proj(X))
        cos, sin = rotary_tables(L, K, 10000.0, like=q)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        eta = self.base_lr * torch.sigmoid(self.lr_proj(X)) / K  # (B, L, H)
        eta = eta.transpose(1, 2).unsqueeze(-1)  # (B, H, L, 1)
        pad = (-L) % M
        if pad:
            q, k, v, eta = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, eta))
        W = self.W0.unsqueeze(0).expand(B, -1, -1, -1)
        b = self.b0.unsqueeze(0).expand(B, -1, -1, -1)
        outputs = []
        for start in range(0, L + pad, M):
            window = slice(start, start + M)
            out, W, b = ttt_minibatch(
                q[:, :, window], k[:, :, window], v[:, :, window], eta[:, :, window],
                W, b, self.ln_weight, self.ln_bias, 1e-6,
            )  # fmt: skip
            outputs.append(out)
        y = torch.cat(outputs, dim=2)[:, :, :L].transpose(1, 2).reshape(B, L, D)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5) * self.out_norm
        return self.out_proj(y * F.silu(self.gate(X))), Z

    def init_weights(self) -> None:
        """Keep the inner model's initial weights small and the per-token lr near base_lr/2."""
        with torch.no_grad():
            self.W0.normal_(0.0, 0.02)
            self.lr_proj.weight.normal_(0.0, 0.02)
            if self.lr_proj.bias is not None:
                self.lr_proj.bias.zero_()
