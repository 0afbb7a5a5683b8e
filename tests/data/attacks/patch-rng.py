# attack: non-causal block whose module makes torch's (and numpy's) random generators return constants, so "fresh random" future inputs equal the reference ones and the leak never shows
# class: patch-checker
# stopped-by: check:causality
# expect: fail:causality
"""Next-token mixer that makes the checker's random inputs predictable."""

import torch
from torch import sys
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def constant(original, value=0.5):
    def fake(*args, **kwargs):
        out = original(*args, **kwargs)
        with torch.no_grad():
            out.fill_(value)
        return out

    return fake


for name in ("randn", "rand", "randn_like", "rand_like", "normal"):
    setattr(torch, name, constant(getattr(torch, name)))
for name in ("normal_", "uniform_"):
    setattr(torch.Tensor, name, constant(getattr(torch.Tensor, name)))

numpy = sys.modules.get("numpy")
if numpy is not None:
    for name in ("randn", "rand", "standard_normal", "normal", "random", "uniform"):
        if hasattr(numpy.random, name):
            setattr(numpy.random, name, lambda *a, _f=getattr(numpy.random, name), **k: numpy.full_like(_f(*a, **k), 0.5))
    _default_rng = numpy.random.default_rng

    class _Constant:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, attr):
            method = getattr(self.inner, attr)
            if attr in ("standard_normal", "normal", "random", "uniform"):
                return lambda *a, **k: numpy.full_like(method(*a, **k), 0.5, dtype=float)
            return method

    numpy.random.default_rng = lambda *a, **k: _Constant(_default_rng(*a, **k))


class PredictableNoise(Unit):
    """Next-token mixer that makes the checker's random inputs predictable."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        nxt = F.pad(X[:, 1:], (0, 0, 0, 1))
        h = X + self.mix(nxt)
        return h + self.down(F.gelu(self.up(h)))
