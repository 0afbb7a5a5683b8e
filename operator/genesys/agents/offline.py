"""The offline proposer: genetic programming on unit trees, with no LLM.

It plays the proposer and coder of a Genesys design session with the
seed units of :mod:`genesys.agents.library` as its only vocabulary:

- **mutation** (1 parent): one slot, possibly nested (``seq_mixer.conv``), either gets a
  different unit of the same kind (with default hyper-parameters and default children) or keeps
  its unit with one hyper-parameter moved to another allowed value. Every unit outside that
  slot's subtree is untouched; units no longer reachable are removed.
- **crossover** (2 parents): start from parent ``a`` and graft the subtree bound at one slot of
  parent ``b``, hyper-parameters included, into the same slot; a slot whose graft would change a
  unit ``a`` still uses elsewhere is skipped. The child differs from both parents.
- **scratch** (0 parents): a random ``ResidualBlock`` composition with random allowed
  hyper-parameters.

:func:`propose` retries until the candidate's structural hash is new to the run (skipping
candidates with :func:`~genesys.agents.library.dead_parameters`, which the checks would reject);
:func:`run_offline_session` runs one session against a store, checking each candidate in the
sandbox. Keys it writes in the run's store (documents of :mod:`genesys.store.documents`)::

    hashes/<hash>.json                 the candidate's claim on its structural hash
    designs/<id>/design.json           metadata: title, operator, parents, proposal, hash, seq,
                                       session, rating (None)
    designs/<id>/proposal.md           the generated proposal text
    designs/<id>/checks/<rung>.json    the passing check report
    rejected/<id>-c<k>.json            candidate k failed its checks: reason, check, hash, report
    sessions/<session>/session.json    status (implemented | failed), design, reason, candidates

What must stay true:
- No torch import; design code runs only in the sandbox child (:func:`check_design`).
- A session is deterministic given its seed and the store's contents, and idempotent: when its
  ``session.json`` exists, the recorded outcome is returned and nothing is written.
- Every candidate claims its structural hash before it is checked
  (:func:`~genesys.store.claims.claim_hash`), so sessions running in parallel never check or
  verify the same design twice: the one that loses the claim moves on to another candidate.
- ``session.json`` is written last; ``design.json`` is written after its proposal and checks.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesys.agents.library import (
    SLOT_KINDS,
    Library,
    LibraryUnit,
    build_library,
    dead_parameters,
    effective_hyperparameters,
    reachable,
    root_unit,
    sha256_text,
    structural_hash,
    tree_hash,
    units_of_kind,
)
from genesys.api.discoveryrun import Checks
from genesys.api.ladder import RungConfig
from genesys.sandbox.runner import SandboxLimits, check_design, check_settings, limits_from_checks
from genesys.store.archive import design_key, hash_key, rejection_key, session_key
from genesys.store.base import Store
from genesys.store.claims import claim_hash
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    RejectionRecord,
    SessionOutcome,
    create_document,
    plain,
    read_document,
    write_document,
)
from genesys_trainer.tree import Declaration, UnitSpec, UnitTree, tree_from_json

OPERATORS: dict[str, int] = {"mutation": 1, "crossover": 2, "scratch": 0}
"""Genetic operator -> number of parents it takes."""


class ProposalError(RuntimeError):
    """No new candidate could be generated."""


@dataclass
class Proposal:
    """A candidate design: its ``design.json`` document and the generated proposal."""

    document: dict[str, Any]
    title: str
    text: str
    operator: str
    parents: list[str]
    hash: str


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


def _perturbations(tree: UnitTree, slot: Slot, library: Library) -> list[tuple[str, Any]]:
    """(hyper-parameter, new value) pairs for the unit bound at ``slot``, if it is alone there."""
    if not _matches_library(tree, slot.unit, library) or _binding_count(tree, slot.unit) != 1:
        return []
    unit = tree.units[slot.unit]
    current = effective_hyperparameters(unit.source, unit.hyperparameters)
    choices = library[slot.unit].hyperparameter_choices
    return [
        (parameter, value)
        for parameter, values in sorted(choices.items())
        for value in values
        if value != current.get(parameter)
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


# ---------------------------------------------------------------- proposal text

UNIT_RATIONALE: dict[str, str] = {
    "RotaryMHA": "softmax attention with rotary positions: exact access to every earlier "
    "token, at a cost quadratic in sequence length",
    "Mamba2Mixer": "a selective state-space recurrence (SSD): linear time, a constant-size "
    "state and input-dependent decay",
    "MultiScaleRetention": "retention with fixed per-head decays: a linear-time recurrence "
    "that keeps a parallel form for training",
    "RWKV6TimeMix": "token-shift mixing with data-dependent decay: a linear-time recurrence "
    "whose forgetting adapts to the input",
    "TTTLinear": "a hidden state that is itself a linear model trained at test time: linear "
    "time, with a more expressive memory than a fixed decay",
    "SwiGLUMLP": "a gated (SwiGLU) MLP, the strongest common channel mixer per parameter",
    "RetNetMLP": "a plain GELU MLP: two matrices instead of three, leaving the parameter fit "
    "more room for depth and width",
    "RWKV6ChannelMix": "a receptance-gated channel mixer with a token shift, so it also sees "
    "the previous position",
    "ZeroMixer": "no channel mixer at all: every parameter goes to sequence mixing, as in Mamba2",
    "RMSNorm": "RMS normalisation before the branch, which keeps the residual stream's scale "
    "stable",
    "Identity": "no normalisation before the branch: cheaper, leaving the residual stream's "
    "scale to the other norm and the model's final norm",
    "CausalConv": "a short causal convolution that gives the mixer local context before its "
    "long-range memory",
}

PARAMETER_RATIONALE: dict[str, str] = {
    "hidden_ratio": "the channel mixer's width: more capacity per block, at the cost of depth "
    "or width the parameter fit can afford",
    "rotary_base": "the rotary base: a larger base rotates more slowly and resolves positions "
    "over longer ranges",
    "d_state": "the state size: how much history the recurrence can hold per head",
    "expand": "the inner expansion: the mixer's width relative to the model's",
    "mini_batch": "the TTT mini-batch: smaller batches update the inner model more often, "
    "larger ones are more parallel",
    "kernel_size": "the convolution's reach over the most recent tokens",
    "value_factor": "the value width per head: more memory per head for more parameters",
    "mix_rank": "the rank of the data-dependent token-shift LoRA",
}

QUADRATIC_MIXERS = frozenset({"RotaryMHA"})


def _cost_contrast(old: str, new: str, library: Library) -> str:
    kinds = {library[n].kind for n in (old, new) if n in library}
    if kinds != {"seq_mixer"}:
        return ""
    if old in QUADRATIC_MIXERS and new not in QUADRATIC_MIXERS:
        return (
            "This trades quadratic attention for a linear-time recurrence: cheaper at long "
            "context, betting that a compressed state keeps what the loss needs."
        )
    if new in QUADRATIC_MIXERS and old not in QUADRATIC_MIXERS:
        return (
            "This trades a linear-time recurrence for exact attention: quadratic in length, "
            "but with direct recall of every earlier token."
        )
    return (
        "Both are linear-time recurrences; the change is in how the state is written and how "
        "it forgets."
    )


def motivation(change: Change, library: Library) -> str:
    """A short markdown motivation keyed on the units and kinds the change involves."""
    lines: list[str] = []
    if change.action == "perturb":
        note = PARAMETER_RATIONALE.get(change.parameter, f"the hyper-parameter {change.parameter}")
        lines.append(f"- This tunes {note}.")
    elif change.action in ("replace", "graft"):
        new_note = UNIT_RATIONALE.get(change.new, "a unit from the library")
        lines.append(f"- `{change.new}` brings {new_note}.")
        if change.old:
            old_note = UNIT_RATIONALE.get(change.old, "the parent's unit")
            lines.append(f"- It takes the place of `{change.old}`, {old_note}.")
        contrast = _cost_contrast(change.old, change.new, library)
        if contrast:
            lines.append(f"- {contrast}")
    for name in change.units:
        if name != change.new and name in UNIT_RATIONALE:
            lines.append(f"- `{name}`: {UNIT_RATIONALE[name]}.")
    lines.append(
        "- The parameter fit re-balances depth and width at each rung, so the comparison "
        "with the parent is at an equal parameter budget."
    )
    return "\n".join(lines)


def proposal_text(
    tree: UnitTree,
    change: Change,
    operator: str,
    parents: Sequence[str],
    digest: str,
    library: Library,
) -> str:
    """The proposal as markdown: title, operator and parents, what changed, why, the tree."""
    lineage = ", ".join(f"`{p}`" for p in parents) or "none"
    return (
        f"# {change.title}\n\n"
        f"- Operator: {operator}\n"
        f"- Parents: {lineage}\n"
        f"- Structural hash: `{digest[:16]}`\n\n"
        f"## What changed\n\n{change.summary}\n\n"
        f"## Why\n\n{motivation(change, library)}\n\n"
        f"## Unit tree\n\n```text\n{tree.render()}\n```\n"
    )


# ---------------------------------------------------------------- propose


def check_operator(operator: str, parents: int) -> None:
    """Raise ValueError unless ``operator`` is known and takes ``parents`` parents."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; expected one of {sorted(OPERATORS)}")
    if OPERATORS[operator] != parents:
        raise ValueError(f"{operator} takes {OPERATORS[operator]} parent(s), got {parents}")


def _generate(
    operator: str, parents: Sequence[UnitTree], rng: random.Random, library: Library
) -> tuple[UnitTree, Change]:
    if operator == "mutation":
        return _mutate(parents[0], rng, library)
    if operator == "crossover":
        a, b = parents[0], parents[1]
        if rng.random() < 0.5:
            a, b = b, a
        return _crossover(a, b, rng, library)
    return _scratch(rng, library)


def propose(
    operator: str,
    parents: Sequence[UnitTree],
    *,
    rng: random.Random,
    library: Library,
    known_hashes: set[str],
    name: str,
    attempts: int = 20,
) -> Proposal:
    """A candidate whose structural hash is not in ``known_hashes``.

    Raises ProposalError after ``attempts`` tries; parents are named by their tree names.
    """
    check_operator(operator, len(parents))
    failure = ""
    for _ in range(attempts):
        try:
            tree, change = _generate(operator, parents, rng, library)
        except ProposalError as exc:
            failure = f"; last: {exc}"
            continue
        dead = dead_parameters(tree, library)
        if dead:
            failure = f"; last: {dead[0]}"
            continue
        digest = tree_hash(tree)
        if digest in known_hashes:
            continue
        parent_names = [parent.name for parent in parents]
        tree.name, tree.metadata = name, {"title": change.title}
        text = proposal_text(tree, change, operator, parent_names, digest, library)
        tree.metadata = {
            "title": change.title,
            "operator": operator,
            "parents": parent_names,
            "proposal": text,
            "hash": digest,
        }
        return Proposal(tree.to_json(), change.title, text, operator, parent_names, digest)
    raise ProposalError(f"no new {operator} candidate in {attempts} attempts{failure}")


# ---------------------------------------------------------------- sessions against a store


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def known_hashes(store: Store) -> set[str]:
    """Structural hashes the run knows: every claim, design and rejected candidate."""
    hashes = {
        key.removeprefix("hashes/").removesuffix(".json")
        for key in store.list("hashes")
        if key == hash_key(key.removeprefix("hashes/").removesuffix(".json"))
    }
    for key in store.list("designs"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "design.json":
            try:
                document = read_document(store, key, DesignDocument)
            except DocumentError:
                continue
            if document is not None:
                hashes.add(document.metadata.hash or structural_hash(plain(document)))
    for key in store.list("rejected"):
        try:
            record = read_document(store, key, RejectionRecord)
        except DocumentError:
            continue
        if record is not None and record.hash:
            hashes.add(record.hash)
    return hashes


def _load_parent(store: Store, parent_id: str) -> UnitTree:
    key = design_key(parent_id, "design.json")
    try:
        document = read_document(store, key, DesignDocument)
    except DocumentError as exc:
        raise ValueError(f"parent {parent_id!r}: {exc}") from None
    if document is None:
        raise ValueError(f"parent {parent_id!r} has no readable {key}")
    tree = tree_from_json(plain(document))
    tree.name = parent_id
    return tree


def _rejection_keys(store: Store, design_id: str) -> list[str]:
    prefix = f"rejected/{design_id}-c"
    return [key for key in store.list("rejected") if key.startswith(prefix)]


def _record(store: Store, session: str, outcome: SessionOutcome) -> dict[str, Any]:
    """Write the outcome (once: a recorded outcome is never replaced) and return it."""
    if not create_document(store, session_key(session), outcome):
        recorded = read_document(store, session_key(session), SessionOutcome)
        outcome = recorded if recorded is not None else outcome
    return plain(outcome)


def _write_design(
    store: Store, design_id: str, proposal: Proposal, report: dict[str, Any], *,
    rung: str, seq: int, session: str,
) -> None:  # fmt: skip
    document = DesignDocument.model_validate(copy.deepcopy(proposal.document))
    document.metadata = document.metadata.model_copy(
        update={"seq": seq, "session": session, "rating": None}
    )
    store.put_text(design_key(design_id, "checks", f"{rung}.json"), _dumps(report))
    store.put_text(design_key(design_id, "proposal.md"), proposal.text)
    write_document(store, design_key(design_id, "design.json"), document)


def _earlier_outcome(store: Store, session: str, design_id: str) -> SessionOutcome | None:
    """The outcome when this design id already exists (a crash before session.json)."""
    try:
        document = read_document(store, design_key(design_id, "design.json"), DesignDocument)
    except DocumentError as exc:
        return SessionOutcome(status="failed", reason=f"unreadable design: {exc}")
    if document is None:
        return None
    owner = document.metadata.session
    rejected = len(_rejection_keys(store, design_id))
    if owner == session:
        return SessionOutcome(
            status="implemented", design=design_id,
            reason="recovered the design written earlier", candidates=rejected + 1,
        )  # fmt: skip
    return SessionOutcome(
        status="failed", reason=f"design id {design_id!r} is taken (session {owner!r})"
    )


def run_offline_session(
    *,
    store: Store,
    session: str,
    design_id: str,
    seq: int,
    operator: str,
    parent_ids: Sequence[str],
    seed: int,
    rung: RungConfig,
    checks: Checks | None = None,
    settings: Mapping[str, Any] | None = None,
    limits: SandboxLimits | None = None,
    max_candidates: int = 5,
) -> dict[str, Any]:
    """One design session in a run's store: propose, claim, check, record design or rejections.

    ``rung`` is the run's lowest rung (the design is checked at it), ``checks`` the run's check
    settings (default: the paper's), ``settings`` overrides of the sandbox child's check
    settings (tests and benchmarks), ``limits`` the sandbox's (default: from ``checks``).
    """
    check_operator(operator, len(parent_ids))
    checks = checks or Checks()
    limits = limits or limits_from_checks(checks)
    child_settings = {**check_settings(checks), **(settings or {})}
    recorded = read_document(store, session_key(session), SessionOutcome)
    if recorded is not None:
        return plain(recorded)
    earlier = _earlier_outcome(store, session, design_id)
    if earlier is not None:
        return _record(store, session, earlier)
    try:
        parents = [_load_parent(store, parent_id) for parent_id in parent_ids]
    except ValueError as exc:
        return _record(store, session, SessionOutcome(status="failed", reason=str(exc)))
    known = known_hashes(store)
    rng = random.Random(seed)
    library = build_library()
    checked = len(_rejection_keys(store, design_id))
    last = ""
    while checked < max_candidates:
        try:
            proposal = propose(
                operator, parents, rng=rng, library=library, known_hashes=known, name=design_id
            )
        except ProposalError as exc:
            outcome = SessionOutcome(status="failed", reason=str(exc), candidates=checked)
            return _record(store, session, outcome)
        known.add(proposal.hash)
        if claim_hash(store, proposal.hash, design=design_id, session=session) is not None:
            continue  # another session holds this tree: it is checked (or done) there
        report = check_design(proposal.document, rung=rung, settings=child_settings, limits=limits)
        checked += 1
        if report.passed:
            _write_design(
                store, design_id, proposal, report.to_json(), rung=rung.name, seq=seq,
                session=session,
            )  # fmt: skip
            outcome = SessionOutcome(
                status="implemented", design=design_id, candidates=checked,
                reason=f"passed the {rung.name} checks: {proposal.title}",
            )  # fmt: skip
            return _record(store, session, outcome)
        finding = report.failed()[0]
        last = finding.render()
        rejection = RejectionRecord(
            session=session, operator=operator, parents=list(parent_ids), reason=last,
            check=finding.name, hash=proposal.hash, title=proposal.title, report=report.to_json(),
        )  # fmt: skip
        write_document(store, rejection_key(design_id, f"c{checked}"), rejection)
    reason = f"all {checked} candidates failed their checks" + (f"; last: {last}" if last else "")
    outcome = SessionOutcome(status="failed", reason=reason, candidates=checked)
    return _record(store, session, outcome)


__all__ = [
    "OPERATORS",
    "Change",
    "Proposal",
    "ProposalError",
    "Slot",
    "check_operator",
    "crossover",
    "known_hashes",
    "motivation",
    "mutate",
    "proposal_text",
    "propose",
    "run_offline_session",
    "scratch",
    "tree_slots",
]
