"""Every seed design: fits every rung, exact causality, finite gradients, and it learns."""

from __future__ import annotations

import pytest
import torch

from genesys.api.presets import SCALE_PRESETS
from genesys_trainer.compose import ComposedDesign, compose
from genesys_trainer.designs_cli import main as designs_main
from genesys_trainer.fit import fit_design
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import SEEDS, load_seed

SEED_NAMES = list(SEEDS)
NANO = SCALE_PRESETS["nano"]
VOCAB = 256


def composed(name: str) -> ComposedDesign:
    return compose(load_seed(name))


def nano_model(name: str, seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=VOCAB,
        n_embd=NANO.n_embd,
        n_layer=NANO.n_layer,
        n_head=NANO.n_head,
        block_size=NANO.block_size,
    )
    return LanguageModel(composed(name), config)


def test_there_are_five_seeds() -> None:
    assert SEED_NAMES == ["gpt2", "mamba2", "retnet", "rwkv6", "ttt"]


def test_seed_design_files_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert designs_main(["sync-seeds", "--check"]) == 0


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seeds_share_the_top_level_shape(seed: str) -> None:
    tree = load_seed(seed)
    assert tree.root == "ResidualBlock"
    assert set(tree.units["ResidualBlock"].children) == {
        "seq_norm",
        "seq_mixer",
        "channel_norm",
        "channel_mixer",
    }
    assert tree.units["ResidualBlock"].source == load_seed("gpt2").units["ResidualBlock"].source


@pytest.mark.parametrize("rung", list(SCALE_PRESETS))
@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seed_fits_rung_and_keeps_shape(seed: str, rung: str) -> None:
    preset = SCALE_PRESETS[rung]
    vocab = VOCAB if preset.cpu_sized else 32000
    design = composed(seed)
    fit = fit_design(design, preset, rung=rung, vocab_size=vocab)
    assert fit.within, fit
    assert abs(fit.rel_error) <= 0.2
    config = ModelConfig(
        vocab_size=vocab,
        n_embd=fit.n_embd,
        n_layer=fit.n_layer,
        n_head=fit.n_head,
        block_size=preset.block_size,
    )
    device = "cpu" if preset.cpu_sized else "meta"  # meta: nothing allocated for big rungs
    with torch.device(device):
        model = LanguageModel(design, config)
        idx = torch.randint(0, vocab, (2, 64))
        x = model.wte(idx)
        for block in model.blocks:
            y, _ = block(x)
            assert y.shape == x.shape
            x = y
        logits, _ = model(idx)
    assert logits.shape == (2, 64, vocab)


def perturb_after(idx: torch.Tensor, t: int) -> torch.Tensor:
    changed = idx.clone()
    changed[:, t + 1 :] = (
        changed[:, t + 1 :]
        + 1
        + torch.arange(changed[:, t + 1 :].numel()).view_as(changed[:, t + 1 :])
    ) % VOCAB
    return changed


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seed_is_exactly_causal(seed: str, mode: str) -> None:
    model = nano_model(seed)
    model.train(mode == "train")
    L = 100
    idx = torch.randint(0, VOCAB, (2, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(2)
        reference, _ = model(idx)
        for t in (0, 1, 17, 63, 64, L - 2, L - 1):
            torch.manual_seed(2)  # identical dropout draws, should a unit use dropout
            changed, _ = model(perturb_after(idx, t))
            assert torch.equal(changed[:, : t + 1], reference[:, : t + 1]), f"leak at t={t}"
            if t < L - 1:
                assert not torch.equal(changed[:, t + 1 :], reference[:, t + 1 :])


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seed_batch_rows_do_not_leak(seed: str) -> None:
    model = nano_model(seed).eval()
    idx = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference, _ = model(idx)
        changed_idx = idx.clone()
        changed_idx[1] = (changed_idx[1] + 5) % VOCAB
        changed, _ = model(changed_idx)
    assert torch.equal(changed[0], reference[0])
    assert torch.equal(changed[2], reference[2])


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seed_gives_every_parameter_a_finite_gradient(seed: str) -> None:
    model = nano_model(seed)
    idx = torch.randint(0, VOCAB, (2, 48), generator=torch.Generator().manual_seed(4))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    assert loss is not None
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    infinite = [
        n
        for n, p in model.named_parameters()
        if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
    assert missing == []
    assert infinite == []


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_seed_training_loss_falls_by_30_percent_in_50_steps(seed: str) -> None:
    model = nano_model(seed)
    batch = torch.randint(0, VOCAB, (4, 65), generator=torch.Generator().manual_seed(5))
    inputs, targets = batch[:, :-1], batch[:, 1:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        _, loss = model(inputs, targets)
        assert loss is not None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.7 * losses[0], (losses[0], losses[-1])
