"""What an offline design session reads from and writes to the run's store.

Keys it writes (documents of :mod:`genesys.store.documents`)::

    designs/<id>/checks/<rung>.json    the passing check report (plain JSON)
    designs/<id>/proposal.md           the generated proposal text
    designs/<id>/design.json           DesignDocument; its metadata: title, operator, parents,
                                       proposal, hash, seq, session, rating (None)
    rejected/<id>-c<k>.json            RejectionRecord of candidate k: session, operator,
                                       parents, reason, check, hash, title, report
    sessions/<session>/checks/<n>.json one check run (:mod:`genesys.agents.check_records`)
    sessions/<session>/session.json    SessionOutcome: status (implemented | failed), design,
                                       reason, candidates

(the claim ``hashes/<hash>.json`` is written by :func:`~genesys.store.claims.claim_hash`).

Keys it reads: ``designs/<id>/design.json`` (parents, and the design id already taken),
``hashes/``, ``rejected/`` and ``sessions/<session>/session.json``.
:func:`known_hashes` is also how the LLM sessions learn which designs the run already has.

What must stay true:

- ``design.json`` is written after its check report and proposal;
- a session's outcome is written once (:func:`record_outcome` never replaces a recorded one);
- unreadable designs and rejections are skipped by :func:`known_hashes`, never fatal.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from genesys.agents.library import structural_hash
from genesys.store.archive import design_key, hash_key, session_key
from genesys.store.base import Store
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
from genesys_trainer.tree import UnitTree, tree_from_json


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def _claimed_hashes(store: Store) -> set[str]:
    return {
        key.removeprefix("hashes/").removesuffix(".json")
        for key in store.list("hashes")
        if key == hash_key(key.removeprefix("hashes/").removesuffix(".json"))
    }


def _design_hashes(store: Store) -> set[str]:
    hashes: set[str] = set()
    for key in store.list("designs"):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != "design.json":
            continue
        try:
            document = read_document(store, key, DesignDocument)
        except DocumentError:
            continue
        if document is not None:
            hashes.add(document.metadata.hash or structural_hash(plain(document)))
    return hashes


def _rejected_hashes(store: Store) -> set[str]:
    hashes: set[str] = set()
    for key in store.list("rejected"):
        try:
            record = read_document(store, key, RejectionRecord)
        except DocumentError:
            continue
        if record is not None and record.hash:
            hashes.add(record.hash)
    return hashes


def known_hashes(store: Store) -> set[str]:
    """Structural hashes the run knows: every claim, design and rejected candidate."""
    return _claimed_hashes(store) | _design_hashes(store) | _rejected_hashes(store)


def load_parent(store: Store, parent_id: str) -> UnitTree:
    """The parent design's tree, named by its id; ValueError when it cannot be read."""
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


def rejection_keys(store: Store, design_id: str) -> list[str]:
    """The ``rejected/<id>-c<k>.json`` keys of the design's rejected candidates."""
    prefix = f"rejected/{design_id}-c"
    return [key for key in store.list("rejected") if key.startswith(prefix)]


def record_outcome(store: Store, session: str, outcome: SessionOutcome) -> dict[str, Any]:
    """Write the outcome (once: a recorded outcome is never replaced) and return it."""
    if not create_document(store, session_key(session), outcome):
        recorded = read_document(store, session_key(session), SessionOutcome)
        outcome = recorded if recorded is not None else outcome
    return plain(outcome)


def write_design(
    store: Store,
    design_id: str,
    document: Mapping[str, Any],
    proposal: str,
    report: dict[str, Any],
    *,
    rung: str,
    seq: int,
    session: str,
) -> None:
    """Write the check report, the proposal text and (last) ``design.json`` from ``document``."""
    design = DesignDocument.model_validate(copy.deepcopy(dict(document)))
    design.metadata = design.metadata.model_copy(
        update={"seq": seq, "session": session, "rating": None}
    )
    store.put_text(design_key(design_id, "checks", f"{rung}.json"), _dumps(report))
    store.put_text(design_key(design_id, "proposal.md"), proposal)
    write_document(store, design_key(design_id, "design.json"), design)


def earlier_outcome(store: Store, session: str, design_id: str) -> SessionOutcome | None:
    """The outcome when this design id already exists (a crash before session.json)."""
    try:
        document = read_document(store, design_key(design_id, "design.json"), DesignDocument)
    except DocumentError as exc:
        return SessionOutcome(status="failed", reason=f"unreadable design: {exc}")
    if document is None:
        return None
    owner = document.metadata.session
    rejected = len(rejection_keys(store, design_id))
    if owner == session:
        return SessionOutcome(
            status="implemented",
            design=design_id,
            reason="recovered the design written earlier",
            candidates=rejected + 1,
        )
    return SessionOutcome(
        status="failed", reason=f"design id {design_id!r} is taken (session {owner!r})"
    )


__all__ = [
    "earlier_outcome",
    "known_hashes",
    "load_parent",
    "record_outcome",
    "rejection_keys",
    "write_design",
]
