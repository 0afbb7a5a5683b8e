"""``genesys train``: pre-train one design at one rung, checkpoint to the store, evaluate.

    genesys train --design URI --out URI --config CONFIG_URI --rung NAME   (a run's Jobs)
    genesys train --design gpt2 --rung nano --data DATA --out OUT [--tokens N]   (by hand)
    torchrun --nproc_per_node 2 -m genesys_trainer.train --design ... (DDP: NCCL or gloo)

A run's training Jobs pass the run config (:mod:`genesys.api.runconfig`) and a rung name: the
rung's shape and recipe, the training schedule and guards, the data, the seed and the evaluation
all come from it. By hand, ``--rung`` names a scale preset and the spec's defaults apply.

The run fits the design to the rung, trains ``actual params x tokens-per-param`` tokens (unless
the rung sets tokens) with AdamW, linear warm-up and cosine decay to ``minLrRatio`` of the peak,
accumulating gradients to the rung's batch tokens; bf16 autocast, TF32 and SDPA on CUDA;
optional ``torch.compile``.

Keys written under OUT (a path or store URI)::

    checkpoint.pt   model, optimizer, step, RNG states, elapsed time (atomic, every N steps
                    or minutes); a rerun of the same command resumes from it
    model.pt        final weights;  config.json  model and training config
    log.jsonl       progress lines;  result.json the verification result
    preemptions.jsonl  one line per SIGTERM obeyed: the step it stopped at, and when

What must stay true:
- Data order depends only on (seed, step, rank, world size) (:mod:`.data.sampler`), so a run
  killed with SIGKILL and rerun resumes with the identical data and reaches the same step count.
- Guards stop the run with a recorded reason (loss > max or <= 0 or NaN, gradient norm > max, or
  slower than the rung's tolerance x the GPT-2 seed's time); the process then exits 0 with
  ``status: failed``: a finished verification, not an infrastructure error. Crashes exit 1.
- The validation loss and the leak guard (:mod:`.leak_guard`) share one forward function and one
  loop; a design the guard finds non-causal on real data ends ``status: failed`` with
  ``quarantine`` set to the reason, so the operator never ranks it.
- SIGTERM (a preemption, a node drain, a spot reclaim) stops the run after the step under way:
  every rank stops at the same step, the checkpoint is written, the preemption is recorded, and
  the process exits :data:`EXIT_PREEMPTED` (143), so the Job's next pod resumes from exactly that
  step. The pod's ``terminationGracePeriodSeconds`` must cover one step and one checkpoint.
- ``result.json`` is written with a conditional create: when two attempts of one verification
  race (a Job retried while a lost one still runs), the first final result stands.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from opentelemetry import trace
from torch import nn

from genesys import telemetry
from genesys.api.discoveryrun import Training
from genesys.api.ladder import RungConfig, preset_rung
from genesys.api.presets import SCALE_PRESETS, reference_params
from genesys.progress import format_duration
from genesys.store import Store, open_store
from genesys.store.configs import read_run_config
from genesys.store.documents import (
    ModelShapeRecord,
    VerificationResult,
    create_document,
    dump_document,
    read_document,
)
from genesys_trainer import leak_guard  # binds its torch functions before any design is composed
from genesys_trainer.compose import ComposedDesign, compose
from genesys_trainer.data.prepare import open_data
from genesys_trainer.data.sampler import WindowSampler
from genesys_trainer.data.shards import load_split
from genesys_trainer.data.tokenizer import load_tokenizer
from genesys_trainer.fit import FitResult, fit_design
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import SEEDS, load_seed
from genesys_trainer.tracing import training_trace
from genesys_trainer.tree import UnitTree, load_tree, tree_from_json


class GuardStop(Exception):  # noqa: N818 - a stop, not an error
    """A training guard stopped the run; the reason is recorded."""


EXIT_PREEMPTED = 128 + signal.SIGTERM
"""The exit status after obeying SIGTERM: checkpoint saved, the training is to be resumed."""


class Preempted(Exception):  # noqa: N818 - a stop, not an error
    """SIGTERM was obeyed: the checkpoint is in the store; the process exits EXIT_PREEMPTED."""


@dataclass(slots=True)
class TrainConfig:
    """Everything one training run depends on (saved as config.json)."""

    design: str
    data: str
    out: str
    rung: RungConfig
    training: Training = field(default_factory=Training)
    seed: int = 0
    micro_batch: int | None = None  # sequences per forward; default ~8k tokens
    device: str = "auto"
    compile: bool = False
    slowdown_guard: bool = True
    reference_tokens_per_second: float | None = None
    checkpoint_every_steps: int | None = None
    log_every: int | None = None
    val_windows: int = 64
    evaluate: bool = True
    eval_tasks: list[str] | None = None
    eval_limit: int | None = None
    config_digest: str | None = None  # the run config's digest, when a run's Job started it

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the pydantic parts as their JSON)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["rung"] = self.rung.model_dump(mode="json", by_alias=False)
        values["training"] = self.training.model_dump(mode="json", by_alias=False)
        return values


@dataclass(slots=True)
class Plan:
    """The shape of the run: fitted model and step arithmetic."""

    fit: FitResult
    config: ModelConfig
    params: int
    tokens: int
    steps: int
    sequences_per_step: int
    micro_batch: int
    accumulation: int


# ----------------------------------------------------------------------------- set-up helpers


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def pick_device(spec: str, local_rank: int) -> torch.device:
    """cuda:<local rank> when available (or asked), else cpu."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(spec)


def resolve_design(design: str) -> UnitTree:
    """A seed name, a local design.json/.py, or a store URI of a design.json."""
    if design in SEEDS:
        return load_seed(design)
    if "://" in design and not design.startswith("file://"):
        parent, _, key = design.rpartition("/")
        return tree_from_json(json.loads(open_store(parent).get_text(key)))
    return load_tree(Path(design.removeprefix("file://")))


def fitted_config(
    design: ComposedDesign, rung: RungConfig, vocab: int
) -> tuple[FitResult, ModelConfig]:
    """The design fitted to the rung, and the model config of that shape."""
    fit = fit_design(design, rung, rung=rung.name, vocab_size=vocab)
    config = ModelConfig(
        vocab_size=vocab,
        n_embd=fit.n_embd,
        n_layer=fit.n_layer,
        n_head=fit.n_head,
        block_size=rung.context_length,
    )
    return fit, config


def plan_run(design: ComposedDesign, cfg: TrainConfig, vocab: int, world: int) -> Plan:
    """Fit the design, then derive tokens, steps and batching."""
    rung = cfg.rung
    fit, config = fitted_config(design, rung, vocab)
    tokens = rung.training_tokens(fit.params)
    block = rung.context_length
    per_step = max(world, rung.batch_tokens // block)
    per_step -= per_step % world  # the same sequences on every rank
    per_rank = per_step // world
    default_micro = max(1, 8192 // block)
    micro = max(1, min(per_rank, cfg.micro_batch or default_micro))
    accumulation = math.ceil(per_rank / micro)
    steps = max(1, math.ceil(tokens / (per_step * block)))
    return Plan(
        fit, config, fit.params, steps * per_step * block, steps, per_step, micro, accumulation
    )


def learning_rate(
    step: int, steps: int, peak: float, warmup_fraction: float, floor: float
) -> float:
    """Linear warm-up, then cosine decay to ``floor x peak``."""
    warmup = max(1, int(warmup_fraction * steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW, decaying only matrices (no norms, biases or scalars)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda"
    )


def rng_state() -> dict[str, Any]:
    """Every RNG the run uses."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_torch(store: Store, key: str, payload: Any) -> None:
    """torch.save into the store, atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    store.put_bytes(key, buffer.getvalue())


def load_torch(store: Store, key: str) -> Any:
    """torch.load from the store (our own checkpoints: full pickles are allowed)."""
    return torch.load(io.BytesIO(store.get_bytes(key)), map_location="cpu", weights_only=False)


def reference_throughput(
    cfg: TrainConfig,
    vocab: int,
    sampler: WindowSampler,
    device: torch.device,
    micro: int,
) -> float:
    """Tokens/s of the GPT-2 seed at this rung on this device (a few timed steps)."""
    reference = compose(load_seed("gpt2"))
    _, config = fitted_config(reference, cfg.rung, vocab)
    model = LanguageModel(reference, config).to(device)
    inputs, targets = sampler.batch(list(range(micro)))
    inputs, targets = inputs.to(device), targets.to(device)
    timings = []
    for _ in range(4):
        start = time.perf_counter()
        with autocast(device):
            _, loss = model(inputs, targets)
        assert loss is not None
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - start)
    return inputs.numel() / min(timings[1:])


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(frozen=True, slots=True, eq=False)
class EvalBatch:
    """One batch of the evaluation loop: tokens, targets, RNG seed, and whether logits are kept."""

    inputs: torch.Tensor
    targets: torch.Tensor
    seed: int
    keep_logits: bool = False


@dataclass(frozen=True, slots=True)
class EvalOutput:
    """What :func:`forward_batches` returns for one batch."""

    loss: float  # mean cross-entropy over the batch's tokens
    logits: torch.Tensor | None  # plain (B, L, V) logits, where the batch kept them


def forward_batches(
    model: LanguageModel, batches: Sequence[EvalBatch], device: torch.device, *, train: bool
) -> list[EvalOutput]:
    """Each batch through ``model``: the one forward path of the validation loss and leak guard.

    Eval mode under ``no_grad``, or train mode with gradients enabled (the leak guard's second
    pass); ``torch.manual_seed(batch.seed)`` before each forward. The loss and the kept logits
    both come from the logits as a plain tensor (:func:`leak_guard.plain`), so neither a tensor
    subclass nor the call stack tells the guard's forwards from the validation's.
    """
    results: list[EvalOutput] = []
    model.train(train)
    try:
        with torch.set_grad_enabled(train):
            for batch in batches:
                torch.manual_seed(batch.seed)
                with autocast(device):
                    output, _ = model(batch.inputs.to(device))
                logits = leak_guard.plain(output)
                del output
                loss = float(leak_guard.mean_loss(logits, batch.targets.to(device)))
                results.append(EvalOutput(loss, logits if batch.keep_logits else None))
    finally:
        model.train()
    return results


def _pair_leak(
    batches: Sequence[EvalBatch],
    outputs: Sequence[EvalOutput],
    pair: Sequence[EvalBatch],
    cuts: tuple[int, ...],
    mode: str,
) -> leak_guard.Leak | None:
    """Compare the kept logits of the probe's (reference, perturbed) pair among ``outputs``."""
    kept = {id(batch): output.logits for batch, output in zip(batches, outputs, strict=True)}
    reference, perturbed = kept[id(pair[0])], kept[id(pair[1])]
    if reference is None or perturbed is None:
        raise RuntimeError("the leak guard's batches lost their logits")
    return leak_guard.first_leak(reference, perturbed, cuts, mode)


def validate(
    model: LanguageModel,
    sampler: WindowSampler,
    windows: int,
    micro: int,
    device: torch.device,
    *,
    guard: bool = True,
) -> tuple[float, leak_guard.Leak | None]:
    """Mean loss over the first ``windows`` validation windows, and the leak guard's finding.

    With ``guard``, a probe (:mod:`genesys_trainer.leak_guard`) rides in the same loop: its
    reference and perturbed batches (random validation windows at the full context length, in
    the validation batches' shape) go in at random places among the validation batches, in eval
    mode; when those agree, the pair runs again in train mode with gradients (in random order).
    Buffers a train-mode forward may change are restored, and so is the RNG. The finding is
    None when the model is causal on the probe.
    """
    count = min(windows, sampler.windows)
    rng = random.Random(leak_guard.guard_seed())
    batches: list[EvalBatch] = []
    for start in range(0, count, micro):
        inputs, targets = sampler.batch(list(range(start, min(count, start + micro))))
        batches.append(EvalBatch(inputs, targets, rng.getrandbits(63)))
    validation = list(batches)
    pair: list[EvalBatch] = []
    cuts: tuple[int, ...] = ()
    if guard:
        probe = leak_guard.plan_probe(
            rng.getrandbits(64), sampler.windows, min(micro, count), sampler.block_size
        )
        cuts = probe.cuts
        inputs, targets = sampler.batch(list(probe.samples))
        perturbed = leak_guard.perturb(inputs, cuts, model.config.vocab_size, probe.token_seed)
        pair = [
            EvalBatch(inputs, targets, probe.forward_seed, keep_logits=True),
            EvalBatch(perturbed, targets, probe.forward_seed, keep_logits=True),
        ]
        for batch in pair:
            batches.insert(rng.randrange(len(batches) + 1), batch)
    leak: leak_guard.Leak | None = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        outputs = forward_batches(model, batches, device, train=False)
        losses = {id(batch): output.loss for batch, output in zip(batches, outputs, strict=True)}
        total = sum(losses[id(batch)] * batch.inputs.shape[0] for batch in validation)
        if pair:
            leak = _pair_leak(batches, outputs, pair, cuts, "eval")
            del outputs
            if leak is None:
                order = rng.sample(pair, 2)
                saved = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
                try:
                    outputs = forward_batches(model, order, device, train=True)
                finally:
                    with torch.no_grad():
                        for name, value in saved.items():
                            model.get_buffer(name).copy_(value)
                leak = _pair_leak(order, outputs, pair, cuts, "train")
    return total / count, leak


def validation_loss(
    model: LanguageModel, sampler: WindowSampler, windows: int, micro: int, device: torch.device
) -> float:
    """Mean loss over the first ``windows`` validation windows (a fixed set), without the guard."""
    return validate(model, sampler, windows, micro, device, guard=False)[0]


# ---------------------------------------------------------------------------------- the run


class Run:
    """One training run: set-up, loop, checkpoints, guards and the result."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.rank, self.world, self.local_rank = distributed()
        self.device = pick_device(cfg.device, self.local_rank)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.store = open_store(cfg.out)
        self.data_dir, self.meta = open_data(cfg.data)
        self.vocab = int(self.meta["vocab_size"])
        if cfg.config_digest is None and self.vocab != cfg.rung.vocab_size:  # by hand: the data's
            cfg.rung = cfg.rung.model_copy(
                update={
                    "vocab_size": self.vocab,
                    "reference_params": reference_params(
                        cfg.rung.n_embd, cfg.rung.n_layer, self.vocab
                    ),
                }
            )
        if self.vocab != cfg.rung.vocab_size:
            raise ValueError(
                f"the data at {cfg.data} has a vocabulary of {self.vocab}, the run config "
                f"{cfg.rung.vocab_size} (spec.verification.data.vocabSize)"
            )
        self.block_size = cfg.rung.context_length
        self.tree = resolve_design(cfg.design)
        self.design = compose(self.tree)
        self.plan = plan_run(self.design, cfg, self.vocab, self.world)
        torch.manual_seed(cfg.seed)
        self.model = LanguageModel(self.design, self.plan.config).to(self.device)
        self.train_model: nn.Module = self.model
        if cfg.compile:
            self.train_model = torch.compile(self.model)  # type: ignore[assignment]
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.train_model, device_ids=ids)
        self.peak_lr = cfg.rung.lr
        self.optimizer = build_optimizer(
            self.model, self.peak_lr, cfg.training.weight_decay, self.device
        )
        self.train_sampler = WindowSampler(
            load_split(self.data_dir, self.meta, "train"), self.block_size, cfg.seed
        )
        self.val_sampler = WindowSampler(
            load_split(self.data_dir, self.meta, "val"), self.block_size, cfg.seed
        )
        self.step = 0
        self.elapsed = 0.0  # training seconds, summed across resumes
        self.resumed_from: int | None = None
        self.stop_requested = False  # set by SIGTERM; obeyed after the step under way
        self.losses: list[float] = []
        self.log_lines: list[str] = []

    # -- logging and checkpoints (rank 0 writes)

    def log(self, line: str, record: dict[str, Any] | None = None) -> None:
        """Progress to stdout and, as JSON, to log.jsonl in the store."""
        if self.rank != 0:
            return
        print(line, flush=True)
        if record is not None:
            self.log_lines.append(json.dumps(record))
            trace.get_current_span().add_event("progress", record)

    def save_checkpoint(self) -> None:
        """Atomically write checkpoint.pt (and the log so far)."""
        if self.rank == 0:
            save_torch(
                self.store,
                "checkpoint.pt",
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "step": self.step,
                    "elapsed": self.elapsed,
                    "rng": rng_state(),
                    "losses": self.losses,
                    "plan": {"steps": self.plan.steps, "tokens": self.plan.tokens},
                    "config": self.cfg.to_json(),
                },
            )
            self.store.put_text("log.jsonl", "\n".join(self.log_lines) + "\n")
        if self.world > 1:
            torch.distributed.barrier()

    def try_resume(self) -> None:
        """Load checkpoint.pt from the output when a previous run left one."""
        if not self.store.exists("checkpoint.pt"):
            return
        state = load_torch(self.store, "checkpoint.pt")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed, self.losses = state["step"], state["elapsed"], state["losses"]
        set_rng_state(state["rng"])
        self.resumed_from = self.step
        if self.store.exists("log.jsonl"):
            self.log_lines = [x for x in self.store.get_text("log.jsonl").splitlines() if x]
        self.log(f"resuming from step {self.step}/{self.plan.steps} ({self.store.uri})")

    # -- preemption

    def request_stop(self, *_: object) -> None:
        """The SIGTERM handler: stop after the step under way (the loop checks the flag)."""
        self.stop_requested = True

    def stop_wanted(self) -> bool:
        """True when any rank was asked to stop, so that every rank stops at the same step."""
        if self.world == 1:
            return self.stop_requested
        flag = torch.tensor([1.0 if self.stop_requested else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def stop_for_preemption(self) -> None:
        """Save the checkpoint, record the preemption, and raise :class:`Preempted`."""
        self.save_checkpoint()
        if self.rank == 0:
            record = {"step": self.step, "at": datetime.now(UTC).isoformat()}
            earlier = (
                self.store.get_text("preemptions.jsonl")
                if self.store.exists("preemptions.jsonl")
                else ""
            )
            self.store.put_text("preemptions.jsonl", earlier + json.dumps(record) + "\n")
        self.log(f"stopped at step {self.step}/{self.plan.steps} on SIGTERM; checkpoint saved")
        raise Preempted(f"stopped at step {self.step} on SIGTERM")

    # -- the loop

    def check_guards(self, loss: float, grad_norm: float, reference_seconds: float | None) -> None:
        """Raise GuardStop with the reason when a guard trips."""
        guards = self.cfg.training
        if not math.isfinite(loss) or loss > guards.max_loss or loss <= 0:
            raise GuardStop(f"loss {loss:.4g} outside (0, {guards.max_loss:g}] at step {self.step}")
        if not math.isfinite(grad_norm) or grad_norm > guards.max_grad_norm:
            raise GuardStop(
                f"gradient norm {grad_norm:.4g} above {guards.max_grad_norm:g} at step {self.step}"
            )
        if reference_seconds is not None and self.step >= max(5, self.plan.steps // 10):
            expected = reference_seconds * self.step / self.plan.steps
            if self.elapsed > self.cfg.rung.slowdown_tolerance * expected:
                raise GuardStop(
                    f"too slow: {self.elapsed:.0f}s for {self.step} steps, above "
                    f"{self.cfg.rung.slowdown_tolerance}x the GPT-2 seed's "
                    f"{expected:.0f}s"
                )

    def micro_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        """(inputs, targets, is_last) for this step and rank."""
        samples = self.train_sampler.samples(
            self.step, self.plan.sequences_per_step, self.rank, self.world
        )
        micro = self.plan.micro_batch
        chunks = [samples[i : i + micro] for i in range(0, len(samples), micro)]
        for index, chunk in enumerate(chunks):
            inputs, targets = self.train_sampler.batch(chunk)
            yield inputs.to(self.device), targets.to(self.device), index == len(chunks) - 1

    def train_step(self) -> tuple[float, float]:
        """One optimiser step; (mean loss, gradient norm)."""
        lr = learning_rate(
            self.step,
            self.plan.steps,
            self.peak_lr,
            self.cfg.training.warmup_fraction,
            self.cfg.training.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total, count = torch.zeros((), device=self.device), 0
        per_rank = self.plan.sequences_per_step // self.world
        for inputs, targets, last in self.micro_batches():
            sync = last or not isinstance(self.train_model, nn.parallel.DistributedDataParallel)
            context: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            if not sync:
                assert isinstance(self.train_model, nn.parallel.DistributedDataParallel)
                context = self.train_model.no_sync()
            with context, autocast(self.device):
                _, loss = self.train_model(inputs, targets)
                assert loss is not None
                (loss * inputs.shape[0] / per_rank).backward()
            total += loss.detach() * inputs.shape[0]
            count += inputs.shape[0]
        clip = self.cfg.training.grad_clip if self.cfg.training.grad_clip > 0 else float("inf")
        grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = total / count
        if self.world > 1:
            torch.distributed.all_reduce(mean)
            mean /= self.world
        return float(mean), grad_norm

    def run(self) -> VerificationResult:
        """Train to the planned step count (resuming if possible); the result."""
        cfg, plan = self.cfg, self.plan
        self.try_resume()
        self.log(
            f"{self.tree.name} at {cfg.rung}: n_embd={plan.fit.n_embd} n_layer={plan.fit.n_layer} "
            f"{plan.params:,} params ({plan.fit.rel_error:+.1%} of reference); {plan.tokens:,} "
            f"tokens in {plan.steps} steps of {plan.sequences_per_step} x "
            f"{self.block_size} (micro {plan.micro_batch}, accumulation "
            f"{plan.accumulation}, world {self.world}) on {self.device}"
        )
        reference_seconds = None
        if cfg.slowdown_guard and self.tree.name != "gpt2":
            tps = cfg.reference_tokens_per_second or reference_throughput(
                cfg, self.vocab, self.train_sampler, self.device, plan.micro_batch
            )
            reference_seconds = plan.tokens / self.world / tps
        log_every = cfg.log_every or max(1, plan.steps // 20)
        last_save = time.monotonic()
        mark_step, mark_elapsed = self.step, self.elapsed  # throughput since the last log line
        status, reason = "succeeded", ""
        tokens_per_step = plan.sequences_per_step * self.block_size
        with telemetry.span("genesys.train.loop", {"genesys.train.planned_steps": plan.steps}):
            try:
                while self.step < plan.steps:
                    start = time.perf_counter()
                    loss, grad_norm = self.train_step()
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    self.elapsed += time.perf_counter() - start
                    self.step += 1
                    self.losses.append(loss)
                    self.check_guards(loss, grad_norm, reference_seconds)
                    if self.step % log_every == 0 or self.step == plan.steps:
                        speed = (
                            (self.step - mark_step)
                            * tokens_per_step
                            / max(self.elapsed - mark_elapsed, 1e-9)
                        )
                        mark_step, mark_elapsed = self.step, self.elapsed
                        eta = (plan.steps - self.step) * tokens_per_step / max(speed, 1e-9)
                        self.log(
                            f"step {self.step}/{plan.steps} | loss {loss:.4f} "
                            f"| grad {grad_norm:.3f} | {speed:,.0f} tok/s "
                            f"| ETA {format_duration(eta)}",
                            {
                                "step": self.step,
                                "loss": loss,
                                "grad_norm": grad_norm,
                                "tokens_per_second": speed,
                            },
                        )
                    due_steps = (
                        cfg.checkpoint_every_steps and self.step % cfg.checkpoint_every_steps == 0
                    )
                    due_time = (
                        time.monotonic() - last_save > 60 * cfg.training.checkpoint_every_minutes
                    )
                    if self.step < plan.steps and self.stop_wanted():
                        self.stop_for_preemption()
                    if (due_steps or due_time) and self.step < plan.steps:
                        self.save_checkpoint()
                        last_save = time.monotonic()
            except GuardStop as stop:
                status, reason = "failed", str(stop)
                self.log(f"stopped: {reason}")
        return self.finish(status, reason)

    def finish(self, status: str, reason: str) -> VerificationResult:
        """Validation loss, evaluation, weights and result.json (rank 0)."""
        cfg, plan = self.cfg, self.plan
        tokens = self.step * plan.sequences_per_step * self.block_size
        result = VerificationResult(
            design=self.tree.name,
            rung=cfg.rung.name,
            status="succeeded" if status == "succeeded" else "failed",
            reason=reason,
            shape=ModelShapeRecord(
                n_embd=plan.fit.n_embd,
                n_layer=plan.fit.n_layer,
                n_head=plan.fit.n_head,
                block_size=self.block_size,
            ),
            params=plan.params,
            reference_params=plan.fit.reference,
            tokens=tokens,
            planned_tokens=plan.tokens,
            steps=self.step,
            planned_steps=plan.steps,
            world_size=self.world,
            device=str(self.device.type),
            train_loss=self.losses[-1] if self.losses else None,
            tokens_per_second=tokens / self.elapsed if self.elapsed > 0 else None,
            device_seconds=self.elapsed * self.world,
            resumed_from=self.resumed_from,
            unigram_entropy=self.meta.get("unigram_entropy"),
            config_digest=cfg.config_digest,
            finished=datetime.now(UTC).isoformat(),
        )
        if self.rank == 0:
            if status == "succeeded":
                with telemetry.span("genesys.train.validate"):
                    result.val_loss, leak = validate(
                        self.model, self.val_sampler, cfg.val_windows, plan.micro_batch, self.device
                    )
                self.log(
                    f"validation loss {result.val_loss:.4f} (unigram entropy "
                    f"{result.unigram_entropy or float('nan'):.4f})"
                )
                if leak is not None:  # it saw the future: a failed, quarantined verification
                    status = "failed"
                    result.status, result.reason = "failed", leak.describe()
                    result.quarantine = result.reason
                    self.log(f"quarantined: {result.reason}")
                elif cfg.evaluate:
                    result.eval = self.evaluate()
            save_torch(self.store, "model.pt", self.model.state_dict())
            self.store.put_text(
                "config.json",
                json.dumps(
                    {
                        "model": asdict(plan.config),
                        "train": cfg.to_json(),
                        "design": self.tree.to_json(),
                    },
                    indent=2,
                    default=str,
                ),
            )
            self.store.put_text("log.jsonl", "\n".join(self.log_lines) + "\n")
            if record_result(self.store, result):
                self.log(f"{status}: wrote result.json to {self.store.uri}")
            else:
                self.log(f"{status}: another attempt recorded a final result first; kept it")
        if self.world > 1:
            torch.distributed.barrier()
        return result

    def evaluate(self) -> dict[str, dict[str, float]]:
        """lm-eval metrics of the trained model on the configured tasks."""
        from genesys_trainer.evaluate import evaluate

        tokenizer = load_tokenizer(self.meta["tokenizer"], self.data_dir)
        tasks = {"genesys.eval.tasks": list(self.cfg.eval_tasks or [])}
        with telemetry.span("genesys.train.eval", tasks):
            metrics: dict[str, dict[str, float]] = evaluate(
                self.model,
                tokenizer,
                data_dir=self.data_dir,
                tasks=self.cfg.eval_tasks,
                limit=self.cfg.eval_limit,
                device=self.device,
            )
        for task, values in sorted(metrics.items()):
            shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
            self.log(f"eval {task}: {shown}")
        return metrics


RESULT_KEY = "result.json"


def record_result(store: Store, result: VerificationResult) -> bool:
    """Write result.json; a final result never replaces another final one (False then).

    The write is a conditional create, so of two attempts racing, one wins. An ``error`` result
    (a crash) yields to a final one, and is itself written only where no result exists.
    """
    if create_document(store, RESULT_KEY, result):
        return True
    if result.status == "error":
        return False
    try:
        existing = read_document(store, RESULT_KEY, VerificationResult)
    except ValueError:  # unreadable: not a result at all
        existing = None
    if existing is not None and existing.status != "error":
        return False
    store.put_text(RESULT_KEY, dump_document(result))
    return True


HAND_ONLY = ("tokens", "lr", "seed", "eval_tasks", "eval_limit")
"""Options for runs by hand: with --config, the run config fixes these."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genesys train", description=__doc__.splitlines()[0])
    parser.add_argument("--design", required=True, help="seed name, design.json/.py path or URI")
    parser.add_argument(
        "--rung",
        required=True,
        help=f"with --config: a rung of the run; else a preset ({', '.join(SCALE_PRESETS)})",
    )
    parser.add_argument("--config", default=None, help="run config URI (a run's training Jobs)")
    parser.add_argument("--data", default=None, help="prepared data (default: the config's)")
    parser.add_argument("--out", required=True, help="output: a path or store URI")
    parser.add_argument("--tokens", type=int, default=None, help="training tokens (by hand)")
    parser.add_argument("--lr", type=float, default=None, help="peak lr (by hand)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (by hand)")
    parser.add_argument("--micro-batch", type=int, default=None, help="sequences per forward")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--checkpoint-every-steps", type=int, default=None)
    parser.add_argument("--log-every", type=int, default=None)
    parser.add_argument("--no-slowdown-guard", action="store_true")
    parser.add_argument("--reference-tokens-per-second", type=float, default=None)
    parser.add_argument("--no-eval", action="store_true", help="skip lm-eval at the end")
    parser.add_argument("--eval-tasks", default=None, help="comma-separated (by hand)")
    parser.add_argument("--eval-limit", type=int, default=None, help="items per task (by hand)")
    return parser


def parse_args(argv: Sequence[str] | None) -> TrainConfig:
    """Command-line arguments as a TrainConfig (from the run config when one is given)."""
    parser = _parser()
    args = parser.parse_args(argv)
    common = {
        "design": args.design,
        "out": args.out,
        "micro_batch": args.micro_batch,
        "device": args.device,
        "compile": args.compile,
        "checkpoint_every_steps": args.checkpoint_every_steps,
        "log_every": args.log_every,
        "slowdown_guard": not args.no_slowdown_guard,
        "reference_tokens_per_second": args.reference_tokens_per_second,
        "evaluate": not args.no_eval,
    }
    if args.config is not None:
        given = [f"--{name.replace('_', '-')}" for name in HAND_ONLY if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)}: the run config fixes these; drop them")
        from genesys.api.runconfig import config_digest

        try:
            config = read_run_config(args.config)
        except (ValueError, OSError) as exc:
            parser.error(f"--config: {exc}")
        try:
            rung = config.rung(args.rung)
        except KeyError as exc:
            parser.error(str(exc.args[0]))
        return TrainConfig(
            **common,
            data=args.data or config.data.uri,
            rung=rung,
            training=config.training,
            seed=config.seed,
            eval_tasks=list(config.eval.tasks),
            eval_limit=config.eval.limit,
            config_digest=config_digest(config),
        )
    if args.data is None:
        parser.error("--data is required without --config")
    try:
        rung = preset_rung(args.rung)
    except ValueError as exc:
        parser.error(str(exc))
    rung = rung.model_copy(update={"tokens": args.tokens or rung.tokens, "lr": args.lr or rung.lr})
    return TrainConfig(
        **common,
        data=args.data,
        rung=rung,
        seed=args.seed or 0,
        eval_tasks=args.eval_tasks.split(",") if args.eval_tasks else None,
        eval_limit=args.eval_limit,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Train; exit 0 when a result was recorded (even a guard stop), 1 on a crash.

    After SIGTERM the exit status is :data:`EXIT_PREEMPTED`, with the checkpoint saved.
    """
    cfg = parse_args(argv)
    attributes = {"genesys.design": cfg.design, "genesys.rung": cfg.rung.name}
    with training_trace(cfg.out, attributes) as span:
        return _train(cfg, span)


def _train(cfg: TrainConfig, span: trace.Span) -> int:
    """:func:`main`'s training, inside the job's span."""
    with telemetry.span("genesys.train.data"):
        run = Run(cfg)
    signal.signal(signal.SIGTERM, run.request_stop)
    try:
        result = run.run()
    except Preempted:
        span.set_attribute("genesys.train.status", "preempted")
        return EXIT_PREEMPTED
    except Exception as exc:
        if run.rank == 0:  # record the crash, then fail the process so it is retried
            crash = VerificationResult(
                design=run.tree.name,
                rung=cfg.rung.name,
                status="error",
                reason=f"{type(exc).__name__}: {exc}"[:2000],
                steps=run.step,
                config_digest=cfg.config_digest,
            )
            record_result(run.store, crash)
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    span.set_attributes(result_attributes(result))
    return 0 if result.status in ("succeeded", "failed") else 1


def result_attributes(result: VerificationResult) -> dict[str, Any]:
    """The figures of a result worth seeing on the job's span."""
    figures = {
        "genesys.train.status": result.status,
        "genesys.train.steps": result.steps,
        "genesys.train.tokens": result.tokens,
        "genesys.train.tokens_per_second": result.tokens_per_second,
        "genesys.train.loss": result.train_loss,
        "genesys.train.val_loss": result.val_loss,
        "genesys.train.params": result.params,
        "genesys.train.device": result.device,
    }
    return {name: value for name, value in figures.items() if value is not None}


if __name__ == "__main__":
    sys.exit(main())
