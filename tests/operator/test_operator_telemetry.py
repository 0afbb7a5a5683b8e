"""Traces and metrics of a cluster run, and the real trainer against the store.

The operator runs with an OTLP endpoint (a loopback receiver that decodes what the exporters
send) and a Prometheus port. The agent Job runs a real LLM session against the scripted
OpenAI-compatible server; training Jobs run the real trainer (the kubelet passes the pods'
environment through, ``TRACEPARENT`` included). Every design then has one trace that spans the
operator, the agent pod and the training pod, and ``/metrics`` counts the tokens, jobs and
reconciles.
"""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
import yaml

from genesys.api.runconfig import RunIdentity
from genesys.backends.observability import trace_key
from genesys.store.archive import load_archive
from genesys.telemetry import design_trace_id
from support import agent_script as script
from support.cluster import NAMESPACE, Cluster, run_document
from support.kube import KUBERNETES_CLIENT_WARNINGS
from support.otlp_receiver import ReceivedSpan, otlp_receiver
from support.scripted_llm import ScriptedLLMServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, KUBERNETES_CLIENT_WARNINGS]

RUN = "traced"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def phase(cluster: Cluster) -> str:
    return str(cluster.run_status(RUN).get("phase"))


def sample_sum(metrics: str, name: str) -> float:
    """The sum of every sample of a Prometheus metric family's line ``name{...} value``."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(metrics))


def check_one_trace_per_design(
    spans: list[ReceivedSpan], identity: RunIdentity, designs: list[str], llm_design: str
) -> None:
    key = trace_key(identity)
    for design in designs:
        trace_id = f"{design_trace_id(key, design):032x}"
        mine = [s for s in spans if s.trace_id == trace_id]
        ids = {s.span_id for s in mine}
        roots = [s for s in mine if not s.parent_span_id]
        assert [(r.name, r.service) for r in roots] == [("genesys.design", "genesys-operator")]
        assert all(not s.parent_span_id or s.parent_span_id in ids for s in mine), design
        services = {s.service for s in mine}
        wanted = {"genesys-operator", "genesys-trainer"}
        if design == llm_design:
            wanted.add("genesys-agent")
        assert services == wanted, (design, services)
        by_id = {s.span_id: s for s in mine}
        train = next(s for s in mine if s.name == "genesys.train")
        assert by_id[train.parent_span_id].name == "genesys.job.create"
        assert by_id[train.parent_span_id].service == "genesys-operator"
        assert train.attributes["genesys.train.status"] == "succeeded"
        assert {"genesys.train.data", "genesys.train.loop", "genesys.train.eval"} <= {
            s.name for s in mine
        }
    llm_trace = f"{design_trace_id(key, llm_design):032x}"
    mine = [s for s in spans if s.trace_id == llm_trace]
    by_id = {s.span_id: s for s in mine}
    session = next(s for s in mine if s.name == "genesys.session")
    assert session.service == "genesys-agent"
    assert by_id[session.parent_span_id].name == "genesys.job.create"
    calls = [s for s in mine if s.name == "chat m1"]
    assert len(calls) == 5  # one per role: no search round
    assert all(c.attributes["gen_ai.usage.input_tokens"] > 0 for c in calls)
    assert {by_id[c.parent_span_id].name for c in calls} == {
        f"genesys.step {role}" for role in ("proposer", "reviewer", "planner", "coder", "observer")
    }
    checks = [s for s in mine if s.name.startswith("genesys.check ")]
    assert checks
    assert all(s.attributes["genesys.check.verdict"] in ("pass", "warn") for s in checks)


def test_a_cluster_run_traces_each_design_from_operator_to_training_and_serves_metrics(
    cluster: Cluster,
) -> None:
    cluster.prepare_builtin_data()
    steps = {
        "proposer": [script.proposal()],
        "reviewer": [script.verdict(4)],
        "planner": [script.plan("the channel mixer")],
        "coder": [script.unit(script.GELU_MLP, "GeluMLP")],
        "observer": [script.verdict(4)],
    }
    port = free_port()
    with otlp_receiver() as receiver, ScriptedLLMServer(steps) as llm:
        cluster.env.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "GENESYS_METRICS_PORT": str(port),
            }
        )
        cluster.start_operator()
        document = run_document(
            cluster,
            RUN,
            agents=script.llm_agents(
                llm.base_url, apiKeySecret={"name": "llm-credentials", "key": "api-key"}
            ),
            **{"sessions.searchRounds": 0},
        )
        with cluster.kubelet(fake_training=False):
            cluster.kubectl(
                "apply", "--validate=false", "-f", "-", input_text=yaml.safe_dump(document)
            )
            cluster.wait_for(lambda: phase(cluster) == "Succeeded", 600, "Succeeded")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
        run = cluster.get("discoveryruns", RUN, namespace=NAMESPACE)
        job_env = {
            job["metadata"]["labels"]["genesys.dev/role"]: {
                item["name"] for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            for job in cluster.get("jobs")["items"]
        }
        cluster.stop_operator()  # flushes the operator's spans
        spans = receiver.spans()
    assert {"OTEL_EXPORTER_OTLP_ENDPOINT", "TRACEPARENT"} <= job_env["session"]
    assert "TRACEPARENT" in job_env["verification"]
    assert not [name for name in job_env["verification"] if name.startswith("OTEL_")]
    archive = load_archive(cluster.run_store(RUN))
    results = {d.id: d.verifications["nano"] for d in archive.designs.values()}
    assert len(results) == 6
    assert all(r.status == "succeeded" for r in results.values()), [
        r.reason for r in results.values()
    ]
    assert all(r.val_loss is not None and r.val_loss < 6.0 for r in results.values())  # < ln(256)+
    assert all("genesys_cloze" in r.metrics for r in results.values())
    (llm_design,) = [d.id for d in archive.designs.values() if not d.is_seed]
    identity = RunIdentity(namespace=NAMESPACE, name=RUN, uid=run["metadata"]["uid"])
    check_one_trace_per_design(spans, identity, sorted(results), llm_design)
    reconciles = [s for s in spans if s.name == "genesys.reconcile"]
    assert reconciles
    assert all(s.service == "genesys-operator" for s in reconciles)
    assert any(s.attributes.get("genesys.actions.planned", 0) > 0 for s in reconciles)
    assert sample_sum(metrics, "gen_ai_client_token_usage_count") == 10  # 5 calls, in and out
    assert sample_sum(metrics, "gen_ai_client_operation_duration_seconds_count") == 5
    assert sample_sum(metrics, "genesys_reconcile_duration_seconds_count") > 0
    assert sample_sum(metrics, "genesys_jobs_ended_total") >= 7  # a session, six trainings
    assert sample_sum(metrics, "genesys_checks_total") > 0
    assert "genesys_jobs{" in metrics
