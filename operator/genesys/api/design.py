"""The Design resource: one discovered design, owned by its DiscoveryRun.

Kubernetes holds only this small, queryable summary; the design's content (proposal, reviews,
unit-tree code, check reports, checkpoints, results) lives in the artifact store under
``status.artifactUri``.

What must stay true:
- Only the operator writes Design objects; agent and training pods write to the store alone.
- ``spec`` is immutable after creation (lineage never changes); ``status`` is recomputable from
  the store, so a restarted operator loses nothing.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from genesys.api.base import (
    ApiModel,
    Condition,
    DnsSubdomain,
    GeneticOperator,
    NonEmptyStr,
    ObjectMeta,
)


class DesignPhase(enum.StrEnum):
    """Lifecycle phase of a design."""

    PROPOSED = "Proposed"
    IMPLEMENTING = "Implementing"
    IMPLEMENTED = "Implemented"
    VERIFYING = "Verifying"
    VERIFIED = "Verified"
    REJECTED = "Rejected"
    CHALLENGING = "Challenging"
    FAILED = "Failed"

    def is_terminal(self) -> bool:
        """True when no more work will be done on this design."""
        return self in (DesignPhase.REJECTED, DesignPhase.CHALLENGING, DesignPhase.FAILED)


class DesignSpec(ApiModel):
    """Lineage and origin of a design; immutable after creation."""

    run_name: DnsSubdomain = Field(description="Name of the owning DiscoveryRun.")
    title: str = Field(default="", description="Title of the design's proposal.")
    operator: GeneticOperator = Field(
        description="How it was made: mutation (1 parent), crossover (2), scratch (0) or seed."
    )
    parents: list[NonEmptyStr] = Field(
        default_factory=list, max_length=2, description="Names of the parent designs."
    )
    flow: Literal["gau", "direct", "offline", "seed"] = Field(
        default="gau", description="The session flow that produced it."
    )
    session: str | None = Field(default=None, description="Id of the design session.")


class RungResult(ApiModel):
    """Summary of a design's verification at one rung."""

    rung: str = Field(description="Rung name.")
    phase: Literal["Pending", "WaitingForCapacity", "Running", "Succeeded", "Failed"] = Field(
        description="State of this verification; WaitingForCapacity while its training pod "
        "waits for a node (unschedulable) or for admission by Kueue."
    )
    attempts: int = Field(default=0, ge=0, description="Training-job attempts so far.")
    params: int | None = Field(default=None, ge=0, description="Fitted parameter count.")
    train_loss: float | None = Field(default=None, description="Final training loss.")
    val_loss: float | None = Field(default=None, description="Final validation loss.")
    score: float | None = Field(default=None, description="Mean eval accuracy over tasks.")
    reason: str | None = Field(default=None, description="Why it failed, when it did.")


class DesignStatus(ApiModel):
    """Observed state of a design; written only by the operator."""

    phase: DesignPhase = Field(default=DesignPhase.PROPOSED, description="Lifecycle phase.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions.")
    observed_generation: int | None = Field(default=None, ge=0, description="Generation seen.")
    proposal_rating: float | None = Field(
        default=None, ge=0, le=5, description="Reviewer rating of the proposal (0-5)."
    )
    rungs: list[RungResult] = Field(default_factory=list, description="Per-rung results.")
    highest_rung: str | None = Field(default=None, description="Highest rung verified.")
    fitness: float | None = Field(
        default=None,
        description=(
            "Fitness from the ranking, as of the operator's last rank refresh (every "
            "GENESYS_RANK_REFRESH_SECONDS, 10 minutes by default, and when the run finishes). "
            "A refresh rewrites the top 10 ranks exactly and, below them, a design whose rank "
            "moved by a tenth or more; the run's end writes every rank exactly."
        ),
    )
    rank: int | None = Field(
        default=None,
        ge=1,
        description="Rank in the run (1 is best), as of the same refresh as the fitness.",
    )
    confidence: int | None = Field(default=None, ge=0, description="Confidence points.")
    artifact_uri: str | None = Field(default=None, description="Store URI of its artifacts.")
    reason: str | None = Field(default=None, description="Rejection or failure reason.")


class Design(ApiModel):
    """A Design: one discovered LM block design."""

    api_version: Literal["genesys.dev/v1alpha1"] = Field(
        default="genesys.dev/v1alpha1", description="genesys.dev/v1alpha1."
    )
    kind: Literal["Design"] = Field(default="Design", description="Design.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: DesignSpec = Field(description="Lineage and origin.")
    status: DesignStatus | None = Field(default=None, description="Observed state.")


__all__ = ["Design", "DesignPhase", "DesignSpec", "DesignStatus", "RungResult"]
