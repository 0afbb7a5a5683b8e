"""The implementation flows of an LLM design session: unit by unit (``gau``) or in one shot.

**gau** (:class:`UnitByUnitFlow`): rounds of planner -> coder -> static and sandboxed dynamic
checks -> observer, one unit a round, starting from the parent's tree (mutation: only the
selected subtree may change, every unit used outside it is protected), from nothing with the
parents' units to reuse (crossover), or from nothing (scratch: the root must have children). A
round gets ``sessions.maxUnitAttempts`` attempts, each fed the last failure; a failed round is
rolled back, and more than ``sessions.maxFailedRounds`` failed rounds (or more than
:data:`MAX_ROUNDS` rounds) abandon the implementation.

**direct** (:class:`DirectFlow`): the whole block as one file per attempt, with the same checks,
feedback and limits (the paper's baseline).

What they keep in the session state (``state.json``): ``attempts`` (coder attempts, all
implementations together), ``rounds`` and ``failed_rounds`` (of the current implementation),
and for gau ``tree`` (the committed tree), ``committed`` (unit, rating, round per committed
unit) and ``unit_tests`` (the tests of the units that passed, by unit name). Every attempt that
got a reply is written to ``sessions/<sid>/attempts/`` (:mod:`genesys.agents.session_records`).

What must stay true:

- design code never runs in this process: every candidate goes through
  :func:`genesys.sandbox.runner.check_design`;
- a finished design is never identical (by structural hash) to a parent or to a design the run
  already knows;
- a gau implementation resumes at its last committed unit: ``state.tree`` is only replaced by a
  tree that passed its checks and the observer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genesys.agents import roles
from genesys.agents.check_records import traced_check
from genesys.agents.context import SessionContext, unit_interface
from genesys.agents.knowledge import render_hits
from genesys.agents.library import tree_hash
from genesys.agents.llm import ReplyError
from genesys.agents.offline_records import known_hashes
from genesys.agents.treeops import (
    Selection,
    TreeEditError,
    WrittenUnit,
    apply_unit,
    declared_children,
    pending_units,
    pool_of,
    protected_units,
    resolve_selection,
)
from genesys.sandbox.report import Report
from genesys_trainer.tree import DesignError, UnitSpec, UnitTree, load_block_file, tree_from_json

MAX_ROUNDS = 16
"""Rounds one implementation may take (each adds a unit), so declarations cannot grow forever."""
ROOT_TARGET = "<root>"
"""The planned "unit" of the first round of a design that starts empty."""
REFERENCE_CHARS = 6000
"""Characters of reference code a coder prompt may carry."""


@dataclass(frozen=True)
class Attempt:
    """The outcome of one implementation attempt."""

    tree: UnitTree | None
    feedback: str
    check: str  # the failing check, "observer", "reply" or "protocol"; "" on success
    rating: float | None = None
    report: Report | None = None  # the check report, when the candidate was checked


NO_ATTEMPT = Attempt(None, "no attempt was made", "reply")


def _feedback(written: WrittenUnit, result: Attempt) -> str:
    return (
        f"Your previous attempt failed ({result.check}). Fix it.\n\n{result.feedback}\n\n"
        f"The previous code:\n```python\n{written.source}```"
    )


def _protected_text(protected: set[str]) -> str:
    if not protected:
        return ""
    return (
        "Protected units (used outside the part this mutation changes: reuse them as they "
        f"are, never rewrite them): {', '.join(sorted(protected))}"
    )


def _record_attempt(
    ctx: SessionContext, unit: str, attempt: int, written: WrittenUnit, result: Attempt
) -> None:
    ctx.records.attempt(
        unit,
        attempt,
        written,
        passed=result.tree is not None,
        check=result.check,
        feedback=result.feedback,
        rating=result.rating,
        report=result.report,
    )


def check_and_observe(ctx: SessionContext, tree: UnitTree, written: WrittenUnit) -> Attempt:
    """Check ``tree`` in the sandbox, then ask the observer about ``written``."""
    settings = ctx.settings
    report = traced_check(
        ctx.store,
        ctx.session,
        ctx.design_id,
        tree.to_json(),
        rung=settings.rung,
        settings=settings.child_settings(),
        limits=settings.limits,
    )
    if not report.passed:
        failed = report.failed()[0]
        return Attempt(None, report.render(), failed.name, report=report)
    conversation = roles.messages(
        "observer",
        "observe",
        {},
        proposal=ctx.proposal_doc.render(),
        target=written.name,
        code=written.source,
        tree=tree.render(),
        report=report.render(),
    )
    verdict: roles.Rating = ctx.ask(
        "observer", conversation, roles.json_parser(roles.Rating.from_json)
    )
    if verdict.rating < settings.sessions.observer_pass_rating:
        feedback = f"The observer rejected the unit.\n{verdict.render()}"
        return Attempt(None, feedback, "observer", verdict.rating, report)
    if written.tests:
        ctx.state.unit_tests[written.name] = written.tests
    return Attempt(tree, "", "", verdict.rating, report)


# ------------------------------------------------------------------------------ unit by unit


def _library_spec(unit: Any) -> UnitSpec:
    return UnitSpec(unit.source, dict(unit.children), {}, unit.requirements)


def _bound_unit(tree: UnitTree, selection: Selection) -> str:
    if selection.owner is None:
        return tree.root
    return tree.units[selection.owner].children[selection.slot or ""]


class UnitByUnitFlow:
    """The ``gau`` flow: grow the design one planned, checked and observed unit a round."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.selection = self._selection()
        parent = ctx.first_parent()
        self.protected = (
            protected_units(parent, self.selection) if parent and self.selection else set()
        )

    def _selection(self) -> Selection | None:
        ctx = self.ctx
        if ctx.operator != "mutation":
            return None
        parent = next(iter(ctx.parents.values()))
        return resolve_selection(parent, ctx.proposal_doc.selected_unit or "")

    def implement(self) -> tuple[UnitTree | None, str]:
        """The finished tree, or None and the reason."""
        state = self.ctx.state
        known = known_hashes(self.ctx.store)
        while True:
            tree = self._committed_tree()
            targets = self._targets(tree)
            if not targets:
                assert tree is not None
                return tree, ""
            if state.rounds >= MAX_ROUNDS:
                return None, f"the design needs more than {MAX_ROUNDS} rounds"
            state.rounds += 1
            step = self._plan(tree, targets)
            result = self._implement_unit(tree, step, known)
            if result.tree is not None:
                self._commit(result.tree, step, result.rating)
                continue
            state.failed_rounds += 1
            self.ctx.save()
            if state.failed_rounds > self.ctx.settings.sessions.max_failed_rounds:
                return None, (
                    f"abandoned after {state.failed_rounds} failed rounds; last: "
                    f"{result.feedback[:600]}"
                )

    def _committed_tree(self) -> UnitTree | None:
        ctx = self.ctx
        if ctx.state.tree is not None:
            return tree_from_json(ctx.state.tree)
        if ctx.operator == "mutation":
            parent = next(iter(ctx.parents.values()))
            return tree_from_json({**parent.to_json(), "name": ctx.design_id})
        return None

    def _targets(self, tree: UnitTree | None) -> list[str]:
        """The units waiting to be written: the selection first, the root of an empty tree."""
        if self.selection is not None and not self.ctx.state.committed:
            return [self.selection.unit]
        if tree is None:
            return [ROOT_TARGET]
        return pending_units(tree)

    def _commit(self, tree: UnitTree, step: roles.PlanStep, rating: float | None) -> None:
        state = self.ctx.state
        unit = tree.root if step.unit == ROOT_TARGET else step.unit
        if self.selection is not None and not state.committed:
            unit = _bound_unit(tree, self.selection)
        state.tree = tree.to_json()
        state.committed.append({"unit": unit, "rating": rating, "round": state.rounds})
        self.ctx.save()
        self.ctx.progress(f"{self.ctx.session}: committed unit {unit}")

    def _pool(self, tree: UnitTree | None) -> dict[str, UnitTree]:
        library = self.ctx.library
        library_tree = UnitTree(
            "library",
            next(iter(library)),
            {name: _library_spec(unit) for name, unit in library.items()},
        )
        own = set(tree.units) if tree is not None else set()
        return pool_of({**self.ctx.parents, "library": library_tree}, exclude=own)

    def _reusable_text(self, tree: UnitTree | None) -> str:
        pool = self._pool(tree)
        own = sorted(tree.units) if tree is not None else []
        return ", ".join(own + sorted(pool)) or "(none)"

    def _plan(self, tree: UnitTree | None, targets: list[str]) -> roles.PlanStep:
        ctx = self.ctx
        if targets == [ROOT_TARGET]:
            return roles.PlanStep(ROOT_TARGET, [], "write the root block of the new design")
        proposal = ctx.proposal_doc
        similar = ctx.knowledge.search(
            f"{' '.join(targets)} {proposal.design_plan}", k=3, kinds=("unit",)
        )
        history = "\n".join(
            f"- round {c['round']}: committed {c['unit']}" for c in ctx.state.committed
        )
        conversation = roles.messages(
            "planner",
            "plan",
            {},
            proposal=proposal.render(),
            tree=tree.render() if tree else "(empty)",
            protected=_protected_text(self.protected),
            pending=", ".join(targets),
            reusable=self._reusable_text(tree),
            similar=render_hits(similar),
            history=f"Rounds so far:\n{history}" if history else "",
        )
        step: roles.PlanStep = ctx.ask(
            "planner",
            conversation,
            roles.json_parser(lambda data: roles.PlanStep.from_json(data, pending=targets)),
        )
        return step

    def _caller_code(self, tree: UnitTree, unit: str) -> str | None:
        """The code of a unit that calls ``unit`` (its first owner), as prompt text."""
        for owner, spec in tree.units.items():
            if unit in spec.children.values() and owner != unit:
                return f"{owner}, which calls it:\n```python\n{spec.source}```"
        return None

    def _reference_code(self, tree: UnitTree | None, step: roles.PlanStep) -> str:
        parts: list[str] = []
        if tree is not None and step.unit in tree.units:
            parts.append(
                f"The current code of {step.unit} (you replace it):\n```python\n"
                f"{tree.units[step.unit].source}```"
            )
        caller = self._caller_code(tree, step.unit) if tree is not None else None
        if caller is not None:
            parts.append(caller)
        pool = self._pool(tree)
        for name in step.reuse[:2]:
            source = pool[name].units[name].source if name in pool else None
            if source is not None:
                parts.append(f"Suggested for reuse, {name}:\n```python\n{source}```")
        text = "\n\n".join(parts)
        return text[:REFERENCE_CHARS] + ("\n(truncated)" if len(text) > REFERENCE_CHARS else "")

    def _coder_messages(
        self, tree: UnitTree | None, step: roles.PlanStep, feedback: str
    ) -> list[dict[str, str]]:
        if step.unit == ROOT_TARGET:
            target = "root block"
            note = (
                "It is the root: a Unit subclass with a name of your choice that owns the "
                "residual connections, and declares its parts as children."
            )
        else:
            target = step.unit
            note = (
                "Keep this exact class name."
                if tree is None or step.unit not in tree.units
                else "You may keep its name or give the new unit a new name."
            )
        return roles.messages(
            "coder",
            "unit",
            {"unit_interface": unit_interface()},
            proposal=self.ctx.proposal_doc.render(),
            tree=tree.render() if tree else "(empty)",
            protected=_protected_text(self.protected),
            target=target,
            target_note=note,
            instructions=step.instructions or "(none)",
            reference_code=self._reference_code(tree, step),
            reusable=self._reusable_text(tree),
            feedback=feedback,
        )

    def _implement_unit(
        self, tree: UnitTree | None, step: roles.PlanStep, known: set[str]
    ) -> Attempt:
        """One round: up to ``maxUnitAttempts`` attempts at the planned unit."""
        ctx = self.ctx
        feedback = ""
        last = NO_ATTEMPT
        for attempt in range(1, ctx.settings.sessions.max_unit_attempts + 1):
            ctx.state.attempts += 1
            conversation = self._coder_messages(tree, step, feedback)
            try:
                written: WrittenUnit = ctx.ask("coder", conversation, roles.parse_unit_reply)
            except ReplyError as exc:
                last = Attempt(None, str(exc), "reply")
            else:
                last = self._try_unit(tree, written, step, known)
                _record_attempt(ctx, step.unit, attempt, written, last)
                if last.tree is not None:
                    return last
                feedback = _feedback(written, last)
            ctx.save()
        return last

    def _try_unit(
        self, tree: UnitTree | None, written: WrittenUnit, step: roles.PlanStep, known: set[str]
    ) -> Attempt:
        ctx = self.ctx
        target = written.name if step.unit == ROOT_TARGET else step.unit
        try:
            new = apply_unit(
                tree,
                written,
                target=target,
                selection=self.selection,
                protected=self.protected,
                pool=self._pool(tree),
                name=ctx.design_id,
            )
        except TreeEditError as exc:
            return Attempt(None, str(exc), "protocol")
        if ctx.operator == "scratch" and not new.units[new.root].children:
            feedback = (
                "the root block must declare child units (CHILDREN): a design "
                "from scratch is a tree, not one block"
            )
            return Attempt(None, feedback, "protocol")
        tests = (
            {**ctx.state.unit_tests, written.name: written.tests}
            if written.tests
            else dict(ctx.state.unit_tests)
        )
        new.metadata = {"unit_tests": {k: v for k, v in tests.items() if k in new.units}}
        if not pending_units(new) and tree_hash(new) in known | ctx.parent_hashes():
            feedback = (
                "the finished design is identical to an existing design; "
                "change the unit so the design is new"
            )
            return Attempt(None, feedback, "protocol")
        return check_and_observe(ctx, new, written)


# ------------------------------------------------------------------------------------ direct


class DirectFlow:
    """The ``direct`` flow: the whole block in one reply per attempt."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx

    def _reference(self) -> str:
        parent = self.ctx.first_parent()
        if parent is None:
            return ""
        code = "\n\n".join(f"# unit {n}\n{u.source}" for n, u in parent.units.items())
        return (
            f"The parent design {parent.name}, as a tree:\n{parent.render()}\n\n"
            f"Its units:\n```python\n{code[:REFERENCE_CHARS]}```"
        )

    def implement(self) -> tuple[UnitTree | None, str]:
        """The finished tree, or None and the reason."""
        ctx = self.ctx
        state, attempts = ctx.state, ctx.settings.sessions.max_unit_attempts
        state.rounds = 1
        known = known_hashes(ctx.store) | ctx.parent_hashes()
        reference = self._reference()
        feedback = ""
        last = NO_ATTEMPT
        for attempt in range(1, attempts + 1):
            state.attempts += 1
            conversation = roles.messages(
                "direct",
                "block",
                {"unit_interface": unit_interface()},
                proposal=ctx.proposal_doc.render(),
                reference_code=reference,
                feedback=feedback,
            )
            try:
                written: WrittenUnit = ctx.ask("coder", conversation, roles.parse_block_reply)
            except ReplyError as exc:
                last = Attempt(None, str(exc), "reply")
                ctx.save()
                continue
            last = self._try_block(written, known)
            _record_attempt(ctx, written.name, attempt, written, last)
            ctx.save()
            if last.tree is not None:
                return last.tree, ""
            feedback = _feedback(written, last)
        return None, f"no block passed in {attempts} attempts; last: {last.feedback[:600]}"

    def _try_block(self, written: WrittenUnit, known: set[str]) -> Attempt:
        if declared_children(written.source):
            return Attempt(None, "the block must have no children (CHILDREN empty)", "protocol")
        try:
            tree = load_block_file(written.source, name=self.ctx.design_id)
        except DesignError as exc:
            return Attempt(None, str(exc), "protocol")
        tree.metadata["unit_tests"] = {written.name: written.tests} if written.tests else {}
        if tree_hash(tree) in known:
            return Attempt(None, "the block is identical to an existing design", "protocol")
        return check_and_observe(self.ctx, tree, written)


__all__ = [
    "MAX_ROUNDS",
    "REFERENCE_CHARS",
    "ROOT_TARGET",
    "Attempt",
    "DirectFlow",
    "UnitByUnitFlow",
    "check_and_observe",
]
