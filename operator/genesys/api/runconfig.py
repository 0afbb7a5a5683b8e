"""The resolved run config: a DiscoveryRun spec made concrete once, read by every job.

:func:`resolve_run_config` turns a validated spec (plus the run's identity and where its data
lives) into one :class:`RunConfig`: every rung's model shape and recipe, the training schedule
and guards, the check settings, the data and evaluation settings, and the session and agent
settings. The backends store it content-addressed in the run's store (``config/<digest>.json``)
and hand its URI to every training Job and design session, which read it and nothing else of
the spec: no consumer looks a rung up by its name in the preset table.

What must stay true:
- This module is pure (pydantic only) and a :class:`RunConfig` is a pure function of its
  inputs; :func:`config_digest` of equal configs is equal, so a Job's inputs are fixed by the
  URI it is given.
- ``schemaVersion`` changes whenever a reader would misread an older document.
- Run identity: a run is ``(namespace, name, uid)``; :attr:`RunIdentity.store_prefix` is
  ``runs/<namespace>/<name>`` on a cluster and ``runs/<name>`` for ``genesys run`` (no
  namespace). The uid binds the prefix to one run (see :mod:`genesys.store.claims`).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import ConfigDict, Field

from genesys.api.base import ApiModel, NonEmptyStr
from genesys.api.discoveryrun import Agents, Checks, DiscoveryRun, Sessions, Training
from genesys.api.ladder import RungConfig, resolve_ladder

RUN_CONFIG_SCHEMA = 1


class RunIdentity(ApiModel):
    """Who a run is: its namespace (None for ``genesys run``), name and uid."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = Field(default=None, description="Namespace (None: genesys run).")
    name: NonEmptyStr = Field(description="The DiscoveryRun's name.")
    uid: str | None = Field(default=None, description="metadata.uid (None: genesys run).")

    @property
    def store_prefix(self) -> str:
        """The run's key prefix in its store."""
        if self.namespace is None:
            return f"runs/{self.name}"
        return f"runs/{self.namespace}/{self.name}"

    @property
    def short_uid(self) -> str:
        """The uid's first six characters (part of child names), '' without a uid."""
        return (self.uid or "").replace("-", "")[:6]

    def describe(self) -> str:
        """``namespace/name`` (or the name alone)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class DataConfig(ApiModel):
    """The prepared training data the trainer reads."""

    uri: NonEmptyStr = Field(description="Prepared data: a local path or a store URI.")
    tokenizer: NonEmptyStr = Field(description="Tokenizer the data was prepared with.")
    vocab_size: int = Field(ge=2, description="Vocabulary size of the run.")


class EvalConfig(ApiModel):
    """What is evaluated after training."""

    tasks: list[NonEmptyStr] = Field(description="lm-eval task names.")
    limit: int | None = Field(default=None, ge=1, description="Items per task; None: all.")


class RunConfig(ApiModel):
    """Everything a run's jobs and sessions read, resolved from the spec once."""

    schema_version: Literal[1] = Field(default=1, description="Version of this document.")
    run: RunIdentity = Field(description="The run's identity.")
    seed: int = Field(ge=0, description="The run's random seed.")
    rungs: list[RungConfig] = Field(min_length=1, description="The ladder, lowest rung first.")
    training: Training = Field(description="Optimiser schedule and training guards.")
    checks: Checks = Field(description="Design checker settings.")
    data: DataConfig = Field(description="Training data.")
    eval: EvalConfig = Field(description="Evaluation after training.")
    sessions: Sessions = Field(description="Design-session settings.")
    agents: Agents = Field(description="LLM agent settings (no secrets: only references).")
    session_flow: Literal["offline", "gau", "direct"] = Field(
        description="The flow of every design session (offline when agents.offline)."
    )

    def rung(self, name: str) -> RungConfig:
        """The rung called ``name``; KeyError naming the rungs there are."""
        for rung in self.rungs:
            if rung.name == name:
                return rung
        raise KeyError(f"no rung {name!r} in the run config (rungs: {self.rung_names()})")

    def rung_names(self) -> list[str]:
        """The rung names, lowest first."""
        return [rung.name for rung in self.rungs]

    @property
    def lowest(self) -> RungConfig:
        """The lowest rung, where every new design is checked."""
        return self.rungs[0]


def resolve_run_config(run: DiscoveryRun, *, identity: RunIdentity, data_uri: str) -> RunConfig:
    """The run config of a validated DiscoveryRun."""
    spec = run.spec
    data = spec.verification.data
    return RunConfig(
        run=identity,
        seed=spec.seed,
        rungs=resolve_ladder(spec.ladder, vocab_size=data.vocab_size),
        training=spec.verification.training,
        checks=spec.checks,
        data=DataConfig(uri=data_uri, tokenizer=data.tokenizer, vocab_size=data.vocab_size),
        eval=EvalConfig(
            tasks=list(spec.verification.eval_tasks), limit=spec.verification.eval_limit
        ),
        sessions=spec.sessions,
        agents=spec.agents,
        session_flow="offline" if spec.agents.offline else spec.sessions.flow,
    )


def config_json(config: RunConfig) -> str:
    """The canonical JSON text of a config (what is stored and hashed)."""
    return config.model_dump_json(indent=2)


def config_digest(config: RunConfig) -> str:
    """A short content hash of the config (its stored name)."""
    return hashlib.sha256(config_json(config).encode("utf-8")).hexdigest()[:16]


__all__ = [
    "RUN_CONFIG_SCHEMA",
    "DataConfig",
    "EvalConfig",
    "RunConfig",
    "RunIdentity",
    "config_digest",
    "config_json",
    "resolve_run_config",
]
