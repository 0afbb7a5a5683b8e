"""What the phases of one LLM design session share: its settings, identity and progress.

:class:`SessionSettings` is what a session needs from the run config; :class:`SessionContext`
is one session's identity (session and design ids, operator, parents), its settings, its
records and state (:mod:`genesys.agents.session_records`), and what it opened (the LLM client,
the knowledge base). The proposal phase (:mod:`genesys.agents.proposal`) and the
implementation flows (:mod:`genesys.agents.implementation`) work on a context;
:mod:`genesys.agents.session` makes it and runs them.

What must stay true: every LLM call of a session goes through :meth:`SessionContext.ask`, with
the model drawn for the role (``state.models``) and ``agents.maxTokens``; the client and the
knowledge base are opened by the session before a phase runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from genesys import telemetry
from genesys.agents.knowledge import KnowledgeBase
from genesys.agents.library import Library, tree_hash
from genesys.agents.llm import LLMClient
from genesys.agents.roles import ProposalDoc
from genesys.agents.session_records import SessionRecords
from genesys.api.discoveryrun import Agents, Checks, DiscoveryRun, Sessions
from genesys.api.ladder import RungConfig
from genesys.api.runconfig import RunConfig, RunIdentity, resolve_run_config
from genesys.sandbox.runner import SandboxLimits, check_settings, limits_from_checks
from genesys.store.base import Store
from genesys.store.documents import SessionState
from genesys_trainer.tree import UnitTree


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


def unit_interface() -> str:
    """The unit-protocol documentation given to the agents."""
    path = resources.files("genesys_trainer").joinpath("docs", "UNIT_INTERFACE.md")
    return path.read_text("utf-8")


@dataclass
class SessionContext:
    """One LLM session's identity, settings, records and open resources (see the module)."""

    store: Store
    session: str
    design_id: str
    seq: int
    operator: str
    parent_ids: list[str]
    flow: str
    settings: SessionSettings
    records: SessionRecords
    library: Library
    progress: Callable[[str], None]
    parents: dict[str, UnitTree] = field(default_factory=dict)
    client: LLMClient | None = None
    kb: KnowledgeBase | None = None

    @property
    def state(self) -> SessionState:
        """The session's progress (saved with :meth:`save`)."""
        return self.records.state

    def save(self) -> None:
        """Write ``state.json``."""
        self.records.save()

    @property
    def knowledge(self) -> KnowledgeBase:
        """The knowledge base the session opened."""
        assert self.kb is not None
        return self.kb

    @property
    def proposal_doc(self) -> ProposalDoc:
        """The accepted proposal."""
        assert self.state.proposal is not None
        return ProposalDoc(**self.state.proposal)

    def first_parent(self) -> UnitTree | None:
        """The first parent (a mutation's only one), or None from scratch."""
        return next(iter(self.parents.values()), None)

    def parent_hashes(self) -> set[str]:
        """The structural hashes of the parents."""
        return {tree_hash(tree) for tree in self.parents.values()}

    def ask(
        self, role: str, conversation: list[dict[str, str]], parse: Callable[[str], Any]
    ) -> Any:
        """Ask ``role``'s model and ``parse`` the reply (re-asking on a reply that does not)."""
        assert self.client is not None
        model = self.state.models[role]
        with telemetry.span(
            f"genesys.step {role}", {"genesys.role": role, "gen_ai.request.model": model}
        ):
            return self.client.ask(
                role, model, conversation, parse, max_tokens=self.settings.agents.max_tokens
            )


__all__ = ["SessionContext", "SessionSettings", "unit_interface"]
