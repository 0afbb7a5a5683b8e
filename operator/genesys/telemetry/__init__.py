"""OpenTelemetry traces and metrics of the operator, the agents, the sandbox and the trainer.

- :mod:`~genesys.telemetry.setup`: providers from the ``OTEL_*`` variables (:func:`configure`);
- :mod:`~genesys.telemetry.ids`: one trace per design, and context across processes;
- :mod:`~genesys.telemetry.instruments`: every metric;
- :mod:`~genesys.telemetry.genai`: GenAI semantic-convention attributes of LLM calls;
- :mod:`~genesys.telemetry.otlp_json` and :mod:`~genesys.telemetry.relay`: spans as OTLP JSON
  files (``genesys run --trace``, the trainer's spans).

This package sits at the bottom of the layers: it imports OpenTelemetry and nothing of genesys
above it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

from genesys.telemetry.ids import (
    child_env,
    context_from_env,
    design_context,
    design_trace_id,
    run_key,
    start_root_span,
    trace_id_hex,
)
from genesys.telemetry.setup import (
    Telemetry,
    TelemetryConfigError,
    configure,
    current,
    reset,
)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    context: Context | None = None,
    links: list[trace.Link] | None = None,
) -> Iterator[trace.Span]:
    """A span of the current tracer, current while the block runs; ended at its end.

    An exception escaping the block is recorded and sets the span's status to error (with
    ``error.type`` its class name).
    """
    tracer = current().tracer
    with tracer.start_as_current_span(
        name, context=context, attributes=dict(attributes or {}), links=links
    ) as active:
        try:
            yield active
        except BaseException as exc:
            if active.is_recording():
                active.set_attribute("error.type", type(exc).__name__)
            raise


__all__ = [
    "Telemetry",
    "TelemetryConfigError",
    "child_env",
    "configure",
    "context_from_env",
    "current",
    "design_context",
    "design_trace_id",
    "reset",
    "run_key",
    "span",
    "start_root_span",
    "trace_id_hex",
]
