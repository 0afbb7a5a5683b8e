"""The security settings every pod the operator creates shares, defined once.

Agent, check and training pods all pass Pod Security "restricted": they run as a non-root user
(:data:`NOBODY` unless told otherwise) under the runtime's seccomp profile, with no privilege
escalation, every capability dropped and a read-only root file system. Their one writable place
is an ``emptyDir`` scratch volume mounted at :data:`SCRATCH_PATH`.

What must stay true: the Kubernetes manifests (:mod:`genesys.backends.manifests`) and the TorchX
Job scheduler (:mod:`genesys.backends.torchx_job`) take these from here, so the two kinds of pod
never drift apart.
"""

from __future__ import annotations

from typing import Any

NOBODY = 65534  # the uid and gid of "nobody"; the images run as this user too
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"


def restricted_pod_security(user: int = NOBODY) -> dict[str, Any]:
    """A pod ``securityContext`` of Pod Security "restricted": non-root, runtime seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container() -> dict[str, Any]:
    """A container ``securityContext`` of Pod Security "restricted", root file system read-only."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


__all__ = [
    "NOBODY",
    "SCRATCH_PATH",
    "SCRATCH_VOLUME",
    "restricted_container",
    "restricted_pod_security",
]
