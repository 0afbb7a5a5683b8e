"""What an LLM design session writes to the run's store, and reads back when it resumes.

Keys written (documents of :mod:`genesys.store.documents` where a model is named)::

    sessions/<sid>/state.json                  SessionState: the session's progress, rewritten
                                               after every step (see the model for its fields)
    sessions/<sid>/calls/<n>.json              one LLM call, n = 00001, 00002, ...: the
                                               CallRecord's role, model, prompt_hash,
                                               prompt_tokens, completion_tokens, cost_usd,
                                               latency_s, attempt_count, error, estimated,
                                               truncated, reasoning, plus at (epoch seconds)
                                               and call (= n)
    sessions/<sid>/attempts/i<i>-r<r>-a<a>.json  one implementation attempt (implementation i,
                                               round r, attempt a): unit, written (name, source,
                                               children, hyperparameters, requirements, tests),
                                               passed, check, feedback, rating, report
    sessions/<sid>/checks/<n>.json             one check run (:mod:`genesys.agents.check_records`)
    sessions/<sid>/session.json                SessionOutcome (written last, once)
    designs/<id>/proposal.md                   the accepted proposal, rendered
    designs/<id>/review.json                   every proposal attempt: proposal, review,
                                               rating, passed
    designs/<id>/checks/<rung>.json            the passing check report
    designs/<id>/design.json                   DesignDocument; its metadata: format and
                                               unit_tests (from the tree), title, operator,
                                               parents, proposal, hash, seq, session, rating,
                                               flow, models, cost_usd, attempts
    rejected/<id>-<what>.json                  RejectionRecord of a proposal (what=proposal)
                                               or an implementation (what=i<i>) given up:
                                               session, operator, parents, reason, check,
                                               title, flow

(the claim ``hashes/<hash>.json`` is written by :func:`~genesys.store.claims.claim_hash`).

What must stay true:

- ``state.json`` is rewritten after every traced call and every step, so a crash loses at most
  the step in progress; an unreadable ``state.json`` starts the session again;
- ``design.json`` is written after its proposal, review and check report, and ``session.json``
  after everything else, once: a recorded outcome is never replaced;
- the JSON files that are not documents are written with ``indent=2`` and a final newline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from genesys.agents.llm import CallRecord
from genesys.agents.roles import ProposalDoc
from genesys.agents.treeops import WrittenUnit
from genesys.sandbox.report import Report
from genesys.store.archive import design_key, rejection_key, session_key
from genesys.store.base import Store
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    RejectionRecord,
    SessionOutcome,
    SessionState,
    create_document,
    read_document,
    write_document,
)
from genesys_trainer.tree import UnitTree

DESIGN_METADATA_FROM_TREE = ("format", "unit_tests")
"""Metadata of the implemented tree that ``design.json`` keeps."""


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


class SessionRecords:
    """The store writes of one LLM session, and its progress (``state``) between them."""

    def __init__(
        self,
        store: Store,
        *,
        session: str,
        design_id: str,
        seq: int,
        operator: str,
        parent_ids: list[str],
        flow: str,
        fresh_state: Callable[[], SessionState],
    ) -> None:
        """``fresh_state`` makes the state of a session that has none (or an unreadable one)."""
        self.store, self.session, self.design_id = store, session, design_id
        self.seq, self.operator, self.parent_ids, self.flow = seq, operator, parent_ids, flow
        self.state_key = session_key(session, "state.json")
        self.state = self._load_state() or fresh_state()

    def _load_state(self) -> SessionState | None:
        try:
            return read_document(self.store, self.state_key, SessionState)
        except DocumentError:
            return None  # unreadable progress: start the session again

    def save(self) -> None:
        """Write ``state.json``."""
        write_document(self.store, self.state_key, self.state)

    # ----------------------------------------------------------------------------- reading

    def outcome(self) -> SessionOutcome | None:
        """The recorded ``session.json``, if any."""
        return read_document(self.store, session_key(self.session), SessionOutcome)

    def existing_design(self) -> DesignDocument | None:
        """The ``design.json`` of the design id of the session, if any (DocumentError if bad)."""
        return read_document(self.store, design_key(self.design_id, "design.json"), DesignDocument)

    def passing_report(self, tree: UnitTree) -> dict[str, Any]:
        """The check report of the newest passing attempt (a note when none is stored)."""
        attempts = session_key(self.session, "attempts")
        for key in sorted(self.store.list(attempts), reverse=True):
            try:
                entry = json.loads(self.store.get_text(key))
            except (KeyError, ValueError):
                continue
            if isinstance(entry, dict) and entry.get("passed") and entry.get("report"):
                return dict(entry["report"])
        return {"checks": [], "info": {"note": f"no stored report for {tree.name}"}}

    # ----------------------------------------------------------------------------- writing

    def call(self, record: CallRecord) -> None:
        """Count one LLM call in the state, write ``calls/<n>.json``, then ``state.json``."""
        state = self.state
        state.calls += 1
        state.spent_usd += record.cost_usd
        state.prompt_tokens += record.prompt_tokens
        state.completion_tokens += record.completion_tokens
        entry = {**asdict(record), "at": time.time(), "call": state.calls}
        key = session_key(self.session, f"calls/{state.calls:05d}.json")
        self.store.put_text(key, _dumps(entry))
        self.save()

    def attempt(
        self,
        unit: str,
        attempt: int,
        written: WrittenUnit,
        *,
        passed: bool,
        check: str,
        feedback: str,
        rating: float | None,
        report: Report | None,
    ) -> None:
        """Write ``attempts/i<i>-r<r>-a<attempt>.json`` (``i``, ``r`` from the state)."""
        state = self.state
        name = f"i{state.implementation}-r{state.rounds}-a{attempt}"
        entry = {
            "unit": unit,
            "written": asdict(written),
            "passed": passed,
            "check": check,
            "feedback": feedback,
            "rating": rating,
            "report": report.to_json() if report is not None else None,
        }
        key = session_key(self.session, f"attempts/{name}.json")
        self.store.put_text(key, _dumps(entry))

    def design(self, tree: UnitTree, proposal: ProposalDoc, *, digest: str, rung: str) -> None:
        """Write the design's proposal, reviews, check report and (last) ``design.json``."""
        state, design = self.state, self.design_id
        report = self.passing_report(tree)
        document = tree.to_json()
        document["name"] = design
        document["metadata"] = {
            **{k: v for k, v in tree.metadata.items() if k in DESIGN_METADATA_FROM_TREE},
            "title": proposal.title,
            "operator": self.operator,
            "parents": self.parent_ids,
            "proposal": proposal.render(),
            "hash": digest,
            "seq": self.seq,
            "session": self.session,
            "rating": state.rating,
            "flow": self.flow,
            "models": state.models,
            "cost_usd": round(state.spent_usd, 6),
            "attempts": state.attempts,
        }
        self.store.put_text(design_key(design, "proposal.md"), proposal.render())
        self.store.put_text(design_key(design, "review.json"), _dumps(state.proposals))
        self.store.put_text(design_key(design, "checks", f"{rung}.json"), _dumps(report))
        write_document(
            self.store, design_key(design, "design.json"), DesignDocument.model_validate(document)
        )

    def reject(self, what: str, check: str, reason: str) -> None:
        """Write ``rejected/<id>-<what>.json`` for the current (or last) proposal."""
        state = self.state
        proposal = state.proposal or (state.proposals[-1]["proposal"] if state.proposals else {})
        record = RejectionRecord(
            session=self.session,
            operator=self.operator,
            parents=self.parent_ids,
            reason=reason,
            check=check,
            title=str(proposal.get("title", "")),
            flow=self.flow,
        )
        write_document(self.store, rejection_key(self.design_id, what), record)

    def finish(self, status: str, design: str | None, reason: str) -> SessionOutcome:
        """Save the final state and write ``session.json`` once; the outcome on record."""
        state = self.state
        state.status, state.reason = status, reason
        self.save()
        outcome = SessionOutcome(
            status="implemented" if status == "implemented" else "failed",
            design=design,
            reason=reason,
            flow=self.flow,
            operator=self.operator,
            parents=self.parent_ids,
            candidates=state.attempts,
            attempts=state.attempts,
            proposal_attempts=len(state.proposals),
            rating=state.rating,
            implementation_sessions=state.implementation + (1 if design else 0),
            challenging=state.challenging,
            models=state.models,
            cost_usd=round(state.spent_usd, 6),
            calls=state.calls,
            tokens={"prompt": state.prompt_tokens, "completion": state.completion_tokens},
        )
        if not create_document(self.store, session_key(self.session), outcome):
            recorded = self.outcome()
            outcome = recorded if recorded is not None else outcome
        return outcome


__all__ = ["DESIGN_METADATA_FROM_TREE", "SessionRecords"]
