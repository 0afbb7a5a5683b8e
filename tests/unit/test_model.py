"""The LM wrapper: tied head, GPT-2 init, parameter counting on the meta device."""

from __future__ import annotations

import math

import pytest
import torch

from genesys.api.presets import SCALE_PRESETS, reference_params
from genesys_trainer.compose import compose
from genesys_trainer.model import LanguageModel, ModelConfig, count_params, model_params
from genesys_trainer.seeds import load_seed


def test_head_is_tied_to_embedding() -> None:
    model = LanguageModel(
        compose(load_seed("gpt2")), ModelConfig(vocab_size=64, n_embd=32, n_layer=2, n_head=2)
    )
    assert model.lm_head.weight is model.wte.weight
    names = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" not in names  # counted once, as wte.weight


@pytest.mark.parametrize("rung", ["14M", "31M", "70M", "125M", "350M"])
def test_gpt2_seed_at_paper_shape_matches_reference_size(rung: str) -> None:
    preset = SCALE_PRESETS[rung]
    config = ModelConfig(
        vocab_size=32000, n_embd=preset.n_embd, n_layer=preset.n_layer, n_head=preset.n_head
    )
    params = model_params(compose(load_seed("gpt2")), config)
    assert params == pytest.approx(reference_params(preset.n_embd, preset.n_layer, 32000), rel=0.01)


def test_meta_device_counting_allocates_nothing() -> None:
    config = ModelConfig(vocab_size=32000, n_embd=1024, n_layer=24, n_head=16)
    with torch.device("meta"):
        model = LanguageModel(compose(load_seed("gpt2")), config)
    assert all(p.is_meta for p in model.parameters())
    assert count_params(model) > 300_000_000


def test_gpt2_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    n_layer = 8
    model = LanguageModel(
        compose(load_seed("gpt2")),
        ModelConfig(vocab_size=256, n_embd=128, n_layer=n_layer, n_head=4),
    )
    block = model.blocks[0]
    residual = block.seq_mixer.out.weight
    plain = block.seq_mixer.qkv.weight
    assert residual.std().item() == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.1)
    assert plain.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_config_validates_itself() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        ModelConfig(n_embd=100, n_head=3)


def test_loss_is_cross_entropy_of_logits() -> None:
    torch.manual_seed(0)
    model = LanguageModel(
        compose(load_seed("gpt2")), ModelConfig(vocab_size=32, n_embd=16, n_layer=1, n_head=2)
    )
    idx = torch.randint(0, 32, (2, 10))
    logits, loss = model(idx, idx)
    assert loss is not None
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 32), idx.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
