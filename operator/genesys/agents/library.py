"""The unit library of the offline proposer: the seed units by kind, with hyper-parameter variants.

The library is read from the five seed designs: every unit a seed binds to a slot gets that
slot's kind (``SLOT_KINDS``), the seeds' root gets the kind ``"block"``, and each unit keeps the
child bindings it has in its seed (``TTTLinear`` keeps ``conv -> CausalConv``). Hyper-parameter
variants come from ``HYPERPARAMETER_VARIANTS``, checked against the keyword defaults of each
unit's ``__init__`` as parsed from its source (nothing is executed).

:func:`structural_hash` identifies a design by what it builds: the root and, for every unit
reachable from it, the sha256 of its source, its child bindings and its effective
hyper-parameters (the ``__init__`` defaults overridden by the explicit ones), as canonical JSON.

What must stay true:
- This module never imports torch; it reads seed trees and parses unit sources only.
- Every variant tuple contains the unit's own default, and names a real keyword of its
  ``__init__`` (``build_library`` raises ``LibraryError`` otherwise).
- Units without hyper-parameters, and ``RMSNorm``, are never perturbed.
- :func:`dead_parameters` names every norm whose output only a ``ZeroMixer`` reads (its
  parameters would get no gradient, which the ``differentiability`` check fails).
- Identical trees hash identically, whatever their name, metadata, requirements or unit order.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from genesys_trainer.seeds import SEEDS, load_seed, unit_source
from genesys_trainer.tree import CONTEXT_KEYS, UnitTree, tree_from_json

BLOCK_KIND = "block"

SLOT_KINDS: dict[str, str] = {
    "seq_norm": "norm",
    "channel_norm": "norm",
    "seq_mixer": "seq_mixer",
    "channel_mixer": "channel_mixer",
    "conv": "conv",
}
"""Child slot name -> the kind of unit it takes; units move only between slots of one kind."""

HYPERPARAMETER_VARIANTS: dict[str, dict[str, tuple[Any, ...]]] = {
    # -- channel mixers: hidden width relative to d_model
    "SwiGLUMLP": {"hidden_ratio": (2.0, 8 / 3, 3.0, 4.0)},
    "RetNetMLP": {"hidden_ratio": (2.0, 3.0)},
    "RWKV6ChannelMix": {"hidden_ratio": (2.5, 3.5)},
    # -- sequence mixers
    "RotaryMHA": {"rotary_base": (10000.0, 500000.0)},
    "Mamba2Mixer": {"d_state": (8, 16, 32, 64), "expand": (1, 2)},
    "TTTLinear": {"mini_batch": (16, 32)},
    "MultiScaleRetention": {"value_factor": (1, 2)},
    "RWKV6TimeMix": {"mix_rank": (16, 32)},
    # -- nested children
    "CausalConv": {"kernel_size": (3, 4, 6)},
}
"""Unit name -> hyper-parameter -> the values mutation and scratch may choose."""

NORM_BEFORE: dict[str, str] = {"seq_mixer": "seq_norm", "channel_mixer": "channel_norm"}
"""Mixer slot -> the norm slot whose output that mixer reads (the seeds' ``ResidualBlock``)."""

INPUT_IGNORING_UNITS = frozenset({"ZeroMixer"})
"""Library units whose output does not depend on their input."""

PARAMETER_FREE_UNITS = frozenset({"Identity", "ZeroMixer"})
"""Library units that hold no parameters."""


class LibraryError(ValueError):
    """The library disagrees with the seed units it is built from."""


@dataclass(frozen=True)
class LibraryUnit:
    """One unit the proposer can place: its kind, variants, default children and source."""

    name: str
    kind: str  # a value of SLOT_KINDS, or "block" for the root
    hyperparameter_choices: dict[str, tuple[Any, ...]]
    children: dict[str, str]  # slot -> unit bound there by default
    source: str = ""
    requirements: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)  # __init__ keyword defaults (parsed)


Library = Mapping[str, LibraryUnit]


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- parsing __init__ defaults

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _constant(node: ast.expr) -> Any:
    """The value of a literal default (numbers, strings, simple arithmetic); ValueError else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _constant(node.operand)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_constant(node.left), _constant(node.right))
    raise ValueError(f"not a literal: {ast.unparse(node)}")


def _is_unit_class(node: ast.ClassDef) -> bool:
    bases = [ast.unparse(base) for base in node.bases]
    return any(base == "Unit" or base.endswith(".Unit") for base in bases)


def _init_function(source: str) -> ast.FunctionDef | None:
    """The ``__init__`` of the source's Unit subclass, if it defines one."""
    try:
        module = ast.parse(source)
    except SyntaxError:
        return None
    for node in module.body:
        if isinstance(node, ast.ClassDef) and _is_unit_class(node):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return item
    return None


def init_defaults(source: str) -> dict[str, Any]:
    """Keyword defaults of the Unit subclass's ``__init__`` in ``source``, literals only."""
    return dict(_parsed_defaults(source))


@functools.lru_cache(maxsize=512)
def _parsed_defaults(source: str) -> tuple[tuple[str, Any], ...]:
    """Parsed once per source text (hashing parses every unit of every candidate)."""
    function = _init_function(source)
    if function is None:
        return ()
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    pairs: list[tuple[str, ast.expr | None]] = [
        (arg.arg, default)
        for arg, default in zip(
            positional[len(positional) - len(arguments.defaults) :],
            arguments.defaults,
            strict=True,
        )
    ]
    pairs += [
        (arg.arg, d) for arg, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    defaults: dict[str, Any] = {}
    for name, node in pairs:
        if node is None or name in CONTEXT_KEYS:
            continue
        try:
            defaults[name] = _constant(node)
        except (ValueError, TypeError, ZeroDivisionError):
            continue
    return tuple(defaults.items())


# ---------------------------------------------------------------- building the library


def _seed_bindings(tree: UnitTree) -> Iterator[tuple[str, str]]:
    """(unit name, kind) for every unit of a seed tree, the root first."""
    yield tree.root, BLOCK_KIND
    for unit in tree.units.values():
        for slot, child in unit.children.items():
            if slot not in SLOT_KINDS:
                raise LibraryError(f"seed {tree.name!r}: slot {slot!r} has no kind in SLOT_KINDS")
            yield child, SLOT_KINDS[slot]


def _choices(name: str, defaults: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    choices: dict[str, tuple[Any, ...]] = {}
    for parameter, values in HYPERPARAMETER_VARIANTS.get(name, {}).items():
        if parameter not in defaults:
            raise LibraryError(f"{name}.__init__ has no keyword default {parameter!r}")
        if defaults[parameter] not in values:
            raise LibraryError(
                f"{name}.{parameter}: the variants {values} miss the default {defaults[parameter]}"
            )
        choices[parameter] = tuple(values)
    return choices


def build_library() -> dict[str, LibraryUnit]:
    """Every unit of the seed designs, by name, with its kind and hyper-parameter variants."""
    kinds: dict[str, str] = {}
    children: dict[str, dict[str, str]] = {}
    requirements: dict[str, str] = {}
    for seed in SEEDS:
        tree = load_seed(seed)
        for name, kind in _seed_bindings(tree):
            if kinds.setdefault(name, kind) != kind:
                raise LibraryError(f"unit {name!r} is both {kinds[name]!r} and {kind!r}")
            spec = tree.units[name]
            if name == tree.root:
                children.setdefault(name, dict(spec.children))
            elif children.setdefault(name, dict(spec.children)) != spec.children:
                raise LibraryError(f"unit {name!r} has different children in different seeds")
            requirements.setdefault(name, spec.requirements)
    library: dict[str, LibraryUnit] = {}
    for name in sorted(kinds):
        source = unit_source(name)
        defaults = init_defaults(source)
        library[name] = LibraryUnit(
            name=name,
            kind=kinds[name],
            hyperparameter_choices=_choices(name, defaults),
            children=children[name],
            source=source,
            requirements=requirements[name],
            defaults=defaults,
        )
    return library


def units_of_kind(library: Library, kind: str) -> list[str]:
    """Names of the library's units of one kind, sorted."""
    return sorted(name for name, unit in library.items() if unit.kind == kind)


def root_unit(library: Library) -> LibraryUnit:
    """The library's block unit (the root every seed shares)."""
    roots = units_of_kind(library, BLOCK_KIND)
    if len(roots) != 1:
        raise LibraryError(f"expected one block unit, found {roots}")
    return library[roots[0]]


def _is_library_unit(tree: UnitTree, name: str | None, library: Library) -> bool:
    if name is None or name not in tree.units or name not in library:
        return False
    return tree.units[name].source == library[name].source


def dead_parameters(tree: UnitTree, library: Library) -> list[str]:
    """Norms whose parameters can get no gradient: they feed a mixer that ignores its input.

    The ``differentiability`` check rejects such a design (a ``RMSNorm`` before a
    ``ZeroMixer``), so the proposer skips it instead of spending a sandbox run on it.
    """
    found: list[str] = []
    for owner in reachable(tree):
        unit = tree.units.get(owner)
        if unit is None:
            continue
        for mixer_slot, norm_slot in NORM_BEFORE.items():
            mixer, norm = unit.children.get(mixer_slot), unit.children.get(norm_slot)
            if norm is None or not _is_library_unit(tree, mixer, library):
                continue
            if mixer in INPUT_IGNORING_UNITS and not (
                _is_library_unit(tree, norm, library) and norm in PARAMETER_FREE_UNITS
            ):
                found.append(f"{owner}.{norm_slot} ({norm}) feeds {mixer}, which ignores it")
    return found


# ---------------------------------------------------------------- structural hash


def effective_hyperparameters(source: str, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The ``__init__`` keyword defaults parsed from ``source``, overridden by ``explicit``."""
    return {**init_defaults(source), **explicit}


def reachable(
    tree: UnitTree, start: str | None = None, *, cut: tuple[str, str] | None = None
) -> list[str]:
    """Names (units and declarations) reachable from ``start`` (the root), depth first.

    ``cut`` = (owner unit, slot) is a binding the walk does not follow.
    """
    order: list[str] = []
    stack = [tree.root if start is None else start]
    while stack:
        name = stack.pop()
        if name in order:
            continue
        order.append(name)
        unit = tree.units.get(name)
        if unit is not None:
            stack.extend(
                child
                for slot, child in reversed(list(unit.children.items()))
                if (name, slot) != cut
            )
    return order


def canonical_structure(tree: UnitTree) -> dict[str, Any]:
    """What a tree builds, keyed by unit name: source hash, children, effective hyper-params."""
    units: dict[str, Any] = {}
    for name in reachable(tree):
        unit = tree.units.get(name)
        if unit is None:
            units[name] = {"declared": True}
            continue
        units[name] = {
            "source": sha256_text(unit.source),
            "children": dict(sorted(unit.children.items())),
            "hyperparameters": dict(
                sorted(effective_hyperparameters(unit.source, unit.hyperparameters).items())
            ),
        }
    return {"root": tree.root, "units": dict(sorted(units.items()))}


def tree_hash(tree: UnitTree) -> str:
    """The structural hash of a tree (see :func:`structural_hash`)."""
    text = json.dumps(canonical_structure(tree), sort_keys=True, separators=(",", ":"))
    return sha256_text(text)


def structural_hash(document: Mapping[str, Any]) -> str:
    """sha256 of what a ``design.json`` document builds; metadata and name do not count."""
    tree = tree_from_json({**document, "name": document.get("name") or "design"})
    return tree_hash(tree)


__all__ = [
    "BLOCK_KIND",
    "HYPERPARAMETER_VARIANTS",
    "INPUT_IGNORING_UNITS",
    "NORM_BEFORE",
    "PARAMETER_FREE_UNITS",
    "SLOT_KINDS",
    "Library",
    "LibraryError",
    "LibraryUnit",
    "build_library",
    "canonical_structure",
    "dead_parameters",
    "effective_hyperparameters",
    "init_defaults",
    "reachable",
    "root_unit",
    "sha256_text",
    "structural_hash",
    "tree_hash",
    "units_of_kind",
]
