"""Pure operations on unit trees for the LLM design flows: selection, protection, grafting.

The unit-by-unit flow (:mod:`genesys.agents.session`) grows a design one unit per round. These
functions decide what a round may change and apply an accepted unit to a tree:

- :func:`resolve_selection`: the unit a mutation proposal selected, as a binding ``(owner,
  slot)`` (``None`` for the root), from a unit name or a slot path such as ``channel_mixer`` or
  ``block.seq_mixer.conv``;
- :func:`protected_units`: in mutation mode, every unit still reachable when the selected
  binding is cut; the coder may reuse them as they are but never rewrite them;
- :func:`declared_children`: the ``CHILDREN`` of a unit source, read from its syntax tree;
- :func:`apply_unit`: a new tree with one written unit bound in, its children bound to units of
  the tree, to units imported (with their subtrees) from a pool, or to new declarations;
- :func:`pending_units`: the declared, not yet implemented units the root still reaches.

What must stay true: nothing here executes design code or imports torch; every function returns
a new tree and leaves its arguments unchanged; a protocol violation raises
:class:`TreeEditError` with a message written for the coder, saying how to fix it.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genesys.agents.library import reachable
from genesys_trainer.tree import Declaration, DesignError, UnitSpec, UnitTree, validate_tree

ROOT_PATH = "block"


class TreeEditError(ValueError):
    """A written unit cannot be applied to the tree; the message tells the coder why."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The binding a mutation rewrites: ``owner.slot`` (``owner`` None: the root itself)."""

    owner: str | None
    slot: str | None
    unit: str
    path: str


@dataclass(frozen=True, slots=True)
class ChildSlot:
    """One ``ChildDecl`` of a unit source."""

    name: str
    requirements: str = ""
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(slots=True)
class WrittenUnit:
    """What the coder wrote for one unit: source, bindings, hyper-parameters, tests."""

    name: str
    source: str
    children: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    requirements: str = ""
    tests: str = ""


# ------------------------------------------------------------------------------- selection


def binding_paths(tree: UnitTree) -> dict[str, tuple[str | None, str | None, str]]:
    """Slot path -> (owner, slot, unit) for every binding, the root as ``block``."""
    paths: dict[str, tuple[str | None, str | None, str]] = {ROOT_PATH: (None, None, tree.root)}
    stack: list[tuple[str, str]] = [(ROOT_PATH, tree.root)]
    seen: set[str] = set()
    while stack:
        path, name = stack.pop()
        unit = tree.units.get(name)
        if unit is None or path in seen:
            continue
        seen.add(path)
        for slot, child in unit.children.items():
            child_path = f"{path}.{slot}"
            paths[child_path] = (name, slot, child)
            stack.append((child_path, child))
    return paths


def resolve_selection(tree: UnitTree, selected: str) -> Selection:
    """The binding named by a unit name or a slot path; raise TreeEditError when none is."""
    text = selected.strip().strip("`")
    paths = binding_paths(tree)
    candidates = [text, f"{ROOT_PATH}.{text}"]
    for candidate in candidates:
        if candidate in paths:
            owner, slot, unit = paths[candidate]
            return Selection(owner, slot, unit, candidate)
    for path in sorted(paths, key=lambda p: (p.count("."), p)):  # shallowest first
        owner, slot, unit = paths[path]
        if unit == text:
            return Selection(owner, slot, unit, path)
    names = sorted({unit for _, _, unit in paths.values()})
    raise TreeEditError(
        f"selected unit {selected!r} is not in the parent; choose one of the units {names} "
        f"or slot paths {sorted(paths)}"
    )


def protected_units(tree: UnitTree, selection: Selection) -> set[str]:
    """Units reachable without passing through the selected binding (never rewritten)."""
    if selection.owner is None or selection.slot is None:
        return set()
    return set(reachable(tree, cut=(selection.owner, selection.slot)))


# ------------------------------------------------------------------------------ unit source


def _string(node: ast.expr | None) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _strings(node: ast.expr | None) -> tuple[str, ...]:
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_string(element) for element in node.elts if _string(element))
    return ()


def _child_slot(call: ast.Call) -> ChildSlot | None:
    fields: dict[str, ast.expr | None] = {"name": None, "requirements": None}
    fields.update({"inputs": None, "outputs": None})
    for key, value in zip(("name", "requirements", "inputs", "outputs"), call.args, strict=False):
        fields[key] = value
    for keyword in call.keywords:
        if keyword.arg in fields:
            fields[keyword.arg] = keyword.value
    name = _string(fields["name"])
    if not name:
        return None
    return ChildSlot(
        name,
        _string(fields["requirements"]),
        _strings(fields["inputs"]),
        _strings(fields["outputs"]),
    )


def declared_children(source: str) -> list[ChildSlot]:
    """The ``CHILDREN`` declarations of the Unit class in ``source`` (syntax only)."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    for node in ast.walk(module):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        if value is None or not any(
            isinstance(t, ast.Name) and t.id == "CHILDREN" for t in targets
        ):
            continue
        elements = value.elts if isinstance(value, ast.Tuple | ast.List) else []
        slots = [_child_slot(e) for e in elements if isinstance(e, ast.Call)]
        return [slot for slot in slots if slot is not None]
    return []


# ----------------------------------------------------------------------------------- editing


def pending_units(tree: UnitTree) -> list[str]:
    """Declared units the root reaches, in depth-first order."""
    return [name for name in reachable(tree) if name in tree.declarations]


def prune(tree: UnitTree) -> UnitTree:
    """A copy of ``tree`` without the units and declarations the root no longer reaches."""
    keep = set(reachable(tree))
    return UnitTree(
        tree.name,
        tree.root,
        {name: copy.deepcopy(unit) for name, unit in tree.units.items() if name in keep},
        {name: copy.deepcopy(d) for name, d in tree.declarations.items() if name in keep},
        copy.deepcopy(tree.metadata),
    )


def _import(tree: UnitTree, pool_tree: UnitTree, name: str) -> None:
    """Copy ``name`` and its subtree from ``pool_tree`` into ``tree`` (in place)."""
    for item in reachable(pool_tree, name):
        if item in pool_tree.units:
            incoming = pool_tree.units[item]
            present = tree.units.get(item)
            if present is not None:
                if present.source != incoming.source or present.children != incoming.children:
                    raise TreeEditError(
                        f"cannot reuse {name!r}: its part {item!r} clashes with the design's own "
                        f"{item!r}; write a unit with a new name instead"
                    )
                continue
            tree.declarations.pop(item, None)
            tree.units[item] = copy.deepcopy(incoming)
        elif item in pool_tree.declarations and item not in tree.units:
            tree.declarations.setdefault(item, copy.deepcopy(pool_tree.declarations[item]))


def _bind_children(
    tree: UnitTree, written: WrittenUnit, pool: Mapping[str, UnitTree]
) -> dict[str, str]:
    slots = declared_children(written.source)
    slot_names = [slot.name for slot in slots]
    unknown = sorted(set(written.children) - set(slot_names))
    if unknown:
        raise TreeEditError(
            f"children {unknown} are bound but not declared in CHILDREN {slot_names}; "
            "bind exactly the declared child slots"
        )
    bindings: dict[str, str] = {}
    for slot in slots:
        child = written.children.get(slot.name, "").strip()
        if not child:
            raise TreeEditError(
                f'child slot {slot.name!r} is not bound: give it a unit name in "children"'
            )
        if not child.isidentifier():
            raise TreeEditError(f"child {slot.name!r} is bound to {child!r}, not an identifier")
        if child == written.name:
            raise TreeEditError(f"child {slot.name!r} is bound to the unit itself (a cycle)")
        if child in tree.units or child in tree.declarations:
            pass  # reuse a unit of the design as it is (protected units included)
        elif child in pool:
            _import(tree, pool[child], child)
        else:
            tree.declarations[child] = Declaration(
                slot.requirements or f"child {slot.name} of {written.name}",
                list(slot.inputs),
                list(slot.outputs),
            )
        bindings[slot.name] = child
    return bindings


def apply_unit(
    tree: UnitTree | None,
    written: WrittenUnit,
    *,
    target: str,
    selection: Selection | None = None,
    protected: set[str] | None = None,
    pool: Mapping[str, UnitTree] | None = None,
    name: str = "design",
) -> UnitTree:
    """A new tree with ``written`` implementing ``target``; raise TreeEditError on a violation.

    ``target`` is a pending declaration, or (mutation, first round) the selected unit, or (an
    empty tree) the root. In mutation mode the written unit may take a new name: the selected
    binding is re-pointed to it, and units only the old one used are dropped.
    """
    protected = protected or set()
    pool = pool or {}
    if not written.name.isidentifier():
        raise TreeEditError(f"unit name {written.name!r} is not a Python identifier")
    if written.name in protected:
        raise TreeEditError(
            f"{written.name!r} is protected: it is used outside the unit this mutation changes; "
            "give the new unit a new name"
        )
    rewriting = selection is not None and target == selection.unit
    if tree is None:
        new = UnitTree(name, written.name, {}, {}, {})
    else:
        new = prune(tree)
        if not rewriting and written.name != target:
            raise TreeEditError(
                f"the unit must be named {target!r} (it is declared under that name), "
                f"not {written.name!r}"
            )
        if written.name in new.units and written.name != target:
            raise TreeEditError(
                f"{written.name!r} already exists in the design; pick a new name for the unit"
            )
    if rewriting and selection is not None and tree is not None:
        if selection.owner is None:
            new.root = written.name
        else:
            new.units[selection.owner].children[selection.slot or ""] = written.name
        if written.name != target and target not in protected:
            new.units.pop(target, None)
    new.declarations.pop(written.name, None)
    new.units[written.name] = UnitSpec(
        written.source, {}, dict(written.hyperparameters), written.requirements
    )
    new.units[written.name].children = _bind_children(new, written, pool)
    new = prune(new)
    try:
        validate_tree(new)
    except DesignError as exc:
        raise TreeEditError(str(exc)) from None
    return new


def pool_of(trees: Mapping[str, UnitTree], exclude: set[str] | None = None) -> dict[str, UnitTree]:
    """Unit name -> the first tree (in the given order) implementing it, for reuse."""
    pool: dict[str, UnitTree] = {}
    for tree in trees.values():
        for unit in tree.units:
            if exclude is None or unit not in exclude:
                pool.setdefault(unit, tree)
    return pool


__all__ = [
    "ROOT_PATH",
    "ChildSlot",
    "Selection",
    "TreeEditError",
    "WrittenUnit",
    "apply_unit",
    "binding_paths",
    "declared_children",
    "pending_units",
    "pool_of",
    "protected_units",
    "prune",
    "resolve_selection",
]
