"""Genetic operators on unit trees: mutation, crossover and from-scratch composition.

The offline proposer (:mod:`genesys.agents.offline`) draws its candidates here, with the seed
units of :mod:`genesys.agents.library` as its only vocabulary:

- **mutation** (1 parent): one slot, possibly nested (``seq_mixer.conv``), either gets a
  different unit of the same kind (with default hyper-parameters and default children) or keeps
  its unit with one hyper-parameter moved one step along its grid of allowed values. The grids
  of :data:`~genesys.agents.library.HYPERPARAMETER_VARIANTS` are (close to) geometric, so a
  step multiplies or divides the value by about the same ratio: a search on a log scale, where
  repeated mutations climb towards a better value instead of jumping anywhere. A value off its
  grid (a design written by hand or an LLM) may move to any grid value. Every unit outside
  that slot's subtree is untouched; units no longer reachable are removed.
- **crossover** (2 parents): start from parent ``a`` and graft the subtree bound at one slot of
  parent ``b``, hyper-parameters included, into the same slot; a slot whose graft would change a
  unit ``a`` still uses elsewhere is skipped. The child differs from both parents.
- **scratch** (0 parents): a random ``ResidualBlock`` composition with random allowed
  hyper-parameters.

Each operator returns the new tree and a :class:`Change` saying what it did (for the proposal
text of :mod:`genesys.agents.change_text`). :data:`OPERATORS` and :func:`check_operator` are
the operators' arity, which the LLM sessions check too.

What must stay true:

- operators are pure: the parents are never modified, and the result depends only on the
  parents, the library and the draws of the given ``rng``;
- no torch import, and no design code runs: trees are edited as data;
- :class:`ProposalError` is the only error an operator raises for a parent it cannot change.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesys.agents.library import (
    SLOT_KINDS,
    Library,
    LibraryUnit,
    effective_hyperparameters,
    reachable,
    root_unit,
    sha256_text,
    tree_hash,
    units_of_kind,
)
from genesys_trainer.tree import Declaration, UnitSpec, UnitTree

OPERATORS: dict[str, int] = {"mutation": 1, "crossover": 2, "scratch": 0}
"""Genetic operator -> number of parents it takes."""


class ProposalError(RuntimeError):
    """No new candidate could be generated."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One child binding in a tree: ``owner.children[name] == unit``, reached by ``path``."""

    path: str  # "seq_mixer", "seq_mixer.conv"
    owner: str
    name: str
    unit: str


@dataclass(frozen=True, slots=True)
class Change:
    """What an operator did, for the proposal's title and text."""

    action: str  # replace | perturb | graft | scratch
    summary: str  # one sentence
    title: str
    path: str = ""
    old: str = ""
    new: str = ""
    parameter: str = ""
    units: tuple[str, ...] = ()  # units placed by the change


# ---------------------------------------------------------------- tree helpers


def tree_slots(tree: UnitTree) -> list[Slot]:
    """Every child binding reachable from the root, depth first, in declaration order."""
    found: list[Slot] = []

    def visit(owner: str, prefix: str, trail: frozenset[str]) -> None:
        for name, child in tree.units[owner].children.items():
            path = f"{prefix}.{name}" if prefix else name
            found.append(Slot(path, owner, name, child))
            if child in tree.units and child not in trail:
                visit(child, path, trail | {child})

    visit(tree.root, "", frozenset({tree.root}))
    return found


def _pruned(tree: UnitTree) -> UnitTree:
    """A copy without the units and declarations the root no longer reaches."""
    keep = set(reachable(tree))
    return UnitTree(
        name=tree.name,
        root=tree.root,
        units={n: copy.deepcopy(u) for n, u in tree.units.items() if n in keep},
        declarations={n: copy.deepcopy(d) for n, d in tree.declarations.items() if n in keep},
        metadata=copy.deepcopy(tree.metadata),
    )


def _content(tree: UnitTree, name: str) -> tuple[Any, ...] | None:
    """What a name stands for in a tree (None when absent), comparable across trees."""
    unit = tree.units.get(name)
    if unit is not None:
        hyper = effective_hyperparameters(unit.source, unit.hyperparameters)
        return (
            "unit",
            sha256_text(unit.source),
            sorted(unit.children.items()),
            sorted(hyper.items()),
        )
    if name in tree.declarations:
        return ("declared",)
    return None


def _binding_count(tree: UnitTree, name: str) -> int:
    return sum(1 for slot in tree_slots(tree) if slot.unit == name)


def _reachable_without(tree: UnitTree, cut: Slot) -> set[str]:
    """Names the root reaches without passing through the binding ``cut``."""
    return set(reachable(tree, cut=(cut.owner, cut.name)))


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _format_hyperparameters(hyper: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_format_value(v)}" for k, v in sorted(hyper.items()))


def _unit_label(tree: UnitTree, name: str) -> str:
    """``Name(param=value, ...)`` with the explicit hyper-parameters, or just ``Name``."""
    unit = tree.units.get(name)
    hyper = _format_hyperparameters(unit.hyperparameters) if unit is not None else ""
    return f"{name}({hyper})" if hyper else name


# ---------------------------------------------------------------- library placement


def _library_subtree(library: Library, name: str) -> list[str]:
    """A library unit and its default children, recursively."""
    names = [name]
    for child in library[name].children.values():
        if child in library and child not in names:
            names.extend(n for n in _library_subtree(library, child) if n not in names)
    return names


def _matches_library(tree: UnitTree, name: str, library: Library) -> bool:
    unit = tree.units.get(name)
    return unit is not None and name in library and unit.source == library[name].source


def _is_library_default(tree: UnitTree, name: str, library: Library) -> bool:
    """True when ``name`` in the tree is exactly the library unit with default settings."""
    if not _matches_library(tree, name, library):
        return False
    unit, entry = tree.units[name], library[name]
    hyper = effective_hyperparameters(unit.source, unit.hyperparameters)
    return unit.children == entry.children and hyper == entry.defaults


def _install(
    tree: UnitTree,
    name: str,
    library: Library,
    choose: Callable[[LibraryUnit], dict[str, Any]],
) -> None:
    """Add a library unit and its default children to ``tree`` (in place) where absent."""
    if name in tree.units:
        return
    entry = library[name]
    tree.units[name] = UnitSpec(
        source=entry.source,
        children=dict(entry.children),
        hyperparameters=choose(entry),
        requirements=entry.requirements,
    )
    for child in entry.children.values():
        _install(tree, child, library, choose)


def _defaults(entry: LibraryUnit) -> dict[str, Any]:
    del entry
    return {}


def _random_choice(rng: random.Random) -> Callable[[LibraryUnit], dict[str, Any]]:
    def choose(entry: LibraryUnit) -> dict[str, Any]:
        return {p: rng.choice(v) for p, v in sorted(entry.hyperparameter_choices.items())}

    return choose


# ---------------------------------------------------------------- mutation


def _replacements(tree: UnitTree, slot: Slot, library: Library) -> list[str]:
    """Library units that may take ``slot``'s place: same kind, placeable with defaults."""
    kind = SLOT_KINDS.get(slot.name)
    if kind is None:
        return []
    return [
        name
        for name in units_of_kind(library, kind)
        if name != slot.unit
        and all(
            n not in tree.declarations
            and (n not in tree.units or _is_library_default(tree, n, library))
            for n in _library_subtree(library, name)
        )
    ]


def grid_steps(grid: Sequence[Any], current: Any) -> list[Any]:
    """The grid values one step below and above ``current``; every grid value when it is off."""
    ordered = sorted(grid)
    if current not in ordered:
        return ordered
    index = ordered.index(current)
    return [ordered[i] for i in (index - 1, index + 1) if 0 <= i < len(ordered)]


def _perturbations(tree: UnitTree, slot: Slot, library: Library) -> list[tuple[str, Any]]:
    """(hyper-parameter, one step on its grid) pairs for the unit at ``slot``, if alone there."""
    if not _matches_library(tree, slot.unit, library) or _binding_count(tree, slot.unit) != 1:
        return []
    unit = tree.units[slot.unit]
    current = effective_hyperparameters(unit.source, unit.hyperparameters)
    choices = library[slot.unit].hyperparameter_choices
    return [
        (parameter, value)
        for parameter, values in sorted(choices.items())
        for value in grid_steps(values, current.get(parameter))
    ]


def _replace(tree: UnitTree, slot: Slot, name: str, library: Library) -> UnitTree:
    child = copy.deepcopy(tree)
    child.units[slot.owner].children[slot.name] = name
    _install(child, name, library, _defaults)
    return _pruned(child)


def _perturb(tree: UnitTree, slot: Slot, parameter: str, value: Any) -> UnitTree:
    child = copy.deepcopy(tree)
    child.units[slot.unit].hyperparameters[parameter] = value
    return child


def _mutate(parent: UnitTree, rng: random.Random, library: Library) -> tuple[UnitTree, Change]:
    options = [
        (slot, _replacements(parent, slot, library), _perturbations(parent, slot, library))
        for slot in tree_slots(parent)
    ]
    options = [option for option in options if option[1] or option[2]]
    if not options:
        raise ProposalError(f"no slot of {parent.name!r} can be mutated with the library")
    slot, replacements, perturbations = rng.choice(options)
    if replacements and (not perturbations or rng.random() < 0.5):
        name = rng.choice(replacements)
        child = _replace(parent, slot, name, library)
        placed = tuple(n for n in reachable(child, name) if n not in parent.units)
        extra = [f"{s}: {c}" for s, c in child.units[name].children.items()]
        with_children = f" (with {', '.join(extra)})" if extra else ""
        return child, Change(
            action="replace",
            summary=f"Replaced {slot.unit} with {name}{with_children} at {slot.path}, "
            "keeping every other unit of the parent.",
            title=f"{name} as the {slot.path} of {parent.name}",
            path=slot.path,
            old=slot.unit,
            new=name,
            units=placed or (name,),
        )
    parameter, value = rng.choice(perturbations)
    unit = parent.units[slot.unit]
    before = effective_hyperparameters(unit.source, unit.hyperparameters).get(parameter)
    return _perturb(parent, slot, parameter, value), Change(
        action="perturb",
        summary=f"Changed {slot.unit}.{parameter} from {_format_value(before)} to "
        f"{_format_value(value)} at {slot.path}, keeping every other unit of the parent.",
        title=f"{parent.name} with {slot.unit} {parameter}={_format_value(value)}",
        path=slot.path,
        old=slot.unit,
        new=slot.unit,
        parameter=parameter,
        units=(slot.unit,),
    )


def mutate(parent: UnitTree, rng: random.Random, library: Library) -> tuple[UnitTree, str]:
    """Change one slot of ``parent``: swap its unit, or move one hyper-parameter."""
    child, change = _mutate(parent, rng, library)
    return child, change.summary


# ---------------------------------------------------------------- crossover


def _graft(a: UnitTree, b: UnitTree, a_slot: Slot, b_slot: Slot) -> UnitTree | None:
    """``a`` with ``b``'s subtree at the slot; None when that would change a unit ``a`` keeps."""
    donated = reachable(b, b_slot.unit)
    outside = _reachable_without(a, a_slot)
    for name in donated:
        mine = _content(a, name)
        if mine is not None and mine != _content(b, name) and name in outside:
            return None
    child = copy.deepcopy(a)
    child.units[a_slot.owner].children[a_slot.name] = b_slot.unit
    for name in donated:
        child.units.pop(name, None)
        child.declarations.pop(name, None)
        if name in b.units:
            child.units[name] = copy.deepcopy(b.units[name])
        else:
            child.declarations[name] = copy.deepcopy(b.declarations.get(name, Declaration()))
    return _pruned(child)


def _kind_fits(library: Library, slot: Slot, unit: str) -> bool:
    """False only when the library knows ``unit`` as a kind the slot does not take."""
    kind = SLOT_KINDS.get(slot.name)
    return unit not in library or kind is None or library[unit].kind == kind


def _crossover(
    a: UnitTree, b: UnitTree, rng: random.Random, library: Library
) -> tuple[UnitTree, Change]:
    donors = {slot.path: slot for slot in tree_slots(b)}
    pairs = [
        (slot, donors[slot.path])
        for slot in tree_slots(a)
        if slot.path in donors and _kind_fits(library, slot, donors[slot.path].unit)
    ]
    rng.shuffle(pairs)
    parent_hashes = {tree_hash(a), tree_hash(b)}
    for a_slot, b_slot in pairs:
        child = _graft(a, b, a_slot, b_slot)
        if child is None or tree_hash(child) in parent_hashes:
            continue
        label = _unit_label(b, b_slot.unit)
        return child, Change(
            action="graft",
            summary=f"Grafted {label} from {b.name} into {a.name} at {a_slot.path} "
            f"(replacing {_unit_label(a, a_slot.unit)}), keeping the rest of {a.name}.",
            title=f"{a.name} x {b.name}: {b_slot.unit} as the {a_slot.path}",
            path=a_slot.path,
            old=a_slot.unit,
            new=b_slot.unit,
            units=tuple(reachable(b, b_slot.unit)),
        )
    raise ProposalError(f"no slot of {b.name!r} grafts into {a.name!r} to give a new design")


def crossover(
    a: UnitTree, b: UnitTree, rng: random.Random, library: Library
) -> tuple[UnitTree, str]:
    """``a`` with the subtree of one of ``b``'s slots grafted in; differs from both parents."""
    child, change = _crossover(a, b, rng, library)
    return child, change.summary


# ---------------------------------------------------------------- scratch


def _scratch(rng: random.Random, library: Library) -> tuple[UnitTree, Change]:
    root = root_unit(library)
    tree = UnitTree(
        name="scratch",
        root=root.name,
        units={root.name: UnitSpec(source=root.source, requirements=root.requirements)},
    )
    choose = _random_choice(rng)
    for slot in root.children:
        name = rng.choice(units_of_kind(library, SLOT_KINDS[slot]))
        tree.units[root.name].children[slot] = name
        _install(tree, name, library, choose)
    parts = [f"{s.path}={_unit_label(tree, s.unit)}" for s in tree_slots(tree)]
    mixers = [tree.units[root.name].children[s] for s in ("seq_mixer", "channel_mixer")]
    return tree, Change(
        action="scratch",
        summary=f"Composed a new {root.name} from scratch: {'; '.join(parts)}.",
        title=f"Scratch: {' + '.join(mixers)}",
        units=tuple(n for n in reachable(tree) if n != root.name),
    )


def scratch(rng: random.Random, library: Library) -> tuple[UnitTree, str]:
    """A random valid block: random norms, mixers and allowed hyper-parameters."""
    tree, change = _scratch(rng, library)
    return tree, change.summary


# ---------------------------------------------------------------- dispatch


def check_operator(operator: str, parents: int) -> None:
    """Raise ValueError unless ``operator`` is known and takes ``parents`` parents."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; expected one of {sorted(OPERATORS)}")
    if OPERATORS[operator] != parents:
        raise ValueError(f"{operator} takes {OPERATORS[operator]} parent(s), got {parents}")


def generate(
    operator: str, parents: Sequence[UnitTree], rng: random.Random, library: Library
) -> tuple[UnitTree, Change]:
    """The candidate ``operator`` makes of ``parents`` (crossover draws which is ``a``)."""
    if operator == "mutation":
        return _mutate(parents[0], rng, library)
    if operator == "crossover":
        a, b = parents[0], parents[1]
        if rng.random() < 0.5:
            a, b = b, a
        return _crossover(a, b, rng, library)
    return _scratch(rng, library)


__all__ = [
    "OPERATORS",
    "Change",
    "ProposalError",
    "Slot",
    "check_operator",
    "crossover",
    "generate",
    "grid_steps",
    "mutate",
    "scratch",
    "tree_slots",
]
