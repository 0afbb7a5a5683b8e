#!/usr/bin/env bash
# Train the GPT-2 seed at the 125M rung on one CUDA GPU for a few hundred optimiser micro-steps
# and print the steady tokens/s and the model FLOPs utilisation (MFU). Target: >= 40% on an H100.
#
# Usage: benchmarks/gpu_mfu.sh [STEPS]     (default 100 optimiser steps of ~0.5M tokens)
# Env:   PYTHON (default python3), MICRO (sequences per forward, default 16),
#        PEAK_TFLOPS (default: the GPU's dense bf16 peak, looked up by name), COMPILE (1/0).
# It needs torch with CUDA, numpy, and this repository (plus pydantic and pyyaml); it writes
# random-token shards (vocab 32000; content does not change speed) to a temporary directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
STEPS=${1:-100}
MICRO=${MICRO:-16}
export PYTHONPATH="$PWD/operator:$PWD/trainer:${PYTHONPATH:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

"$PY" - "$work/data" <<'PYEOF'
import json, sys
from pathlib import Path
import numpy as np
from genesys_trainer.data.shards import META_FORMAT, write_shard
out = Path(sys.argv[1]); out.mkdir(parents=True)
rng = np.random.default_rng(0)
write_shard(out / "train-00000.bin", rng.integers(0, 32000, 60_000_000), 32000)
write_shard(out / "val-00000.bin", rng.integers(0, 32000, 600_000), 32000)
meta = {"format": META_FORMAT, "tokenizer": {"kind": "byte", "name": "random"}, "vocab_size": 32000,
        "eot": 0, "splits": {"train": [{"file": "train-00000.bin", "tokens": 60_000_000}],
        "val": [{"file": "val-00000.bin", "tokens": 600_000}]}, "tasks": []}
(out / "meta.json").write_text(json.dumps(meta))
PYEOF

compile_flag=--compile
[ "${COMPILE:-1}" = "0" ] && compile_flag=
"$PY" -m genesys_trainer.train --design gpt2 --rung 125M --data "$work/data" --out "$work/out" \
  --tokens $((STEPS * 524288)) --micro-batch "$MICRO" --device cuda --no-eval \
  --no-slowdown-guard --log-every 5 $compile_flag

"$PY" - "$work/out" "${PEAK_TFLOPS:-}" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
import torch
out = Path(sys.argv[1])
result = json.loads((out / "result.json").read_text())
speeds = [json.loads(l)["tokens_per_second"] for l in (out / "log.jsonl").read_text().splitlines() if l]
steady = statistics.median(speeds[len(speeds) // 2:])  # after compilation and warm-up
shape = result["shape"]
flops_per_token = 6 * result["params"] + 12 * shape["n_layer"] * shape["n_embd"] * shape["block_size"]
name = torch.cuda.get_device_name()
peaks = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
peak = float(sys.argv[2]) * 1e12 if sys.argv[2] else next((v for k, v in peaks.items() if k in name), 989e12)
print(f"{name}: gpt2 seed at 125M ({result['params']:,} params), {result['steps']} steps, "
      f"final loss {result['train_loss']:.3f}")
print(f"steady throughput {steady:,.0f} tokens/s; {flops_per_token / 1e6:.0f} MFLOPs/token; "
      f"MFU {steady * flops_per_token / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16")
PYEOF
echo "total wall time $((SECONDS - start))s"
