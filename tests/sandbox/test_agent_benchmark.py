"""`benchmarks/agent_success.py` against the scripted server: both flows, one proposal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import agent_script as script
from support.scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_benchmark_compares_the_flows_on_the_same_proposal(tmp_path: Path) -> None:
    broken = script.block(
        script.DIRECT_BLOCK.replace("import torch\n", "import os\nimport torch\n")
    )
    steps = {
        "proposer": [script.queries(), script.proposal()],
        "reviewer": [script.verdict(4)],
        "planner": [script.plan("SwiGLUMLP")],
        "coder": [script.unit(script.GELU_MLP, "GeluMLP"), *[broken] * 5],
        "observer": [script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.agent_success",
                "--endpoint",
                server.base_url,
                "--model",
                "m1",
                "--n",
                "1",
                "--api-key-env",
                "GENESYS_TEST_LLM_KEY",
                "--price-in",
                "1",
                "--price-out",
                "2",
                "--search-rounds",
                "1",
                "--store",
                str(tmp_path / "store"),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=600,
            check=False,
            env={**os.environ, "GENESYS_TEST_LLM_KEY": "k"},
        )
        coder_requests = [r for r in server.chat_requests if r.role == "coder"]
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    gau, direct = result["results"]["gau"], result["results"]["direct"]
    assert (gau["successes"], direct["successes"]) == (1, 0)
    assert (direct["mean_attempts"], gau["mean_attempts"]) == (5, 1)
    assert result["gap_points"] == 100
    assert len(coder_requests) == 6
    # both flows implemented the same accepted proposal
    titles = {
        json.dumps(r.body["messages"]).count("GELU channel mixer") > 0 for r in coder_requests
    }
    assert titles == {True}
    assert "GP minus direct: +100 points" in done.stdout
