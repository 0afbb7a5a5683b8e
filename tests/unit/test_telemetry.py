"""Telemetry: set-up from the OTEL_* variables, design trace ids, OTLP JSON, relay, metrics.

Spans are checked with in-memory exporters, metrics with an in-memory reader; what an exporter
really sends goes to a loopback OTLP receiver (:mod:`support.otlp_receiver`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_llm_client import PROMPT, make_agents

from genesys import telemetry
from genesys.agents.check_records import record_check, traced_check, verdicts
from genesys.agents.llm import Ledger, LLMClient, LLMError
from genesys.api.ladder import preset_rung
from genesys.api.runconfig import RunIdentity
from genesys.backends import manifests, observability
from genesys.sandbox.report import Finding, Report, Status
from genesys.store.base import LocalStore
from genesys.telemetry import instruments as names
from genesys.telemetry.ids import child_env, context_from_env
from genesys.telemetry.otlp_json import FileSpanExporter, spans_from_json, spans_to_json
from genesys.telemetry.relay import MAX_RELAYED_SPANS, relay_spans
from support.otlp_receiver import otlp_receiver
from support.scripted_llm import ScriptedLLMServer

IDENTITY = RunIdentity(namespace="lab", name="run", uid="1234-abcd")
KEY = observability.trace_key(IDENTITY)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Telemetry on, with spans kept in memory and metrics in an in-memory reader."""
    exporter = InMemorySpanExporter()
    telemetry.configure("test", span_processors=[SimpleSpanProcessor(exporter)], environ={})
    yield exporter
    telemetry.reset()


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    """Metrics on, read from memory."""
    reader = InMemoryMetricReader()
    telemetry.configure("test", readers=[reader], environ={})
    yield reader
    telemetry.reset()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


# ----------------------------------------------------------------------------------- set-up


def test_nothing_is_exported_or_traced_without_otel_variables() -> None:
    current = telemetry.configure("test", environ={})
    try:
        assert not current.tracing
        assert current.tracer_provider is None
        assert current.meter_provider is None
        with telemetry.span("x") as span:
            assert child_env(span) == {}  # an untraced parent hands no context on
    finally:
        telemetry.reset()


def test_an_endpoint_turns_otlp_traces_and_metrics_on_and_they_arrive() -> None:
    with otlp_receiver() as receiver:
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint  # the exporters read it
        try:
            current = telemetry.configure("genesys-test", environ=environ)
            assert current.tracing
            with telemetry.span("genesys.reconcile", {"genesys.run": "lab/run"}):
                pass
            current.instruments.checks.add(1, {"genesys.check.name": "causality"})
            telemetry.reset()  # flushes both
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        received = receiver.spans()
        assert [(s.name, s.service) for s in received] == [("genesys.reconcile", "genesys-test")]
        assert received[0].attributes == {"genesys.run": "lab/run"}
        assert names.CHECKS in receiver.metric_names()


def test_sdk_disabled_exports_nothing_and_fails_nothing() -> None:
    with otlp_receiver() as receiver:
        environ = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        current = telemetry.configure("test", environ=environ)
        assert not current.tracing
        with telemetry.span("genesys.reconcile") as span:
            span.set_attribute("k", 1)
            assert child_env(span) == {}
        current.instruments.token_usage.record(10, {})
        observability.design_root(IDENTITY, "d0001", {})
        with observability.job_span(IDENTITY, "d0001", "training", {}) as env:
            assert env == {}
        telemetry.reset()
        assert receiver.spans() == []
        assert receiver.metric_names() == set()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_METRICS_EXPORTER", "statsd"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ],
)
def test_an_unsupported_setting_is_an_error_naming_the_variable(variable: str, value: str) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", variable: value}
    with pytest.raises(telemetry.TelemetryConfigError, match=variable):
        telemetry.configure("test", environ=environ)
    telemetry.reset()


def test_genesys_run_refuses_a_bad_otel_setting_with_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "genesys", "run", "examples/quickstart.yaml"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "OTEL_TRACES_EXPORTER": "zipkin", "GENESYS_SANDBOX": "unconfined"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "OTEL_TRACES_EXPORTER='zipkin'" in done.stderr


# ------------------------------------------------------------------------------ trace ids


def test_a_designs_trace_id_is_derived_from_the_run_and_the_design() -> None:
    one = telemetry.design_trace_id(KEY, "d0001")
    assert one == telemetry.design_trace_id(KEY, "d0001")
    assert one != telemetry.design_trace_id(KEY, "d0002")
    other_run = observability.trace_key(RunIdentity(namespace="lab", name="run", uid="9999"))
    assert one != telemetry.design_trace_id(other_run, "d0001")  # same name, another uid
    assert len(telemetry.trace_id_hex(one)) == 32


def test_root_job_and_child_spans_form_one_trace_across_a_process_boundary(
    spans: InMemorySpanExporter,
) -> None:
    observability.design_root(IDENTITY, "d0001", {"genesys.design.operator": "mutation"})
    with observability.job_span(IDENTITY, "d0001", "training", {"genesys.rung": "nano"}) as env:
        assert set(env) == {"TRACEPARENT"}
    child = context_from_env(env)  # what the child process reads back
    assert child is not None
    with telemetry.span("genesys.train", context=child):
        pass
    root, job, train = spans.get_finished_spans()
    wanted = telemetry.design_trace_id(KEY, "d0001")
    assert {s.context.trace_id for s in (root, job, train)} == {wanted}  # type: ignore[union-attr]
    assert root.parent is None
    assert root.name == "genesys.design"
    assert job.parent is not None
    assert job.parent.span_id == root.context.span_id  # type: ignore[union-attr]
    assert train.parent is not None
    assert train.parent.span_id == job.context.span_id  # type: ignore[union-attr]
    assert (job.attributes or {})["genesys.run"] == "lab/run"


def test_a_job_span_links_to_the_reconcile_that_planned_it(spans: InMemorySpanExporter) -> None:
    with (
        telemetry.span("genesys.reconcile") as reconcile,
        observability.job_span(IDENTITY, "d0001", "session", {}),
    ):
        pass
    job = next(s for s in spans.get_finished_spans() if s.name == "genesys.job.create")
    assert [link.context.span_id for link in job.links] == [reconcile.get_span_context().span_id]
    assert job.context.trace_id != reconcile.get_span_context().trace_id  # type: ignore[union-attr]


# ------------------------------------------------------------------------------- OTLP JSON


def test_otlp_json_round_trips_ids_parents_attributes_events_links_and_status(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.span("parent", {"n": 3, "f": 1.5, "s": "x", "b": True, "l": ["a", "b"]}) as p:
        p.add_event("progress", {"step": 10, "loss": 2.5})
        with telemetry.span("child", links=[trace.Link(p.get_span_context(), {"why": "x"})]):
            pass
    with pytest.raises(ValueError, match="boom"), telemetry.span("failing"):
        raise ValueError("boom")
    original = spans.get_finished_spans()
    text = spans_to_json(original)
    line = json.loads(text)
    first = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(first["traceId"]) == 32  # hex, as OTLP JSON wants
    int(first["traceId"], 16)
    decoded = spans_from_json(text)
    assert [s.name for s in decoded] == [s.name for s in original]
    for before, after in zip(original, decoded, strict=True):
        assert after.context.trace_id == before.context.trace_id  # type: ignore[union-attr]
        assert after.context.span_id == before.context.span_id  # type: ignore[union-attr]
        assert (after.parent.span_id if after.parent else None) == (
            before.parent.span_id if before.parent else None
        )
        assert dict(after.attributes or {}) == {
            k: tuple(v) if isinstance(v, list | tuple) else v
            for k, v in (before.attributes or {}).items()
        }
        assert after.start_time == before.start_time
        assert after.end_time == before.end_time
        assert after.status.status_code == before.status.status_code
        assert after.kind == before.kind
    assert decoded[1].events[0].name == "progress"
    assert dict(decoded[1].events[0].attributes or {}) == {"step": 10, "loss": 2.5}
    assert decoded[0].links[0].context.span_id == original[1].context.span_id  # type: ignore[union-attr]
    assert (decoded[2].attributes or {})["error.type"] == "ValueError"


def test_the_trace_file_takes_one_line_per_export_from_every_writer(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    memory = InMemorySpanExporter()
    telemetry.configure("test", span_processors=[SimpleSpanProcessor(memory)], environ={})
    with telemetry.span("a"):
        pass
    with telemetry.span("b"):
        pass
    telemetry.reset()
    first, second = memory.get_finished_spans()
    writer = FileSpanExporter(path)
    writer.export([first])
    FileSpanExporter(path).export([second])  # a second process appending
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert [s.name for s in spans_from_json(path.read_text())] == ["a", "b"]


# ------------------------------------------------------------------------------------ relay


def test_relay_passes_only_the_designs_spans_and_refuses_garbage(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.span("mine", context=telemetry.design_context(KEY, "d0001")):
        pass
    with telemetry.span("forged", context=telemetry.design_context(KEY, "d0002")):
        pass
    text = spans_to_json(spans.get_finished_spans())
    spans.clear()
    relayed = relay_spans(text, {telemetry.design_trace_id(KEY, "d0001")})
    assert (relayed.passed, relayed.refused) == (1, 1)
    assert [s.name for s in spans.get_finished_spans()] == ["mine"]
    assert relay_spans("not json", {1}).refused == 1
    assert MAX_RELAYED_SPANS >= 1000


def test_training_spans_in_the_store_are_relayed_once_then_deleted(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    with telemetry.span("genesys.train", context=telemetry.design_context(KEY, "d0001")):
        pass
    key = f"designs/d0001/verifications/nano/{observability.SPANS_KEY}"
    store.put_text(key, spans_to_json(spans.get_finished_spans()) + "\n")
    spans.clear()
    assert observability.relay_training_spans(store, IDENTITY, "d0001", "nano") == 1
    assert not store.exists(key)
    assert observability.relay_training_spans(store, IDENTITY, "d0001", "nano") == 0
    assert [s.name for s in spans.get_finished_spans()] == ["genesys.train"]


# -------------------------------------------------------------------------------- LLM calls


def test_an_llm_call_is_a_genai_span_with_usage_cost_and_its_step_parent(
    spans: InMemorySpanExporter,
) -> None:
    with ScriptedLLMServer([{"reply": "y" * 400}, {"status": 400}]) as server:
        agents = make_agents(server.base_url)
        with LLMClient(agents, api_key="k", ledger=Ledger.for_session(agents)) as client:
            with telemetry.span("genesys.step proposer"):
                client.chat("proposer", "m1", PROMPT, max_tokens=300)
            with pytest.raises(LLMError):
                client.chat("proposer", "m1", PROMPT)
    ok, step, failed = spans.get_finished_spans()
    assert ok.name == "chat m1"
    assert ok.kind is trace.SpanKind.CLIENT
    assert ok.parent is not None
    assert ok.parent.span_id == step.context.span_id  # type: ignore[union-attr]
    attributes = dict(ok.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "m1"
    assert attributes["gen_ai.request.max_tokens"] == 300
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["gen_ai.usage.input_tokens"] == len("ROLE: proposer\n" + "x" * 36) // 4
    assert attributes["gen_ai.usage.output_tokens"] == 100
    assert attributes["genesys.llm.cost_usd"] > 0
    assert "error.type" not in attributes
    assert (failed.attributes or {})["error.type"] == "400"
    assert failed.status.status_code is trace.StatusCode.ERROR


# ------------------------------------------------------------------------------------ checks


BROKEN = {"format": "genesys-unit-tree/1", "name": "broken", "root": "Root", "units": {}}


def test_a_rejected_designs_check_span_carries_the_verdict(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    report = traced_check(store, "s0001", "d0001", BROKEN, rung=preset_rung("nano"))
    assert not report.passed
    finished = spans.get_finished_spans()
    checks = next(s for s in finished if s.name == "genesys.checks")
    assert (checks.attributes or {})["genesys.checks.passed"] is False
    failed = report.failed()[0].name
    assert (checks.attributes or {})["genesys.check.failed"] == failed
    child = next(s for s in finished if s.name == f"genesys.check {failed}")
    assert (child.attributes or {})["genesys.check.verdict"] == "fail"
    assert child.parent is not None
    assert child.parent.span_id == checks.context.span_id  # type: ignore[union-attr]
    (record_key,) = store.list("sessions/s0001/checks")
    record = json.loads(store.get_text(record_key))
    assert record["passed"] is False
    assert record["verdicts"][failed] == "fail"


def test_a_checks_verdict_is_its_worst_finding(tmp_path: Path) -> None:
    report = Report(
        checks=[
            Finding("causality", Status.PASS, "ok"),
            Finding("causality", Status.WARN, "slow"),
            Finding("size", Status.FAIL, "too big"),
            Finding("size", Status.PASS, "ok"),
        ]
    )
    assert verdicts(report) == {"causality": "warn", "size": "fail"}
    store = LocalStore(tmp_path)
    assert record_check(store, "s1", "d1", report).endswith("00001.json")
    assert record_check(store, "s1", "d1", report).endswith("00002.json")


# ----------------------------------------------------------------------------------- metrics


def test_session_metrics_come_from_its_store_records(
    metrics: InMemoryMetricReader, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    call = {"role": "coder", "model": "m1", "prompt_tokens": 300, "completion_tokens": 50,
            "cost_usd": 0.01, "latency_s": 1.5, "attempt_count": 1, "error": None}  # fmt: skip
    store.put_text("sessions/s0001/calls/00001.json", json.dumps(call))
    store.put_text("sessions/s0001/calls/00002.json", json.dumps({**call, "error": "HTTP 500"}))
    record_check(store, "s0001", "d0001", Report(checks=[Finding("size", Status.FAIL, "big")]))
    store.put_text("sessions/s0001/session.json", json.dumps({"status": "failed"}))
    observability.ingest_session(store, IDENTITY, "s0001")
    usage = points(metrics, names.TOKEN_USAGE)
    by_type = {p.attributes["gen_ai.token.type"]: p for p in usage}
    assert by_type["input"].count == 2
    assert by_type["input"].sum == 600
    assert by_type["output"].sum == 100
    assert list(by_type["input"].explicit_bounds) == [float(b) for b in names.TOKEN_BUCKETS]
    durations = points(metrics, names.OPERATION_DURATION)
    assert sum(p.count for p in durations) == 2
    assert list(durations[0].explicit_bounds) == list(names.DURATION_BUCKETS)
    assert {p.attributes.get("error.type") for p in durations} == {None, "HTTP 500"}
    (cost,) = points(metrics, names.LLM_COST)
    assert cost.value == pytest.approx(0.02)
    (check,) = points(metrics, names.CHECKS)
    assert dict(check.attributes) == {"genesys.check.name": "size", "genesys.check.verdict": "fail"}
    (ended,) = points(metrics, names.JOBS_ENDED)
    assert ended.attributes["genesys.job.outcome"] == "failed"


def test_verification_metrics_come_from_its_result(
    metrics: InMemoryMetricReader, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    result = {"schema_version": 1, "design": "d0001", "rung": "nano", "status": "succeeded",
              "tokens_per_second": 5000.0, "device": "cuda", "device_seconds": 30.0}  # fmt: skip
    store.put_text("designs/d0001/verifications/nano/result.json", json.dumps(result))
    observability.ingest_verification(store, IDENTITY, "d0001", "nano")
    (throughput,) = points(metrics, names.TRAINING_THROUGHPUT)
    assert throughput.sum == 5000.0
    (gpu,) = points(metrics, names.TRAINING_GPU_TIME)
    assert gpu.value == 30.0
    (ended,) = points(metrics, names.JOBS_ENDED)
    assert dict(ended.attributes) == {
        "genesys.run": "lab/run",
        "genesys.job.kind": "training",
        "genesys.job.outcome": "succeeded",
    }


def test_gauges_report_each_runs_jobs_and_designs_until_it_is_forgotten(
    metrics: InMemoryMetricReader,
) -> None:
    gauges = telemetry.current().instruments.gauges
    gauges.set("lab/a", jobs={("training", "waiting"): 2}, designs={"verified": 3})
    gauges.set("lab/b", jobs={("session", "running"): 1}, designs={})
    jobs = {(p.attributes["genesys.run"], p.attributes["genesys.job.state"]): p.value
            for p in points(metrics, names.JOBS)}  # fmt: skip
    assert jobs == {("lab/a", "waiting"): 2, ("lab/b", "running"): 1}
    (designs,) = points(metrics, names.DESIGNS)
    assert (designs.attributes["genesys.design.phase"], designs.value) == ("verified", 3)
    gauges.forget("lab/a")
    assert {p.attributes["genesys.run"] for p in points(metrics, names.JOBS)} == {"lab/b"}


def test_prometheus_serves_the_metrics_on_its_port() -> None:
    current = telemetry.configure("test", prometheus_port=0, environ={})
    try:
        current.instruments.reconcile_duration.record(0.2, {"genesys.run": "lab/run"})
        port = current.metrics_server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    finally:
        telemetry.reset()
    assert 'genesys_reconcile_duration_seconds_count{genesys_run="lab/run"' in text


# ------------------------------------------------------------------------------ agent pods


def test_agent_pods_get_the_operators_otlp_settings_and_the_trace_context() -> None:
    operator_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer t0k3n",
        "OTEL_SERVICE_NAME": "genesys-operator",
        "OTEL_METRICS_EXPORTER": "otlp",
        "AWS_SECRET_ACCESS_KEY": "never",
    }
    trace_env = {"TRACEPARENT": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    env = {item["name"]: item for item in manifests.telemetry_env(trace_env, operator_env)}
    assert set(env) == {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "TRACEPARENT"}
    assert env["TRACEPARENT"]["value"] == trace_env["TRACEPARENT"]


def test_with_a_headers_secret_agent_pods_take_the_headers_by_reference_only() -> None:
    operator_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer t0k3n",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer t0k3n",
        manifests.HEADERS_SECRET_VAR: "otlp-auth/headers",
    }
    env = manifests.telemetry_env({}, operator_env)
    assert "t0k3n" not in json.dumps(env)
    (headers,) = [item for item in env if item["name"].endswith("HEADERS")]
    assert headers["valueFrom"]["secretKeyRef"] == {
        "name": "otlp-auth",
        "key": "headers",
        "optional": True,
    }


# ---------------------------------------------------------------------------- genesys trace


def test_genesys_trace_prints_a_designs_spans_as_a_tree(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    key = telemetry.run_key(None, "quickstart", None)
    identity = RunIdentity(name="quickstart")
    observability.design_root(identity, "d0003", {"genesys.design.operator": "mutation"})
    with observability.job_span(identity, "d0003", "training", {"genesys.rung": "nano"}) as env:
        pass
    with telemetry.span(
        "genesys.train", {"genesys.train.status": "succeeded"}, context=context_from_env(env)
    ):
        pass
    with telemetry.span("elsewhere"):
        pass
    path = tmp_path / "spans.jsonl"
    path.write_text(spans_to_json(spans.get_finished_spans()) + "\n")
    by_design = subprocess.run(
        [sys.executable, "-m", "genesys", "trace", str(path), "--design", "d0003"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert by_design.returncode == 0, by_design.stderr
    lines = by_design.stdout.splitlines()
    assert lines[0] == f"trace {telemetry.design_trace_id(key, 'd0003'):032x}"
    assert lines[1].startswith("genesys.design ")
    assert "operator=mutation" in lines[1]
    assert lines[2].startswith("└─ genesys.job.create ")
    assert lines[3].startswith("   └─ genesys.train ")
    assert "status=succeeded" in lines[3]
    assert len(lines) == 4  # the other trace is not shown
    missing = subprocess.run(
        [sys.executable, "-m", "genesys", "trace", str(path), "--design", "d9999"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "no span of trace" in missing.stderr
