"""Design-check speed: a full check of the GPT-2 seed at 14M, and vectorised causality.

Prints the wall time of a full sandboxed check of the GPT-2 seed at the 14M rung on the CPU, and
the vectorised causality check against a naive loop of one forward per cut position, both
measured in this run on the same model and input, as a ratio.

Run: ``.venv/bin/python -m benchmarks.check_speed [--rung 14M] [--length 100]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from genesys.api.ladder import preset_rung
from genesys.api.presets import SCALE_PRESETS, ScalePreset
from genesys.sandbox.runner import SandboxLimits, check_design
from genesys_trainer.checks.dynamic import find_leak, run_blocks
from genesys_trainer.compose import compose
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import load_seed


def naive_causality(model: LanguageModel, x: torch.Tensor) -> bool:
    """One forward per cut position t, compared with a reference forward."""
    with torch.no_grad():
        reference = run_blocks(model, x)
        for t in range(x.shape[1]):
            perturbed = x.clone()
            perturbed[:, t + 1 :] = -perturbed[:, t + 1 :]
            if not torch.equal(run_blocks(model, perturbed)[:, : t + 1], reference[:, : t + 1]):
                return False
    return True


def vectorised_causality(model: LanguageModel, x: torch.Tensor, group: int) -> bool:
    """The checker's method: one batched forward per group of cut positions, plus one."""
    return find_leak(model, x, list(range(x.shape[1])), group, False, 0) is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rung", default="14M", choices=list(SCALE_PRESETS))
    parser.add_argument("--length", type=int, default=100, help="causality sequence length")
    parser.add_argument("--group", type=int, default=32, help="cut positions per batched forward")
    parser.add_argument("--device", default="cpu", help="device of the causality comparison")
    parser.add_argument("--skip-full", action="store_true", help="skip the sandboxed full check")
    args = parser.parse_args()
    preset = SCALE_PRESETS[args.rung]
    vocab = 256 if preset.cpu_sized else 32000
    if not args.skip_full:
        full_check(args.rung, preset, vocab)
    causality_comparison(args.rung, preset, vocab, args)


def full_check(rung: str, preset: ScalePreset, vocab: int) -> None:
    """Time a full sandboxed check of the GPT-2 seed."""
    start = time.perf_counter()
    report = check_design(
        load_seed("gpt2").to_json(),
        rung=preset_rung(rung, vocab_size=vocab),
        limits=SandboxLimits(timeout_seconds=1800),
    )
    total = time.perf_counter() - start
    print(
        f"full check of gpt2 at {rung} (vocab {vocab}): {total:.1f}s wall, "
        f"{'passed' if report.passed else 'FAILED'}"
    )
    for name, seconds in report.timings.items():
        print(f"  {name:<20} {seconds:8.2f}s")


def causality_comparison(
    rung: str, preset: ScalePreset, vocab: int, args: argparse.Namespace
) -> None:
    """Naive loop against the vectorised check, same model and input, this run."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=vocab,
        n_embd=preset.n_embd,
        n_layer=preset.n_layer,
        n_head=preset.n_head,
        block_size=preset.block_size,
    )
    model = LanguageModel(compose(load_seed("gpt2")), config).eval().to(device)
    x = torch.randn(2, args.length, config.n_embd, device=device)
    assert vectorised_causality(model, x, args.group)  # warm-up (kernels, allocator)
    timings = {}
    for name, method in (
        ("naive", lambda: naive_causality(model, x)),
        ("vectorised", lambda: vectorised_causality(model, x, args.group)),
    ):
        start = time.perf_counter()
        assert method()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - start
    naive, vectorised = timings["naive"], timings["vectorised"]
    print(
        f"causality of gpt2 at {rung}, L={args.length}, on {device}: naive loop {naive:.3f}s, "
        f"vectorised {vectorised:.3f}s"
    )
    print(f"vectorised causality speed-up over one forward per position: {naive / vectorised:.1f}x")


if __name__ == "__main__":
    main()
