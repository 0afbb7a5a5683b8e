"""Static checks of the unit tests a design carries in ``metadata["unit_tests"]``."""

from __future__ import annotations

from typing import Any

import pytest

import genesys_trainer
from genesys.sandbox.report import Finding, Status
from genesys.sandbox.static import check_design_document, check_unit_tests_source
from genesys_trainer.seeds import load_seed

PASSING = """
import torch
from torch import nn


def helper(Y):
    return nn.Sequential()(Y)  # the unit format rules do not apply to tests


def test_keeps_shape(unit, X):
    Y, Z = unit(X)
    assert helper(Y).shape == X.shape, "shape changed"


def test_unit_rms(unit, X):
    Y, _ = unit(X)
    assert torch.allclose(Y.pow(2).mean(-1), torch.ones(2, 16), atol=1e-3)
"""


def with_tests(tests: Any) -> dict[str, Any]:
    document = load_seed("gpt2").to_json()
    document["metadata"]["unit_tests"] = tests
    return document


def failures_of(source: str) -> list[Finding]:
    return check_unit_tests_source("RMSNorm", source)


def doc_example() -> str:
    doc = genesys_trainer.interface_documentation()
    section = doc.split("## Unit tests", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_passing_tests_have_no_findings() -> None:
    assert check_design_document(with_tests({"RMSNorm": PASSING, "SwiGLUMLP": PASSING})) == []


def test_no_unit_tests_and_an_empty_map_have_no_findings() -> None:
    assert check_design_document(with_tests({})) == []
    assert check_design_document(load_seed("gpt2").to_json()) == []


def test_interface_documentation_example_passes() -> None:
    assert failures_of(doc_example()) == []


@pytest.mark.parametrize(
    ("edit", "check", "message", "line"),
    [
        (("import torch", "import os"), "imports", "in the unit tests: import of 'os'", 2),
        (("import torch", "import torch.hub"), "imports", "in the unit tests", 2),
        (("Y, Z = unit(X)", "Y, Z = unit(X); open('/etc/passwd')"), "forbidden", "'open'", 11),
        (("Y, Z = unit(X)", "Y, Z = unit(X); X.__class__"), "forbidden", "__class__", 11),
        (("Y, Z = unit(X)", "Y, Z = unit(X); torch.save(Y, 'y')"), "forbidden", "torch.save", 11),
        (
            ("def helper(Y):", "class Helper:\n    pass\n\n\ndef helper(Y):"),
            "unit_tests",
            "define class 'Helper'",
            6,
        ),
        (
            ("def test_keeps_shape(unit, X):", "def test_keeps_shape(unit):"),
            "unit_tests",
            "test_keeps_shape must be a plain function of (unit, X)",
            10,
        ),
        (
            ("def test_unit_rms(unit, X):", "async def test_unit_rms(unit, X):"),
            "unit_tests",
            "test_unit_rms must be a plain function",
            15,
        ),
        (
            ("def test_keeps_shape(unit, X):", "def test_keeps_shape(unit X):"),
            "unit_tests",
            "syntax error in the unit tests",
            10,
        ),
    ],
)
def test_rule(edit: tuple[str, str], check: str, message: str, line: int) -> None:
    old, new = edit
    assert old in PASSING
    results = check_design_document(with_tests({"RMSNorm": PASSING.replace(old, new)}))
    matching = [f for f in results if f.name == check and message in f.message]
    assert matching, [f.render() for f in results]
    assert all(f.status == Status.FAIL and f.unit == "RMSNorm" and f.hint for f in matching)
    assert matching[0].line == line


def test_a_source_without_test_functions_fails() -> None:
    results = failures_of("import torch\n\n\ndef helper(unit, X):\n    return unit(X)\n")
    assert [(f.name, f.unit) for f in results] == [("unit_tests", "RMSNorm")]
    assert "no top-level test_* function" in results[0].message


def test_tests_for_an_unknown_unit_fail() -> None:
    results = check_design_document(with_tests({"NoSuchUnit": PASSING}))
    assert [(f.name, f.unit) for f in results] == [("unit_tests", "NoSuchUnit")]
    assert "not an implemented unit of the tree" in results[0].message


def test_tests_for_a_declared_but_unimplemented_unit_fail() -> None:
    document = with_tests({"NewMixer": PASSING})
    document["declarations"] = {"NewMixer": {"requirements": "a mixer"}}
    results = check_design_document(document)
    assert [(f.name, f.unit) for f in results] == [("unit_tests", "NewMixer")]


@pytest.mark.parametrize(
    ("tests", "message"),
    [(["test_x"], "must be an object"), ({"RMSNorm": 3}, "not a Python source string")],
)
def test_malformed_unit_tests_fail(tests: Any, message: str) -> None:
    results = check_design_document(with_tests(tests))
    assert [f.name for f in results] == ["unit_tests"]
    assert message in results[0].message
    assert results[0].hint
