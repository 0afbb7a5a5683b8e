"""The unit protocol: shapes, Z filtering and merging, children, placeholders."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from genesys_trainer.compose import compose
from genesys_trainer.tree import UnitSpec, UnitTree
from genesys_trainer.units import ChildDecl, Unit, UnitError, placeholder_for


class Doubler(Unit):
    def _forward(self, X: Tensor) -> Tensor:
        return 2 * X


class ReadsScale(Unit):
    def _forward(self, X: Tensor, scale: float = 1.0) -> tuple[Tensor, dict[str, Any]]:
        return X * scale, {"used_scale": scale}


class TakesAll(Unit):
    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        return X, {"keys": sorted(Z)}


class WrongShape(Unit):
    def _forward(self, X: Tensor) -> Tensor:
        return X[:, :-1]


def test_unit_returns_output_and_unchanged_state() -> None:
    X = torch.randn(2, 5, 8)
    Y, Z = Doubler(8)(X, keep="me")
    assert torch.equal(Y, 2 * X)
    assert Z == {"keep": "me"}


def test_unit_receives_only_the_z_keys_it_names() -> None:
    Y, Z = ReadsScale(4)(torch.ones(1, 3, 4), scale=3.0, other="ignored")
    assert torch.equal(Y, torch.full((1, 3, 4), 3.0))
    assert Z == {"scale": 3.0, "other": "ignored", "used_scale": 3.0}


def test_unit_with_var_keyword_receives_every_key() -> None:
    _, Z = TakesAll(4)(torch.ones(1, 2, 4), a=1, b=2)
    assert Z["keys"] == ["a", "b"]


def test_updates_do_not_mutate_the_callers_state() -> None:
    state = {"scale": 2.0}
    _, new_state = ReadsScale(4)(torch.ones(1, 1, 4), **state)
    assert state == {"scale": 2.0}
    assert new_state["used_scale"] == 2.0


def test_wrong_output_shape_is_an_error_naming_the_unit() -> None:
    with pytest.raises(UnitError, match=r"unit 'WrongShape': _forward returned shape \(2, 4, 8\)"):
        WrongShape(8)(torch.randn(2, 5, 8))


def test_wrong_input_width_is_an_error() -> None:
    with pytest.raises(UnitError, match=r"expected X of shape \(B, L, 8\)"):
        Doubler(8)(torch.randn(2, 5, 4))


def test_overriding_forward_is_refused() -> None:
    with pytest.raises(UnitError, match="must implement _forward, not override forward"):

        class Bad(Unit):
            def forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
                return X, Z


def test_declared_child_without_binding_is_an_error() -> None:
    class Parent(Unit):
        CHILDREN = (ChildDecl("inner", "anything"),)

        def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
            return self.inner(X, **Z)

    with pytest.raises(UnitError, match="child 'inner' is declared but bound to no unit"):
        Parent(4)


def test_placeholder_passes_through_and_writes_declared_outputs_as_none() -> None:
    placeholder = placeholder_for("Future", ("cache", "gate"))(4)
    X = torch.randn(1, 3, 4)
    Y, Z = placeholder(X, existing=1)
    assert torch.equal(Y, X)
    assert Z == {"existing": 1, "cache": None, "gate": None}


PARENT = """
from typing import Any
from torch import Tensor
from genesys_trainer.units import ChildDecl, Unit


class Parent(Unit):
    CHILDREN = (ChildDecl("inner", "adds one", outputs=("marker",)),)

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        Y, Z = self.inner(X, **Z)
        return Y + 1, Z
"""


def test_unimplemented_child_composes_as_placeholder() -> None:
    from genesys_trainer.tree import Declaration

    tree = UnitTree(
        name="partial",
        root="Parent",
        units={"Parent": UnitSpec(source=PARENT, children={"inner": "Inner"})},
        declarations={"Inner": Declaration("adds one", outputs=["marker"])},
    )
    block = compose(tree).block(4)
    X = torch.zeros(1, 2, 4)
    Y, Z = block(X)
    assert torch.equal(Y, torch.ones(1, 2, 4))
    assert Z == {"marker": None}


def test_bad_context_is_refused() -> None:
    with pytest.raises(UnitError, match="bad context"):
        Doubler(8, layer_index=3, n_layer=2)
