"""Passing a child's spans, written as OTLP JSON, to this process's exporters.

Training runs design code, so its pod gets no collector address or credential and, locally, no
network at all: the trainer writes its spans into its own output prefix in the store, and the
parent that ingests the job's end hands them to its own span processors here.

What must stay true: only spans of the expected traces are passed on, at most
:data:`MAX_RELAYED_SPANS` per file, so a design cannot flood the collector or write into
another design's trace; text that is not OTLP JSON is counted as refused, never raised.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from genesys.telemetry.otlp_json import spans_from_json
from genesys.telemetry.setup import current

MAX_RELAYED_SPANS = 10_000


@dataclass(frozen=True, slots=True)
class Relayed:
    """What one relay passed on and what it refused."""

    passed: int
    refused: int


def relay_spans(text: str, trace_ids: Collection[int]) -> Relayed:
    """Hand the spans in ``text`` whose trace id is in ``trace_ids`` to the span processors."""
    telemetry = current()
    try:
        spans = spans_from_json(text)
    except (ValueError, KeyError, TypeError):
        return Relayed(0, 1)
    wanted = [s for s in spans if s.context is not None and s.context.trace_id in trace_ids]
    kept = wanted[:MAX_RELAYED_SPANS]
    if telemetry.tracing:
        for span in kept:
            for processor in telemetry.span_processors:
                processor.on_end(span)
    return Relayed(len(kept), len(spans) - len(kept))


__all__ = ["MAX_RELAYED_SPANS", "Relayed", "relay_spans"]
