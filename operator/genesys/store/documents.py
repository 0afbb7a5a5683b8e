"""Typed store documents: every JSON object a run keeps in its store, as a pydantic model.

Keys are relative to the run's own store (``<store root>/runs/[<namespace>/]<name>/``)::

    spec.json                                   RunRecord: identity (uid), the DiscoveryRun
    config/<digest>.json                        RunConfig (genesys.api.runconfig), immutable
    hashes/<structural hash>.json               HashClaim: which design holds this tree
    designs/<id>/design.json                    DesignDocument: unit tree plus metadata
    designs/<id>/verifications/<rung>/result.json        VerificationResult (the trainer's)
    designs/<id>/verifications/<rung>/attempts/<n>.json  AttemptRecord: a failed attempt
    designs/<id>/verifications/<rung>/gpu-usage/<job>.json  GpuUsage of one finished Job
    rejected/<id>-<what>.json                   RejectionRecord: a candidate that failed
    sessions/<session>/session.json             SessionOutcome: the session's result
    sessions/<session>/state.json               SessionState: an LLM session's progress

What must stay true:
- Every document is read and written through its model (:func:`read_document`,
  :func:`write_document`, :func:`create_document`); readers never guess with defaults on raw
  dicts, and a document that does not match its model is a :class:`DocumentError` naming the
  key, never a silently half-read object.
- Snake-case keys, unknown keys refused (``extra="forbid"``), except the free-form design
  metadata annotations; ``schema_version`` is bumped when a reader would misread an older one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity

if TYPE_CHECKING:
    from genesys.store.base import Store

DESIGN_FORMAT: Literal["genesys.design/v1"] = "genesys.design/v1"
SessionStatus = Literal["implemented", "failed"]
ResultStatus = Literal["succeeded", "failed", "error"]


class DocumentError(ValueError):
    """A stored document is not valid JSON or does not match its model."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")


class StoreDocument(BaseModel):
    """Base of the store documents: snake_case keys, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# -------------------------------------------------------------------------------- run record


class RunRecord(StoreDocument):
    """``spec.json``: the run bound to this store prefix, and its spec."""

    schema_version: Literal[1] = 1
    identity: RunIdentity
    adopted_from: list[str] = Field(
        default_factory=list, description="uids of earlier runs whose archive this run continues."
    )
    run: DiscoveryRun


# ----------------------------------------------------------------------------------- designs


class UnitEntry(StoreDocument):
    """One unit of a design's tree: its code, children bindings and hyper-parameters."""

    source: str
    children: dict[str, str] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    requirements: str = ""


class DeclarationEntry(StoreDocument):
    """A declared, not yet implemented child unit."""

    requirements: str = ""
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)


class DesignMetadata(BaseModel):
    """Lineage and provenance of a design; further free-form annotations are kept as they are."""

    model_config = ConfigDict(extra="allow")

    title: str = ""
    operator: Literal["seed", "mutation", "crossover", "scratch"] = "seed"
    parents: list[str] = Field(default_factory=list)
    seq: int = Field(default=0, ge=0)
    session: str | None = None
    rating: float | None = Field(default=None, ge=0, le=5)
    hash: str | None = None


class DesignDocument(StoreDocument):
    """``design.json``: a unit tree (the format agents write) and its metadata."""

    format: Literal["genesys.design/v1"] = DESIGN_FORMAT
    name: str = Field(min_length=1)
    root: str = Field(min_length=1)
    units: dict[str, UnitEntry] = Field(min_length=1)
    declarations: dict[str, DeclarationEntry] = Field(default_factory=dict)
    metadata: DesignMetadata = Field(default_factory=DesignMetadata)


class HashClaim(StoreDocument):
    """``hashes/<hash>.json``: the design (or candidate) that first claimed a tree."""

    schema_version: Literal[1] = 1
    design: str
    session: str


# ------------------------------------------------------------------------------ verification


class ModelShapeRecord(StoreDocument):
    """The fitted shape a design was trained at."""

    n_embd: int
    n_layer: int
    n_head: int
    block_size: int


class VerificationResult(StoreDocument):
    """``result.json``: the trainer's result of one verification (or of a crash)."""

    schema_version: Literal[1] = 1
    design: str
    rung: str
    status: ResultStatus
    reason: str = ""
    shape: ModelShapeRecord | None = None
    params: int | None = None
    reference_params: int | None = None
    tokens: int | None = None
    planned_tokens: int | None = None
    steps: int = 0
    planned_steps: int | None = None
    world_size: int | None = None
    device: str | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_second: float | None = None
    device_seconds: float | None = None
    eval: dict[str, dict[str, float]] = Field(default_factory=dict)
    resumed_from: int | None = None
    unigram_entropy: float | None = None
    config_digest: str | None = None
    finished: str | None = None
    quarantine: str | None = Field(
        default=None,
        description="Why this result must never score (the trainer's leak guard found the design "
        "non-causal); None for an ordinary result. Such a result has status failed.",
    )


class AttemptRecord(StoreDocument):
    """``attempts/<n>.json``: a training attempt that ended without a final result."""

    schema_version: Literal[1] = 1
    state: str
    reason: str
    job: str | None = None


class GpuUsage(StoreDocument):
    """``gpu-usage/<job>.json``: GPU time of one finished training Job, kept after it is gone."""

    schema_version: Literal[1] = 1
    job: str
    gpus: int = Field(ge=0)
    seconds: float = Field(ge=0)


# ---------------------------------------------------------------------- sessions, rejections


class SessionOutcome(StoreDocument):
    """``session.json``: what a design session produced (written last)."""

    schema_version: Literal[1] = 1
    status: SessionStatus
    design: str | None = None
    reason: str
    candidates: int = Field(default=0, ge=0)
    flow: str | None = None
    operator: str | None = None
    parents: list[str] = Field(default_factory=list)
    attempts: int = Field(default=0, ge=0)
    proposal_attempts: int = Field(default=0, ge=0)
    rating: float | None = None
    implementation_sessions: int = Field(default=0, ge=0)
    challenging: bool = False
    models: dict[str, str] = Field(default_factory=dict)
    cost_usd: float = Field(default=0.0, ge=0)
    calls: int = Field(default=0, ge=0)
    tokens: dict[str, int] = Field(default_factory=dict)


class SessionState(StoreDocument):
    """``sessions/<session>/state.json``: an LLM session's progress, between steps and crashes."""

    schema_version: Literal[1] = 1
    session: str
    design_id: str
    seq: int
    operator: str
    parents: list[str]
    flow: str
    seed: int
    models: dict[str, str]
    status: str = "proposing"  # proposing | implementing | implemented | failed
    searches: list[dict[str, Any]] = Field(default_factory=list)
    proposals: list[dict[str, Any]] = Field(default_factory=list)
    proposal: dict[str, Any] | None = None
    rating: float | None = None
    implementation: int = 0  # index of the current implementation session
    tree: dict[str, Any] | None = None  # committed tree of the current implementation
    unit_tests: dict[str, str] = Field(default_factory=dict)
    committed: list[dict[str, Any]] = Field(default_factory=list)
    rounds: int = 0
    failed_rounds: int = 0
    attempts: int = 0  # coder attempts, all implementations together
    implementation_failures: list[str] = Field(default_factory=list)
    challenging: bool = False
    reason: str = ""
    spent_usd: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RejectionRecord(StoreDocument):
    """``rejected/<id>-<what>.json``: a candidate or proposal that was given up, and why."""

    schema_version: Literal[1] = 1
    session: str | None = None
    operator: str = ""
    parents: list[str] = Field(default_factory=list)
    reason: str
    check: str = ""
    title: str = ""
    flow: str | None = None
    hash: str | None = None
    report: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- reading, writing

D = TypeVar("D", bound=BaseModel)


def parse_document(key: str, text: str | bytes, model: type[D]) -> D:
    """``text`` as a ``model``; DocumentError naming the key and the first problems."""
    try:
        return model.model_validate_json(text)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '<document>'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:3]
        )
        raise DocumentError(key, f"not a valid {model.__name__}: {problems}") from None


def read_document(store: Store, key: str, model: type[D]) -> D | None:
    """The document at ``key``; None when missing, DocumentError when it does not parse."""
    try:
        data = store.get_bytes(key)
    except KeyError:
        return None
    return parse_document(key, data, model)


def dump_document(document: BaseModel) -> str:
    """The JSON text a document is stored as."""
    return document.model_dump_json(indent=2)


def write_document(store: Store, key: str, document: BaseModel) -> None:
    """Write (or overwrite) a document atomically."""
    store.put_text(key, dump_document(document))


def create_document(store: Store, key: str, document: BaseModel) -> bool:
    """Write a document only when the key is free; True when this call wrote it."""
    return store.create_text(key, dump_document(document))


def plain(document: BaseModel) -> dict[str, Any]:
    """A document as plain JSON data."""
    data: dict[str, Any] = json.loads(dump_document(document))
    return data


__all__ = [
    "DESIGN_FORMAT",
    "AttemptRecord",
    "DeclarationEntry",
    "DesignDocument",
    "DesignMetadata",
    "DocumentError",
    "GpuUsage",
    "HashClaim",
    "ModelShapeRecord",
    "RejectionRecord",
    "RunRecord",
    "SessionOutcome",
    "SessionState",
    "StoreDocument",
    "UnitEntry",
    "VerificationResult",
    "create_document",
    "dump_document",
    "parse_document",
    "plain",
    "read_document",
    "write_document",
]
