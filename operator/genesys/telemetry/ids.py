"""Trace identity: one trace per design, and trace context across processes and pods.

Every design of a run has its own trace. Its trace id and the span id of its root span are
derived from the run's identity (namespace, name, uid) and the design id, so any process that
knows both (the operator after a restart, the local driver, the report) names the same trace
without storing it:

- :func:`design_trace_id` and :func:`design_root_span_id` are those ids;
- :func:`design_context` is a context whose parent is the design's root span, for spans made
  long after the root was ended (a verification started days later);
- :func:`start_root_span` starts the root span itself, with the derived ids
  (:class:`DerivedIds` is the id generator that lets it);
- :func:`child_env` puts a span's context into ``TRACEPARENT``/``TRACESTATE`` for a child
  process or pod; :func:`context_from_env` reads it back there.

What must stay true: the ids are a pure function of (run, design); ``TRACEPARENT`` is only
handed on when tracing is on, so a child of an untraced parent records nothing.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "TRACEPARENT"
TRACESTATE = "TRACESTATE"

_PROPAGATOR = TraceContextTextMapPropagator()
_derived: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "genesys_derived_ids", default=None
)


def run_key(namespace: str | None, name: str, uid: str | None) -> str:
    """The part of a run's identity the trace ids are derived from."""
    return f"{namespace or ''}/{name}/{uid or ''}"


def _digest(key: str, design_id: str) -> bytes:
    return hashlib.sha256(f"genesys-trace\0{key}\0{design_id}".encode()).digest()


def design_trace_id(key: str, design_id: str) -> int:
    """The trace id of a design (128 bits, never 0)."""
    return int.from_bytes(_digest(key, design_id)[:16], "big") or 1


def design_root_span_id(key: str, design_id: str) -> int:
    """The span id of a design's root span (64 bits, never 0)."""
    return int.from_bytes(_digest(key, design_id)[16:24], "big") or 1


def trace_id_hex(trace_id: int) -> str:
    """A trace id as the 32 hex digits trace viewers search for."""
    return f"{trace_id:032x}"


def design_context(key: str, design_id: str) -> Context:
    """A context whose (remote) parent is the design's root span."""
    parent = trace.SpanContext(
        design_trace_id(key, design_id),
        design_root_span_id(key, design_id),
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class DerivedIds(RandomIdGenerator):
    """Random ids, except for the root span :func:`start_root_span` starts."""

    def generate_trace_id(self) -> int:
        derived = _derived.get()
        return derived[0] if derived is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        derived = _derived.get()
        return derived[1] if derived is not None else super().generate_span_id()


def start_root_span(
    tracer: trace.Tracer,
    name: str,
    key: str,
    design_id: str,
    *,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    links: list[trace.Link] | None = None,
) -> trace.Span:
    """Start the root span of a design's trace (the caller ends it)."""
    token = _derived.set((design_trace_id(key, design_id), design_root_span_id(key, design_id)))
    try:
        return tracer.start_span(name, context=Context(), attributes=attributes, links=links)
    finally:
        _derived.reset(token)


def child_env(span: trace.Span | None = None) -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE``) of ``span`` (default: the current one).

    Empty when the span is not recording: an untraced parent hands no context on.
    """
    span = span if span is not None else trace.get_current_span()
    if not span.is_recording():
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return {name.upper(): value for name, value in carrier.items()}


def context_from_env(environ: Mapping[str, str] | None = None) -> Context | None:
    """The parent context a parent process handed on, or None."""
    variables = os.environ if environ is None else environ
    if not variables.get(TRACEPARENT):
        return None
    carrier = {"traceparent": variables[TRACEPARENT]}
    if variables.get(TRACESTATE):
        carrier["tracestate"] = variables[TRACESTATE]
    context = _PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "DerivedIds",
    "child_env",
    "context_from_env",
    "design_context",
    "design_root_span_id",
    "design_trace_id",
    "run_key",
    "start_root_span",
    "trace_id_hex",
]
