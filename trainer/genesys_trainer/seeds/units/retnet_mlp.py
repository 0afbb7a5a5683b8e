"""RetNetMLP: RetNet's feed-forward network, GELU with hidden width 2 x d_model.

The RetNet seed's channel mixer in Genesys (arXiv 2506.20249), after Sun et al. (2023), whose
retention (8 d^2 with the doubled value width) plus this FFN (4 d^2) matches a 12 d^2 block.
"""

from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class RetNetMLP(Unit):
    """fc2(gelu(fc1(x)))."""

    def __init__(self, d_model: int, hidden_ratio: float = 2.0, **context: int) -> None:
        super().__init__(d_model, **context)
        hidden = int(hidden_ratio * d_model)
        self.fc1 = nn.Linear(d_model, hidden, bias=False)
        self.fc2 = self.residual(nn.Linear(hidden, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(X)))
