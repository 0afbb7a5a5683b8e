"""Where and how big a rung's training pods are: the rung's placement over ``verification``'s.

Each rung of ``spec.ladder.rungs`` may set its own ``resources`` (field by field),
``nodeSelector``, ``tolerations``, ``affinity``, ``priorityClassName`` and ``queueName``; a
field it leaves unset takes ``spec.verification``'s. :func:`rung_placement` resolves that once,
and both backends read the result: the local runner its resources, the Kubernetes backend all of
it.

What must stay true: pure (no I/O, no Kubernetes imports); a rung the ladder does not list (the
paper's default rungs) is placed exactly as ``verification`` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genesys.api.discoveryrun import DiscoveryRunSpec, Resources, Rung, Toleration, Verification


@dataclass(frozen=True, slots=True)
class Placement:
    """The resolved placement of one rung's training pods."""

    resources: Resources
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Toleration] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    priority_class_name: str | None = None
    queue_name: str | None = None


def _resources(verification: Verification, rung: Rung | None) -> Resources:
    """``verification.resources`` with the fields the rung sets replaced."""
    if rung is None or rung.resources is None:
        return verification.resources
    given = rung.resources.model_dump(by_alias=False, exclude_none=True)
    return verification.resources.model_copy(update=given)


def _first(rung_value: Any, verification_value: Any) -> Any:
    """The rung's value when it sets one, else verification's."""
    return verification_value if rung_value is None else rung_value


def placement_of(verification: Verification, rung: Rung | None) -> Placement:
    """The placement of ``rung``'s training pods (``None``: a rung the ladder does not list)."""
    if rung is None:
        rung = Rung(name="unlisted")
    return Placement(
        resources=_resources(verification, rung),
        node_selector=dict(_first(rung.node_selector, verification.node_selector)),
        tolerations=list(_first(rung.tolerations, verification.tolerations)),
        affinity=dict(_first(rung.affinity, verification.affinity) or {}),
        priority_class_name=_first(rung.priority_class_name, verification.priority_class_name),
        queue_name=_first(rung.queue_name, verification.queue_name),
    )


def rung_placement(spec: DiscoveryRunSpec, rung_name: str) -> Placement:
    """The placement of the training pods of the rung named ``rung_name`` in ``spec``."""
    rung = next((r for r in spec.ladder.rungs if r.name == rung_name), None)
    return placement_of(spec.verification, rung)


__all__ = ["Placement", "placement_of", "rung_placement"]
