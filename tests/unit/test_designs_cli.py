"""`genesys designs ...`: list, show, params; run through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def genesys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesys", *args], capture_output=True, text=True, check=False
    )


def test_designs_list_prints_the_five_seeds() -> None:
    result = genesys("designs", "list")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "gpt2",
        "mamba2",
        "retnet",
        "rwkv6",
        "ttt",
    ]


def test_designs_params_all_at_350m_within_20_percent() -> None:
    result = genesys("designs", "params", "--all", "--rung", "350M", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["design"] for row in rows] == ["gpt2", "mamba2", "retnet", "rwkv6", "ttt"]
    for row in rows:
        assert row["reference"] == pytest.approx(334.9e6, rel=0.001)
        assert abs(row["params"] - row["reference"]) <= 0.2 * row["reference"]
        assert row["within"] is True


def test_designs_show_prints_the_tree_of_a_seed() -> None:
    result = genesys("designs", "show", "mamba2")
    assert result.returncode == 0
    assert "seq_mixer: Mamba2Mixer" in result.stdout
    assert "channel_mixer: ZeroMixer" in result.stdout


def test_designs_params_for_an_unknown_design_exits_2() -> None:
    result = genesys("designs", "params", "nosuch", "--rung", "nano")
    assert result.returncode == 2
    assert "neither a seed" in result.stderr


def test_scrubbed_env_of_the_designs_child_holds_no_keys() -> None:
    code = (
        "import os, subprocess, sys;"
        "env = dict(os.environ, OPENAI_API_KEY='sk-secret', AWS_SECRET_ACCESS_KEY='x');"
        "from genesys.sandbox import scrubbed_env;"
        "print(sorted(k for k in scrubbed_env(env) if 'KEY' in k))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
