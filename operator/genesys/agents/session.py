"""LLM design sessions: propose, review, then implement unit by unit (or in one shot).

One session turns a genetic operator and its parents into one new design, following
the Genesys paper's "design session":

1. **Propose.** The proposer runs ``sessions.searchRounds`` rounds of knowledge-base search,
   then writes a structured proposal (in mutation mode naming exactly one unit of the parent).
2. **Review.** The reviewer sees the proposal, similar earlier proposals and designs, and the
   siblings (same parents); it rates 0-5. Below ``sessions.proposalPassRating`` (never shown
   to the agents) the proposal is refined with the review, up to ``maxProposalAttempts``.
3. **Implement** (flow ``gau``): rounds of planner -> coder -> static and sandboxed dynamic
   checks -> observer, one unit a round, starting from the parent's tree (mutation: only the
   selected subtree may change), from nothing with the parents' units to reuse (crossover), or
   from nothing (scratch: the root must have children). A round gets ``maxUnitAttempts``
   attempts, each fed the last failure; a failed round is rolled back, and more than
   ``maxFailedRounds`` failed rounds abandon the implementation. Flow ``direct`` writes the
   whole block as one file per attempt, with the same checks, feedback and limits (the
   paper's baseline).
4. A proposal whose implementation fails more than ``maxImplementationSessions`` times is
   marked ``challenging`` and given up.

Keys written in the run's store (documents of :mod:`genesys.store.documents`)::

    sessions/<sid>/state.json                  SessionState; rewritten after every step
    sessions/<sid>/calls/<n>.json              one LLM call: role, model, prompt hash, tokens,
                                               USD, latency, attempts, error
    sessions/<sid>/attempts/<i>-<r>-<a>.json   one implementation attempt: unit, code, tests,
                                               check report, verdict
    sessions/<sid>/session.json                the SessionOutcome (written last)
    hashes/<hash>.json                         the design's claim on its structural hash
    designs/<id>/{proposal.md, review.json, checks/<rung>.json, design.json}
    rejected/<id>-<what>.json                  a proposal or implementation given up

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

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from genesys.agents import knowledge, roles
from genesys.agents.library import build_library, tree_hash
from genesys.agents.llm import (
    BudgetExhaustedError,
    CallRecord,
    Ledger,
    LLMClient,
    LLMError,
    ReplyError,
    draw_models,
)
from genesys.agents.offline import OPERATORS, check_operator, known_hashes
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
from genesys.api.discoveryrun import Agents, Checks, DiscoveryRun, Sessions
from genesys.api.ladder import RungConfig
from genesys.api.runconfig import RunConfig, RunIdentity, resolve_run_config
from genesys.sandbox.report import Report
from genesys.sandbox.runner import SandboxLimits, check_design, check_settings, limits_from_checks
from genesys.store.archive import design_key, rejection_key, run_spent_usd, session_key
from genesys.store.base import Store
from genesys.store.claims import claim_hash
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    RejectionRecord,
    SessionOutcome,
    SessionState,
    create_document,
    plain,
    read_document,
    write_document,
)
from genesys_trainer.tree import DesignError, UnitTree, load_block_file, tree_from_json

MAX_ROUNDS = 16
"""Rounds one implementation may take (each adds a unit), so declarations cannot grow forever."""
ROOT_TARGET = "<root>"
REFERENCE_CHARS = 6000
FLOWS = ("gau", "direct")


# ------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class SessionSettings:
    """Everything a session needs from the run config."""

    agents: Agents
    sessions: Sessions
    checks: Checks
    rung: RungConfig  # the lowest rung: designs are checked there
    limits: SandboxLimits
    check_overrides: Mapping[str, Any] = field(default_factory=dict)  # tests, benchmarks

    def child_settings(self) -> dict[str, Any]:
        """The check settings the sandbox child reads."""
        return {**check_settings(self.checks), **self.check_overrides}

    @classmethod
    def from_config(
        cls, config: RunConfig, *, limits: SandboxLimits | None = None
    ) -> SessionSettings:
        """Settings of a run: checks at its lowest rung, sandbox limits from its checks."""
        return cls(
            agents=config.agents,
            sessions=config.sessions,
            checks=config.checks,
            rung=config.lowest,
            limits=limits or limits_from_checks(config.checks),
        )

    @classmethod
    def from_run(cls, run: DiscoveryRun) -> SessionSettings:
        """Settings of a run spec resolved on the spot (tests and benchmarks; runs pass config)."""
        identity = RunIdentity(name=run.metadata.name)
        return cls.from_config(resolve_run_config(run, identity=identity, data_uri="unused"))


# --------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Attempt:
    """The outcome of one implementation attempt."""

    tree: UnitTree | None
    feedback: str
    check: str  # the failing check, "observer", "reply" or "protocol"; "" on success
    rating: float | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


# ------------------------------------------------------------------------------------ session


ClientFactory = Callable[[Ledger, Callable[[CallRecord], None]], LLMClient]


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
        self.store, self.session = store, session
        self.design_id, self.seq, self.operator = design_id, seq, operator
        self.parent_ids, self.seed, self.settings = list(parent_ids), seed, settings
        self.flow = flow or settings.sessions.flow
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow {self.flow!r}; expected one of {FLOWS}")
        self.client_factory = client_factory or _default_client_factory(settings.agents)
        self.progress = progress or (lambda message: None)
        self.implementation_limit = implementation_limit
        self.state_key = session_key(session, "state.json")
        self.state = self._load_state()
        self.parents: dict[str, UnitTree] = {}
        self.client: LLMClient | None = None
        self.kb: knowledge.KnowledgeBase | None = None
        self.library = build_library()
        self._last_report: Report | None = None

    # ----------------------------------------------------------------------------- plumbing

    def _load_state(self) -> SessionState:
        try:
            state = read_document(self.store, self.state_key, SessionState)
        except DocumentError:
            state = None  # unreadable progress: start the session again
        if state is not None:
            return state
        models = draw_models(self.settings.agents, random.Random(self.seed))
        return SessionState(
            session=self.session, design_id=self.design_id, seq=self.seq,
            operator=self.operator, parents=self.parent_ids, flow=self.flow, seed=self.seed,
            models=models,
        )  # fmt: skip

    def save(self) -> None:
        """Write ``state.json``."""
        write_document(self.store, self.state_key, self.state)

    def _trace(self, record: CallRecord) -> None:
        state = self.state
        state.calls += 1
        state.spent_usd += record.cost_usd
        state.prompt_tokens += record.prompt_tokens
        state.completion_tokens += record.completion_tokens
        entry = {**asdict(record), "at": time.time(), "call": state.calls}
        key = session_key(self.session, f"calls/{state.calls:05d}.json")
        self.store.put_text(key, _dumps(entry))
        self.save()

    def _ask(
        self, role: str, conversation: list[dict[str, str]], parse: Callable[[str], Any]
    ) -> Any:
        assert self.client is not None
        return self.client.ask(
            role, self.state.models[role], conversation, parse,
            max_tokens=self.settings.agents.max_tokens,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- run

    def run(self) -> dict[str, Any]:
        """Run (or resume) the session and return its recorded outcome."""
        recorded = read_document(self.store, session_key(self.session), SessionOutcome)
        if recorded is not None:
            return plain(recorded)
        try:
            existing = read_document(
                self.store, design_key(self.design_id, "design.json"), DesignDocument
            )
        except DocumentError as exc:
            return self._finish("failed", None, f"unreadable design: {exc}")
        if existing is not None:
            if existing.metadata.session == self.session:
                return self._finish("implemented", self.design_id, "recovered the design written "
                                    "before a crash")  # fmt: skip
            return self._finish("failed", None, f"design id {self.design_id!r} is taken")
        try:
            self._connect()
        except ValueError as exc:
            return self._finish("failed", None, str(exc))
        except LLMError as exc:
            return self._finish("failed", None, f"LLMError: {exc}")
        assert self.client is not None
        try:
            return self._run()
        except BudgetExhaustedError as exc:
            return self._finish("failed", None, f"BudgetExhausted: {exc}")
        except LLMError as exc:
            return self._finish("failed", None, f"LLMError: {exc}")
        finally:
            self.client.close()

    def _connect(self) -> None:
        """Load the parents, open the ledger and the client (ValueError, LLMError)."""
        self.parents = {pid: self._load_parent(pid) for pid in self.parent_ids}
        ledger = Ledger.for_session(
            self.settings.agents,
            run_spent_usd=run_spent_usd(self.store, exclude=self.session),
        )
        ledger.session_spent_usd = self.state.spent_usd
        ledger.run_spent_usd += self.state.spent_usd
        self.client = self.client_factory(ledger, self._trace)

    def accept_proposal(self) -> bool:
        """Run only the proposal phase (benchmarks reuse its result); True when one passed.

        Raises what the session would record: ValueError, LLMError, BudgetExhaustedError.
        """
        if self.state.proposal is not None:
            return True
        self._connect()
        assert self.client is not None
        try:
            self.kb = self._knowledge_base()
            return self.propose()
        finally:
            self.client.close()

    def _run(self) -> dict[str, Any]:
        state = self.state
        self.kb = self._knowledge_base()
        if state.proposal is None:
            self.progress(f"{self.session}: proposing ({self.operator} of {self.parent_ids})")
            if not self.propose():
                best = max((p.get("rating") or 0.0 for p in state.proposals), default=0.0)
                reason = (
                    f"proposal not accepted after {len(state.proposals)} attempts "
                    f"(best rating {best:g})"
                )
                self._reject("proposal", "review", reason)
                return self._finish("failed", None, reason)
        limit = self.settings.sessions.max_implementation_sessions + 1
        if self.implementation_limit is not None:
            limit = min(limit, self.implementation_limit)
        while state.implementation < limit:
            self.progress(
                f"{self.session}: implementation {state.implementation + 1} ({self.flow})"
            )
            tree, reason = self.implement_direct() if self.flow == "direct" else self.implement()
            if tree is not None:
                return self._write_design(tree)
            state.implementation_failures.append(reason)
            self._reject(f"i{state.implementation}", "implementation", reason)
            state.implementation += 1
            state.tree, state.committed, state.unit_tests = None, [], {}
            state.rounds = state.failed_rounds = 0
            self.save()
        state.challenging = limit > self.settings.sessions.max_implementation_sessions
        reason = (
            f"the proposal failed {len(state.implementation_failures)} "
            f"implementation sessions; last: {state.implementation_failures[-1]}"
        )
        if state.challenging:
            reason = f"challenging: {reason}"
        return self._finish("failed", None, reason)

    def _load_parent(self, parent_id: str) -> UnitTree:
        key = design_key(parent_id, "design.json")
        try:
            document = read_document(self.store, key, DesignDocument)
            if document is None:
                raise ValueError(f"parent {parent_id!r} has no readable {key}")
            tree = tree_from_json(plain(document))
        except (DesignError, DocumentError) as exc:
            raise ValueError(f"parent {parent_id!r}: {exc}") from None
        tree.name = parent_id
        return tree

    def _knowledge_base(self) -> knowledge.KnowledgeBase:
        model = self.settings.agents.embedding_model
        client = self.client
        embed = None
        if model and client is not None:

            def embed(texts: list[str]) -> list[list[float]]:
                return client.embed(model, texts)

        return knowledge.build_knowledge_base(self.store, library=self.library, embed=embed)

    # --------------------------------------------------------------------------- proposing

    def _operator_instructions(self) -> str:
        texts = {
            "mutation": "Mode: MUTATION. Improve the parent design by changing exactly one of "
            'its units (and what lies below it): name it in "selected_unit" (a unit name or a '
            "slot path such as block.seq_mixer). Every other unit stays as it is.",
            "crossover": "Mode: CROSSOVER. Combine the best ideas of the two parent designs into "
            "one new design; it starts empty and may reuse the parents' units.",
            "scratch": "Mode: FROM SCRATCH. Invent a new block design, a tree of units whose "
            "root block has child units.",
        }
        return texts[self.operator]

    def _parents_text(self) -> str:
        if not self.parents:
            return "No parent designs (design from scratch)."
        parts = []
        for pid, tree in self.parents.items():
            proposal = str(tree.metadata.get("proposal") or "")[:1500]
            excerpt = f"\n\nIts proposal (excerpt):\n{proposal}" if proposal else ""
            parts.append(
                f"Parent {pid}: {tree.metadata.get('title', '')}\n\n{tree.render()}{excerpt}"
            )
        return "\n\n".join(parts)

    def _proposer_context(self) -> str:
        assert self.kb is not None
        query = " ".join(str(t.metadata.get("title", "")) for t in self.parents.values())
        earlier = self.kb.search(query or "language model block", k=3, kinds=("proposal",))
        return (
            f"{self._parents_text()}\n\nEarlier proposals of this run that look related "
            f"(do not repeat them):\n\n{knowledge.render_hits(earlier)}"
        )

    def _search(self, queries: list[str], paper_note: list[str]) -> str:
        assert self.kb is not None
        agents = self.settings.agents
        blocks = []
        for query in queries:
            hits = self.kb.search(query, k=3)
            text = f"Query: {query}\n{knowledge.render_hits(hits)}"
            if agents.paper_search != "off" and not paper_note:
                try:
                    papers = knowledge.search_papers(
                        query, source=agents.paper_search, base_url=agents.paper_search_url
                    )
                    text += "\nPapers:\n" + "\n".join(
                        f"- {p.title} ({p.year}) {p.url}\n  {p.abstract[:400]}" for p in papers
                    )
                except knowledge.PaperSearchError as exc:
                    paper_note.append(str(exc))
                    self.progress(f"{self.session}: {exc}")
            blocks.append(text)
        return "\n\n".join(blocks)

    def propose(self) -> bool:
        """Search, propose, review and refine; True when a proposal passed the review."""
        state, sessions = self.state, self.settings.sessions
        system = {"operator_instructions": self._operator_instructions(),
                  "unit_interface": unit_interface()}  # fmt: skip
        context = self._proposer_context()
        results, paper_note = "", list[str]()
        if not state.searches:
            for round_index in range(sessions.search_rounds):
                conversation = roles.messages(
                    "proposer", "search", system, round=round_index + 1,
                    rounds=sessions.search_rounds, context=context,
                    results=results or "(no searches yet)",
                )  # fmt: skip
                queries = self._ask(
                    "proposer", conversation, roles.json_parser(roles.parse_queries)
                )
                if not queries:
                    break
                found = self._search(queries, paper_note)
                results = f"{results}\n\n{found}".strip()
                state.searches.append({"round": round_index + 1, "queries": queries,
                                       "papers": paper_note[:1]})  # fmt: skip
                self.save()
            state.searches.append({"results": results})
        else:
            results = next((s["results"] for s in state.searches if "results" in s), "")
        write = roles.messages(
            "proposer", "write", system, context=context,
            results=results or "(nothing searched)",
            selection_field=', and "selected_unit" (the one unit or slot path you change)'
            if self.operator == "mutation" else "",
        )  # fmt: skip
        parent = next(iter(self.parents.values()), None)
        for _ in range(len(state.proposals), sessions.max_proposal_attempts):
            conversation = list(write)
            if state.proposals:
                last = state.proposals[-1]
                refine = roles.render(
                    "proposer", "refine", proposal=roles.ProposalDoc(**last["proposal"]).render(),
                    review=roles.Rating(**last["review"]).render(),
                )  # fmt: skip
                conversation += [
                    {"role": "assistant", "content": json.dumps(last["proposal"])},
                    {"role": "user", "content": refine},
                ]
            proposal = self._ask("proposer", conversation, self._proposal_parser(parent))
            verdict = self.review(proposal)
            passed = verdict.rating >= sessions.proposal_pass_rating
            state.proposals.append({"proposal": proposal.to_json(), "review": asdict(verdict),
                                    "rating": verdict.rating, "passed": passed})  # fmt: skip
            self.progress(f"{self.session}: proposal {len(state.proposals)} "
                          f"'{proposal.title}' rated {verdict.rating:g}")  # fmt: skip
            if passed:
                state.proposal, state.rating, state.status = (
                    proposal.to_json(),
                    verdict.rating,
                    ("implementing"),
                )
                self.save()
                return True
            self.save()
        return False

    def _proposal_parser(self, parent: UnitTree | None) -> Callable[[str], roles.ProposalDoc]:
        mutation = self.operator == "mutation"

        def parse(text: str) -> roles.ProposalDoc:
            from genesys.agents.llm import extract_json

            proposal = roles.ProposalDoc.from_json(extract_json(text), needs_selection=mutation)
            if mutation and parent is not None:
                resolve_selection(parent, proposal.selected_unit or "")  # ValueError if absent
            return proposal

        return parse

    def _siblings(self) -> str:
        assert self.kb is not None
        parents = sorted(self.parent_ids)
        lines = []
        for document in self.kb.documents():
            same_parents = sorted(document.meta.get("parents") or []) == parents
            related = document.kind in ("design", "proposal") and bool(parents) and same_parents
            if related and document.id != f"proposal:{self.session}":
                lines.append(f"- [{document.id}] {document.title}: {document.text[:300]}")
        return "\n".join(lines[:8]) or "(none)"

    def review(self, proposal: roles.ProposalDoc) -> roles.Rating:
        """The reviewer's verdict on ``proposal``."""
        assert self.kb is not None
        query = f"{proposal.title} {proposal.design_plan}"
        similar = self.kb.search(query, k=4, kinds=("proposal", "design"),
                                 exclude=(f"proposal:{self.session}",))  # fmt: skip
        conversation = roles.messages(
            "reviewer", "review", {}, operator=self.operator, proposal=proposal.render(),
            parents=self._parents_text(), similar=knowledge.render_hits(similar),
            siblings=self._siblings(),
        )  # fmt: skip
        verdict: roles.Rating = self._ask("reviewer", conversation,
                                          roles.json_parser(roles.Rating.from_json))  # fmt: skip
        return verdict

    # ---------------------------------------------------------------------- implementation

    @property
    def proposal_doc(self) -> roles.ProposalDoc:
        assert self.state.proposal is not None
        return roles.ProposalDoc(**self.state.proposal)

    def _selection(self) -> Selection | None:
        if self.operator != "mutation":
            return None
        parent = next(iter(self.parents.values()))
        return resolve_selection(parent, self.proposal_doc.selected_unit or "")

    def _committed_tree(self) -> UnitTree | None:
        if self.state.tree is not None:
            return tree_from_json(self.state.tree)
        if self.operator == "mutation":
            parent = next(iter(self.parents.values()))
            return tree_from_json({**parent.to_json(), "name": self.design_id})
        return None

    def _pool(self, tree: UnitTree | None) -> dict[str, UnitTree]:
        library_tree = UnitTree("library", next(iter(self.library)), {
            name: _library_spec(unit) for name, unit in self.library.items()
        })  # fmt: skip
        own = set(tree.units) if tree is not None else set()
        return pool_of({**self.parents, "library": library_tree}, exclude=own)

    def implement(self) -> tuple[UnitTree | None, str]:
        """The unit-by-unit flow; the finished tree, or None and the reason."""
        state, sessions = self.state, self.settings.sessions
        selection = self._selection()
        parent = next(iter(self.parents.values()), None)
        protected = protected_units(parent, selection) if parent and selection else set()
        known = known_hashes(self.store)
        while True:
            tree = self._committed_tree()
            if selection is not None and not state.committed:
                targets = [selection.unit]
            elif tree is None:
                targets = [ROOT_TARGET]
            else:
                targets = pending_units(tree)
            if not targets:
                assert tree is not None
                return tree, ""
            if state.rounds >= MAX_ROUNDS:
                return None, f"the design needs more than {MAX_ROUNDS} rounds"
            state.rounds += 1
            step = self._plan(tree, targets, protected)
            result = self._implement_unit(tree, step, selection, protected, known)
            if result.tree is not None:
                unit = result.tree.root if step.unit == ROOT_TARGET else step.unit
                if selection is not None and not state.committed:
                    unit = _bound_unit(result.tree, selection)
                state.tree = result.tree.to_json()
                state.committed.append({"unit": unit, "rating": result.rating,
                                        "round": state.rounds})  # fmt: skip
                self.save()
                self.progress(f"{self.session}: committed unit {unit}")
                continue
            state.failed_rounds += 1
            self.save()
            if state.failed_rounds > sessions.max_failed_rounds:
                return None, (
                    f"abandoned after {state.failed_rounds} failed rounds; last: "
                    f"{result.feedback[:600]}"
                )

    def _plan(
        self, tree: UnitTree | None, targets: list[str], protected: set[str]
    ) -> roles.PlanStep:
        assert self.kb is not None
        if targets == [ROOT_TARGET]:
            return roles.PlanStep(ROOT_TARGET, [], "write the root block of the new design")
        proposal = self.proposal_doc
        similar = self.kb.search(f"{' '.join(targets)} {proposal.design_plan}", k=3,
                                 kinds=("unit",))  # fmt: skip
        history = "\n".join(
            f"- round {c['round']}: committed {c['unit']}" for c in self.state.committed
        )
        conversation = roles.messages(
            "planner", "plan", {}, proposal=proposal.render(),
            tree=tree.render() if tree else "(empty)", protected=_protected_text(protected),
            pending=", ".join(targets), reusable=self._reusable_text(tree),
            similar=knowledge.render_hits(similar),
            history=f"Rounds so far:\n{history}" if history else "",
        )  # fmt: skip
        step: roles.PlanStep = self._ask(
            "planner", conversation,
            roles.json_parser(lambda data: roles.PlanStep.from_json(data, pending=targets)),
        )  # fmt: skip
        return step

    def _reusable_text(self, tree: UnitTree | None) -> str:
        pool = self._pool(tree)
        own = sorted(tree.units) if tree is not None else []
        return ", ".join(own + sorted(pool)) or "(none)"

    def _reference_code(self, tree: UnitTree | None, step: roles.PlanStep) -> str:
        parts: list[str] = []
        if tree is not None and step.unit in tree.units:
            parts.append(f"The current code of {step.unit} (you replace it):\n```python\n"
                         f"{tree.units[step.unit].source}```")  # fmt: skip
        if tree is not None:
            for owner, spec in tree.units.items():
                if step.unit in spec.children.values() and owner != step.unit:
                    parts.append(f"{owner}, which calls it:\n```python\n{spec.source}```")
                    break
        pool = self._pool(tree)
        for name in step.reuse[:2]:
            source = pool[name].units[name].source if name in pool else None
            if source is not None:
                parts.append(f"Suggested for reuse, {name}:\n```python\n{source}```")
        text = "\n\n".join(parts)
        return text[:REFERENCE_CHARS] + ("\n(truncated)" if len(text) > REFERENCE_CHARS else "")

    def _coder_messages(
        self, tree: UnitTree | None, step: roles.PlanStep, protected: set[str], feedback: str
    ) -> list[dict[str, str]]:
        if step.unit == ROOT_TARGET:
            target = "root block"
            note = (
                "It is the root: a Unit subclass with a name of your choice that owns the "
                "residual connections, and declares its parts as children."
            )
        else:
            target = step.unit
            note = ("Keep this exact class name." if tree is None or step.unit not in tree.units
                    else "You may keep its name or give the new unit a new name.")  # fmt: skip
        return roles.messages(
            "coder", "unit", {"unit_interface": unit_interface()},
            proposal=self.proposal_doc.render(), tree=tree.render() if tree else "(empty)",
            protected=_protected_text(protected), target=target, target_note=note,
            instructions=step.instructions or "(none)",
            reference_code=self._reference_code(tree, step),
            reusable=self._reusable_text(tree), feedback=feedback,
        )  # fmt: skip

    def _implement_unit(
        self, tree: UnitTree | None, step: roles.PlanStep, selection: Selection | None,
        protected: set[str], known: set[str],
    ) -> Attempt:  # fmt: skip
        """One round: up to ``maxUnitAttempts`` attempts at the planned unit."""
        feedback = ""
        last = Attempt(None, "no attempt was made", "reply")
        for attempt in range(1, self.settings.sessions.max_unit_attempts + 1):
            self.state.attempts += 1
            conversation = self._coder_messages(tree, step, protected, feedback)
            try:
                written: WrittenUnit = self._ask("coder", conversation, roles.parse_unit_reply)
            except ReplyError as exc:
                last = Attempt(None, str(exc), "reply")
            else:
                last = self._try_unit(tree, written, step, selection, protected, known)
                self._record_attempt(step.unit, attempt, written, last)
                if last.tree is not None:
                    return last
                feedback = _feedback(written, last)
            self.save()
        return last

    def _try_unit(
        self, tree: UnitTree | None, written: WrittenUnit, step: roles.PlanStep,
        selection: Selection | None, protected: set[str], known: set[str],
    ) -> Attempt:  # fmt: skip
        target = written.name if step.unit == ROOT_TARGET else step.unit
        try:
            new = apply_unit(
                tree, written, target=target, selection=selection, protected=protected,
                pool=self._pool(tree), name=self.design_id,
            )  # fmt: skip
        except TreeEditError as exc:
            return Attempt(None, str(exc), "protocol")
        if self.operator == "scratch" and not new.units[new.root].children:
            return Attempt(None, "the root block must declare child units (CHILDREN): a design "
                           "from scratch is a tree, not one block", "protocol")  # fmt: skip
        tests = (
            {**self.state.unit_tests, written.name: written.tests}
            if written.tests
            else dict(self.state.unit_tests)
        )
        new.metadata = {"unit_tests": {k: v for k, v in tests.items() if k in new.units}}
        if not pending_units(new) and tree_hash(new) in known | self._parent_hashes():
            return Attempt(None, "the finished design is identical to an existing design; "
                           "change the unit so the design is new", "protocol")  # fmt: skip
        return self._check_and_observe(new, written)

    def _parent_hashes(self) -> set[str]:
        return {tree_hash(tree) for tree in self.parents.values()}

    def _check_and_observe(self, tree: UnitTree, written: WrittenUnit) -> Attempt:
        settings = self.settings
        report = check_design(
            tree.to_json(), rung=settings.rung, settings=settings.child_settings(),
            limits=settings.limits,
        )  # fmt: skip
        self._last_report = report
        if not report.passed:
            failed = report.failed()[0]
            return Attempt(None, report.render(), failed.name)
        conversation = roles.messages(
            "observer", "observe", {}, proposal=self.proposal_doc.render(), target=written.name,
            code=written.source, tree=tree.render(), report=report.render(),
        )  # fmt: skip
        verdict: roles.Rating = self._ask("observer", conversation,
                                          roles.json_parser(roles.Rating.from_json))  # fmt: skip
        if verdict.rating < settings.sessions.observer_pass_rating:
            return Attempt(None, f"The observer rejected the unit.\n{verdict.render()}",
                           "observer", verdict.rating)  # fmt: skip
        if written.tests:
            self.state.unit_tests[written.name] = written.tests
        return Attempt(tree, "", "", verdict.rating)

    def _record_attempt(
        self, unit: str, attempt: int, written: WrittenUnit, result: Attempt
    ) -> None:
        state = self.state
        report = self._last_report
        name = f"i{state.implementation}-r{state.rounds}-a{attempt}"
        entry = {
            "unit": unit, "written": asdict(written), "passed": result.tree is not None,
            "check": result.check, "feedback": result.feedback, "rating": result.rating,
            "report": report.to_json() if report is not None else None,
        }  # fmt: skip
        self._last_report = None
        key = session_key(self.session, f"attempts/{name}.json")
        self.store.put_text(key, _dumps(entry))

    def implement_direct(self) -> tuple[UnitTree | None, str]:
        """The direct-prompt flow: the whole block in one reply per attempt."""
        state = self.state
        state.rounds = 1
        known = known_hashes(self.store) | self._parent_hashes()
        parent = next(iter(self.parents.values()), None)
        reference = ""
        if parent is not None:
            code = "\n\n".join(f"# unit {n}\n{u.source}" for n, u in parent.units.items())
            reference = (f"The parent design {parent.name}, as a tree:\n{parent.render()}\n\n"
                         f"Its units:\n```python\n{code[:REFERENCE_CHARS]}```")  # fmt: skip
        feedback = ""
        last = Attempt(None, "no attempt was made", "reply")
        for attempt in range(1, self.settings.sessions.max_unit_attempts + 1):
            state.attempts += 1
            conversation = roles.messages(
                "direct", "block", {"unit_interface": unit_interface()},
                proposal=self.proposal_doc.render(), reference_code=reference, feedback=feedback,
            )  # fmt: skip
            try:
                written: WrittenUnit = self._ask("coder", conversation, roles.parse_block_reply)
            except ReplyError as exc:
                last = Attempt(None, str(exc), "reply")
                self.save()
                continue
            last = self._try_block(written, known)
            self._record_attempt(written.name, attempt, written, last)
            self.save()
            if last.tree is not None:
                return last.tree, ""
            feedback = _feedback(written, last)
        return (
            None,
            f"no block passed in {self.settings.sessions.max_unit_attempts} attempts; "
            f"last: {last.feedback[:600]}",
        )

    def _try_block(self, written: WrittenUnit, known: set[str]) -> Attempt:
        if declared_children(written.source):
            return Attempt(None, "the block must have no children (CHILDREN empty)", "protocol")
        try:
            tree = load_block_file(written.source, name=self.design_id)
        except DesignError as exc:
            return Attempt(None, str(exc), "protocol")
        tree.metadata["unit_tests"] = {written.name: written.tests} if written.tests else {}
        if tree_hash(tree) in known:
            return Attempt(None, "the block is identical to an existing design", "protocol")
        return self._check_and_observe(tree, written)

    # ----------------------------------------------------------------------------- results

    def _write_design(self, tree: UnitTree) -> dict[str, Any]:
        state, proposal = self.state, self.proposal_doc
        digest = tree_hash(tree)
        holder = claim_hash(self.store, digest, design=self.design_id, session=self.session)
        if holder is not None:
            reason = f"the implemented tree is identical to design {holder} (written meanwhile)"
            self._reject(f"i{state.implementation}", "duplicate", reason)
            return self._finish("failed", None, reason)
        report = self._final_report(tree)
        document = tree.to_json()
        document["name"] = self.design_id
        document["metadata"] = {
            **{k: v for k, v in tree.metadata.items() if k in ("format", "unit_tests")},
            "title": proposal.title, "operator": self.operator, "parents": self.parent_ids,
            "proposal": proposal.render(), "hash": digest, "seq": self.seq,
            "session": self.session, "rating": state.rating, "flow": self.flow,
            "models": state.models, "cost_usd": round(state.spent_usd, 6),
            "attempts": state.attempts,
        }  # fmt: skip
        design = self.design_id
        rung = self.settings.rung.name
        self.store.put_text(design_key(design, "proposal.md"), proposal.render())
        self.store.put_text(design_key(design, "review.json"), _dumps(state.proposals))
        self.store.put_text(design_key(design, "checks", f"{rung}.json"), _dumps(report))
        write_document(self.store, design_key(design, "design.json"),
                       DesignDocument.model_validate(document))  # fmt: skip
        reason = f"passed the {rung} checks: {proposal.title}"
        return self._finish("implemented", design, reason)

    def _final_report(self, tree: UnitTree) -> dict[str, Any]:
        attempts = session_key(self.session, "attempts")
        for key in sorted(self.store.list(attempts), reverse=True):
            try:
                entry = json.loads(self.store.get_text(key))
            except (KeyError, ValueError):
                continue
            if isinstance(entry, dict) and entry.get("passed") and entry.get("report"):
                return dict(entry["report"])
        return {"checks": [], "info": {"note": f"no stored report for {tree.name}"}}

    def _reject(self, what: str, check: str, reason: str) -> None:
        proposal = self.state.proposal or (self.state.proposals[-1]["proposal"]
                                           if self.state.proposals else {})  # fmt: skip
        record = RejectionRecord(
            session=self.session, operator=self.operator, parents=self.parent_ids,
            reason=reason, check=check, title=str(proposal.get("title", "")), flow=self.flow,
        )  # fmt: skip
        write_document(self.store, rejection_key(self.design_id, what), record)

    def _finish(self, status: str, design: str | None, reason: str) -> dict[str, Any]:
        state = self.state
        state.status, state.reason = status, reason
        self.save()
        outcome = SessionOutcome(
            status="implemented" if status == "implemented" else "failed",
            design=design, reason=reason, flow=self.flow, operator=self.operator,
            parents=self.parent_ids, candidates=state.attempts, attempts=state.attempts,
            proposal_attempts=len(state.proposals), rating=state.rating,
            implementation_sessions=state.implementation + (1 if design else 0),
            challenging=state.challenging, models=state.models,
            cost_usd=round(state.spent_usd, 6), calls=state.calls,
            tokens={"prompt": state.prompt_tokens, "completion": state.completion_tokens},
        )  # fmt: skip
        if not create_document(self.store, session_key(self.session), outcome):
            recorded = read_document(self.store, session_key(self.session), SessionOutcome)
            outcome = recorded if recorded is not None else outcome
        self.progress(f"{self.session}: {status}: {reason}")
        return plain(outcome)


# ------------------------------------------------------------------------------------ helpers


def unit_interface() -> str:
    """The unit-protocol documentation given to the agents."""
    from importlib import resources

    path = resources.files("genesys_trainer").joinpath("docs", "UNIT_INTERFACE.md")
    return path.read_text("utf-8")


def _library_spec(unit: Any) -> Any:
    from genesys_trainer.tree import UnitSpec

    return UnitSpec(unit.source, dict(unit.children), {}, unit.requirements)


def _bound_unit(tree: UnitTree, selection: Selection) -> str:
    if selection.owner is None:
        return tree.root
    return tree.units[selection.owner].children[selection.slot or ""]


def _protected_text(protected: set[str]) -> str:
    if not protected:
        return ""
    return ("Protected units (used outside the part this mutation changes: reuse them as they "
            f"are, never rewrite them): {', '.join(sorted(protected))}")  # fmt: skip


def _feedback(written: WrittenUnit, result: Attempt) -> str:
    return (
        f"Your previous attempt failed ({result.check}). Fix it.\n\n{result.feedback}\n\n"
        f"The previous code:\n```python\n{written.source}```"
    )


def _default_client_factory(agents: Agents) -> ClientFactory:
    def factory(ledger: Ledger, trace: Callable[[CallRecord], None]) -> LLMClient:
        return LLMClient(agents, ledger=ledger, trace=trace)

    return factory


def run_llm_session(
    *, store: Store, session: str, design_id: str, seq: int, operator: str,
    parent_ids: Sequence[str], seed: int, settings: SessionSettings, flow: str | None = None,
    client_factory: ClientFactory | None = None, progress: Callable[[str], None] | None = None,
    implementation_limit: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) one LLM design session and return its outcome."""
    return DesignSession(
        store=store, session=session, design_id=design_id, seq=seq, operator=operator,
        parent_ids=parent_ids, seed=seed, settings=settings, flow=flow,
        client_factory=client_factory, progress=progress,
        implementation_limit=implementation_limit,
    ).run()  # fmt: skip


__all__ = [
    "FLOWS",
    "OPERATORS",
    "DesignSession",
    "SessionSettings",
    "run_llm_session",
    "unit_interface",
]
