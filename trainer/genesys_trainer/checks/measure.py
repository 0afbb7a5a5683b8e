"""Measuring a training step the same way on the CPU and on CUDA: memory, FLOPs, used params.

What must stay true:
- Memory is counted as parameter state (weights, grads and two AdamW moments: 4 x parameter
  bytes) plus the peak bytes of tensors autograd saves for the backward pass (activations), each
  storage once. This works on any device; on CUDA the allocator's peak is reported beside it.
- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode


class SavedTensorBytes:
    """Counts the bytes autograd saves during a forward pass (each storage once)."""

    def __init__(self) -> None:
        self.storages: dict[tuple[int, str], int] = {}

    @property
    def total(self) -> int:
        """Bytes of distinct saved storages."""
        return sum(self.storages.values())

    def pack(self, tensor: Tensor) -> Tensor:
        """Record a saved tensor's storage; keep the tensor as is."""
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            key = (storage.data_ptr(), str(tensor.device))
            self.storages[key] = max(self.storages.get(key, 0), storage.nbytes())
        return tensor

    @staticmethod
    def unpack(tensor: Tensor) -> Tensor:
        """Return the saved tensor unchanged."""
        return tensor

    @contextmanager
    def recording(self) -> Iterator[SavedTensorBytes]:
        """Count the saved tensors of the forward passes run inside."""
        with torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack):
            yield self


def parameter_state_bytes(model: nn.Module) -> int:
    """Weights, gradients and two AdamW moments."""
    return 4 * sum(p.numel() * p.element_size() for p in model.parameters())


def step_memory_bytes(model: nn.Module, loss_of: Callable[[], Tensor]) -> int:
    """Memory of one training step: parameter state plus saved activations."""
    recorder = SavedTensorBytes()
    with recorder.recording():
        loss = loss_of()
    if loss.requires_grad:  # a block cut from the graph has nothing to differentiate
        loss.backward()
    model.zero_grad(set_to_none=True)
    return parameter_state_bytes(model) + recorder.total


def step_flops(model: nn.Module, loss_of: Callable[[], Tensor]) -> int:
    """FLOPs of one forward+backward step."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss = loss_of()
        if loss.requires_grad:
            loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


class UsedParameters(TorchFunctionMode):
    """Records which parameters take part in any torch operation."""

    def __init__(self, parameters: dict[int, str]) -> None:
        super().__init__()
        self.by_id = parameters
        self.used: set[str] = set()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        for value in [*args, *(kwargs or {}).values()]:
            for item in value if isinstance(value, list | tuple) else (value,):
                name = self.by_id.get(id(item))
                if name is not None:
                    self.used.add(name)
        return func(*args, **(kwargs or {}))


__all__ = [
    "SavedTensorBytes",
    "UsedParameters",
    "parameter_state_bytes",
    "step_flops",
    "step_memory_bytes",
]
