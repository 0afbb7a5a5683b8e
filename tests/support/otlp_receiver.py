"""An OTLP/HTTP receiver on loopback for tests: what an exporter really sends, decoded.

It answers ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf bodies, gzip or not) with 200
and keeps what it decoded::

    with otlp_receiver() as receiver:          # receiver.endpoint: http://127.0.0.1:PORT
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        ...
        spans = receiver.spans()               # ReceivedSpan: ids (hex), name, attributes...

Spans are flattened with their resource's ``service.name``, so a test can ask which process
made each one.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str]]


@dataclass
class Received:
    """What the receiver got, guarded by a lock."""

    trace_requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    metric_requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Receiver:
    """A running receiver: its endpoint and what it received."""

    def __init__(self, server: ThreadingHTTPServer, received: Received) -> None:
        self.server, self.received = server, received
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self.received.lock:
            requests = list(self.received.trace_requests)
        spans = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            ReceivedSpan(
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                name=span.name,
                                service=str(resource.get("service.name", "")),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                events=[
                                    (e.name, {a.key: _value(a.value) for a in e.attributes})
                                    for e in span.events
                                ],
                                links=[(ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links],
                            )
                        )
        return spans

    def metric_names(self) -> set[str]:
        """Names of every metric received so far."""
        with self.received.lock:
            requests = list(self.received.metric_requests)
        return {
            metric.name
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }


def _handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                trace_request = ExportTraceServiceRequest()
                trace_request.ParseFromString(body)
                with received.lock:
                    received.trace_requests.append(trace_request)
            elif self.path == "/v1/metrics":
                metric_request = ExportMetricsServiceRequest()
                metric_request.ParseFromString(body)
                with received.lock:
                    received.metric_requests.append(metric_request)
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:  # quiet
            return None

    return Handler


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 and a free port, stopped at the end."""
    received = Received()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(server, received)
    finally:
        server.shutdown()
        server.server_close()
