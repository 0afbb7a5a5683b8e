"""Seed throughput on the CPU, and the GPT-2 seed against Hugging Face's Llama.

For every seed at the ``micro`` rung: forward+backward tokens/s of the LM. Then the GPT-2 seed
(rotary MHA on SDPA, SwiGLU MLP, RMSNorm) against ``transformers``' ``LlamaForCausalLM`` at an
identical shape (width, heads, layers, MLP width, vocab, tied embedding), measured in the same
process, and the ratio. Target: the seed at >= 1.0x the reference.

Run: ``.venv/bin/python -m benchmarks.seed_throughput [--rung micro] [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from genesys.api.presets import SCALE_PRESETS
from genesys_trainer.compose import compose
from genesys_trainer.model import LanguageModel, ModelConfig, count_params
from genesys_trainer.seeds import SEEDS, load_seed

VOCAB = 256


def tokens_per_second(
    step: Callable[[], None], tokens_per_step: int, seconds: float, warmup: int = 2
) -> float:
    """Run ``step`` repeatedly for about ``seconds`` after warm-up; tokens per second."""
    for _ in range(warmup):
        step()
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or steps < 3:
        step()
        steps += 1
    return steps * tokens_per_step / elapsed


def train_step(
    model: nn.Module, idx: torch.Tensor, loss_of: Callable[[], torch.Tensor]
) -> Callable[[], None]:
    """A forward+backward step (no optimiser: it is the same for every model)."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss_of().backward()

    return step


def seed_model(name: str, config: ModelConfig) -> LanguageModel:
    """A seed's LM at this shape."""
    return LanguageModel(compose(load_seed(name)), config)


def llama_reference(config: ModelConfig, mlp_hidden: int) -> nn.Module:
    """Transformers' Llama at the GPT-2 seed's exact shape."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=mlp_hidden,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_head,
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(hf_config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rung", default="micro", choices=list(SCALE_PRESETS))
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per model")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    preset = SCALE_PRESETS[args.rung]
    config = ModelConfig(
        vocab_size=VOCAB,
        n_embd=preset.n_embd,
        n_layer=preset.n_layer,
        n_head=preset.n_head,
        block_size=preset.block_size,
    )
    torch.manual_seed(0)
    idx = torch.randint(0, VOCAB, (args.batch, preset.block_size))
    tokens = idx.numel()
    print(
        f"rung {args.rung}: n_embd={config.n_embd} n_layer={config.n_layer} "
        f"n_head={config.n_head} L={preset.block_size} batch={args.batch} "
        f"threads={torch.get_num_threads()}"
    )

    results: dict[str, float] = {}
    for name in SEEDS:
        model = seed_model(name, config)
        speed = tokens_per_second(
            train_step(model, idx, lambda m=model: m(idx, idx)[1]), tokens, args.seconds
        )
        results[name] = speed
        print(f"  seed {name:<7} {count_params(model):>10,} params {speed:>10,.0f} tokens/s")

    gpt2 = seed_model("gpt2", config)
    mlp_hidden = 8 * math.ceil(8 / 3 * config.n_embd / 8)
    try:
        llama = llama_reference(config, mlp_hidden)
    except ImportError:
        print("transformers is not installed (pip install -e '.[bench]'); no reference ratio")
        return
    assert count_params(gpt2) == count_params(llama), (count_params(gpt2), count_params(llama))
    # alternate the two, so drift in machine load affects both alike
    seed_speed = llama_speed = 0.0
    for _ in range(2):
        seed_speed += tokens_per_second(
            train_step(gpt2, idx, lambda: gpt2(idx, idx)[1]), tokens, args.seconds / 2
        )
        llama_speed += tokens_per_second(
            train_step(llama, idx, lambda: llama(input_ids=idx, labels=idx).loss),
            tokens,
            args.seconds / 2,
        )
    print(f"  GPT-2 seed   {seed_speed / 2:>10,.0f} tokens/s")
    same = f"same shape, {count_params(llama):,} params"
    print(f"  HF Llama     {llama_speed / 2:>10,.0f} tokens/s ({same})")
    print(
        f"GPT-2 seed / HF Llama throughput ratio: {seed_speed / llama_speed:.2f}x (target >= 1.0x)"
    )


if __name__ == "__main__":
    main()
