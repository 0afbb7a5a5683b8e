"""Shared test fixtures; tests under tests/unit are marked ``unit``; the RBAC check runs last.

The operator suite's RBAC check (``tests/operator/test_rbac_least.py``) judges every other
operator test of the run, so collection moves it after them, whatever the file names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


RBAC_CHECK = "test_rbac_least.py"  # judges the whole operator suite, so it runs after it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unit_dir = REPO_ROOT / "tests" / "unit"
    for item in items:
        if Path(str(item.fspath)).is_relative_to(unit_dir):
            item.add_marker(pytest.mark.unit)
    items[:] = rbac_check_after_the_operator_suite(items)


def rbac_check_after_the_operator_suite(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the RBAC check moved after the last operator test, whatever their names."""
    checks = [item for item in items if Path(str(item.fspath)).name == RBAC_CHECK]
    rest = [item for item in items if Path(str(item.fspath)).name != RBAC_CHECK]
    operator = [n for n, item in enumerate(rest) if "tests/operator/" in item.nodeid]
    at = operator[-1] + 1 if operator else len(rest)
    return [*rest[:at], *checks, *rest[at:]]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
