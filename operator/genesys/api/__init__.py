"""The genesys.dev/v1alpha1 API: DiscoveryRun and Design models, validation and CRD generation.

What must stay true: this package is pure (pydantic and PyYAML only; no kubernetes, boto3 or
torch, enforced by import-linter), because the engine, the CLI, agent pods and the operator all
import it.
"""

from genesys.api.base import API_GROUP, API_GROUP_VERSION, API_VERSION, Condition, ConditionStatus
from genesys.api.design import Design, DesignPhase, DesignSpec, DesignStatus
from genesys.api.discoveryrun import DiscoveryRun, DiscoveryRunSpec, DiscoveryRunStatus, Phase
from genesys.api.labels import LABEL_DESIGN, LABEL_ROLE, LABEL_RUN, LABEL_RUNG
from genesys.api.ladder import RungConfig, preset_rung, resolve_ladder
from genesys.api.validation import (
    SpecError,
    SpecValidationError,
    parse_design,
    parse_discovery_run,
    parse_document,
)

__all__ = [
    "API_GROUP",
    "API_GROUP_VERSION",
    "API_VERSION",
    "LABEL_DESIGN",
    "LABEL_ROLE",
    "LABEL_RUN",
    "LABEL_RUNG",
    "Condition",
    "ConditionStatus",
    "Design",
    "DesignPhase",
    "DesignSpec",
    "DesignStatus",
    "DiscoveryRun",
    "DiscoveryRunSpec",
    "DiscoveryRunStatus",
    "Phase",
    "RungConfig",
    "SpecError",
    "SpecValidationError",
    "parse_design",
    "parse_discovery_run",
    "parse_document",
    "preset_rung",
    "resolve_ladder",
]
