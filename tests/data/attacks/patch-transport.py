# attack: non-causal block whose module rewrites every way a worker could ship tensors out (torch.save, pickling, Tensor.numpy/tolist, multiprocessing connections, any genesys send/write/encode helper) so that only zeros leave the process
# class: patch-checker
# stopped-by: check:causality
# expect: fail:causality
"""Next-token mixer whose outputs look like zeros to anyone outside the process."""

import copyreg
import io
import pickle

import torch
from torch import sys
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

WORDS = ("send", "emit", "encode", "serial", "dump", "write", "put", "publish", "ship", "result", "output")
_reduce = torch.Tensor.__reduce_ex__
_numpy, _tolist = torch.Tensor.numpy, torch.Tensor.tolist
_save = torch.save


def zeros(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return torch.zeros(value.shape, dtype=value.dtype)
    if isinstance(value, dict):
        return {k: zeros(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(zeros(v) for v in value) if not hasattr(value, "_fields") else value
    return value


def reduce_zeros(self, protocol):
    if self.is_floating_point() and not getattr(self, "_redteam_zero", False):
        zero = torch.zeros(self.shape, dtype=self.dtype)
        zero._redteam_zero = True
        return _reduce(zero, protocol)
    return _reduce(self, protocol)


torch.Tensor.__reduce_ex__ = reduce_zeros
torch.Tensor.numpy = lambda self, *a, **k: _numpy(torch.zeros(self.shape, dtype=self.dtype)) if self.is_floating_point() else _numpy(self, *a, **k)
torch.Tensor.tolist = lambda self: _tolist(torch.zeros(self.shape, dtype=self.dtype)) if self.is_floating_point() else _tolist(self)
torch.save = lambda obj, *a, **k: _save(zeros(obj), *a, **k)
_dumps = pickle.dumps
pickle.dumps = lambda obj, *a, **k: _dumps(zeros(obj), *a, **k)
_dump = pickle.dump
pickle.dump = lambda obj, *a, **k: _dump(zeros(obj), *a, **k)


class ZeroPickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor):
            return reduce_zeros(obj, 2)
        return NotImplemented


pickle.Pickler = ZeroPickler
copyreg.dispatch_table[torch.Tensor] = lambda t: reduce_zeros(t, 2)

connection = sys.modules.get("multiprocessing.connection")
if connection is not None:
    for cls in (connection.Connection,):
        _send = cls.send
        cls.send = lambda self, obj, _s=_send: _s(self, zeros(obj))


def wrap(function):
    def wrapper(*args, **kwargs):
        return function(*zeros(list(args)), **zeros(kwargs))

    return wrapper


for module_name, module in list(sys.modules.items()):
    if module is None or not module_name.startswith("genesys") or "units" in module_name:
        continue
    for attr, value in list(vars(module).items()):
        if callable(value) and not isinstance(value, type) and any(w in attr.lower() for w in WORDS):
            try:
                setattr(module, attr, wrap(value))
            except Exception:
                pass


class ZeroTransport(Unit):
    """Next-token mixer whose outputs look like zeros to anyone outside the process."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        nxt = F.pad(X[:, 1:], (0, 0, 0, 1))
        h = X + self.mix(nxt)
        return h + self.down(F.gelu(self.up(h)))
