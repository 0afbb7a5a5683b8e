"""ResidualBlock: the shared top-level shape of every seed design (Genesys, arXiv 2506.20249).

Two pre-norm residual branches: X + seq_mixer(seq_norm(X)), then + channel_mixer(channel_norm).
Every seed binds its own mixers to these four slots, so units can move between seeds by
mutation and crossover.
"""

from typing import Any

from torch import Tensor

from genesys_trainer.units import ChildDecl, Unit


class ResidualBlock(Unit):
    """Pre-norm block with a sequence-mixer branch and a channel-mixer branch."""

    CHILDREN = (
        ChildDecl("seq_norm", "normalise each position's channels; no mixing across time"),
        ChildDecl("seq_mixer", "causal sequence mixer: Y[:, t] may depend only on X[:, :t+1]"),
        ChildDecl("channel_norm", "normalise each position's channels; no mixing across time"),
        ChildDecl("channel_mixer", "position-wise channel mixer (an MLP), or zero"),
    )

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        H, Z = self.seq_norm(X, **Z)
        H, Z = self.seq_mixer(H, **Z)
        X = X + H
        H, Z = self.channel_norm(X, **Z)
        H, Z = self.channel_mixer(H, **Z)
        return X + H, Z
