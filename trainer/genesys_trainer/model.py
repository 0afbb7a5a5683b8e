"""The LM wrapper: token embedding -> n blocks (Z threaded through) -> final norm -> tied head.

The block is the design; everything around it is fixed, so designs compare fairly.

What must stay true:
- The head's weight *is* the embedding's (tied); parameter counts count it once, matching the
  paper's reference sizes (tied embedding included).
- Init is GPT-2's: N(0, 0.02) for linear and embedding weights, zero biases, residual
  projections (marked with ``Unit.residual``) at 0.02 / sqrt(2 * n_layer); then every unit's own
  ``init_weights`` runs, so special parameters (decays, LoRA) keep their designed init.
- Building under ``torch.device("meta")`` allocates nothing, so the 350M rung can be counted
  anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.compose import ComposedDesign
from genesys_trainer.units import Unit, init_residual_std


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Shape of one language model around a design's block."""

    # -- model shape (nanoGPT names)
    vocab_size: int = 32000
    n_embd: int = 128
    n_layer: int = 6
    n_head: int = 4
    block_size: int = 2048  # context length
    # -- init
    init_std: float = 0.02
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if min(self.vocab_size, self.n_embd, self.n_layer, self.n_head, self.block_size) < 1:
            raise ValueError(f"every size must be positive: {self}")


class LanguageModel(nn.Module):
    """A causal LM whose blocks come from a composed design."""

    def __init__(self, design: ComposedDesign, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.design_name = design.tree.name
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(
            design.block(
                config.n_embd, n_head=config.n_head, layer_index=index, n_layer=config.n_layer
            )
            for index in range(config.n_layer)
        )
        self.norm_f = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init, then each unit's own ``init_weights``."""
        std = self.config.init_std
        residual_std = init_residual_std(std, self.config.n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                scale = residual_std if getattr(module, "is_residual_projection", False) else std
                nn.init.normal_(module.weight, mean=0.0, std=scale)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        for module in self.modules():
            if isinstance(module, Unit):
                module.init_weights()

    def hidden_states(self, idx: Tensor) -> Tensor:
        """The block stack's output (B, L, D) for token ids (B, L), Z threaded through."""
        x = self.wte(idx)  # (B, L, D)
        z: dict[str, Any] = {}
        for block in self.blocks:
            x, z = block(x, **z)
        return x  # type: ignore[no-any-return]

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, L, vocab), and the mean cross-entropy when targets are given."""
        logits = self.lm_head(self.norm_f(self.hidden_states(idx)))  # (B, L, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-1)
        return logits, loss


def count_params(model: nn.Module) -> int:
    """Parameters, each shared tensor once (the tied head is the embedding)."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():  # parameters() already de-duplicates by identity
        if id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


def block_params(design: ComposedDesign, n_embd: int, n_head: int, n_layer: int = 1) -> int:
    """Parameters of one block at this width, counted on the meta device."""
    with torch.device("meta"):
        block = design.block(n_embd, n_head=n_head, layer_index=0, n_layer=n_layer)
    return count_params(block)


def model_params(design: ComposedDesign, config: ModelConfig) -> int:
    """Parameters of the whole model, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = LanguageModel(design, config)
    return count_params(model)


__all__ = ["LanguageModel", "ModelConfig", "block_params", "count_params", "model_params"]
