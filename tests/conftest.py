"""Shared test fixtures; tests under tests/unit are marked ``unit``; the RBAC check runs last.

The operator suite's RBAC check (``tests/operator/test_rbac_least.py``) judges every other
operator test of the run, so collection moves it after them, whatever the file names. A test
session starts by removing the canary secret files an interrupted red-team run left behind
(:mod:`support.canaries`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.canaries import remove_leftover_canaries

REPO_ROOT = Path(__file__).resolve().parents[1]


RBAC_CHECK = "test_rbac_least.py"  # judges the whole operator suite, so it runs after it


def pytest_sessionstart(session: pytest.Session) -> None:
    for path in remove_leftover_canaries():
        print(f"removed {path}, a canary file an interrupted earlier test run left behind")


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
