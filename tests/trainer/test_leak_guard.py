"""The leak guard: causality on real validation data at full length, eval and train-with-grad.

The hostile designs under ``leaky_designs/`` are causal where the sandbox looks (short random
inputs, its own call stack, ``no_grad``) and leak the next token only where training happens.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genesys.api.ladder import preset_rung
from genesys.store.archive import load_archive
from genesys.store.base import LocalStore
from genesys.store.documents import (
    DesignDocument,
    DesignMetadata,
    UnitEntry,
    VerificationResult,
    dump_document,
)
from genesys_trainer import leak_guard
from genesys_trainer.compose import compose
from genesys_trainer.data.prepare import open_data
from genesys_trainer.data.sampler import WindowSampler
from genesys_trainer.data.shards import load_split
from genesys_trainer.model import LanguageModel
from genesys_trainer.seeds import load_seed
from genesys_trainer.train import fitted_config, validate, validation_loss
from genesys_trainer.tree import UnitTree, load_tree

REPO = Path(__file__).resolve().parents[2]
LEAKY = Path(__file__).resolve().parent / "leaky_designs"
NANO = preset_rung("nano", vocab_size=256)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def val_sampler(builtin_data: Path) -> WindowSampler:
    data_dir, meta = open_data(str(builtin_data))
    return WindowSampler(load_split(data_dir, meta, "val"), NANO.context_length, 0)


def nano_model(tree: UnitTree) -> LanguageModel:
    design = compose(tree)
    _, config = fitted_config(design, NANO, 256)
    torch.manual_seed(0)
    return LanguageModel(design, config)


# --------------------------------------------------------------------------- pure parts


def test_probe_is_deterministic_in_its_seed_and_cuts_leave_a_future() -> None:
    probe = leak_guard.plan_probe(7, available=100, rows=8, length=16)
    assert probe == leak_guard.plan_probe(7, available=100, rows=8, length=16)
    assert len(set(probe.samples)) == 8
    assert all(0 <= cut <= 14 for cut in probe.cuts)
    assert leak_guard.plan_probe(8, 100, 8, 16) != probe
    few = leak_guard.plan_probe(7, available=2, rows=5, length=16)
    assert len(few.samples) == 5
    assert set(few.samples) <= {0, 1}
    with pytest.raises(ValueError, match="no probe"):
        leak_guard.plan_probe(7, available=10, rows=2, length=1)


def test_guard_seeds_come_from_urandom() -> None:
    assert len({leak_guard.guard_seed() for _ in range(8)}) == 8


def test_perturb_changes_every_token_after_the_cut_and_nothing_before() -> None:
    tokens = torch.randint(0, 5, (3, 12))
    cuts = (0, 5, 10)
    out = leak_guard.perturb(tokens, cuts, vocab_size=5, seed=1)
    for row, cut in enumerate(cuts):
        assert torch.equal(out[row, : cut + 1], tokens[row, : cut + 1])
        assert bool((out[row, cut + 1 :] != tokens[row, cut + 1 :]).all())
    assert int(out.max()) < 5
    assert torch.equal(out, leak_guard.perturb(tokens, cuts, vocab_size=5, seed=1))


def test_first_leak_finds_the_first_changed_position_up_to_the_cut() -> None:
    reference = torch.randn(2, 10, 4)
    perturbed = reference.clone()
    perturbed[0, 8:] += 1  # after row 0's cut: allowed
    assert leak_guard.first_leak(reference, perturbed, (7, 9), "eval") is None
    # the smallest change a float32 can make: one ulp
    perturbed[1, 3, 2] = torch.nextafter(reference[1, 3, 2], torch.tensor(float("inf")))
    leak = leak_guard.first_leak(reference, perturbed, (7, 9), "train")
    assert leak == leak_guard.Leak("train", 1, 9, 3, 10)
    assert "not causal in train mode" in leak.describe()
    assert "position 3" in leak.describe()


def test_first_leak_takes_nan_in_both_as_equal() -> None:
    reference = torch.zeros(1, 4, 2)
    reference[0, 1, 0] = float("nan")
    assert leak_guard.first_leak(reference, reference.clone(), (3,), "eval") is None


def test_plain_strips_a_lying_tensor_subclass() -> None:
    class Liar(torch.Tensor):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    logits = torch.randn(2, 3).as_subclass(Liar)
    plain = leak_guard.plain(logits)
    assert type(plain) is torch.Tensor
    assert not plain.requires_grad
    assert leak_guard.first_leak(plain[None], plain[None] + 1, (1,), "eval") is not None


# ----------------------------------------------------------------------- on real data


def test_the_gpt2_seed_passes_and_the_loss_is_unchanged(val_sampler: WindowSampler) -> None:
    model = nano_model(load_seed("gpt2"))
    for _ in range(3):  # fresh random probes every time
        loss, leak = validate(model, val_sampler, 32, 16, CPU)
        assert leak is None
    assert model.training
    model.eval()
    with torch.no_grad():
        inputs, targets = val_sampler.batch(list(range(32)))
        _, expected = model(inputs, targets)
    assert expected is not None
    assert loss == pytest.approx(float(expected), rel=1e-6)
    assert validation_loss(model, val_sampler, 32, 16, CPU) == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize(
    ("design", "mode"),
    [
        ("leak-at-full-length.py", "eval"),
        ("leak-under-train-py.py", "eval"),
        ("leak-with-grad.py", "train"),
    ],
)
def test_conditional_leaks_are_caught(design: str, mode: str, val_sampler: WindowSampler) -> None:
    model = nano_model(load_tree(LEAKY / design))
    _, leak = validate(model, val_sampler, 16, 8, CPU)
    assert leak is not None
    assert leak.mode == mode
    assert leak.position <= leak.cut
    assert leak.length == NANO.context_length


def test_the_full_length_leak_is_causal_on_shorter_inputs() -> None:
    """The sandbox's view: at a shorter length the same model is causal."""
    model = nano_model(load_tree(LEAKY / "leak-at-full-length.py")).eval()
    tokens = torch.randint(0, 256, (2, 100))
    perturbed = leak_guard.perturb(tokens, (50, 50), 256, seed=3)
    with torch.no_grad():
        reference, changed = model(tokens)[0], model(perturbed)[0]
    assert leak_guard.first_leak(reference, changed, (50, 50), "eval") is None


# ---------------------------------------------------------------- trained, end to end


@pytest.mark.slow
def test_a_leaking_design_trains_to_a_quarantined_result(
    builtin_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "leak"
    command = [
        sys.executable,
        "-m",
        "genesys",
        "train",
        "--design",
        str(LEAKY / "leak-at-full-length.py"),
        "--rung",
        "nano",
        "--data",
        str(builtin_data),
        "--out",
        str(out),
        "--tokens",
        "65536",
        "--no-eval",
        "--no-slowdown-guard",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "quarantined: leak guard" in done.stdout
    result = VerificationResult.model_validate_json((out / "result.json").read_text())
    assert result.status == "failed"
    assert result.quarantine is not None
    assert result.quarantine == result.reason
    assert "not causal in eval mode" in result.quarantine
    assert result.val_loss is not None
    assert result.eval == {}

    # the operator reads it as quarantined: never ranked, shown with its reason
    store = LocalStore(tmp_path / "run")
    source = (LEAKY / "leak-at-full-length.py").read_text()
    document = DesignDocument(
        name="leak",
        root="FullLengthLeak",
        units={"FullLengthLeak": UnitEntry(source=source)},
        metadata=DesignMetadata(operator="mutation", parents=["seed-gpt2"], seq=5),
    )
    store.put_text("designs/d0000/design.json", dump_document(document))
    store.put_text(
        "designs/d0000/verifications/nano/result.json", (out / "result.json").read_text()
    )
    record = load_archive(store, "r").designs["d0000"]
    assert record.verifications["nano"].status == "quarantined"
    assert record.quarantine is not None
    assert "leak guard" in record.quarantine
