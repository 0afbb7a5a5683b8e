"""Dynamic checks of a composed design at a rung (Genesys, "Checkers, on every candidate block").

Order, stopping at the first failure (each check presumes the previous ones):
``compose`` -> ``param_fit`` -> ``forward`` -> ``unit_tests`` -> ``differentiability`` ->
``complexity`` -> ``effectiveness`` (the design's own unit tests right after the block runs, so a
unit that breaks its author's intent is named before the generic checks; complexity before
effectiveness: a super-quadratic block would otherwise fail the effectiveness budgets without
saying why). Batch independence and causality are not decided here: the sandbox worker only
computes probe outputs (``probe``, right after ``param_fit``) and the parent compares two
isolated sandboxes' outputs (:mod:`genesys.sandbox.probes`), out of the design's reach.

What must stay true:
- This module executes design code: it runs only inside the sandbox child (or on trusted seeds).
- :func:`find_leak` (vectorised negation causality) serves benchmarks on trusted seeds only;
  it runs next to the code it checks, so it is no verdict on untrusted designs.
- Every error names what is wrong, where (unit and line, taken from the traceback when the
  design raised), and how to fix it.
- ``unit_tests`` records one PASS ("no unit tests" when the design carries none), or one FAIL per
  failing test (``<unit>.<test> failed: ...``, at the test source's line); every test runs, in
  definition order, on a fresh eval-mode model per unit, with grad enabled.
"""

from __future__ import annotations

import errno
import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from genesys.api.discoveryrun import Checks
from genesys.api.ladder import RungConfig
from genesys.sandbox.report import Finding, Report, Status
from genesys_trainer.checks.measure import UsedParameters, step_flops, step_memory_bytes
from genesys_trainer.checks.unit_tests import (
    UnitTest,
    failing_line,
    find_unit,
    load_unit_tests,
    source_line,
    tests_filename,
    unit_tests_of,
)
from genesys_trainer.compose import ComposedDesign, compose
from genesys_trainer.fit import FitResult, fit_design
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import DesignError, UnitTree
from genesys_trainer.units import Unit, UnitError


class CheckFailedError(Exception):
    """A check failed; the finding says why."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        super().__init__(finding.message)


class CheckSettings(Checks):
    """What the checks run with: the run's ``spec.checks`` plus the checks' fixed internals.

    The user-facing fields and their defaults (the paper's) are those of the API's
    :class:`~genesys.api.discoveryrun.Checks`, defined once there; the fields below are sizes
    the checks need that a run does not set. An unknown key is an error, never dropped.
    """

    causality_group: int = Field(default=32, ge=1, description="Cut positions per batched pair.")
    effectiveness_batch_size: int = Field(default=8, ge=1, description="Effectiveness batch.")
    effectiveness_length: int = Field(default=256, ge=2, description="Effectiveness length.")
    complexity_lengths: tuple[int, ...] = Field(
        default=(64, 128, 256, 512), description="Sequence lengths of the complexity probe."
    )
    complexity_error_exponent: float = Field(default=2.5, description="Error above this growth.")
    complexity_warning_exponent: float = Field(default=1.5, description="Warning above it.")
    seed: int = Field(default=0, description="Seed of every random tensor of the checks.")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CheckSettings:
        """Settings from a request's JSON (snake_case or camelCase keys); unknown keys raise."""
        return cls.model_validate(dict(document))


@dataclass(slots=True)
class Context:
    """State shared by the checks of one run."""

    tree: UnitTree
    rung: RungConfig
    settings: CheckSettings
    report: Report
    reference: UnitTree | None = None  # the GPT-2 seed (loaded before any sandbox guard)
    design: ComposedDesign | None = None
    fit: FitResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def model(self, seed: int | None = None) -> LanguageModel:
        """A fresh model of the design at its fitted shape."""
        assert self.design is not None
        assert self.fit is not None
        torch.manual_seed(self.settings.seed if seed is None else seed)
        return LanguageModel(self.design, config_for(self.fit, self.rung))


def config_for(fit: FitResult, rung: RungConfig) -> ModelConfig:
    """The model config of a fitted shape at a rung."""
    return ModelConfig(
        vocab_size=rung.vocab_size,
        n_embd=fit.n_embd,
        n_layer=fit.n_layer,
        n_head=fit.n_head,
        block_size=rung.context_length,
    )


def design_location(exc: BaseException, design: str) -> tuple[str | None, int | None]:
    """(unit, line) of the innermost traceback frame inside design code, if any."""
    if isinstance(exc, UnitError):
        return exc.unit, None
    if isinstance(exc, DesignError):
        return exc.unit, None
    unit, line = None, None
    for frame in traceback.extract_tb(exc.__traceback__):
        prefix = f"<design {design} unit "
        if frame.filename.startswith(prefix):
            unit, line = frame.filename[len(prefix) : -1], frame.lineno
    return unit, line


def failure(name: str, exc: BaseException, design: str, hint: str) -> Finding:
    """A failing finding from an exception raised by design code."""
    unit, line = design_location(exc, design)
    message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, PermissionError) and str(exc).startswith("sandbox:"):
        return Finding(
            "sandbox",
            Status.FAIL,
            str(exc),
            unit=unit,
            line=line,
            hint="design code may not use files, processes or the network",
        )
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return Finding(
            "sandbox",
            Status.FAIL,
            "exceeded the file-size limit (too much output)",
            unit=unit,
            line=line,
            hint="do not print or write from design code",
        )
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        return Finding(
            "sandbox",
            Status.FAIL,
            f"exceeded the memory limit ({message[:200]})",
            unit=unit,
            line=line,
            hint="reduce memory use; the sandbox caps it",
        )
    return Finding(name, Status.FAIL, message[:2000], unit=unit, line=line, hint=hint)


@contextmanager
def design_errors(ctx: Context, name: str, hint: str) -> Iterator[None]:
    """Turn an exception raised by design code into a failing finding of check ``name``."""
    try:
        yield
    except CheckFailedError:
        raise
    except Exception as exc:
        raise CheckFailedError(failure(name, exc, ctx.tree.name, hint)) from exc


def run_blocks(model: LanguageModel, x: Tensor) -> Tensor:
    """The block stack alone, Z threaded through, from embeddings x (B, L, D)."""
    z: dict[str, Any] = {}
    for block in model.blocks:
        x, z = block(x, **z)
    return x


# ------------------------------------------------------------------------------------- checks


def check_compose(ctx: Context) -> None:
    """Compile the units and bind children."""
    try:
        ctx.design = compose(ctx.tree)
    except DesignError as exc:
        raise CheckFailedError(
            Finding(
                "compose",
                Status.FAIL,
                str(exc),
                unit=exc.unit,
                hint="fix the unit so it loads and binds its children",
            )
        ) from exc
    ctx.report.add(Finding("compose", Status.PASS, f"{len(ctx.tree.units)} units composed"))


def check_param_fit(ctx: Context) -> None:
    """Fit depth and width to the rung's reference size."""
    assert ctx.design is not None
    with design_errors(ctx, "param_fit", "the block must build at the rung's width"):
        fit = fit_design(
            ctx.design,
            ctx.rung,
            rung=ctx.rung.name,
            vocab_size=ctx.rung.vocab_size,
            tolerance=ctx.settings.param_tolerance,
        )
    ctx.fit = fit
    ctx.info["fit"] = fit.to_json()
    shape = f"n_embd={fit.n_embd} n_layer={fit.n_layer}: {fit.params:,} params"
    if not fit.within:
        raise CheckFailedError(
            Finding(
                "param_fit",
                Status.FAIL,
                f"no depth and width fits the rung {ctx.rung.name}: best {shape}, "
                f"{fit.rel_error:+.0%} from the reference {fit.reference:,} "
                f"(allowed ±{fit.tolerance:.0%})",
                hint="make per-block parameters scale with d_model and avoid fixed-size tables",
            )
        )
    ctx.report.add(Finding("param_fit", Status.PASS, f"{shape} ({fit.rel_error:+.1%})"))


def check_forward(ctx: Context) -> None:
    """Random ids of (batch, length) give finite logits; every block keeps X's shape."""
    s = ctx.settings
    model = ctx.model().eval()
    length = min(s.forward_length, ctx.rung.context_length)
    idx = torch.randint(
        0,
        ctx.rung.vocab_size,
        (s.forward_batch_size, length),
        generator=torch.Generator().manual_seed(s.seed),
    )
    hint = "the block must map (B, L, D) to (B, L, D)"
    with design_errors(ctx, "forward", hint), torch.no_grad():
        x = model.wte(idx)
        z: dict[str, Any] = {}
        for index, block in enumerate(model.blocks):
            y, z = block(x, **z)
            if not torch.isfinite(y).all():
                raise CheckFailedError(
                    Finding(
                        "forward",
                        Status.FAIL,
                        f"block {index} output holds NaN or inf for finite input",
                        unit=ctx.tree.root,
                        hint="guard divisions, logs and exps; normalise",
                    )
                )
            x = y
    ctx.report.add(
        Finding("forward", Status.PASS, f"({s.forward_batch_size}, {length}) -> same shape, finite")
    )


UNIT_TEST_SHAPE = (2, 16)  # (batch, length) of the X every unit test receives


def raised_where(ctx: Context, exc: Exception) -> str:
    """`` (raised in unit U, line N)`` when a unit's source raised ``exc``, else empty."""
    origin, line = design_location(exc, ctx.tree.name)
    if origin is None:
        return ""
    return f" (raised in unit {origin}" + (f", line {line})" if line is not None else ")")


def unit_test_failure(ctx: Context, unit: str, test: str, exc: Exception, source: str) -> Finding:
    """The failing finding of one unit test: which test, why, at which line of its source."""
    line = failing_line(exc, tests_filename(ctx.tree.name, unit))
    sandboxed = failure("unit_tests", exc, ctx.tree.name, "")
    if sandboxed.name == "sandbox":  # the guard or a limit stopped it: say which test ran
        message = f"{unit}.{test}: {sandboxed.message}"
        if sandboxed.unit is not None:
            return replace(sandboxed, message=message)
        return replace(sandboxed, message=message, unit=unit, line=line)
    if isinstance(exc, AssertionError):
        text = source_line(source, line)
        detail = str(exc) or (f"assertion failed: {text}" if text else "assertion failed")
        message = f"{unit}.{test} failed: {detail}"
        hint = "fix the unit so that its test holds, or the test if it asserts the wrong thing"
    else:
        message = f"{unit}.{test} raised {type(exc).__name__}: {exc}{raised_where(ctx, exc)}"
        hint = "tests call the unit as Y, Z = unit(X) with X of shape (2, 16, d_model)"
    return Finding("unit_tests", Status.FAIL, message[:2000], unit=unit, line=line, hint=hint)


def run_unit_test(
    ctx: Context, instance: Unit, unit: str, test: tuple[str, UnitTest], source: str
) -> Finding | None:
    """Run one test on ``instance`` with a fresh seeded X; its failing finding, or None."""
    name, function = test
    batch, length = UNIT_TEST_SHAPE
    length = min(length, ctx.rung.context_length)
    generator = torch.Generator().manual_seed(ctx.settings.seed + 3)
    X = torch.randn(batch, length, instance.d_model, generator=generator)
    torch.manual_seed(ctx.settings.seed)
    instance.zero_grad(set_to_none=True)
    try:
        with torch.enable_grad():
            function(instance, X)
    except Exception as exc:
        return unit_test_failure(ctx, unit, name, exc, source)
    return None


def run_tests_of_unit(ctx: Context, unit: str, source: str) -> tuple[int, list[Finding]]:
    """(number of tests, failing findings) of one unit's tests, on a fresh model's instance."""
    instance = find_unit(ctx.model().eval().blocks, unit)
    if instance is None:
        return 0, [
            Finding(
                "unit_tests",
                Status.FAIL,
                f"{unit} has unit tests but is not used in the tree",
                unit=unit,
                hint="test only units that the block reaches from its root",
            )
        ]
    try:
        tests = load_unit_tests(ctx.tree.name, unit, source)
    except Exception as exc:
        return 0, [unit_test_failure(ctx, unit, "<module>", exc, source)]
    failures = [run_unit_test(ctx, instance, unit, test, source) for test in tests]
    return len(tests), [finding for finding in failures if finding is not None]


def check_unit_tests(ctx: Context) -> None:
    """The design's own unit tests (``metadata["unit_tests"]``) pass on the composed units."""
    sources = unit_tests_of(ctx.tree.metadata)
    if not sources:
        ctx.report.add(Finding("unit_tests", Status.PASS, "no unit tests"))
        return
    count = 0
    failures: list[Finding] = []
    for unit, source in sources.items():
        ran, failed = run_tests_of_unit(ctx, unit, source)
        count += ran
        failures.extend(failed)
    ctx.info["unit_tests"] = {"units": len(sources), "tests": count, "failed": len(failures)}
    if failures:
        for finding in failures[:-1]:
            ctx.report.add(finding)
        raise CheckFailedError(failures[-1])
    ctx.report.add(
        Finding("unit_tests", Status.PASS, f"{count} unit tests of {len(sources)} units passed")
    )


def find_leak(
    model: LanguageModel, x: Tensor, cuts: list[int], group: int, train: bool, seed: int
) -> tuple[int, int] | None:
    """(cut t, leaking position p <= t), or None, over every cut in ``cuts``.

    Cuts go in groups of ``group`` batched copies of x, each negated after its own t. The
    reference is one forward of ``group`` unchanged copies, shared by every group: each copy sits
    at the same batch rows as its reference, with the same batch shape, so equal inputs must give
    bit-identical outputs. The cost is one batched forward per group plus one, instead of one
    forward per cut.
    """
    B, L, _ = x.shape
    model.train(train)
    with torch.no_grad():
        torch.manual_seed(seed)
        reference = run_blocks(model, x.repeat(group, 1, 1))  # (G*B, L, D)
        positions = torch.arange(L, device=x.device)
        for start in range(0, len(cuts), group):
            chunk = cuts[start : start + group]
            chunk = chunk + [chunk[-1]] * (group - len(chunk))  # keep the batch shape
            perturbed = x.repeat(group, 1, 1)
            for j, t in enumerate(chunk):
                perturbed[j * B : (j + 1) * B, t + 1 :] *= -1
            torch.manual_seed(seed)
            output = run_blocks(model, perturbed)
            for j, t in enumerate(chunk):
                rows = slice(j * B, (j + 1) * B)
                differs = (output[rows] != reference[rows]).any(dim=-1).any(dim=0)  # (L,)
                leaking = positions[differs & (positions <= t)]
                if leaking.numel():
                    return t, int(leaking[0])
    return None


def check_differentiability(ctx: Context) -> None:
    """Every used parameter gets a finite gradient; unused parameters are warnings."""
    model = ctx.model().train()
    idx = torch.randint(
        0,
        ctx.rung.vocab_size,
        (2, min(64, ctx.rung.context_length) + 1),
        generator=torch.Generator().manual_seed(6),
    )
    names = {id(p): n for n, p in model.named_parameters()}
    tracker = UsedParameters(names)
    with design_errors(ctx, "differentiability", "the backward pass must run"):
        with tracker:
            _, loss = model(idx[:, :-1], idx[:, 1:])
        assert loss is not None
        loss.backward()
    parameters = dict(model.named_parameters())
    no_grad = [n for n in sorted(tracker.used) if parameters[n].grad is None]
    not_finite = [
        n for n, p in parameters.items() if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
    unused = [n for n in parameters if n not in tracker.used]
    if no_grad:
        raise CheckFailedError(
            Finding(
                "differentiability",
                Status.FAIL,
                f"used parameters get no gradient: {', '.join(no_grad[:5])}",
                unit=ctx.tree.root,
                hint="do not .detach(), use .data, torch.no_grad() or integer ops on the path to Y",
            )
        )
    if not_finite:
        raise CheckFailedError(
            Finding(
                "differentiability",
                Status.FAIL,
                f"non-finite gradients: {', '.join(not_finite[:5])}",
                hint="guard divisions, logs and exps",
            )
        )
    if unused:
        ctx.report.add(
            Finding(
                "differentiability",
                Status.WARN,
                f"unused parameters: {', '.join(unused[:5])}",
                hint="remove parameters the block never uses",
            )
        )
    else:
        ctx.report.add(
            Finding(
                "differentiability",
                Status.PASS,
                f"all {len(parameters)} parameters get finite gradients",
            )
        )


def training_batches(vocab: int, batch: int, length: int, steps: int, seed: int) -> list[Tensor]:
    """Learnable token streams: a sparse random Markov chain (each token has 4 successors)."""
    generator = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, vocab, (vocab, 4), generator=generator)
    batches = []
    for _ in range(steps):
        tokens = torch.empty(batch, length + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab, (batch,), generator=generator)
        choices = torch.randint(0, 4, (batch, length), generator=generator)
        for position in range(length):
            tokens[:, position + 1] = successors[tokens[:, position], choices[:, position]]
        batches.append(tokens)
    return batches


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """What N training steps of one model measured."""

    losses: list[float]
    grad_norms: list[float]
    seconds_per_step: float
    memory_bytes: int
    flops_per_step: int


class StepTrainer:
    """Trains one model a step at a time, measuring loss, gradient norm and time per step."""

    def __init__(self, model: LanguageModel, lr: float, first: Tensor) -> None:
        self.model = model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        self.memory = step_memory_bytes(model, self.loss_on(first))
        self.flops = step_flops(model, self.loss_on(first))
        self.losses: list[float] = []
        self.norms: list[float] = []
        self.times: list[float] = []

    def loss_on(self, batch: Tensor) -> Callable[[], Tensor]:
        """The loss of the model on a batch, as a thunk."""

        def loss_of() -> Tensor:
            _, loss = self.model(batch[:, :-1], batch[:, 1:])
            assert loss is not None
            return loss  # type: ignore[no-any-return]

        return loss_of

    def step(self, batch: Tensor) -> None:
        """One optimiser step."""
        start = time.perf_counter()
        loss = self.loss_on(batch)()
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf"))
        self.optimizer.step()
        self.times.append(time.perf_counter() - start)
        self.losses.append(loss.item())
        self.norms.append(norm.item())

    def result(self) -> TrainingRun:
        """What the steps measured (time: the median step after the first)."""
        steady = sorted(self.times[1:]) or self.times
        return TrainingRun(
            self.losses, self.norms, steady[len(steady) // 2], self.memory, self.flops
        )


def check_effectiveness(ctx: Context) -> None:
    """N steps against the GPT-2 seed at the same rung, on the same batches, in this run."""
    assert ctx.fit is not None
    s = ctx.settings
    length = min(s.effectiveness_length, ctx.rung.context_length)
    batches = training_batches(
        ctx.rung.vocab_size, s.effectiveness_batch_size, length, s.effectiveness_steps, s.seed + 7
    )
    reference_design = compose(ctx.reference or load_seed("gpt2"))
    reference_fit = fit_design(
        reference_design, ctx.rung, rung=ctx.rung.name, vocab_size=ctx.rung.vocab_size
    )
    torch.manual_seed(s.seed)
    reference_model = LanguageModel(reference_design, config_for(reference_fit, ctx.rung))
    lr = ctx.rung.lr
    reference_trainer = StepTrainer(reference_model, lr, batches[0])
    with design_errors(ctx, "effectiveness", "training must run"):
        trainer = StepTrainer(ctx.model(), lr, batches[0])
        # Steps alternate between the two models, so load from other processes on the machine
        # slows both alike and the time ratio stays meaningful.
        for batch in batches:
            reference_trainer.step(batch)
            trainer.step(batch)
    reference, run = reference_trainer.result(), trainer.result()
    ratios = {
        "time": run.seconds_per_step / reference.seconds_per_step,
        "memory": run.memory_bytes / reference.memory_bytes,
        "flops": run.flops_per_step / max(1, reference.flops_per_step),
        "loss": run.losses[-1] / reference.losses[-1],
    }
    ctx.info["effectiveness"] = {
        "losses": run.losses,
        "reference_losses": reference.losses,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "seconds_per_step": run.seconds_per_step,
        "memory_bytes": run.memory_bytes,
        "flops_per_step": run.flops_per_step,
    }
    errors = []
    if any(not math.isfinite(v) for v in run.losses):
        errors.append("loss is NaN or inf")
    elif run.losses[-1] >= run.losses[0]:
        errors.append(f"loss is not decreasing ({run.losses[0]:.3f} -> {run.losses[-1]:.3f})")
    if any(v > s.max_loss or v <= 0 for v in run.losses if math.isfinite(v)):
        errors.append(f"loss outside (0, {s.max_loss:g}]")
    if any(not math.isfinite(v) or v > s.max_grad_norm for v in run.grad_norms):
        errors.append(f"gradient norm above {s.max_grad_norm:g} (max {max(run.grad_norms):.3g})")
    for measure in ("time", "memory", "flops", "loss"):
        limit = getattr(s, f"{measure}_ratio_error")
        if ratios[measure] > limit:
            errors.append(f"{measure} {ratios[measure]:.2f}x the GPT-2 reference (limit {limit}x)")
    summary = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    if errors:
        raise CheckFailedError(
            Finding(
                "effectiveness",
                Status.FAIL,
                "; ".join(errors) + f" [{summary}]",
                unit=ctx.tree.root,
                hint="the block must learn: keep a differentiable path from X to Y, and stay "
                "within the reference's time, memory and FLOPs",
            )
        )
    warnings = [
        f"{m} {ratios[m]:.2f}x the reference"
        for m in ("time", "memory", "flops", "loss")
        if ratios[m] > getattr(s, f"{m}_ratio_warning")
    ]
    if warnings:
        ctx.report.add(
            Finding(
                "effectiveness",
                Status.WARN,
                "; ".join(warnings) + f" [{summary}]",
                hint="cheaper is better at equal quality",
            )
        )
    else:
        ctx.report.add(
            Finding(
                "effectiveness",
                Status.PASS,
                f"loss {run.losses[0]:.3f} -> {run.losses[-1]:.3f} [{summary}]",
            )
        )


def fitted_exponent(lengths: list[int], values: list[float]) -> tuple[float, float]:
    """(least-squares slope over all points, slope of the last two) in log-log space."""
    xs = [math.log(v) for v in lengths]
    ys = [math.log(max(v, 1e-12)) for v in values]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    tail = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return slope, tail


def check_complexity(ctx: Context) -> None:
    """FLOPs, memory and time of forward+backward at several lengths; the fitted exponents.

    The verdict rests on FLOPs (counted, so exact and immune to machine load) and memory (saved
    activations, also exact); wall time is reported, and only warns, because on a shared CPU it
    is too noisy to fail a design on.
    """
    s = ctx.settings
    model = ctx.model().train()
    lengths = [n for n in s.complexity_lengths if n <= ctx.rung.context_length]
    if len(lengths) < 3:
        lengths = [max(4, ctx.rung.context_length // 2**k) for k in (3, 2, 1, 0)]
    times, memories, flops = [], [], []
    with design_errors(ctx, "complexity", "the block failed"):
        for length in lengths:
            x = torch.randn(1, length, model.config.n_embd, requires_grad=True)

            def loss_of(x: Tensor = x) -> Tensor:
                return run_blocks(model, x).square().mean()

            memories.append(float(step_memory_bytes(model, loss_of)))
            flops.append(float(max(1, step_flops(model, loss_of))))
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                loss = loss_of()
                if loss.requires_grad:
                    loss.backward()
                best = min(best, time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
            times.append(best)
    exponents = {
        "flops": fitted_exponent(lengths, flops),
        "memory": fitted_exponent(lengths, memories),
        "time": fitted_exponent(lengths, times),
    }
    ctx.info["complexity"] = {
        "lengths": lengths,
        "seconds": times,
        "memory_bytes": memories,
        "flops": flops,
        **{f"{k}_exponent": round(v[0], 3) for k, v in exponents.items()},
        **{f"{k}_exponent_tail": round(v[1], 3) for k, v in exponents.items()},
    }
    exponent = max(exponents["flops"][1], exponents["memory"][1])
    text = ", ".join(f"{k} ~ L^{v[1]:.2f}" for k, v in exponents.items()) + f" over L={lengths}"
    if exponent > s.complexity_error_exponent:
        raise CheckFailedError(
            Finding(
                "complexity",
                Status.FAIL,
                f"{text}: above L^{s.complexity_error_exponent}",
                unit=ctx.tree.root,
                hint="avoid tensors with more than two sequence dimensions; chunk the computation",
            )
        )
    slow = max(exponent, exponents["time"][1]) > s.complexity_warning_exponent
    status = Status.WARN if slow else Status.PASS
    ctx.report.add(Finding("complexity", status, text + (": super-linear" if slow else "")))


CHECKS: list[tuple[str, Callable[[Context], None]]] = [
    ("compose", check_compose),
    ("param_fit", check_param_fit),
    ("forward", check_forward),
    ("unit_tests", check_unit_tests),
    ("differentiability", check_differentiability),
    ("complexity", check_complexity),
    ("effectiveness", check_effectiveness),
]


def run_dynamic_checks(
    tree: UnitTree,
    rung: RungConfig,
    settings: CheckSettings,
    report: Report,
    *,
    only: set[str] | None = None,
    reference: UnitTree | None = None,
    probe: Callable[[Context], None] | None = None,
) -> Report:
    """Run the checks in order into ``report``, stopping at the first failure.

    ``probe`` runs right after ``param_fit`` passes, before any other check touches the design
    (the sandbox worker computes the causality probes there); a block that fails on the probe
    inputs is a ``forward`` failure.
    """
    ctx = Context(tree, rung, settings, report, reference=reference)
    steps = [(name, check, name) for name, check in CHECKS]
    if probe is not None:
        steps.insert(2, ("forward", probe, "probes"))
    for name, check, timing in steps:
        wanted = only is None or name in only or name in {"compose", "param_fit"}
        if not wanted and check is not probe:
            continue
        start = time.perf_counter()
        try:
            check(ctx)
        except CheckFailedError as failed:
            report.add(failed.finding)
            break
        except Exception as exc:  # a bug surfaced by design code in an unexpected place
            report.add(failure(name, exc, tree.name, "the block must map (B, L, D) to (B, L, D)"))
            break
        finally:
            report.timings[timing] = time.perf_counter() - start
    report.info.update(ctx.info)
    return report


__all__ = [
    "CHECKS",
    "CheckSettings",
    "Context",
    "find_leak",
    "run_blocks",
    "run_dynamic_checks",
    "training_batches",
]
