"""Shared test fixtures, and the default marker: tests under tests/unit are marked ``unit``."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unit_dir = REPO_ROOT / "tests" / "unit"
    for item in items:
        if Path(str(item.fspath)).is_relative_to(unit_dir):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
