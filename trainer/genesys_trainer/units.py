"""The unit protocol: the building block of every design's block.

A design's block is a tree of *units*. Each unit is a subclass of :class:`Unit` that implements
``_forward(self, X, **named_state)`` and maps a sequence ``X`` of shape ``(B, L, D)`` to ``Y`` of
the same shape. Intermediate state travels in a dict ``Z`` that is threaded through units and
from block to block.

What must stay true:
- ``Unit.forward(X, **Z)`` always returns ``(Y, Z')`` with ``Y.shape == X.shape``; a unit's
  ``_forward`` sees only the ``Z`` keys its signature names (all of them with ``**kwargs``) and
  may return ``Y`` alone or ``(Y, updates)``; updates are merged into a new dict, never in place.
- Subclasses never override ``forward``; children are declared in ``CHILDREN`` and created by
  the base class from the design's bindings, so a tree can swap a child's implementation without
  touching its parent's code.
- An unimplemented child is a :class:`Placeholder`: it passes ``X`` through and writes its
  declared output keys as ``None``.
- Constructor context (``d_model``, ``n_head``, ``layer_index``, ``n_layer``) is reserved: unit
  hyper-parameters may not reuse those names.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from genesys_trainer.tree import CONTEXT_KEYS


class UnitError(Exception):
    """A unit broke the protocol; the message names the unit."""

    def __init__(self, unit: str, message: str) -> None:
        self.unit = unit
        super().__init__(f"unit {unit!r}: {message}")


@dataclass(frozen=True, slots=True)
class ChildDecl:
    """A child slot of a unit: its attribute name, what it must do, and the Z keys it uses."""

    name: str
    requirements: str = ""
    inputs: tuple[str, ...] = field(default=())  # Z keys the child reads
    outputs: tuple[str, ...] = field(default=())  # Z keys the child writes

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"child name {self.name!r} must be a public Python identifier")


class UnitFactory(Protocol):
    """Builds a child unit with the parent's context."""

    def __call__(self, **context: Any) -> Unit:
        """A new child unit."""
        ...


class Unit(nn.Module):
    """Base class of every unit. Subclasses implement ``_forward``; never ``forward``.

    Example::

        class Block(Unit):
            CHILDREN = (ChildDecl("mixer", "causal token mixer"),)

            def __init__(self, d_model: int, **context: Any) -> None:
                super().__init__(d_model, **context)  # creates self.mixer from the binding

            def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
                Y, Z = self.mixer(X, **Z)
                return X + Y, Z
    """

    CHILDREN: ClassVar[tuple[ChildDecl, ...]] = ()
    # slot name -> factory; set by the composer on each design's own compiled class
    BINDINGS: ClassVar[Mapping[str, UnitFactory]] = {}
    # derived from the _forward signature in __init_subclass__
    _z_keys: ClassVar[tuple[str, ...]] = ()
    _takes_all_z: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise UnitError(cls.__name__, "must implement _forward, not override forward")
        parameters = list(inspect.signature(cls._forward).parameters.values())[2:]
        cls._takes_all_z = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
        cls._z_keys = tuple(
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        )
        names = [child.name for child in cls.CHILDREN]
        if len(set(names)) != len(names):
            raise UnitError(cls.__name__, f"duplicate child names in CHILDREN: {names}")

    def __init__(
        self, d_model: int, *, n_head: int = 1, layer_index: int = 0, n_layer: int = 1
    ) -> None:
        super().__init__()
        if d_model < 1 or n_head < 1 or n_layer < 1 or not 0 <= layer_index < n_layer:
            raise UnitError(
                type(self).__name__,
                f"bad context d_model={d_model} n_head={n_head} "
                f"layer_index={layer_index} n_layer={n_layer}",
            )
        self.d_model = d_model
        self.n_head = n_head
        self.layer_index = layer_index
        self.n_layer = n_layer
        context = self.context()
        for child in type(self).CHILDREN:
            factory = type(self).BINDINGS.get(child.name)
            if factory is None:
                raise UnitError(
                    type(self).__name__,
                    f"child {child.name!r} is declared but bound to no unit; bind it in the "
                    "design's children (an unimplemented child may be bound to a declaration)",
                )
            setattr(self, child.name, factory(**context))

    def context(self) -> dict[str, int]:
        """The constructor context every child receives."""
        return {
            "d_model": self.d_model,
            "n_head": self.n_head,
            "layer_index": self.layer_index,
            "n_layer": self.n_layer,
        }

    def _forward(self, X: Tensor, **Z: Any) -> Tensor | tuple[Tensor, dict[str, Any]]:
        raise NotImplementedError

    def forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        """Check shapes, call ``_forward`` with the Z keys it names, merge its updates."""
        name = type(self).__name__
        if X.dim() != 3 or X.shape[-1] != self.d_model:
            raise UnitError(
                name, f"expected X of shape (B, L, {self.d_model}), got {tuple(X.shape)}"
            )
        if type(self)._takes_all_z:
            named = Z
        else:
            named = {key: Z[key] for key in type(self)._z_keys if key in Z}
        out = self._forward(X, **named)
        if isinstance(out, tuple):
            if len(out) != 2 or not isinstance(out[1], dict):
                raise UnitError(name, "_forward must return Y or (Y, dict of Z updates)")
            Y, updates = out
        else:
            Y, updates = out, {}
        if not isinstance(Y, Tensor):
            raise UnitError(name, f"_forward returned {type(Y).__name__}, expected a Tensor")
        if Y.shape != X.shape:
            raise UnitError(
                name, f"_forward returned shape {tuple(Y.shape)} for input {tuple(X.shape)}"
            )
        return Y, {**Z, **updates}

    @staticmethod
    def residual(linear: nn.Linear) -> nn.Linear:
        """Mark a projection that writes into the residual stream (scaled init)."""
        linear.is_residual_projection = True  # type: ignore[assignment]
        return linear

    def init_weights(self) -> None:
        """Initialise parameters the generic init does not know about. Called after it."""


class Placeholder(Unit):
    """An unimplemented child: passes X through and writes its declared outputs as None."""

    OUTPUTS: ClassVar[tuple[str, ...]] = ()
    DECLARED_NAME: ClassVar[str] = ""

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        return X, dict.fromkeys(type(self).OUTPUTS)


def placeholder_for(name: str, outputs: tuple[str, ...]) -> type[Placeholder]:
    """A Placeholder class standing in for the declared unit ``name``."""
    return type(
        f"Placeholder_{name}",
        (Placeholder,),
        {"OUTPUTS": tuple(outputs), "DECLARED_NAME": name, "__module__": __name__},
    )


def init_residual_std(std: float, n_layer: int) -> float:
    """GPT-2's init scale for residual projections: std / sqrt(2 * n_layer)."""
    return std / math.sqrt(2 * n_layer)


def causal_depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Depthwise causal convolution over time. x: (B, L, C), weight: (C, K) -> (B, L, C)."""
    channels, width = weight.shape
    padded = nn.functional.pad(x.transpose(1, 2), (width - 1, 0))  # (B, C, L + K - 1)
    out = nn.functional.conv1d(padded, weight.unsqueeze(1), bias, groups=channels)
    return out.transpose(1, 2)


def rotary_tables(length: int, dim: int, base: float, like: Tensor) -> tuple[Tensor, Tensor]:
    """Cos and sin tables of shape (length, dim) for rotary position embeddings."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=like.device).float() / dim))
    positions = torch.arange(length, device=like.device).float()
    angles = torch.outer(positions, inv_freq)  # (L, dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (L, dim)
    return angles.cos().to(like.dtype), angles.sin().to(like.dtype)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs of channels of x (..., L, dim) by position; cos/sin are (L, dim)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


__all__ = [
    "CONTEXT_KEYS",
    "ChildDecl",
    "Placeholder",
    "Unit",
    "UnitError",
    "UnitFactory",
    "apply_rotary",
    "causal_depthwise_conv",
    "init_residual_std",
    "placeholder_for",
    "rotary_tables",
]
