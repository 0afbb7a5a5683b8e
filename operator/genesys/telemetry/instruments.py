"""The metrics of a discovery: their names, units, buckets and attributes, in one place.

GenAI client metrics follow OpenTelemetry's GenAI semantic conventions (names, units and the
advised bucket boundaries); the others are ``genesys.*``:

==================================  ===========  ==============================================
metric                              kind, unit   attributes
==================================  ===========  ==============================================
gen_ai.client.token.usage           histogram    gen_ai.operation.name, gen_ai.provider.name,
                                    {token}      gen_ai.request.model, gen_ai.token.type
                                                 (input | output), genesys.role
gen_ai.client.operation.duration    histogram s  the same without the token type, plus
                                                 error.type on a failed call
genesys.llm.cost                    counter USD  gen_ai.request.model, genesys.role
genesys.reconcile.duration          histogram s  genesys.run
genesys.jobs                        gauge {job}  genesys.run, genesys.job.kind (session |
                                                 training), genesys.job.state (running |
                                                 waiting)
genesys.jobs.ended                  counter      genesys.run, genesys.job.kind,
                                    {job}        genesys.job.outcome (succeeded | failed)
genesys.designs                     gauge        genesys.run, genesys.design.phase
                                    {design}
genesys.checks                      counter      genesys.check.name, genesys.check.verdict
                                    {check}      (pass | warn | fail)
genesys.training.throughput         histogram    genesys.rung
                                    {token}/s
genesys.training.gpu.time           counter s    genesys.rung (GPU-seconds of training Jobs)
==================================  ===========  ==============================================

The gauges read :class:`RunGauges`, which the reconciler sets after each observation.

What must stay true: instruments are created once per meter provider; a no-op meter (telemetry
off) makes every record a no-op.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
LLM_COST = "genesys.llm.cost"
RECONCILE_DURATION = "genesys.reconcile.duration"
JOBS = "genesys.jobs"
JOBS_ENDED = "genesys.jobs.ended"
DESIGNS = "genesys.designs"
CHECKS = "genesys.checks"
TRAINING_THROUGHPUT = "genesys.training.throughput"
TRAINING_GPU_TIME = "genesys.training.gpu.time"

# The GenAI conventions' advised boundaries.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
THROUGHPUT_BUCKETS = (100, 300, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7)


def views() -> list[View]:
    """Bucket boundaries of the histograms (the SDK's defaults suit none of them)."""
    buckets = {
        TOKEN_USAGE: TOKEN_BUCKETS,
        OPERATION_DURATION: DURATION_BUCKETS,
        RECONCILE_DURATION: RECONCILE_BUCKETS,
        TRAINING_THROUGHPUT: THROUGHPUT_BUCKETS,
    }
    return [
        View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=[float(b) for b in bounds]),
        )
        for name, bounds in buckets.items()
    ]


@dataclass
class RunGauges:
    """The latest job and design counts of each run, which the gauges report."""

    jobs: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    designs: dict[str, dict[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(
        self, run: str, *, jobs: Mapping[tuple[str, str], int], designs: Mapping[str, int]
    ) -> None:
        """The counts of ``run`` now: jobs by (kind, state), designs by phase."""
        with self.lock:
            self.jobs[run] = dict(jobs)
            self.designs[run] = dict(designs)

    def forget(self, run: str) -> None:
        """A deleted run reports nothing more."""
        with self.lock:
            self.jobs.pop(run, None)
            self.designs.pop(run, None)

    def observe_jobs(self, _: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            return [
                Observation(
                    count,
                    {"genesys.run": run, "genesys.job.kind": kind, "genesys.job.state": state},
                )
                for run, counts in self.jobs.items()
                for (kind, state), count in counts.items()
            ]

    def observe_designs(self, _: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            return [
                Observation(count, {"genesys.run": run, "genesys.design.phase": phase})
                for run, counts in self.designs.items()
                for phase, count in counts.items()
            ]


class Instruments:
    """Every instrument of the system, created on one meter."""

    def __init__(self, meter: Meter) -> None:
        self.gauges = RunGauges()
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Tokens used by LLM calls."
        )
        self.operation_duration = meter.create_histogram(
            OPERATION_DURATION, unit="s", description="Duration of LLM calls."
        )
        self.llm_cost = meter.create_counter(
            LLM_COST, unit="USD", description="LLM spend, priced by the run's price table."
        )
        self.reconcile_duration = meter.create_histogram(
            RECONCILE_DURATION, unit="s", description="Duration of one reconcile of a run."
        )
        self.jobs_ended = meter.create_counter(
            JOBS_ENDED, unit="{job}", description="Session and training jobs that ended."
        )
        self.checks = meter.create_counter(
            CHECKS, unit="{check}", description="Design checks run, by name and verdict."
        )
        self.training_throughput = meter.create_histogram(
            TRAINING_THROUGHPUT, unit="{token}/s", description="Training throughput per job."
        )
        self.training_gpu_time = meter.create_counter(
            TRAINING_GPU_TIME, unit="s", description="GPU-seconds held by training jobs."
        )
        meter.create_observable_gauge(
            JOBS,
            callbacks=[self.gauges.observe_jobs],
            unit="{job}",
            description="Jobs of each run now, by kind and state.",
        )
        meter.create_observable_gauge(
            DESIGNS,
            callbacks=[self.gauges.observe_designs],
            unit="{design}",
            description="Designs of each run now, by phase.",
        )


__all__ = [
    "CHECKS",
    "DESIGNS",
    "DURATION_BUCKETS",
    "JOBS",
    "JOBS_ENDED",
    "LLM_COST",
    "OPERATION_DURATION",
    "RECONCILE_DURATION",
    "TOKEN_BUCKETS",
    "TOKEN_USAGE",
    "TRAINING_GPU_TIME",
    "TRAINING_THROUGHPUT",
    "Instruments",
    "RunGauges",
    "views",
]
