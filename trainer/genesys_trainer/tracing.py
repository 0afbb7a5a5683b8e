"""The spans of a training job, kept in memory and written to its output prefix at the end.

A training process runs design code, so it gets no collector address and no credential: when
its parent handed it a trace context (``TRACEPARENT``), its spans are recorded in memory and
rank 0 writes them, as one OTLP JSON line, to ``spans.json`` under its output prefix (a
fixed key: the job's store grant covers no other; a pod that resumes a preempted one replaces
the spans of its predecessor). The parent that ingests the job's end relays them to its own
exporters (:mod:`genesys.backends.observability`), keeping only the design's own trace.

Spans: ``genesys.train`` (the job: design, rung, status, tokens/s, losses), with children
``genesys.train.data`` (data and model set-up), ``genesys.train.loop`` (the training steps,
with a ``progress`` event per log line: step, loss, gradient norm, tokens/s),
``genesys.train.validate`` and ``genesys.train.eval`` (lm-eval).

What must stay true: without ``TRACEPARENT`` nothing is recorded; writing the spans never
fails the training (a store error is printed and dropped).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genesys import telemetry
from genesys.store import Store, open_store
from genesys.telemetry.otlp_json import spans_to_json

SPANS_KEY = "spans.json"


def _start(environ: Mapping[str, str]) -> InMemorySpanExporter | None:
    """Record spans in memory when a parent handed on a trace context."""
    if telemetry.context_from_env(environ) is None:
        return None
    exporter = InMemorySpanExporter()
    quiet = {name: environ[name] for name in ("OTEL_SDK_DISABLED",) if name in environ}
    telemetry.configure(
        "genesys-trainer", span_processors=[SimpleSpanProcessor(exporter)], environ=quiet
    )
    return exporter if telemetry.current().tracing else None


def save_spans(store: Store, exporter: InMemorySpanExporter) -> str | None:
    """Write the finished spans to :data:`SPANS_KEY`; the key, or None when there were none."""
    spans = exporter.get_finished_spans()
    if not spans:
        return None
    store.put_text(SPANS_KEY, spans_to_json(spans) + "\n")
    return SPANS_KEY


@contextlib.contextmanager
def training_trace(
    out: str, attributes: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Iterator[trace.Span]:
    """The job's ``genesys.train`` span; its spans go to ``out`` at the end (rank 0)."""
    variables = os.environ if environ is None else environ
    exporter = _start(variables)
    try:
        with telemetry.span(
            "genesys.train", attributes, context=telemetry.context_from_env(variables)
        ) as span:
            yield span
    finally:
        if exporter is not None and variables.get("RANK", "0") == "0":
            try:
                save_spans(open_store(out), exporter)
            except Exception as exc:  # never fail a training on its spans
                print(f"warning: could not write the training spans: {exc}", file=sys.stderr)
        if exporter is not None:
            telemetry.reset()


__all__ = ["SPANS_KEY", "save_spans", "training_trace"]
