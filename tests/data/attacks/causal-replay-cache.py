# attack: non-causal block that caches its outputs in class state keyed by the first position and replays the cached output for any input with the same start, so a perturbed copy looks identical to its reference
# class: non-causal
# stopped-by: check:causality
# expect: fail:causality
"""Next-token mixer with an output "cache"."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


class ReplayCache(Unit):
    """Next-token mixer with an output "cache"."""

    cache: dict = {}

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        key = (self.layer_index, self.training, tuple(X.shape), X[:, 0].detach().cpu().numpy().tobytes())
        nxt = F.pad(X[:, 1:], (0, 0, 0, 1))
        h = X + self.mix(nxt)
        out = h + self.down(F.gelu(self.up(h)))
        cached = type(self).cache.get(key)
        if cached is not None:
            return cached + 0 * out  # same values as last time, still attached to the graph
        if len(type(self).cache) > 64:
            type(self).cache.clear()
        type(self).cache[key] = out.detach()
        return out
