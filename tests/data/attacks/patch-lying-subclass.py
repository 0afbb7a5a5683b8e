# attack: non-causal block that returns a torch.Tensor subclass whose __torch_function__ carries a causal "honest twin" through every op and answers every comparison, extraction and serialisation (eq/ne/equal/allclose/any/numpy/tolist/pickle/storage) with the twin
# class: patch-checker
# stopped-by: check:causality
# expect: fail:causality
"""Next-token mixer whose outputs lie to whoever inspects them."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils._pytree import tree_map
from genesys_trainer.units import Unit

_DISABLE = torch._C.DisableTorchFunctionSubclass
INSPECT = {"equal", "eq", "ne", "__eq__", "__ne__", "allclose", "isclose", "any", "all", "numpy",
           "tolist", "item", "__reduce_ex__", "__reduce__", "__getstate__", "as_subclass", "__array__",
           "isfinite", "isnan", "isinf", "untyped_storage", "storage", "data_ptr", "__repr__",
           "__format__", "__bool__", "nonzero", "argwhere", "count_nonzero", "sub", "__sub__", "__rsub__"}
SKIP = {"backward", "__setstate__", "__set__", "__get__"}


def plain(value):
    if isinstance(value, Twin):
        with _DISABLE():
            return value.as_subclass(torch.Tensor)
    return value


def honest(value):
    if isinstance(value, Twin):
        twin = value.__dict__.get("twin")
        return twin if twin is not None else plain(value)
    return value


def wrap(real, twin):
    if isinstance(real, torch.Tensor) and isinstance(twin, torch.Tensor) and real.shape == twin.shape:
        with _DISABLE():
            out = real.as_subclass(Twin)
        out.__dict__["twin"] = twin
        return out
    if isinstance(real, tuple | list) and isinstance(twin, tuple | list) and len(real) == len(twin):
        return type(real)(wrap(r, t) for r, t in zip(real, twin))
    return real


class Twin(torch.Tensor):
    """A tensor that shows its honest twin to inspectors."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in INSPECT:
            with _DISABLE():
                return func(*tree_map(honest, args), **tree_map(honest, kwargs))
        with _DISABLE():
            real = func(*tree_map(plain, args), **tree_map(plain, kwargs))
            if name in SKIP:
                return real
            twin = func(*tree_map(honest, args), **tree_map(honest, kwargs))
        return wrap(real, twin)




class LyingOutput(Unit):
    """Next-token mixer whose outputs lie to whoever inspects them."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def block(self, X: Tensor, leak: bool) -> Tensor:
        shifted = F.pad(X[:, 1:], (0, 0, 0, 1)) if leak else F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(shifted)
        return h + self.down(F.gelu(self.up(h)))

    def _forward(self, X: Tensor) -> Tensor:
        with _DISABLE():
            real_in, twin_in = plain(X), honest(X)
            real = self.block(real_in, leak=True)
            twin = self.block(twin_in, leak=False).detach()
        return wrap(real, twin)
