"""`genesys check`: exit codes, readable output and the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def genesys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesys", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


@pytest.mark.slow
def test_check_gpt2_at_nano_passes_with_json_report() -> None:
    result = genesys("check", "gpt2", "--rung", "nano", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert {c["status"] for c in report["checks"]} <= {"pass", "warn"}
    assert {"causality", "effectiveness", "complexity"} <= set(report["timings"])
    for check in report["checks"]:
        assert set(check) == {"name", "status", "message", "unit", "line", "hint"}


@pytest.mark.slow
def test_check_a_rejected_design_exits_1_with_readable_output() -> None:
    result = genesys("check", "tests/data/designs/causal-roll.py", "--rung", "nano")
    assert result.returncode == 1
    assert "FAIL causality [RollMixer]" in result.stdout
    assert "FAILED" in result.stdout


def test_check_static_failure_never_starts_the_sandbox() -> None:
    result = genesys("check", "tests/data/designs/import-os.py", "--rung", "nano", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["info"]["sandbox"] == {"executed": False}
    assert report["checks"][0]["name"] == "imports"


@pytest.mark.parametrize(
    "args",
    [("check", "nosuch", "--rung", "nano"), ("check", "gpt2", "--rung", "999M"), ("check", "gpt2")],
    ids=["unknown-design", "unknown-rung", "missing-rung"],
)
def test_check_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert genesys(*args).returncode == 2
