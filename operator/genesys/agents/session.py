"""LLM design sessions: propose, review, then implement unit by unit (or in one shot).

One session turns a genetic operator and its parents into one new design, following the
Genesys paper's "design session":

1. **Propose** (:mod:`genesys.agents.proposal`): knowledge-base search rounds, then a
   structured proposal that the reviewer rates; below the pass mark it is refined with the
   review, up to ``sessions.maxProposalAttempts`` proposals.
2. **Implement** (:mod:`genesys.agents.implementation`), with flow ``gau`` (unit by unit:
   planner, coder, checks, observer) or ``direct`` (the whole block per attempt).
3. A proposal whose implementation fails more than ``sessions.maxImplementationSessions``
   times is marked ``challenging`` and given up.

:class:`DesignSession` opens what a session needs (parents, ledger, LLM client, knowledge
base; :mod:`genesys.agents.context`), runs the phases and records the outcome; every key it
writes in the run's store is listed in :mod:`genesys.agents.session_records`.
:func:`run_llm_session` is the entry point the design CLI and the benchmarks call.

What must stay true:

- design code never runs in this process: every candidate goes through
  :func:`genesys.sandbox.runner.check_design` (static checks here, the rest in the sandbox);
- a session is idempotent and resumable: with ``session.json`` present nothing runs; otherwise
  it resumes from ``state.json`` at the last accepted proposal and the last committed unit;
- the budget caps are checked before every call (:class:`~genesys.agents.llm.Ledger`); running
  out ends the session with reason ``BudgetExhausted``, an endpoint that keeps failing with
  ``LLMError``, both recorded; only store failures escape as exceptions;
- ``design.json`` is written after its proposal, review and check report, and ``session.json``
  after everything else.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from genesys import telemetry
from genesys.agents import proposal as proposal_phase
from genesys.agents.context import SessionContext, SessionSettings, unit_interface
from genesys.agents.genetic_operators import OPERATORS, check_operator
from genesys.agents.implementation import DirectFlow, UnitByUnitFlow
from genesys.agents.knowledge import KnowledgeBase, build_knowledge_base
from genesys.agents.library import build_library, tree_hash
from genesys.agents.llm import (
    BudgetExhaustedError,
    CallRecord,
    Ledger,
    LLMClient,
    LLMError,
    draw_models,
)
from genesys.agents.roles import ProposalDoc, Rating
from genesys.agents.session_records import SessionRecords
from genesys.api.discoveryrun import Agents
from genesys.store.archive import design_key, run_spent_usd
from genesys.store.base import Store
from genesys.store.claims import claim_hash
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    SessionState,
    plain,
    read_document,
)
from genesys_trainer.tree import DesignError, UnitTree, tree_from_json

FLOWS = ("gau", "direct")

ClientFactory = Callable[[Ledger, Callable[[CallRecord], None]], LLMClient]

log = logging.getLogger(__name__)


def _default_client_factory(agents: Agents) -> ClientFactory:
    def factory(ledger: Ledger, trace: Callable[[CallRecord], None]) -> LLMClient:
        return LLMClient(agents, ledger=ledger, trace=trace)

    return factory


class DesignSession:
    """One LLM design session against a store (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        session: str,
        design_id: str,
        seq: int,
        operator: str,
        parent_ids: Sequence[str],
        seed: int,
        settings: SessionSettings,
        flow: str | None = None,
        client_factory: ClientFactory | None = None,
        progress: Callable[[str], None] | None = None,
        implementation_limit: int | None = None,
    ) -> None:
        """``implementation_limit`` caps the implementation sessions below the spec's (tests)."""
        check_operator(operator, len(parent_ids))
        flow = flow or settings.sessions.flow
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; expected one of {FLOWS}")
        self.seed, self.implementation_limit = seed, implementation_limit
        self.client_factory = client_factory or _default_client_factory(settings.agents)
        parents = list(parent_ids)

        def fresh_state() -> SessionState:
            models = draw_models(settings.agents, random.Random(seed))
            return SessionState(
                session=session,
                design_id=design_id,
                seq=seq,
                operator=operator,
                parents=parents,
                flow=flow,
                seed=seed,
                models=models,
            )

        records = SessionRecords(
            store,
            session=session,
            design_id=design_id,
            seq=seq,
            operator=operator,
            parent_ids=parents,
            flow=flow,
            fresh_state=fresh_state,
        )
        self.ctx = SessionContext(
            store=store,
            session=session,
            design_id=design_id,
            seq=seq,
            operator=operator,
            parent_ids=parents,
            flow=flow,
            settings=settings,
            records=records,
            library=build_library(),
            progress=progress or (lambda message: None),
        )

    # ------------------------------------------------------------------------- the context

    @property
    def state(self) -> SessionState:
        """The session's progress, as in ``state.json``."""
        return self.ctx.state

    @property
    def proposal_doc(self) -> ProposalDoc:
        """The accepted proposal."""
        return self.ctx.proposal_doc

    def save(self) -> None:
        """Write ``state.json``."""
        self.ctx.save()

    # ---------------------------------------------------------------------------------- run

    def run(self) -> dict[str, Any]:
        """Run (or resume) the session and return its recorded outcome."""
        done = self._recorded()
        if done is not None:
            return done
        try:
            self._connect()
        except ValueError as exc:
            return self._finish("failed", None, str(exc))
        except LLMError as exc:
            return self._finish("failed", None, f"LLMError: {exc}")
        client = self.ctx.client
        assert client is not None
        try:
            return self._run()
        except BudgetExhaustedError as exc:
            return self._finish("failed", None, f"BudgetExhausted: {exc}")
        except LLMError as exc:
            return self._finish("failed", None, f"LLMError: {exc}")
        except OSError:
            raise  # the store is unreachable: an infrastructure failure, retried by its caller
        except Exception as exc:  # a bug must not lose the session's outcome or its spend
            log.exception("session %s failed unexpectedly", self.ctx.session)
            return self._finish("failed", None, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def _recorded(self) -> dict[str, Any] | None:
        """The outcome when the session is over, or its design exists already; else None."""
        records = self.ctx.records
        recorded = records.outcome()
        if recorded is not None:
            return plain(recorded)
        try:
            existing = records.existing_design()
        except DocumentError as exc:
            return self._finish("failed", None, f"unreadable design: {exc}")
        if existing is None:
            return None
        if existing.metadata.session == self.ctx.session:
            reason = "recovered the design written before a crash"
            return self._finish("implemented", self.ctx.design_id, reason)
        return self._finish("failed", None, f"design id {self.ctx.design_id!r} is taken")

    def _connect(self) -> None:
        """Load the parents, open the ledger and the client (ValueError, LLMError)."""
        ctx = self.ctx
        ctx.parents = {pid: self._load_parent(pid) for pid in ctx.parent_ids}
        ledger = Ledger.for_session(
            ctx.settings.agents,
            run_spent_usd=run_spent_usd(ctx.store, exclude=ctx.session),
        )
        ledger.session_spent_usd = ctx.state.spent_usd
        ledger.run_spent_usd += ctx.state.spent_usd
        ctx.client = self.client_factory(ledger, ctx.records.call)

    def _load_parent(self, parent_id: str) -> UnitTree:
        key = design_key(parent_id, "design.json")
        try:
            document = read_document(self.ctx.store, key, DesignDocument)
            if document is None:
                raise ValueError(f"parent {parent_id!r} has no readable {key}")
            tree = tree_from_json(plain(document))
        except (DesignError, DocumentError) as exc:
            raise ValueError(f"parent {parent_id!r}: {exc}") from None
        tree.name = parent_id
        return tree

    def _knowledge_base(self) -> KnowledgeBase:
        ctx = self.ctx
        model = ctx.settings.agents.embedding_model
        client = ctx.client
        embed = None
        if model and client is not None:

            def embed(texts: list[str]) -> list[list[float]]:
                return client.embed(model, texts)

        return build_knowledge_base(ctx.store, library=ctx.library, embed=embed)

    def accept_proposal(self) -> bool:
        """Run only the proposal phase (benchmarks reuse its result); True when one passed.

        Raises what the session would record: ValueError, LLMError, BudgetExhaustedError.
        """
        if self.state.proposal is not None:
            return True
        self._connect()
        client = self.ctx.client
        assert client is not None
        try:
            self.ctx.kb = self._knowledge_base()
            return self.propose()
        finally:
            client.close()

    def _run(self) -> dict[str, Any]:
        ctx, state = self.ctx, self.ctx.state
        ctx.kb = self._knowledge_base()
        if state.proposal is None:
            ctx.progress(f"{ctx.session}: proposing ({ctx.operator} of {ctx.parent_ids})")
            if not self.propose():
                best = max((p.get("rating") or 0.0 for p in state.proposals), default=0.0)
                reason = (
                    f"proposal not accepted after {len(state.proposals)} attempts "
                    f"(best rating {best:g})"
                )
                ctx.records.reject("proposal", "review", reason)
                return self._finish("failed", None, reason)
        return self._implement_until_done()

    def _implementation_limit(self) -> int:
        limit = self.ctx.settings.sessions.max_implementation_sessions + 1
        if self.implementation_limit is not None:
            limit = min(limit, self.implementation_limit)
        return limit

    def _implement_until_done(self) -> dict[str, Any]:
        """Implementation sessions until one passes or the limit is reached."""
        ctx, state = self.ctx, self.ctx.state
        limit = self._implementation_limit()
        while state.implementation < limit:
            ctx.progress(f"{ctx.session}: implementation {state.implementation + 1} ({ctx.flow})")
            attributes = {"genesys.implementation": state.implementation, "genesys.flow": ctx.flow}
            with telemetry.span("genesys.session.implement", attributes) as span:
                tree, reason = self.implement_direct() if ctx.flow == "direct" else self.implement()
                span.set_attribute("genesys.implementation.passed", tree is not None)
            if tree is not None:
                return self._write_design(tree)
            state.implementation_failures.append(reason)
            ctx.records.reject(f"i{state.implementation}", "implementation", reason)
            state.implementation += 1
            state.tree, state.committed, state.unit_tests = None, [], {}
            state.rounds = state.failed_rounds = 0
            ctx.save()
        state.challenging = limit > ctx.settings.sessions.max_implementation_sessions
        reason = (
            f"the proposal failed {len(state.implementation_failures)} "
            f"implementation sessions; last: {state.implementation_failures[-1]}"
        )
        if state.challenging:
            reason = f"challenging: {reason}"
        return self._finish("failed", None, reason)

    # ------------------------------------------------------------------------------ phases

    def propose(self) -> bool:
        """Search, propose, review and refine; True when a proposal passed the review."""
        with telemetry.span("genesys.session.propose") as span:
            accepted = proposal_phase.propose(self.ctx)
            span.set_attribute("genesys.proposal.accepted", accepted)
            return accepted

    def review(self, proposal: ProposalDoc) -> Rating:
        """The reviewer's verdict on ``proposal``."""
        return proposal_phase.review(self.ctx, proposal)

    def implement(self) -> tuple[UnitTree | None, str]:
        """The unit-by-unit flow; the finished tree, or None and the reason."""
        return UnitByUnitFlow(self.ctx).implement()

    def implement_direct(self) -> tuple[UnitTree | None, str]:
        """The direct-prompt flow: the whole block in one reply per attempt."""
        return DirectFlow(self.ctx).implement()

    # ----------------------------------------------------------------------------- results

    def _write_design(self, tree: UnitTree) -> dict[str, Any]:
        ctx = self.ctx
        digest = tree_hash(tree)
        holder = claim_hash(ctx.store, digest, design=ctx.design_id, session=ctx.session)
        if holder is not None:
            reason = f"the implemented tree is identical to design {holder} (written meanwhile)"
            ctx.records.reject(f"i{ctx.state.implementation}", "duplicate", reason)
            return self._finish("failed", None, reason)
        rung = ctx.settings.rung.name
        ctx.records.design(tree, ctx.proposal_doc, digest=digest, rung=rung)
        return self._finish(
            "implemented", ctx.design_id, f"passed the {rung} checks: {ctx.proposal_doc.title}"
        )

    def _finish(self, status: str, design: str | None, reason: str) -> dict[str, Any]:
        outcome = self.ctx.records.finish(status, design, reason)
        self.ctx.progress(f"{self.ctx.session}: {status}: {reason}")
        return plain(outcome)


def run_llm_session(
    *,
    store: Store,
    session: str,
    design_id: str,
    seq: int,
    operator: str,
    parent_ids: Sequence[str],
    seed: int,
    settings: SessionSettings,
    flow: str | None = None,
    client_factory: ClientFactory | None = None,
    progress: Callable[[str], None] | None = None,
    implementation_limit: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) one LLM design session and return its outcome."""
    return DesignSession(
        store=store,
        session=session,
        design_id=design_id,
        seq=seq,
        operator=operator,
        parent_ids=parent_ids,
        seed=seed,
        settings=settings,
        flow=flow,
        client_factory=client_factory,
        progress=progress,
        implementation_limit=implementation_limit,
    ).run()


__all__ = [
    "FLOWS",
    "OPERATORS",
    "ClientFactory",
    "DesignSession",
    "SessionSettings",
    "run_llm_session",
    "unit_interface",
]
