"""Seeds on an accelerator: exact causality, training throughput, and the batched causality check.

For each seed, fitted to the rung (default 125M): exact causality in eval and train mode on the
device (fp32), forward+backward tokens/s under bf16 autocast, and peak memory. Then the batched
causality check against one forward per cut position (same model and input, this run), and the
GPT-2 seed against ``transformers``' Llama at the same shape, as ratios.

Run: ``python -m benchmarks.gpu_report [--rung 125M] [--device cuda] [--batch 8] [--length 2048]``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

from benchmarks.check_speed import naive_causality, vectorised_causality
from genesys.api.presets import SCALE_PRESETS, ScalePreset
from genesys_trainer.checks.dynamic import find_leak
from genesys_trainer.compose import compose
from genesys_trainer.fit import fit_design
from genesys_trainer.model import LanguageModel, ModelConfig, count_params
from genesys_trainer.seeds import SEEDS, load_seed


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Seconds per call after two warm-up calls."""
    for _ in range(2):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def seed_report(
    seed: str, preset: ScalePreset, vocab: int, device: torch.device, args: argparse.Namespace
) -> None:
    """Causality, throughput and peak memory of one seed fitted to the rung."""
    design = compose(load_seed(seed))
    fit = fit_design(design, preset, rung=args.rung, vocab_size=vocab)
    config = ModelConfig(
        vocab_size=vocab,
        n_embd=fit.n_embd,
        n_layer=fit.n_layer,
        n_head=fit.n_head,
        block_size=args.length,
    )
    torch.manual_seed(0)
    model = LanguageModel(design, config).to(device)
    x = torch.randn(2, 100, config.n_embd, device=device)
    causal = all(
        find_leak(model, x, list(range(100)), 25, train, 0) is None for train in (False, True)
    )
    model.train()
    idx = torch.randint(0, vocab, (args.batch, args.length + 1), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with amp:
            _, loss = model(idx[:, :-1], idx[:, 1:])
        assert loss is not None
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(step, device, args.repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    speed = args.batch * args.length / seconds
    print(
        f"  {seed:<7} n_embd={fit.n_embd:<5} n_layer={fit.n_layer:<3} "
        f"{count_params(model):>12,} params  exactly causal={causal}  "
        f"{speed:>11,.0f} tokens/s  peak {peak:.1f} GiB"
    )


def causality_report(rung: str, vocab: int, device: torch.device) -> None:
    """The batched causality check against one forward per cut, same model and input."""
    preset = SCALE_PRESETS[rung]
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=vocab, n_embd=preset.n_embd, n_layer=preset.n_layer, n_head=preset.n_head
    )
    model = LanguageModel(compose(load_seed("gpt2")), config).eval().to(device)
    x = torch.randn(2, 100, config.n_embd, device=device)
    naive = timed(lambda: naive_causality(model, x), device, 1)
    batched = timed(lambda: vectorised_causality(model, x, 100), device, 1)
    print(
        f"causality of gpt2 at {rung}, L=100: one forward per cut {naive:.3f}s, batched "
        f"{batched:.3f}s, speed-up {naive / batched:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rung", default="125M", choices=list(SCALE_PRESETS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", default=",".join(SEEDS))
    args = parser.parse_args()
    device = torch.device(args.device)
    preset = SCALE_PRESETS[args.rung]
    vocab = 256 if preset.cpu_sized else 32000
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    shape = f"batch {args.batch} x {args.length}"
    print(f"device {name}; torch {torch.__version__}; rung {args.rung}; {shape}")

    for seed in args.seeds.split(","):
        seed_report(seed, preset, vocab, device, args)

    for rung in ("14M", args.rung):
        causality_report(rung, vocab, device)

    try:
        from benchmarks.seed_throughput import llama_reference
    except ImportError:
        return
    config = ModelConfig(
        vocab_size=vocab,
        n_embd=preset.n_embd,
        n_layer=preset.n_layer,
        n_head=preset.n_head,
        block_size=args.length,
    )
    torch.manual_seed(0)
    gpt2 = LanguageModel(compose(load_seed("gpt2")), config).to(device).train()
    llama = llama_reference(config, 8 * math.ceil(8 / 3 * config.n_embd / 8)).to(device).train()
    idx = torch.randint(0, vocab, (args.batch, args.length), device=device)

    def seed_step() -> None:
        with amp:
            _, loss = gpt2(idx, idx)
        assert loss is not None
        loss.backward()
        gpt2.zero_grad(set_to_none=True)

    def llama_step() -> None:
        with amp:
            loss = llama(input_ids=idx, labels=idx).loss
        loss.backward()
        llama.zero_grad(set_to_none=True)

    seed_seconds = timed(seed_step, device, args.repeats)
    llama_seconds = timed(llama_step, device, args.repeats)
    print(
        f"GPT-2 seed vs HF Llama at {args.rung} (same shape, {count_params(gpt2):,} vs "
        f"{count_params(llama):,} params), forward+backward bf16: "
        f"{llama_seconds / seed_seconds:.2f}x"
    )


if __name__ == "__main__":
    main()
