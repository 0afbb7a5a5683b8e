"""Noise floors: one design's figures over repeated trainings with different seeds.

``genesys noise`` (:mod:`genesys.backends.noise`) trains a design N times at one rung and stores
a :class:`NoiseFloor` in the run's store::

    noise/<rung>/<design>.json   {"design", "rung", "values": {metric: [one per repeat]},
                                  "failures": [...], "mean": {...}, "std": {...}}

Metrics are ``val_loss`` and ``<task>/<metric>`` (``genesys_mqar/acc``, ...). The standard
deviations are the noise floor: what retraining the same design changes. The fitness treats
differences inside it as ties (:mod:`genesys.evolution.ranking`), and the report shows it beside
every comparison.

What must stay true: a repeat that failed is listed in ``failures`` and never averaged in;
``mean`` and ``std`` are always those of ``values``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from genesys.store.documents import StoreDocument, VerificationResult

NOISE_PREFIX = "noise"
LOSS = "val_loss"
STDERR_SUFFIX = "_stderr"


def sample_std(values: Sequence[float]) -> float | None:
    """The sample standard deviation (None with fewer than two values)."""
    return statistics.stdev(values) if len(values) >= 2 else None


class NoiseFloor(StoreDocument):
    """``noise/<rung>/<design>.json``: every repeat's figures and their spread."""

    schema_version: Literal[1] = 1
    design: str
    rung: str
    values: dict[str, list[float]] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)
    mean: dict[str, float] = Field(default_factory=dict)
    std: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _summaries(self) -> NoiseFloor:
        self.mean = {m: statistics.fmean(v) for m, v in self.values.items() if v}
        self.std = {m: s for m, v in self.values.items() if (s := sample_std(v)) is not None}
        return self

    @property
    def repeats(self) -> int:
        """Repeats with a result."""
        return len(self.values.get(LOSS, []))


def result_figures(result: VerificationResult) -> dict[str, float]:
    """The figures a noise floor compares: validation loss and every task's scores.

    A score's standard error over the items (``acc_stderr``) describes one evaluation, not
    a figure that retraining moves, so it is left out.
    """
    figures: dict[str, float] = {}
    if result.val_loss is not None:
        figures[LOSS] = float(result.val_loss)
    for task, metrics in sorted(result.eval.items()):
        for metric, value in sorted(metrics.items()):
            if not metric.endswith(STDERR_SUFFIX):
                figures[f"{task}/{metric}"] = float(value)
    return figures


def collect(design: str, rung: str, results: Sequence[VerificationResult | str]) -> NoiseFloor:
    """A :class:`NoiseFloor` from the repeats' results (a string: why a repeat has none)."""
    values: dict[str, list[float]] = {}
    failures: list[str] = []
    for k, result in enumerate(results):
        if isinstance(result, str):
            failures.append(f"repeat {k}: {result}")
        elif result.status != "succeeded" or result.val_loss is None:
            failures.append(f"repeat {k}: {result.status}: {result.reason}")
        else:
            for metric, value in result_figures(result).items():
                values.setdefault(metric, []).append(value)
    return NoiseFloor(design=design, rung=rung, values=values, failures=failures)


def noise_key(rung: str, design: str) -> str:
    """Where a run keeps the noise floor of ``design`` at ``rung``."""
    return f"{NOISE_PREFIX}/{rung}/{design}.json"


def pooled_std(floors: Sequence[NoiseFloor], metric: str) -> float | None:
    """The pooled standard deviation of ``metric`` over several noise floors (None: unknown)."""
    parts = [
        (floor.std[metric] ** 2, len(floor.values[metric]) - 1)
        for floor in floors
        if metric in floor.std
    ]
    freedom = sum(degrees for _, degrees in parts)
    if freedom <= 0:
        return None
    return float((sum(variance * degrees for variance, degrees in parts) / freedom) ** 0.5)


def pooled_floor(floors: Sequence[NoiseFloor]) -> dict[str, float]:
    """Every metric's pooled standard deviation over ``floors``."""
    metrics = sorted({metric for floor in floors for metric in floor.std})
    pooled = {metric: pooled_std(floors, metric) for metric in metrics}
    return {metric: value for metric, value in pooled.items() if value is not None}


def render(floor: NoiseFloor) -> str:
    """The noise floor as a table: mean and standard deviation per metric, every value."""
    lines = [
        f"noise floor of {floor.design} at {floor.rung}: {floor.repeats} repeat(s)",
        f"{'metric':36s} {'mean':>8s} {'std':>8s}  values",
    ]
    for metric in sorted(floor.values, key=lambda m: (m != LOSS, m)):
        std = floor.std.get(metric)
        std_text = f"{std:8.4f}" if std is not None else f"{'-':>8s}"
        shown = " ".join(f"{v:.4f}" for v in floor.values[metric])
        lines.append(f"{metric:36s} {floor.mean.get(metric, 0.0):8.4f} {std_text}  {shown}")
    lines += [f"failed: {failure}" for failure in floor.failures]
    return "\n".join(lines)


__all__ = [
    "LOSS",
    "NOISE_PREFIX",
    "STDERR_SUFFIX",
    "NoiseFloor",
    "collect",
    "noise_key",
    "pooled_floor",
    "pooled_std",
    "render",
    "result_figures",
    "sample_std",
]
