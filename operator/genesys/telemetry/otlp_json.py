"""Spans as OTLP JSON: the trace file of ``genesys run --trace`` and the trainer's span files.

One line of an OTLP JSON file is one ``ExportTraceServiceRequest`` in the protobuf JSON mapping
that OTLP/HTTP uses, with trace and span ids as hex strings (what the OpenTelemetry Collector's
file exporter writes and its file receiver reads).

- :func:`spans_to_json` encodes finished spans as one such line;
- :func:`spans_from_json` decodes lines back into spans, so a parent can pass a child's spans
  to its own exporters (the training pods write their spans to the store, see
  :mod:`genesys.telemetry.relay`);
- :class:`FileSpanExporter` appends one line per export to a file, under an exclusive lock, so
  the driver and its session processes can share one trace file.

What must stay true: decoding what :func:`spans_to_json` wrote gives spans with the same ids,
parents, names, times, attributes, events, links, kind and status.
"""

from __future__ import annotations

import base64
import fcntl
import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.status import Status, StatusCode

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    """The protobuf JSON mapping writes bytes as base64; OTLP JSON wants ids as hex."""
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            out[key] = base64.b64decode(value).hex()
        else:
            out[key] = _hex_ids(value)
    return out


def spans_to_json(spans: Sequence[ReadableSpan]) -> str:
    """One OTLP JSON line (no newline) holding ``spans``."""
    request = encode_spans(spans)
    data = MessageToDict(request, use_integers_for_enums=True)
    return json.dumps(_hex_ids(data), separators=(",", ":"))


# ------------------------------------------------------------------------------------ decoding


def _any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return tuple(_any_value(item) for item in value["arrayValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def _attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    decoded = {item["key"]: _any_value(item.get("value", {})) for item in items or ()}
    return {key: value for key, value in decoded.items() if value is not None}


def _context(trace_id: str, span_id: str, *, remote: bool) -> trace.SpanContext:
    return trace.SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=remote,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )


def _span(data: dict[str, Any], resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id = data["traceId"]
    parent = data.get("parentSpanId")
    status = data.get("status") or {}
    return ReadableSpan(
        name=str(data["name"]),
        context=_context(trace_id, data["spanId"], remote=False),
        parent=_context(trace_id, parent, remote=True) if parent else None,
        resource=resource,
        attributes=_attributes(data.get("attributes")),
        events=[
            Event(
                str(event.get("name", "")),
                _attributes(event.get("attributes")),
                int(event.get("timeUnixNano", 0)),
            )
            for event in data.get("events", [])
        ],
        links=[
            trace.Link(
                _context(link["traceId"], link["spanId"], remote=True),
                _attributes(link.get("attributes")),
            )
            for link in data.get("links", [])
        ],
        kind=trace.SpanKind(max(0, int(data.get("kind", 1)) - 1)),
        status=Status(StatusCode(int(status.get("code", 0))), status.get("message")),
        start_time=int(data["startTimeUnixNano"]),
        end_time=int(data["endTimeUnixNano"]),
        instrumentation_scope=scope,
    )


def spans_from_json(text: str) -> list[ReadableSpan]:
    """Decode OTLP JSON lines (as :func:`spans_to_json` writes them) into spans.

    Raises ValueError (or KeyError) on text that is not OTLP JSON.
    """
    spans = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            resource = Resource(_attributes(resource_spans.get("resource", {}).get("attributes")))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope_data = scope_spans.get("scope") or {}
                scope = InstrumentationScope(
                    str(scope_data.get("name", "")), scope_data.get("version") or None
                )
                spans += [_span(span, resource, scope) for span in scope_spans.get("spans", [])]
    return spans


# ------------------------------------------------------------------------------------ exporting


class FileSpanExporter(SpanExporter):
    """Appends each batch of spans to a file as one OTLP JSON line."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = spans_to_json(spans) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            fcntl.flock(out, fcntl.LOCK_EX)  # other processes append to the same file
            try:
                out.write(line)
                out.flush()
            finally:
                fcntl.flock(out, fcntl.LOCK_UN)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


__all__ = ["FileSpanExporter", "spans_from_json", "spans_to_json"]
