"""Label and annotation keys, defined once (as KubeRay and kopf do).

What must stay true: every object the operator creates carries ``genesys.dev/run`` and
``genesys.dev/run-uid`` (a run is found by both, so a re-created run of the same name never
adopts the children of the run before it); designs,
jobs and pods add ``genesys.dev/design``, ``genesys.dev/rung`` and ``genesys.dev/role`` as they
apply. Selectors elsewhere use these constants, never string literals.
"""

from genesys.api.base import API_GROUP

LABEL_RUN = f"{API_GROUP}/run"
LABEL_RUN_UID = f"{API_GROUP}/run-uid"
LABEL_DESIGN = f"{API_GROUP}/design"
LABEL_RUNG = f"{API_GROUP}/rung"
LABEL_ROLE = f"{API_GROUP}/role"
LABEL_OPERATOR = f"{API_GROUP}/operator"
LABEL_PARENT_PREFIX = f"parent.{API_GROUP}/"

ANNOTATION_PREFIX = f"kopf.{API_GROUP}"
FINALIZER = f"{API_GROUP}/finalizer"

__all__ = [
    "ANNOTATION_PREFIX",
    "FINALIZER",
    "LABEL_DESIGN",
    "LABEL_OPERATOR",
    "LABEL_PARENT_PREFIX",
    "LABEL_ROLE",
    "LABEL_RUN",
    "LABEL_RUNG",
    "LABEL_RUN_UID",
]
