"""The two serialised design formats: a unit tree (``design.json``) and a single block file.

``design.json`` (format ``genesys.design/v1``)::

    {
      "format": "genesys.design/v1",
      "name": "gpt2",                       # design name
      "root": "ResidualBlock",              # unit at the top of the tree: the block
      "units": {                            # implemented units, by unit name
        "ResidualBlock": {
          "source": "...python...",         # defines exactly one Unit subclass of this name
          "children": {"seq_mixer": "RotaryMHA", ...},   # child slot -> unit or declaration
          "hyperparameters": {},            # keyword arguments of the unit's __init__
          "requirements": "..."             # what the unit must do (free text)
        }, ...
      },
      "declarations": {                     # declared but unimplemented units (placeholders)
        "NewMixer": {"requirements": "...", "inputs": [], "outputs": []}
      },
      "metadata": {"title": "...", "parents": [], "operator": "seed", ...}
    }

A **single block file** is one Python source defining exactly one ``Unit`` subclass with no
children (what the direct-prompt baseline writes); ``load_block_file`` turns it into a one-unit
tree, so both formats compose the same way.

What must stay true: this module does not import torch (the control plane reads trees too), and
:func:`validate_tree` rejects a tree with a missing root, a child bound to an
unknown name, or a cycle, with an error naming the unit; loading never executes code.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "genesys.design/v1"

CONTEXT_KEYS = frozenset({"d_model", "n_head", "layer_index", "n_layer"})
"""Constructor context every unit receives; hyper-parameters may not reuse these names."""


class DesignError(ValueError):
    """A design is malformed; ``unit`` names the offending unit when there is one."""

    def __init__(self, message: str, *, design: str = "", unit: str | None = None) -> None:
        self.design = design
        self.unit = unit
        where = f"design {design!r}" if design else "design"
        if unit is not None:
            where += f", unit {unit!r}"
        super().__init__(f"{where}: {message}")


@dataclass(slots=True)
class UnitSpec:
    """One implemented unit: its source, child bindings and hyper-parameters."""

    source: str
    children: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    requirements: str = ""


@dataclass(slots=True)
class Declaration:
    """A declared, not yet implemented unit; it composes as a pass-through placeholder."""

    requirements: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class UnitTree:
    """A design as a tree of units."""

    name: str
    root: str
    units: dict[str, UnitSpec]
    declarations: dict[str, Declaration] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``design.json`` document."""
        return {
            "format": FORMAT,
            "name": self.name,
            "root": self.root,
            "units": {name: asdict(unit) for name, unit in self.units.items()},
            "declarations": {name: asdict(decl) for name, decl in self.declarations.items()},
            "metadata": self.metadata,
        }

    def dumps(self) -> str:
        """``design.json`` text, stable for diffs."""
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    def walk(self) -> Iterator[tuple[str, str, int]]:
        """(slot path, unit name, depth) for every node, depth first from the root."""
        validate_tree(self)

        def visit(path: str, name: str, depth: int) -> Iterator[tuple[str, str, int]]:
            yield path, name, depth
            unit = self.units.get(name)
            if unit is not None:
                for slot, child in unit.children.items():
                    yield from visit(f"{path}.{slot}", child, depth + 1)

        yield from visit("block", self.root, 0)

    def render(self) -> str:
        """The tree as indented text, one unit a line."""
        lines = [f"{self.name}: {self.metadata.get('title', '')}".rstrip(": ")]
        for path, name, depth in self.walk():
            slot = path.rsplit(".", 1)[-1]
            status = "" if name in self.units else "  (declared, placeholder)"
            hp = self.units[name].hyperparameters if name in self.units else {}
            hp_text = f"  {json.dumps(hp, sort_keys=True)}" if hp else ""
            lines.append(f"{'  ' * depth}{slot}: {name}{hp_text}{status}")
        return "\n".join(lines)


def _require(condition: bool, message: str, *, design: str, unit: str | None = None) -> None:
    if not condition:
        raise DesignError(message, design=design, unit=unit)


def tree_from_json(document: Any) -> UnitTree:
    """Parse a ``design.json`` document (already decoded); raise DesignError on bad shape."""
    _require(isinstance(document, dict), "design.json must hold a JSON object", design="")
    name = document.get("name", "")
    _require(isinstance(name, str) and bool(name), "missing 'name'", design="")
    fmt = document.get("format", FORMAT)
    _require(fmt == FORMAT, f"unknown format {fmt!r}, expected {FORMAT!r}", design=name)
    root = document.get("root")
    _require(isinstance(root, str) and bool(root), "missing 'root'", design=name)
    raw_units = document.get("units")
    _require(isinstance(raw_units, dict) and bool(raw_units), "missing 'units'", design=name)
    units: dict[str, UnitSpec] = {}
    for unit_name, raw in raw_units.items():
        _require(isinstance(raw, dict), "must be an object", design=name, unit=unit_name)
        source = raw.get("source")
        _require(isinstance(source, str), "missing 'source'", design=name, unit=unit_name)
        children = raw.get("children", {})
        hyper = raw.get("hyperparameters", {})
        _require(
            isinstance(children, dict) and all(isinstance(v, str) for v in children.values()),
            "'children' must map slot names to unit names",
            design=name,
            unit=unit_name,
        )
        _require(
            isinstance(hyper, dict),
            "'hyperparameters' must be an object",
            design=name,
            unit=unit_name,
        )
        units[unit_name] = UnitSpec(
            source=source,
            children=dict(children),
            hyperparameters=dict(hyper),
            requirements=str(raw.get("requirements", "")),
        )
    declarations = {
        decl_name: Declaration(
            requirements=str(raw.get("requirements", "")),
            inputs=[str(k) for k in raw.get("inputs", [])],
            outputs=[str(k) for k in raw.get("outputs", [])],
        )
        for decl_name, raw in (document.get("declarations") or {}).items()
    }
    metadata = document.get("metadata") or {}
    _require(isinstance(metadata, dict), "'metadata' must be an object", design=name)
    tree = UnitTree(name, root, units, declarations, dict(metadata))
    validate_tree(tree)
    return tree


def validate_tree(tree: UnitTree) -> None:
    """Check the tree's structure: root present, children known, no cycles, no clashes."""
    design = tree.name
    _require(tree.root in tree.units, f"root {tree.root!r} is not among the units", design=design)
    for name in tree.units.keys() & tree.declarations.keys():
        raise DesignError("is both implemented and declared", design=design, unit=name)
    for unit_name, unit in tree.units.items():
        _require(
            unit_name.isidentifier(),
            "unit names must be Python identifiers",
            design=design,
            unit=unit_name,
        )
        for slot, child in unit.children.items():
            _require(
                child in tree.units or child in tree.declarations,
                f"child {slot!r} is bound to unknown unit {child!r}; implement or declare it",
                design=design,
                unit=unit_name,
            )
        reserved = CONTEXT_KEYS & unit.hyperparameters.keys()
        _require(
            not reserved,
            f"hyper-parameters {sorted(reserved)} are reserved context names",
            design=design,
            unit=unit_name,
        )
    # cycle detection, depth first from every unit (grey/black marking)
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2 or name not in tree.units:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name) :], name])
            raise DesignError(f"child cycle {cycle}", design=design, unit=name)
        state[name] = 1
        for child in tree.units[name].children.values():
            visit(child, [*trail, name])
        state[name] = 2

    for name in tree.units:
        visit(name, [])


def load_tree(path: str | Path) -> UnitTree:
    """Load a ``design.json`` file, or a single block ``.py`` file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return load_block_file(text, name=path.stem)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DesignError(f"{path} is not valid JSON: {exc}") from None
    return tree_from_json(document)


def unit_class_names(source: str, *, design: str = "", unit: str | None = None) -> list[str]:
    """Names of the classes in ``source`` that subclass ``Unit`` (by syntax, not by running)."""
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        raise DesignError(
            f"syntax error at line {exc.lineno}: {exc.msg}", design=design, unit=unit
        ) from None
    names = []
    for node in module.body:
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(base) for base in node.bases]
            if any(base == "Unit" or base.endswith(".Unit") for base in bases):
                names.append(node.name)
    return names


def load_block_file(source: str, *, name: str) -> UnitTree:
    """A single block file as a one-unit tree (the direct-prompt baseline's format)."""
    classes = unit_class_names(source, design=name)
    if len(classes) != 1:
        raise DesignError(
            f"a block file must define exactly one Unit subclass, found {len(classes)}: {classes}",
            design=name,
        )
    root = classes[0]
    return UnitTree(
        name=name,
        root=root,
        units={root: UnitSpec(source=source)},
        metadata={"format": "block-file"},
    )


__all__ = [
    "FORMAT",
    "Declaration",
    "DesignError",
    "UnitSpec",
    "UnitTree",
    "load_block_file",
    "load_tree",
    "tree_from_json",
    "unit_class_names",
    "validate_tree",
]
