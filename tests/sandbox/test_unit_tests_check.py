"""Unit tests carried by a design, checked through ``check_design`` in the real sandbox."""

from __future__ import annotations

from typing import Any

import pytest

import genesys_trainer
from genesys.api.ladder import preset_rung
from genesys.sandbox.report import Report, Status
from genesys.sandbox.runner import GIB, SandboxLimits, check_design
from genesys_trainer.seeds import load_seed

pytestmark = pytest.mark.slow

NANO = preset_rung("nano", vocab_size=256)
SETTINGS: dict[str, Any] = {
    "effectiveness_steps": 3,
    "causality_length": 24,
    "complexity_lengths": [32, 64, 128],
    "forward_length": 128,
}
LIMITS = SandboxLimits(timeout_seconds=120, memory_bytes=4 * GIB)

RMS_TESTS = """
import torch


def test_unit_rms(unit, X):
    Y, _ = unit(X)
    rms = Y.pow(2).mean(dim=-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3), "rms is not one"


def test_gradients_flow(unit, X):
    Y, _ = unit(X.requires_grad_())
    Y.sum().backward()
    assert unit.weight.grad is not None
"""

FAILING_MLP_TESTS = """
import torch


def test_keeps_shape(unit, X):
    Y, Z = unit(X)
    assert Y.shape == X.shape


def test_is_identity(unit, X):
    Y, Z = unit(X)
    assert torch.equal(Y, X), "the MLP changed its input"
"""


def doc_example() -> str:
    section = genesys_trainer.interface_documentation().split("## Unit tests", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def check(tests: dict[str, str], *, skip_static: bool = False) -> Report:
    document = load_seed("gpt2").to_json()
    document["metadata"]["unit_tests"] = tests
    return check_design(
        document,
        rung=NANO,
        settings=SETTINGS,
        limits=LIMITS,
        skip_static=skip_static,
    )


def test_passing_unit_tests_pass_between_forward_and_causality() -> None:
    report = check({"RMSNorm": RMS_TESTS, "RotaryMHA": doc_example()})
    # effectiveness's time ratio may fail on a loaded machine; nothing before it may
    assert {f.name for f in report.failed()} <= {"effectiveness"}, report.render()
    names = [finding.name for finding in report.checks]
    assert names.index("forward") < names.index("unit_tests") < names.index("causality")
    finding = report.checks[names.index("unit_tests")]
    assert (finding.status, finding.message) == (Status.PASS, "3 unit tests of 2 units passed")
    assert report.info["unit_tests"] == {"units": 2, "tests": 3, "failed": 0}
    assert "effectiveness" in names


def test_a_failing_assert_names_the_unit_test_and_line() -> None:
    report = check({"SwiGLUMLP": FAILING_MLP_TESTS})
    [failed] = report.failed()
    assert (failed.name, failed.unit, failed.line) == ("unit_tests", "SwiGLUMLP", 12)
    assert failed.message == "SwiGLUMLP.test_is_identity failed: the MLP changed its input"
    assert "FAIL unit_tests [SwiGLUMLP:12]: SwiGLUMLP.test_is_identity failed" in report.render()
    assert "causality" not in {finding.name for finding in report.checks}


def test_tests_importing_os_are_rejected_before_the_sandbox() -> None:
    report = check({"RMSNorm": "import os\n\n\ndef test_env(unit, X):\n    assert os.environ\n"})
    assert report.info["sandbox"] == {"executed": False}
    assert [(f.name, f.unit, f.line) for f in report.failed()][:1] == [("imports", "RMSNorm", 1)]
    assert "in the unit tests: import of 'os'" in report.failed()[0].message


def test_tests_for_an_unknown_unit_are_rejected_before_the_sandbox() -> None:
    report = check({"NoSuchUnit": RMS_TESTS})
    assert report.info["sandbox"] == {"executed": False}
    [failed] = report.failed()
    assert (failed.name, failed.unit) == ("unit_tests", "NoSuchUnit")
    assert "not an implemented unit" in failed.message


def test_the_audit_guard_confines_test_code_past_the_static_checks() -> None:
    hostile = 'def test_read(unit, X):\n    open("/etc/passwd").read()\n'
    report = check({"RMSNorm": hostile}, skip_static=True)
    [failed] = report.failed()
    assert (failed.name, failed.unit, failed.line) == ("sandbox", "RMSNorm", 2), report.render()
    assert failed.message.startswith("RMSNorm.test_read: sandbox: reading '/etc/passwd'")


def test_causality_length_sets_the_exhaustive_probe() -> None:
    report = check_design(load_seed("gpt2").to_json(), rung=NANO, settings=SETTINGS, limits=LIMITS)
    assert not report.failed("causality"), report.to_json()
    assert 12 <= report.info["probes"]["short_length"] <= 24  # half of causality_length to all
