# expect: format
"""Overrides forward instead of implementing _forward."""

from typing import Any

from torch import Tensor, nn

from genesys_trainer.units import Unit


class OverridesForward(Unit):
    """Overrides forward."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        return X + self.proj(X), Z
