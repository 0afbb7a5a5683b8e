"""The red-team corpus's planted secret files, and their removal after an interrupted run.

The red-team tests (``tests/sandbox/test_redteam.py``) plant canary files at the fixed paths
where real credentials live (a service-account token, cloud and kube credentials) and remove
them afterwards. A run killed in the middle leaves them behind, and a planted service-account
token then makes every check pod that the fake kubelet runs as a local process refuse to start
(it rightly will not run design code where it sees a credential). Every test session therefore
starts by removing the canaries an earlier run planted: files at these paths whose content
carries :data:`LEFTOVER`. A real file at one of these paths is never touched.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

CANARY_FILES = (
    Path("/root/.genesys-canary/secret.txt"),
    Path("/etc/genesys-canary"),
    Path("/root/.aws/credentials"),
    Path("/root/.kube/config"),
    Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
)
LEFTOVER = "genesys-canary-file-"
"""In every planted canary file's content, so that a leftover can be told from a real file."""


def is_planted(path: Path) -> bool:
    """True when ``path`` is a canary file the red-team tests planted."""
    try:
        return path.is_file() and LEFTOVER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def remove_leftover_canaries(paths: tuple[Path, ...] = CANARY_FILES) -> list[Path]:
    """Remove the planted canaries an interrupted run left at ``paths``; those removed."""
    removed = []
    for path in paths:
        if is_planted(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed
