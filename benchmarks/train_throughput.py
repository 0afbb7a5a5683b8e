"""The trainer's end-to-end tokens/s against a bare forward/backward/step loop, same model.

Both train the GPT-2 seed at the same rung, on the same prepared data, with the same
micro-batch, in this process: first the bare loop (AdamW, no scheduler, no guards, no logging),
then ``genesys_trainer.train`` (sampler, schedule, accumulation, guards, progress output), with
no checkpoint or evaluation in the timed part. Target: the trainer at >= 0.9x the bare loop.

Run: ``.venv/bin/python -m benchmarks.train_throughput [--rung nano] [--steps 60]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

from genesys.api.discoveryrun import Training
from genesys.api.ladder import preset_rung
from genesys.api.presets import SCALE_PRESETS
from genesys_trainer.data.prepare import prepare
from genesys_trainer.train import Run, TrainConfig


def bare_loop(run: Run, steps: int) -> float:
    """Tokens/s of a plain loop over the same model shape and batches."""
    torch.manual_seed(0)
    model = type(run.model)(run.design, run.plan.config).to(run.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    micro = run.plan.micro_batch
    batches = [run.train_sampler.batch(list(range(i * micro, (i + 1) * micro))) for i in range(4)]
    accumulation = run.plan.accumulation
    start = time.perf_counter()
    for step in range(steps):
        for m in range(accumulation):
            inputs, targets = batches[(step * accumulation + m) % len(batches)]
            _, loss = model(inputs, targets)
            assert loss is not None
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return steps * accumulation * micro * run.block_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rung", default="nano", choices=[k for k, v in SCALE_PRESETS.items() if v.cpu_sized]
    )
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    preset = SCALE_PRESETS[args.rung]
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        prepare(source="builtin", tokenizer="byte", out=str(data), progress=False)
        tokens = args.steps * preset.batch_tokens
        cfg = TrainConfig(
            design="gpt2",
            rung=preset_rung(args.rung).model_copy(update={"tokens": tokens}),
            data=str(data),
            out=str(Path(scratch) / "o"),
            training=Training(checkpointEveryMinutes=1440),
            evaluate=False,
            slowdown_guard=False,
            val_windows=1,
            log_every=10**9,
        )
        run = Run(cfg)
        bare = bare_loop(run, run.plan.steps)
        with contextlib.redirect_stdout(io.StringIO()):
            result = run.run()
    trainer = result.tokens_per_second or 0.0
    print(
        f"gpt2 at {args.rung}, {run.plan.steps} steps of {run.plan.sequences_per_step} x "
        f"{preset.block_size} tokens, threads={torch.get_num_threads()}"
    )
    print(f"  bare forward/backward/step loop: {bare:10,.0f} tokens/s")
    print(f"  genesys_trainer.train:           {trainer:10,.0f} tokens/s")
    print(f"trainer / bare loop throughput ratio: {trainer / bare:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
