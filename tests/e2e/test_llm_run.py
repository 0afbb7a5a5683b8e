"""`genesys run` end to end with LLM agents: a spec pointing at a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genesys.store import open_store
from genesys.store.archive import load_archive
from genesys.telemetry import design_trace_id, run_key, trace_id_hex
from genesys.telemetry.otlp_json import spans_from_json
from support import agent_script as script
from support.scripted_llm import ScriptedLLMServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_genesys_run_with_llm_agents_completes_a_small_run(corpus: None, tmp_path: Path) -> None:
    steps = {
        "proposer": [script.queries("gelu mlp"), script.proposal()],
        "reviewer": [script.verdict(4)],
        "planner": [script.plan("the channel mixer")],  # one waiting unit: taken as meant
        "coder": [script.unit(script.GELU_MLP, "GeluMLP")],
        "observer": [script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        spec = script.run_spec(server.base_url, "llmrun", searchRounds=1)
        path = tmp_path / "llm.yaml"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        env = {**os.environ, "GENESYS_TEST_LLM_KEY": "test-key"}
        trace_file = tmp_path / "spans.jsonl"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "genesys",
                "run",
                str(path),
                "--workdir",
                str(tmp_path),
                "--trace",
                str(trace_file),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=900,
            check=False,
        )
        roles = [r.role for r in server.chat_requests]
        keys = {
            value
            for request in server.chat_requests
            for name, value in request.headers.items()
            if name.lower() == "authorization"
        }
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "finished:" in done.stdout
    assert roles == ["proposer", "proposer", "reviewer", "planner", "coder", "observer"]
    assert keys == {"Bearer test-key"}  # the key reached the session, from the env var only
    archive = load_archive(open_store(tmp_path / "store" / "runs" / "llmrun"))
    designs = [d for d in archive.designs.values() if not d.is_seed]
    assert len(designs) == 1
    design = designs[0]
    assert "nano" in design.verifications
    document = json.loads(
        (tmp_path / "store" / "runs" / "llmrun" / "designs" / design.id / "design.json").read_text()
    )
    assert document["metadata"]["flow"] == "gau"
    assert document["metadata"]["cost_usd"] > 0
    assert "GeluMLP" in document["units"]
    sessions = [s for s in archive.sessions.values() if s.status == "implemented"]
    assert len(sessions) == 1
    assert sessions[0].calls == 6
    check_design_trace(trace_file, design.id, tmp_path / "llmrun-report.html")


def check_design_trace(trace_file: Path, design_id: str, report: Path) -> None:
    """The trace file holds one trace for the design: driver, session, LLM calls, checks, training."""
    spans = spans_from_json(trace_file.read_text(encoding="utf-8"))
    trace_id = design_trace_id(run_key(None, "llmrun", None), design_id)
    mine = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine if s.context is not None}
    names = {s.name for s in mine}
    services = {str(s.resource.attributes["service.name"]) for s in mine}
    assert services == {"genesys-run", "genesys-agent", "genesys-trainer"}, services
    assert {"genesys.design", "genesys.job.create", "genesys.session", "genesys.train"} <= names
    assert {"genesys.step proposer", "genesys.checks", "genesys.train.loop"} <= names, names
    roots = [s for s in mine if s.parent is None]
    assert [r.name for r in roots] == ["genesys.design"]
    for span in mine:  # every other span hangs from a span of the same trace
        assert span.parent is None or span.parent.span_id in by_id, span.name
    calls = [s for s in mine if s.name.startswith("chat ")]
    assert len(calls) == 6
    for call in calls:
        attributes = call.attributes or {}
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
        parent = by_id[call.parent.span_id] if call.parent else None
        assert parent is not None
        assert parent.name == f"genesys.step {attributes['genesys.role']}"
    session = next(s for s in mine if s.name == "genesys.session")
    assert by_id[session.parent.span_id].name == "genesys.job.create"  # type: ignore[union-attr]
    train = next(s for s in mine if s.name == "genesys.train")
    assert (train.attributes or {})["genesys.train.status"] == "succeeded"
    assert by_id[train.parent.span_id].name == "genesys.job.create"  # type: ignore[union-attr]
    verdicts = {
        (s.attributes or {}).get("genesys.check.name"): (s.attributes or {}).get(
            "genesys.check.verdict"
        )
        for s in mine
        if s.name.startswith("genesys.check ")
    }
    assert verdicts.get("causality") == "pass", verdicts
    assert trace_id_hex(trace_id) in report.read_text(encoding="utf-8")
    shown = subprocess.run(
        [sys.executable, "-m", "genesys", "trace", str(trace_file), trace_id_hex(trace_id)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].startswith("genesys.design")
    assert sum("chat m1" in line for line in lines) == 6
    assert any("genesys.train " in line and "status=succeeded" in line for line in lines)
