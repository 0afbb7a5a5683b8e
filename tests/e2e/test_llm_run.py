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
        done = subprocess.run(
            [sys.executable, "-m", "genesys", "run", str(path), "--workdir", str(tmp_path)],
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
