"""Project layout and import hygiene: the top-level folders, module docstrings and imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = [REPO / "operator" / "genesys", REPO / "trainer" / "genesys_trainer"]
MODULES = sorted(p for package in PACKAGES for p in package.rglob("*.py"))


def test_operator_dir_is_not_a_package() -> None:
    # operator/__init__.py would shadow the standard library's `operator` module.
    assert not (REPO / "operator" / "__init__.py").exists()


@pytest.mark.parametrize(
    "folder",
    ["operator", "crds", "images", "trainer", "helm", "tests", "examples", "benchmarks", ".ci"],
)
def test_top_level_folder_exists(folder: str) -> None:
    assert (REPO / folder).is_dir()


@pytest.mark.parametrize("module", MODULES, ids=[str(m.relative_to(REPO)) for m in MODULES])
def test_module_has_a_docstring(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{module.relative_to(REPO)} needs a module docstring"
    assert len(docstring) >= 20


def test_stdlib_operator_is_not_shadowed() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import operator, sys; print(operator.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "operator/genesys" not in result.stdout
    assert result.stdout.strip().endswith("operator.py")


@pytest.mark.parametrize("module", ["genesys", "genesys.api", "genesys.cli", "genesys.engine"])
def test_control_plane_import_pulls_no_heavy_dependency(module: str) -> None:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted(m for m in ('torch', 'kubernetes', 'boto3', 'kopf') "
        "if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
