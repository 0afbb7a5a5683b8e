"""Identity: passes X through unchanged.

The channel norm of the Mamba2 seed, which has no channel mixer (Genesys, arXiv 2506.20249).
"""

from torch import Tensor

from genesys_trainer.units import Unit


class Identity(Unit):
    """Y = X."""

    def _forward(self, X: Tensor) -> Tensor:
        return X
