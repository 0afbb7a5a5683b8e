"""The ``unit_tests`` dynamic check, in process on the trusted GPT-2 seed (no sandbox)."""

from __future__ import annotations

from typing import Any

from genesys.api.ladder import preset_rung
from genesys.sandbox.report import Report, Status
from genesys_trainer.checks.dynamic import CheckSettings, run_dynamic_checks
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import tree_from_json

RUNG = preset_rung("nano", vocab_size=256)
ONLY = {"forward", "unit_tests", "differentiability"}

SAME_X = """
import torch

seen = []


def test_first(unit, X):
    assert X.shape == (2, 16, unit.d_model) and X.dtype == torch.float32
    seen.append(X.clone())
    X.mul_(0)


def test_second_gets_the_same_fresh_x(unit, X):
    assert torch.equal(X, seen[0]), "X differs between tests"


def test_autograd_is_allowed(unit, X):
    X = X.requires_grad_()
    Y, Z = unit(X)
    Y.square().sum().backward()
    assert X.grad is not None and unit.weight.grad is not None
"""

FAILING = """
import torch


def test_passes(unit, X):
    Y, Z = unit(X)
    assert Y.shape == X.shape


def test_identity(unit, X):
    Y, Z = unit(X)
    assert torch.equal(Y, X)


def test_message(unit, X):
    assert 1 + 1 == 3, "arithmetic is broken"


def test_wrong_width(unit, X):
    unit(X[..., :3])
"""


def check(tests: dict[str, str] | None) -> Report:
    document: dict[str, Any] = load_seed("gpt2").to_json()
    if tests is not None:
        document["metadata"]["unit_tests"] = tests
    return run_dynamic_checks(tree_from_json(document), RUNG, CheckSettings(), Report(), only=ONLY)


def names(report: Report) -> list[str]:
    return [finding.name for finding in report.checks]


def test_a_design_without_unit_tests_passes_after_forward() -> None:
    report = check(None)
    assert names(report) == ["compose", "param_fit", "forward", "unit_tests", "differentiability"]
    finding = report.checks[3]
    assert (finding.status, finding.message) == (Status.PASS, "no unit tests")
    assert "unit_tests" not in report.info


def test_passing_unit_tests_are_counted() -> None:
    report = check({"RMSNorm": SAME_X, "SwiGLUMLP": "def test_runs(unit, X):\n    unit(X)\n"})
    assert report.passed, report.render()
    finding = report.checks[3]
    assert (finding.name, finding.message) == ("unit_tests", "4 unit tests of 2 units passed")
    assert report.info["unit_tests"] == {"units": 2, "tests": 4, "failed": 0}
    assert "differentiability" in names(report)


def test_every_failing_test_is_reported_in_order_and_the_run_stops() -> None:
    report = check({"SwiGLUMLP": FAILING})
    failed = report.failed()
    assert [(f.name, f.unit, f.line) for f in failed] == [
        ("unit_tests", "SwiGLUMLP", 12),
        ("unit_tests", "SwiGLUMLP", 16),
        ("unit_tests", "SwiGLUMLP", 20),
    ]
    assert failed[0].message == "SwiGLUMLP.test_identity failed: assertion failed: " + (
        "assert torch.equal(Y, X)"
    )
    assert failed[1].message == "SwiGLUMLP.test_message failed: arithmetic is broken"
    assert failed[2].message.startswith("SwiGLUMLP.test_wrong_width raised UnitError: ")
    assert "expected X of shape (B, L, 64)" in failed[2].message
    assert all(f.hint for f in failed)
    assert "differentiability" not in names(report)
    assert report.info["unit_tests"] == {"units": 1, "tests": 4, "failed": 3}


def test_a_unit_not_in_the_tree_fails() -> None:
    report = check({"NoSuchUnit": "def test_x(unit, X):\n    pass\n"})
    [failed] = report.failed()
    assert (failed.name, failed.unit) == ("unit_tests", "NoSuchUnit")
    assert "not used in the tree" in failed.message


def test_an_error_while_loading_the_tests_names_the_line() -> None:
    report = check({"RMSNorm": "import torch\nraise ValueError('boom')\n"})
    [failed] = report.failed()
    assert (failed.name, failed.unit, failed.line) == ("unit_tests", "RMSNorm", 2)
    assert failed.message == "RMSNorm.<module> raised ValueError: boom"
