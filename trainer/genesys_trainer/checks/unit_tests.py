"""Loading and locating the unit tests a design carries (``metadata["unit_tests"]``).

A design may carry, per implemented unit, a Python source of ``test_*(unit, X)`` functions that
call the unit and assert. The ``unit_tests`` dynamic check (:mod:`genesys_trainer.checks.dynamic`)
runs them on the unit's instance inside a composed model; this module holds the mechanics: the
tests of a document, compiling one test source, finding the unit instance, and the test-source
line of a failure.

What must stay true:
- Loading executes design code: it runs only inside the sandbox child (or on trusted designs),
  and only after the static ``imports``, ``forbidden`` and ``unit_tests`` checks passed.
- Test sources compile like unit sources (``compile`` + ``exec`` into a fresh module namespace,
  which the child's audit guard allows), under a file name of their own, so a failure's line
  is found in the test source and never mistaken for a line of the unit's source.
- Tests are returned in definition order, and only functions the test source itself defines.
"""

from __future__ import annotations

import builtins
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from genesys.sandbox.static import TEST_PREFIX, UNIT_TESTS_KEY
from genesys_trainer.units import Unit

UnitTest = Callable[[Unit, Tensor], object]


def unit_tests_of(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The test source of each unit that has one (the static checks vetted their shape)."""
    tests = metadata.get(UNIT_TESTS_KEY)
    if not isinstance(tests, Mapping):
        return {}
    return {str(unit): source for unit, source in tests.items() if isinstance(source, str)}


def tests_filename(design: str, unit: str) -> str:
    """The file name tracebacks show for the test source of ``unit``."""
    return f"<design {design} tests of {unit}>"


def load_unit_tests(design: str, unit: str, source: str) -> list[tuple[str, UnitTest]]:
    """Compile one test source into a fresh namespace; its ``test_*`` functions, in order."""
    filename = tests_filename(design, unit)
    module = types.ModuleType(f"genesys_unit_tests_{unit}", f"Unit tests of {unit!r}")
    namespace: dict[str, Any] = module.__dict__
    namespace["__builtins__"] = builtins
    exec(compile(source, filename, "exec"), namespace)
    return [
        (name, value)
        for name, value in namespace.items()
        if name.startswith(TEST_PREFIX)
        and isinstance(value, types.FunctionType)
        and value.__code__.co_filename == filename
    ]


def find_unit(root: nn.Module, name: str) -> Unit | None:
    """The first unit under ``root`` (depth first, in registration order) of class ``name``."""
    for module in root.modules():
        if isinstance(module, Unit) and type(module).__name__ == name:
            return module
    return None


def failing_line(exc: BaseException, filename: str) -> int | None:
    """The line of the innermost traceback frame inside the test source, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def source_line(source: str, line: int | None) -> str:
    """The stripped text of ``line`` (1-based) of ``source``, or an empty string."""
    lines = source.splitlines()
    if line is None or not 1 <= line <= len(lines):
        return ""
    return lines[line - 1].strip()


__all__ = [
    "UnitTest",
    "failing_line",
    "find_unit",
    "load_unit_tests",
    "source_line",
    "tests_filename",
    "unit_tests_of",
]
