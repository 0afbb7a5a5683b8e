"""The newest body of each DiscoveryRun this operator process has seen.

kopf hands every handler the body of its latest watch event, and each status write answers with
the object as written. Keeping the newest of these (by ``resourceVersion``) lets a reconcile
start from the run as it is now without reading it from the API server again: the spec comes
from kopf's events (an edit is an event), the status from the operator's own writes (nothing
else writes it). A run is read from the API server only when this process has not seen it yet
(a Job event that comes before the run's own).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from genesys.backends.jobcache import newer


class RunBodies:
    """Run bodies by namespace and name, the newest ``resourceVersion`` kept; thread-safe."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(body: Mapping[str, Any]) -> tuple[str, str]:
        metadata = body.get("metadata") or {}
        return str(metadata.get("namespace") or "default"), str(metadata.get("name"))

    def offer(self, body: Mapping[str, Any]) -> None:
        """Keep ``body`` unless a body with a later ``resourceVersion`` is already kept."""
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if not version:
            return
        key = self._key(body)
        with self._lock:
            kept = self._bodies.get(key)
            kept_version = str(((kept or {}).get("metadata") or {}).get("resourceVersion") or "")
            if kept is None or newer(version, kept_version):
                self._bodies[key] = copy.deepcopy(dict(body))

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the newest body of a run, or None when none was seen."""
        with self._lock:
            kept = self._bodies.get((namespace, name))
            return copy.deepcopy(kept) if kept is not None else None

    def forget(self, namespace: str, name: str) -> None:
        """Drop a run (it was deleted)."""
        with self._lock:
            self._bodies.pop((namespace, name), None)


__all__ = ["RunBodies"]
