"""Static checks of design code, by syntax tree: format rules and a security allow-list.

Nothing here executes design code, so it is safe anywhere (agent, CLI, sandbox child). The
dynamic checks run only when these pass: a source that fails ``imports`` or ``forbidden`` is
never executed.

Checks (the ``name`` of each finding):
- ``format``: parses; exactly one Unit subclass (named as the unit); no ``forward`` override; no
  ``nn.Sequential``; no helper ``nn.Module`` classes; every declared child is used, and called as
  ``Y, Z = self.child(X, **Z)``; the tree binds exactly the declared children.
- ``imports``: only torch, math, typing, dataclasses, functools, itertools, collections, einops
  (when installed), ``__future__`` and ``genesys_trainer.units``; no risky torch submodules.
- ``forbidden``: no open/exec/eval/compile/__import__/globals/locals/vars/breakpoint/input, no
  dynamic getattr/setattr, no dunder attributes, no os/sys/subprocess/socket/... names, no
  torch.hub/load/save/compile/jit/cpp_extension/_C.
- ``unit_tests``: ``metadata["unit_tests"]`` maps implemented units to test sources; each parses,
  defines at least one top-level ``test_*(unit, X)`` function and no class. Test sources also get
  the ``imports`` and ``forbidden`` checks (their messages say "in the unit tests"), never
  ``format``.

What must stay true: every finding names the unit (the unit under test, for test sources) and
line where there is one, and says how to fix it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from genesys.sandbox.report import Finding, Status

ALLOWED_IMPORTS = frozenset(
    {
        "torch",
        "math",
        "typing",
        "dataclasses",
        "functools",
        "itertools",
        "collections",
        "__future__",
        "einops",
    }
)
ALLOWED_GENESYS_MODULES = frozenset({"genesys_trainer.units"})
BLOCKED_TORCH_MODULES = (
    "torch.multiprocessing",
    "torch.distributed",
    "torch.hub",
    "torch.utils.cpp_extension",
    "torch.utils.data",
    "torch.package",
    "torch.serialization",
    "torch.onnx",
    "torch._dynamo",
    "torch._inductor",
    "torch.jit",
    "torch.compiler",
    "torch.utils.benchmark",
)
FORBIDDEN_CALLS = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "input",
        "exit",
        "quit",
        "memoryview",
        "help",
    }
)
FORBIDDEN_MODULE_NAMES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "socket",
        "importlib",
        "pickle",
        "ctypes",
        "shutil",
        "pathlib",
        "builtins",
        "io",
        "signal",
        "threading",
        "multiprocessing",
        "urllib",
        "http",
        "requests",
        "marshal",
        "shelve",
        "tempfile",
        "glob",
        "inspect",
        "gc",
        "resource",
        "pty",
        "select",
    }
)
FORBIDDEN_TORCH_ATTRIBUTES = frozenset(
    {
        "hub",
        "load",
        "save",
        "compile",
        "jit",
        "cpp_extension",
        "load_library",
        "_C",
        "package",
        "serialization",
        "multiprocessing",
        "distributed",
        "ops",
        "classes",
        "from_file",
    }
)
ALLOWED_DUNDERS = frozenset({"__init__"})
UNIT_TESTS_KEY = "unit_tests"  # the metadata key of the unit tests: unit name -> test source
TEST_PREFIX = "test_"
DYNAMIC_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


def _fail(check: str, unit: str, node: ast.AST | None, message: str, hint: str) -> Finding:
    line = getattr(node, "lineno", None) if node is not None else None
    return Finding(check, Status.FAIL, message, unit=unit, line=line, hint=hint)


def _base_names(node: ast.ClassDef) -> list[str]:
    return [ast.unparse(base) for base in node.bases]


def _is_unit_class(node: ast.ClassDef) -> bool:
    return any(base == "Unit" or base.endswith(".Unit") for base in _base_names(node))


def _is_module_class(node: ast.ClassDef) -> bool:
    return any(base.split(".")[-1] in ("Module", "Sequential") for base in _base_names(node))


def _attribute_root(node: ast.Attribute) -> str | None:
    value: ast.expr = node
    while isinstance(value, ast.Attribute):
        value = value.value
    return value.id if isinstance(value, ast.Name) else None


# ------------------------------------------------------------------------------------- imports


_IMPORT_HINT = (
    "use only torch, math, typing, dataclasses, functools, itertools, collections, einops "
    "and genesys_trainer.units"
)


def _imported_names(node: ast.AST) -> list[str]:
    """The modules (and ``module.name`` for from-imports) an absolute import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = node.module or ""
    if module == "genesys_trainer.units" or module == "__future__":
        return [module]
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def _is_allowed_module(name: str, einops_installed: bool) -> bool:
    top = name.split(".")[0]
    if top == "genesys_trainer":
        return name in ALLOWED_GENESYS_MODULES
    return top in ALLOWED_IMPORTS and (top != "einops" or einops_installed)


def _is_blocked_torch_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in BLOCKED_TORCH_MODULES)


def _import_name_finding(
    name: str, unit: str, node: ast.AST, einops_installed: bool
) -> Finding | None:
    if not _is_allowed_module(name, einops_installed):
        return _fail("imports", unit, node, f"import of {name!r} is not allowed", _IMPORT_HINT)
    if _is_blocked_torch_module(name):
        return _fail(
            "imports",
            unit,
            node,
            f"import of {name!r} is not allowed in design code",
            "design code may not spawn processes, load files or compile extensions",
        )
    return None


def _import_findings(tree: ast.Module, unit: str) -> Iterator[Finding]:
    einops_installed = importlib.util.find_spec("einops") is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            yield _fail("imports", unit, node, "relative imports are not allowed", _IMPORT_HINT)
            continue
        for name in _imported_names(node):
            finding = _import_name_finding(name, unit, node, einops_installed)
            if finding is not None:
                yield finding


# ----------------------------------------------------------------------------------- forbidden


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _forbidden_name(node: ast.Name, unit: str) -> Finding | None:
    if node.id in FORBIDDEN_CALLS:
        return _fail(
            "forbidden",
            unit,
            node,
            f"use of {node.id!r} is not allowed",
            "design code may not read files, run code or inspect globals",
        )
    if node.id in FORBIDDEN_MODULE_NAMES:
        return _fail(
            "forbidden",
            unit,
            node,
            f"use of module name {node.id!r}",
            "design code has no access to the system, files or network",
        )
    if _is_dunder(node.id):
        return _fail(
            "forbidden",
            unit,
            node,
            f"use of dunder name {node.id!r}",
            "dunder names reach interpreter internals; remove it",
        )
    return None


def _forbidden_attribute(node: ast.Attribute, unit: str) -> Finding | None:
    attr = node.attr
    if _is_dunder(attr) and attr not in ALLOWED_DUNDERS:
        return _fail(
            "forbidden",
            unit,
            node,
            f"access to dunder attribute {attr!r}",
            "dunder attributes reach interpreter internals; remove it",
        )
    if attr in FORBIDDEN_MODULE_NAMES:
        return _fail(
            "forbidden",
            unit,
            node,
            f"access to module attribute {attr!r}",
            "design code has no access to the system, files or network",
        )
    if _attribute_root(node) == "torch" and attr in FORBIDDEN_TORCH_ATTRIBUTES:
        return _fail(
            "forbidden",
            unit,
            node,
            f"use of torch.{attr} is not allowed",
            "design code may not load, save, compile or call native code",
        )
    return None


def _is_plain_attribute_name(node: ast.expr) -> bool:
    """A literal attribute name that is not a dunder."""
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and not node.value.startswith("__")
    )


def _forbidden_call(node: ast.Call, unit: str) -> Finding | None:
    """A dynamic attribute call (getattr, setattr, ...) with a computed or dunder name."""
    func = node.func
    if not (
        isinstance(func, ast.Name) and func.id in DYNAMIC_ATTRIBUTE_CALLS and len(node.args) >= 2
    ):
        return None
    if _is_plain_attribute_name(node.args[1]):
        return None
    return _fail(
        "forbidden",
        unit,
        node,
        f"{func.id} with a computed or dunder attribute name",
        "use a plain attribute access such as self.name",
    )


def _forbidden_finding(node: ast.AST, unit: str) -> Finding | None:
    if isinstance(node, ast.Name):
        return _forbidden_name(node, unit)
    if isinstance(node, ast.Attribute):
        return _forbidden_attribute(node, unit)
    if isinstance(node, ast.Call):
        return _forbidden_call(node, unit)
    return None


def _forbidden_findings(tree: ast.Module, unit: str) -> Iterator[Finding]:
    for node in ast.walk(tree):
        finding = _forbidden_finding(node, unit)
        if finding is not None:
            yield finding


# -------------------------------------------------------------------------------------- format


def _declared_children(unit_class: ast.ClassDef) -> tuple[list[str], ast.AST | None]:
    for statement in unit_class.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        if any(isinstance(t, ast.Name) and t.id == "CHILDREN" for t in targets) and value:
            names = []
            for element in getattr(value, "elts", []):
                if isinstance(element, ast.Call):
                    first = element.args[0] if element.args else None
                    for keyword in element.keywords:
                        if keyword.arg == "name":
                            first = keyword.value
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        names.append(first.value)
            return names, statement
    return [], None


def _child_call_findings(
    unit_class: ast.ClassDef, unit: str, children: list[str]
) -> Iterator[Finding]:
    proper: set[str] = set()
    seen: dict[str, ast.AST] = {}
    form_hint = "call children exactly as: Y, Z = self.child(X, **Z)"
    for node in ast.walk(unit_class):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
                and func.attr in children
            ):
                two_targets = (
                    len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Tuple)
                    and len(node.targets[0].elts) == 2
                )
                star_z = any(k.arg is None for k in call.keywords) and len(call.args) == 1
                if two_targets and star_z:
                    proper.add(func.attr)
    for node in ast.walk(unit_class):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr in children
        ):
            seen.setdefault(node.attr, node)
    for child in children:
        if child not in seen:
            yield _fail(
                "format",
                unit,
                unit_class,
                f"declared child {child!r} is never used",
                f"call it as: Y, Z = self.{child}(X, **Z), or remove it from CHILDREN",
            )
        elif child not in proper:
            yield _fail(
                "format",
                unit,
                seen[child],
                f"child {child!r} is not called in the required form",
                form_hint,
            )


def _class_findings(
    tree: ast.Module, unit: str, classes: list[ast.ClassDef], unit_classes: list[ast.ClassDef]
) -> Iterator[Finding]:
    """Exactly one Unit subclass, and no helper nn.Module class."""
    if len(unit_classes) != 1:
        yield _fail(
            "format",
            unit,
            tree.body[0] if tree.body else None,
            f"expected exactly one Unit subclass, found {len(unit_classes)}",
            "write one `class Name(Unit)` per unit; declare children for the rest",
        )
    for node in classes:
        if not _is_unit_class(node) and _is_module_class(node):
            yield _fail(
                "format",
                unit,
                node,
                f"helper nn.Module class {node.name!r}",
                "only units may hold sub-modules: declare a child unit instead",
            )


def _sequential_findings(tree: ast.Module, unit: str) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "Sequential") or (
            isinstance(node, ast.Name) and node.id == "Sequential"
        ):
            yield _fail(
                "format",
                unit,
                node,
                "nn.Sequential is not allowed",
                "call layers explicitly in _forward, or declare child units",
            )


def _method_findings(unit_class: ast.ClassDef, unit: str) -> Iterator[Finding]:
    """The unit implements _forward and leaves forward to the base class."""
    for statement in unit_class.body:
        if (
            isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and statement.name == "forward"
        ):
            yield _fail(
                "format",
                unit,
                statement,
                "forward is overridden",
                "implement _forward(self, X, **Z); the base class owns forward",
            )
    if not any(isinstance(s, ast.FunctionDef) and s.name == "_forward" for s in unit_class.body):
        yield _fail(
            "format",
            unit,
            unit_class,
            "no _forward method",
            "implement _forward(self, X, **Z) returning Y or (Y, Z)",
        )


def _unit_class_findings(
    unit_class: ast.ClassDef, unit: str, expected_name: str | None, bound: Collection[str] | None
) -> Iterator[Finding]:
    """The one Unit subclass: its name, its methods, its declared and bound children."""
    if expected_name is not None and unit_class.name != expected_name:
        yield _fail(
            "format",
            unit,
            unit_class,
            f"the Unit subclass is named {unit_class.name!r}, expected {expected_name!r}",
            "name the class exactly as the unit",
        )
    yield from _method_findings(unit_class, unit)
    children, where = _declared_children(unit_class)
    yield from _child_call_findings(unit_class, unit, children)
    if bound is not None and set(bound) != set(children):
        yield _fail(
            "format",
            unit,
            where or unit_class,
            f"CHILDREN declares {sorted(children)} but the tree binds {sorted(bound)}",
            "make the tree's children bindings match the unit's CHILDREN",
        )


def _format_findings(
    tree: ast.Module, unit: str, expected_name: str | None, bound: Collection[str] | None
) -> Iterator[Finding]:
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    unit_classes = [node for node in classes if _is_unit_class(node)]
    yield from _class_findings(tree, unit, classes, unit_classes)
    yield from _sequential_findings(tree, unit)
    if len(unit_classes) == 1:
        yield from _unit_class_findings(unit_classes[0], unit, expected_name, bound)


# ---------------------------------------------------------------------------------- unit tests


def _test_structure_findings(tree: ast.Module, unit: str) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield _fail(
                "unit_tests",
                unit,
                node,
                f"the unit tests define class {node.name!r}",
                "write plain functions: def test_name(unit, X): ...",
            )
    tests = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith(TEST_PREFIX)
    ]
    if not tests:
        yield _fail(
            "unit_tests",
            unit,
            tree.body[0] if tree.body else None,
            "the unit tests define no top-level test_* function",
            "define at least one def test_name(unit, X): ... that asserts",
        )
    for test in tests:
        arguments = test.args
        positional = [*arguments.posonlyargs, *arguments.args]
        required_keywords = [d for d in arguments.kw_defaults if d is None]
        if isinstance(test, ast.AsyncFunctionDef) or len(positional) != 2 or required_keywords:
            yield _fail(
                "unit_tests",
                unit,
                test,
                f"{test.name} must be a plain function of (unit, X)",
                f"write it as: def {test.name}(unit, X): ...",
            )


def _in_tests(finding: Finding) -> Finding:
    return dataclasses.replace(finding, message=f"in the unit tests: {finding.message}")


def check_unit_tests_source(unit: str, source: str) -> list[Finding]:
    """Every static finding for the test source of one unit (empty when it passes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [
            Finding(
                "unit_tests",
                Status.FAIL,
                f"syntax error in the unit tests: {exc.msg}",
                unit=unit,
                line=exc.lineno,
                hint="fix the Python syntax",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [
            Finding("unit_tests", Status.FAIL, f"cannot parse the unit tests: {exc}", unit=unit)
        ]
    security = [*_import_findings(tree, unit), *_forbidden_findings(tree, unit)]
    return [*map(_in_tests, security), *_test_structure_findings(tree, unit)]


def _unit_tests_findings(document: Mapping[str, Any]) -> Iterator[Finding]:
    metadata = document.get("metadata")
    tests = metadata.get(UNIT_TESTS_KEY) if isinstance(metadata, Mapping) else None
    if tests is None:
        return
    if not isinstance(tests, Mapping):
        yield Finding(
            "unit_tests",
            Status.FAIL,
            f"metadata.{UNIT_TESTS_KEY} must be an object",
            hint="map each unit name to the Python source of its tests",
        )
        return
    units = document.get("units") or {}
    for name, source in tests.items():
        if name not in units:
            yield Finding(
                "unit_tests",
                Status.FAIL,
                f"unit tests for {name!r}, which is not an implemented unit of the tree",
                unit=str(name),
                hint=f"key {UNIT_TESTS_KEY} by the names of the units in 'units'",
            )
        elif not isinstance(source, str):
            yield Finding(
                "unit_tests",
                Status.FAIL,
                "the unit tests are not a Python source string",
                unit=str(name),
                hint="give the tests as one string of Python source",
            )
        else:
            yield from check_unit_tests_source(str(name), source)


# --------------------------------------------------------------------------------- entry points


def check_unit_source(
    unit: str,
    source: str,
    *,
    expected_name: str | None = None,
    bound_children: Collection[str] | None = None,
) -> list[Finding]:
    """Every static finding for one unit's source (empty when it passes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [
            Finding(
                "format",
                Status.FAIL,
                f"syntax error: {exc.msg}",
                unit=unit,
                line=exc.lineno,
                hint="fix the Python syntax",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [Finding("format", Status.FAIL, f"cannot parse: {exc}", unit=unit)]
    return [
        *_import_findings(tree, unit),
        *_forbidden_findings(tree, unit),
        *_format_findings(tree, unit, expected_name, bound_children),
    ]


def check_design_document(document: Mapping[str, Any]) -> list[Finding]:
    """Static findings for every unit of a ``design.json`` document, and for its unit tests."""
    findings: list[Finding] = []
    units = document.get("units") or {}
    for name, spec in units.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("source"), str):
            findings.append(Finding("format", Status.FAIL, "unit has no source", unit=str(name)))
            continue
        expected = None if document.get("metadata", {}).get("format") == "block-file" else name
        findings.extend(
            check_unit_source(
                str(name),
                spec["source"],
                expected_name=expected,
                bound_children=list((spec.get("children") or {}).keys()),
            )
        )
    findings.extend(_unit_tests_findings(document))
    return findings


__all__ = [
    "ALLOWED_IMPORTS",
    "TEST_PREFIX",
    "UNIT_TESTS_KEY",
    "check_design_document",
    "check_unit_source",
    "check_unit_tests_source",
]
