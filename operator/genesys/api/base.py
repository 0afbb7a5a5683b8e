"""Shared building blocks of the API models: the base model, references, conditions and names.

What must stay true:
- Every model serialises with camelCase keys (Kubernetes convention) and accepts them on input,
  and also the snake_case Python names (so code can build models by keyword).
- Unknown keys are errors (``extra="forbid"``), so a typo in a spec is reported, not ignored.
- Every field carries a description: the CRD generator copies them so ``kubectl explain`` works,
  and a test walks the generated CRDs to prove it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

API_GROUP = "genesys.dev"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
CAMEL_CASE_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"
HTTP_URL_PATTERN = r"^https?://[^\s]+$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RUNG_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$"

PATTERN_MEANINGS = {
    DNS_LABEL_PATTERN: "a DNS label: lowercase letters, digits and '-'",
    DNS_SUBDOMAIN_PATTERN: "a DNS subdomain name: lowercase letters, digits, '-' and '.'",
    QUANTITY_PATTERN: "a Kubernetes quantity such as 4Gi, 500m or 8",
    CAMEL_CASE_PATTERN: "a CamelCase word",
    S3_BUCKET_PATTERN: "an S3 bucket name: lowercase letters, digits, '.' and '-'",
    HTTP_URL_PATTERN: "an http:// or https:// URL",
    ENV_VAR_PATTERN: "an environment variable name",
    RUNG_NAME_PATTERN: "a rung name: letters, digits, '-' and '.', e.g. 14M",
}
"""Human phrases for the patterns above, used in validation messages."""

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
Quantity = Annotated[str, StringConstraints(min_length=1, pattern=QUANTITY_PATTERN)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, unknown keys forbidden, validated defaults."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=False,
        frozen=False,
    )


class SecretKeyRef(ApiModel):
    """A key inside a Kubernetes Secret in the run's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    key: NonEmptyStr = Field(description="Key inside the Secret whose value is used.")


class ConditionStatus(enum.StrEnum):
    """Status of a condition, as in the Kubernetes API conventions."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """An observation of one aspect of an object's state (Kubernetes API conventions)."""

    type: Annotated[str, StringConstraints(pattern=CAMEL_CASE_PATTERN)] = Field(
        description="Condition type in CamelCase, e.g. Ready, SpecValid, BudgetExhausted."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, StringConstraints(pattern=CAMEL_CASE_PATTERN)] = Field(
        description="Machine-readable CamelCase reason for the last transition."
    )
    message: str = Field(default="", description="Human-readable details of the transition.")
    last_transition_time: datetime = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was computed from."
    )


class ObjectMeta(ApiModel):
    """The subset of Kubernetes object metadata that the API models read."""

    model_config = ConfigDict(extra="allow")

    name: DnsSubdomain = Field(description="Object name, unique in its namespace.")
    namespace: DnsLabel | None = Field(default=None, description="Namespace of the object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the object.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the object."
    )
    generation: int | None = Field(default=None, description="Spec generation (set by the API).")


GeneticOperator = Literal["mutation", "crossover", "scratch", "seed"]


def parse_quantity_bytes(text: str) -> int:
    """Bytes of a Kubernetes-style quantity: 8Gi, 512Mi, 4G or a plain number."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "K": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


__all__ = [
    "API_GROUP",
    "API_GROUP_VERSION",
    "API_VERSION",
    "PATTERN_MEANINGS",
    "ApiModel",
    "Condition",
    "ConditionStatus",
    "DnsLabel",
    "DnsSubdomain",
    "GeneticOperator",
    "NonEmptyStr",
    "ObjectMeta",
    "Probability",
    "Quantity",
    "SecretKeyRef",
    "parse_quantity_bytes",
]
