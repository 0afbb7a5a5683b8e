"""Set-up of traces and metrics from the standard ``OTEL_*`` environment variables.

:func:`configure` builds this process's providers and makes them :func:`current`:

- ``OTEL_SDK_DISABLED=true``: nothing is recorded or exported (no-op tracer and meter);
- ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``; a comma-separated list) and
  ``OTEL_METRICS_EXPORTER`` (``otlp``, ``prometheus``, ``console``, ``none``): when unset,
  ``otlp`` if an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, or the signal's own
  ``..._TRACES_ENDPOINT``/``..._METRICS_ENDPOINT``), else ``none``, so one machine with no
  collector exports nothing and logs no connection errors;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or the signal's own ``..._TRACES_PROTOCOL``):
  ``http/protobuf`` (the default here) or ``grpc``; the exporters read the endpoint, headers,
  timeout and certificates from their own variables;
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the resource; without a service
  name the caller's (``genesys-operator``, ``genesys-agent``, ``genesys-run``,
  ``genesys-trainer``) is used;
- a trace file (``genesys run --trace FILE``), a Prometheus port (``genesys operator
  --metrics-port``) and extra span processors or metric readers (tests) come as arguments.

Tracing is *on* when at least one span processor is installed; otherwise the tracer is the
no-op one and no trace context is handed to children (:func:`genesys.telemetry.ids.child_env`).

What must stay true: without ``OTEL_*`` variables and arguments nothing is exported and no
thread is started; :meth:`Telemetry.shutdown` flushes what was recorded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from genesys.telemetry.ids import DerivedIds
from genesys.telemetry.instruments import Instruments, views
from genesys.telemetry.otlp_json import FileSpanExporter

SCOPE = "genesys"
PROTOCOLS = ("http/protobuf", "grpc")
TRACE_EXPORTERS = ("otlp", "console", "none")
METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")
DEFAULT_PROMETHEUS_PORT = 9464


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable has a value this system cannot honour (the message names it)."""


@dataclass
class Telemetry:
    """A process's tracer, meter and instruments, and what shuts them down."""

    tracer: trace.Tracer
    instruments: Instruments
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    span_processors: list[SpanProcessor] = field(default_factory=list)
    metrics_server: Any = None  # the Prometheus HTTP server, when one serves /metrics

    @property
    def tracing(self) -> bool:
        """True when spans are recorded and go somewhere."""
        return bool(self.span_processors)

    @property
    def metering(self) -> bool:
        """True when metrics are recorded and go somewhere (OTLP or a /metrics endpoint)."""
        return self.meter_provider is not None

    def force_flush(self) -> None:
        """Export what is buffered now."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
        if self.meter_provider is not None:
            self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop exporters and the metrics server."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()


def disabled() -> Telemetry:
    """Telemetry that records nothing."""
    return Telemetry(trace.NoOpTracer(), Instruments(metrics.NoOpMeter(SCOPE)))


_current = disabled()


def current() -> Telemetry:
    """The telemetry :func:`configure` set up last (disabled until then)."""
    return _current


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _names(
    environ: Mapping[str, str], variable: str, signal: str, allowed: Sequence[str]
) -> list[str]:
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"
    )
    default = "otlp" if endpoint else "none"
    names = [n.strip().lower() for n in (environ.get(variable) or default).split(",")]
    unknown = [n for n in names if n and n not in allowed]
    if unknown:
        raise TelemetryConfigError(
            f"{variable}={environ.get(variable)!r}: {', '.join(unknown)} is not supported "
            f"(choose from {', '.join(allowed)})"
        )
    return [n for n in names if n and n != "none"]


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if not environ.get(variable):
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = (environ.get(variable) or "http/protobuf").strip().lower()
    if protocol not in PROTOCOLS:
        raise TelemetryConfigError(
            f"{variable}={protocol!r} is not supported (choose from {', '.join(PROTOCOLS)})"
        )
    return protocol


def _otlp_span_exporter(protocol: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter()


def _otlp_metric_reader(protocol: str) -> MetricReader:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return PeriodicExportingMetricReader(OTLPMetricExporter())


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` (and the OTLP variables) ask for."""
    chosen = _names(environ, "OTEL_TRACES_EXPORTER", "TRACES", TRACE_EXPORTERS)
    protocol = _protocol(environ, "TRACES") if "otlp" in chosen else ""
    exporters: list[SpanExporter] = []
    for name in chosen:
        exporters.append(_otlp_span_exporter(protocol) if name == "otlp" else ConsoleSpanExporter())
    return exporters


@dataclass
class PrometheusEndpoint:
    """A metric reader and the HTTP server that serves its ``/metrics``."""

    reader: MetricReader
    server: Any
    port: int


def serve_prometheus(port: int, host: str = "0.0.0.0") -> PrometheusEndpoint:
    """A Prometheus reader with its own registry, served on ``host:port`` (0: any free port)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return PrometheusEndpoint(reader, server, int(server.server_address[1]))


def metric_readers(
    environ: Mapping[str, str], prometheus_port: int | None
) -> tuple[list[MetricReader], Any]:
    """The readers ``OTEL_METRICS_EXPORTER`` asks for, and the Prometheus server if any."""
    chosen = _names(environ, "OTEL_METRICS_EXPORTER", "METRICS", METRIC_EXPORTERS)
    readers: list[MetricReader] = []
    server = None
    if "prometheus" in chosen and prometheus_port is None:
        prometheus_port = int(
            environ.get("OTEL_EXPORTER_PROMETHEUS_PORT") or DEFAULT_PROMETHEUS_PORT
        )
    for name in chosen:
        if name == "otlp":
            readers.append(_otlp_metric_reader(_protocol(environ, "METRICS")))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    if prometheus_port is not None:
        endpoint = serve_prometheus(prometheus_port)
        readers.append(endpoint.reader)
        server = endpoint.server
    return readers, server


def configure(
    service: str,
    *,
    trace_file: Path | str | None = None,
    prometheus_port: int | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    readers: Sequence[MetricReader] = (),
    environ: Mapping[str, str] | None = None,
) -> Telemetry:
    """Set up this process's telemetry (see the module's docstring) and make it current.

    Raises :class:`TelemetryConfigError` on an ``OTEL_*`` value it cannot honour.
    """
    global _current
    variables = os.environ if environ is None else environ
    _current.shutdown()
    if _truthy(variables.get("OTEL_SDK_DISABLED")):
        _current = disabled()
        return _current
    resource = Resource.create({"service.name": variables.get("OTEL_SERVICE_NAME") or service})
    processors = list(span_processors) + [
        BatchSpanProcessor(exporter) for exporter in span_exporters(variables)
    ]
    if trace_file is not None:
        processors.append(BatchSpanProcessor(FileSpanExporter(trace_file)))
    found, server = metric_readers(variables, prometheus_port)
    all_readers = [*readers, *found]
    tracer_provider = meter_provider = None
    tracer: trace.Tracer = trace.NoOpTracer()
    if processors:
        tracer_provider = TracerProvider(resource=resource, id_generator=DerivedIds())
        for processor in processors:
            tracer_provider.add_span_processor(processor)
        tracer = tracer_provider.get_tracer(SCOPE)
    meter: metrics.Meter = metrics.NoOpMeter(SCOPE)
    if all_readers:
        meter_provider = MeterProvider(resource=resource, metric_readers=all_readers, views=views())
        meter = meter_provider.get_meter(SCOPE)
    _current = Telemetry(
        tracer,
        Instruments(meter),
        tracer_provider,
        meter_provider,
        processors,
        server,
    )
    return _current


def reset() -> None:
    """Shut the current telemetry down and go back to recording nothing."""
    global _current
    _current.shutdown()
    _current = disabled()


__all__ = [
    "DEFAULT_PROMETHEUS_PORT",
    "PrometheusEndpoint",
    "Telemetry",
    "TelemetryConfigError",
    "configure",
    "current",
    "disabled",
    "metric_readers",
    "reset",
    "serve_prometheus",
    "span_exporters",
]
