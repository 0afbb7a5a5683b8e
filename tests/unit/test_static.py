"""Static checks by syntax tree: each rule, with unit, line and a hint."""

from __future__ import annotations

import pytest

from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.static import check_design_document, check_unit_source
from genesys_trainer.seeds import SEEDS, load_seed

GOOD = """
from typing import Any

import torch
from torch import Tensor, nn

from genesys_trainer.units import ChildDecl, Unit


class Good(Unit):
    CHILDREN = (ChildDecl("inner", "anything"),)

    def __init__(self, d_model: int, **context: Any) -> None:
        super().__init__(d_model, **context)
        self.proj = nn.Linear(d_model, d_model)

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        Y, Z = self.inner(X, **Z)
        return X + self.proj(Y), Z
"""


def findings(source: str, *, bound: list[str] | None = None) -> list[Finding]:
    return check_unit_source("Good", source, expected_name="Good", bound_children=bound)


def names(source: str, **kwargs: object) -> set[str]:
    return {f.name for f in findings(source, **kwargs)}  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", list(SEEDS))
def test_seeds_pass_static_checks(seed: str) -> None:
    assert check_design_document(load_seed(seed).to_json()) == []


def test_good_unit_passes() -> None:
    assert findings(GOOD, bound=["inner"]) == []


@pytest.mark.parametrize(
    ("edit", "check", "message"),
    [
        (("import torch", "import os"), "imports", "import of 'os'"),
        (("import torch", "import torch.multiprocessing"), "imports", "torch.multiprocessing"),
        (("import torch", "from genesys_trainer import compose"), "imports", "genesys_trainer"),
        (("import torch", "from . import sibling"), "imports", "relative imports"),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); open('/etc/passwd')"),
            "forbidden",
            "'open'",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); eval('1')"),
            "forbidden",
            "'eval'",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); t = ().__class__"),
            "forbidden",
            "__class__",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); e = torch.os.environ"),
            "forbidden",
            "'os'",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); torch.load('w.pt')"),
            "forbidden",
            "torch.load",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); getattr(X, '__dict__')"),
            "forbidden",
            "dunder",
        ),
        (
            ("Y, Z = self.inner(X, **Z)", "Y, Z = self.inner(X, **Z); b = __builtins__"),
            "forbidden",
            "__builtins__",
        ),
        (("Y, Z = self.inner(X, **Z)", "Y = self.inner(X)[0]"), "format", "required form"),
        (
            (
                "        Y, Z = self.inner(X, **Z)\n        return X + self.proj(Y), Z",
                "        return X, Z",
            ),
            "format",
            "never used",
        ),
        (
            (
                "self.proj = nn.Linear(d_model, d_model)",
                "self.proj = nn.Sequential(nn.Linear(d_model, d_model))",
            ),
            "format",
            "Sequential",
        ),
        (
            (
                "def _forward(",
                "def forward(self, X: Tensor, **Z: Any) -> Any:\n        return X, Z\n\n    def _forward(",
            ),
            "format",
            "forward is overridden",
        ),
        (
            ("class Good(Unit):", "class Helper(nn.Module):\n    pass\n\n\nclass Good(Unit):"),
            "format",
            "helper nn.Module",
        ),
        (
            ("class Good(Unit):", "class Other(Unit):\n    pass\n\n\nclass Good(Unit):"),
            "format",
            "exactly one Unit subclass",
        ),
        (("def _forward(self, X", "def __broken(self X"), "format", "syntax error"),
    ],
)
def test_rule(edit: tuple[str, str], check: str, message: str) -> None:
    old, new = edit
    assert old in GOOD
    results = findings(GOOD.replace(old, new), bound=["inner"])
    matching = [f for f in results if f.name == check and message in f.message]
    assert matching, [f.render() for f in results]
    assert all(f.status == Status.FAIL and f.unit == "Good" and f.hint for f in matching)
    if check != "format" or "syntax" not in message:
        assert all(f.line is not None for f in matching)


def test_tree_binding_mismatch_is_a_format_error() -> None:
    results = findings(GOOD, bound=["inner", "extra"])
    assert [f.name for f in results] == ["format"]
    assert "tree binds" in results[0].message


def test_wrong_class_name_is_a_format_error() -> None:
    results = check_unit_source("Other", GOOD, expected_name="Other", bound_children=["inner"])
    assert any("expected 'Other'" in f.message for f in results)


def test_report_round_trips_through_json() -> None:
    report = Report()
    report.add(Finding("causality", Status.FAIL, "leak", unit="Block", line=3, hint="mask"))
    report.add(Finding("forward", Status.PASS, "ok"))
    report.timings["causality"] = 0.5
    again = Report.from_json(report.to_json())
    assert again.checks == report.checks
    assert again.passed is False
    assert report.to_json()["passed"] is False
    assert "FAIL causality [Block:3]: leak -- hint: mask" in report.render()
