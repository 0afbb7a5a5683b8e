"""The offline proposer: design sessions by genetic programming on unit trees, with no LLM.

It plays the proposer and coder of a Genesys design session with the seed units of
:mod:`genesys.agents.library` as its only vocabulary: :func:`propose` draws candidates with the
genetic operators of :mod:`genesys.agents.genetic_operators` until one has a structural hash
new to the run (skipping candidates with :func:`~genesys.agents.library.dead_parameters`,
which the checks would reject), and writes its proposal with
:mod:`genesys.agents.change_text`. :func:`run_offline_session` runs one session against a run's
store: propose, claim the hash, check the candidate in the sandbox, and record the design or
the rejections (the keys are listed in :mod:`genesys.agents.offline_records`).

What must stay true:

- no torch import; design code runs only in the sandbox child (:func:`check_design`);
- a session is deterministic given its seed and the store's contents, and idempotent: when its
  ``session.json`` exists, the recorded outcome is returned and nothing is written;
- every candidate claims its structural hash before it is checked
  (:func:`~genesys.store.claims.claim_hash`), so sessions running in parallel never check or
  verify the same design twice: the one that loses the claim moves on to another candidate;
- ``session.json`` is written last; ``design.json`` is written after its proposal and checks.

The operators, the proposal text and the store records are re-exported here, where callers
have always found them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesys.agents.change_text import motivation, proposal_text
from genesys.agents.check_records import traced_check
from genesys.agents.genetic_operators import (
    OPERATORS,
    Change,
    ProposalError,
    Slot,
    check_operator,
    crossover,
    generate,
    mutate,
    scratch,
    tree_slots,
)
from genesys.agents.library import Library, build_library, dead_parameters, tree_hash
from genesys.agents.offline_records import (
    earlier_outcome,
    known_hashes,
    load_parent,
    record_outcome,
    rejection_keys,
    write_design,
)
from genesys.api.discoveryrun import Checks
from genesys.api.ladder import RungConfig
from genesys.sandbox.report import Report
from genesys.sandbox.runner import SandboxLimits, check_settings, limits_from_checks
from genesys.store.archive import rejection_key, session_key
from genesys.store.base import Store
from genesys.store.claims import claim_hash
from genesys.store.documents import (
    RejectionRecord,
    SessionOutcome,
    plain,
    read_document,
    write_document,
)
from genesys_trainer.tree import UnitTree


@dataclass
class Proposal:
    """A candidate design: its ``design.json`` document and the generated proposal."""

    document: dict[str, Any]
    title: str
    text: str
    operator: str
    parents: list[str]
    hash: str


def _proposal(
    tree: UnitTree,
    change: Change,
    operator: str,
    parents: Sequence[UnitTree],
    digest: str,
    library: Library,
    name: str,
) -> Proposal:
    """The candidate ``tree`` named ``name``, its metadata and proposal text filled in."""
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
            tree, change = generate(operator, parents, rng, library)
        except ProposalError as exc:
            failure = f"; last: {exc}"
            continue
        dead = dead_parameters(tree, library)
        if dead:
            failure = f"; last: {dead[0]}"
            continue
        digest = tree_hash(tree)
        if digest not in known_hashes:
            return _proposal(tree, change, operator, parents, digest, library, name)
    raise ProposalError(f"no new {operator} candidate in {attempts} attempts{failure}")


def _rejection(
    session: str, operator: str, parent_ids: Sequence[str], proposal: Proposal, report: Report
) -> RejectionRecord:
    finding = report.failed()[0]
    return RejectionRecord(
        session=session,
        operator=operator,
        parents=list(parent_ids),
        reason=finding.render(),
        check=finding.name,
        hash=proposal.hash,
        title=proposal.title,
        report=report.to_json(),
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
    earlier = earlier_outcome(store, session, design_id)
    if earlier is not None:
        return record_outcome(store, session, earlier)
    try:
        parents = [load_parent(store, parent_id) for parent_id in parent_ids]
    except ValueError as exc:
        return record_outcome(store, session, SessionOutcome(status="failed", reason=str(exc)))
    known = known_hashes(store)
    rng = random.Random(seed)
    library = build_library()
    checked = len(rejection_keys(store, design_id))
    last = ""
    while checked < max_candidates:
        try:
            proposal = propose(
                operator, parents, rng=rng, library=library, known_hashes=known, name=design_id
            )
        except ProposalError as exc:
            outcome = SessionOutcome(status="failed", reason=str(exc), candidates=checked)
            return record_outcome(store, session, outcome)
        known.add(proposal.hash)
        if claim_hash(store, proposal.hash, design=design_id, session=session) is not None:
            continue  # another session holds this tree: it is checked (or done) there
        report = traced_check(
            store,
            session,
            design_id,
            proposal.document,
            rung=rung,
            settings=child_settings,
            limits=limits,
        )
        checked += 1
        if report.passed:
            write_design(
                store,
                design_id,
                proposal.document,
                proposal.text,
                report.to_json(),
                rung=rung.name,
                seq=seq,
                session=session,
            )
            outcome = SessionOutcome(
                status="implemented",
                design=design_id,
                candidates=checked,
                reason=f"passed the {rung.name} checks: {proposal.title}",
            )
            return record_outcome(store, session, outcome)
        rejection = _rejection(session, operator, parent_ids, proposal, report)
        last = rejection.reason
        write_document(store, rejection_key(design_id, f"c{checked}"), rejection)
    reason = f"all {checked} candidates failed their checks" + (f"; last: {last}" if last else "")
    outcome = SessionOutcome(status="failed", reason=reason, candidates=checked)
    return record_outcome(store, session, outcome)


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
