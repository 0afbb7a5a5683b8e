"""The Jobs of every run, kept from the watch stream instead of listed on every reconcile.

The operator watches the Jobs that carry a run label (kopf's ``genesys-job-event`` handler sees
each ADDED, MODIFIED and DELETED event, and the objects of its initial listing) and feeds every
event to one shared :class:`JobCache`. A reconcile then reads its run's Jobs from memory.

- A run's Jobs are trusted from the cache only after one full list of them in this process
  (:meth:`JobCache.replace_run`), and again only for :data:`RESYNC_SECONDS` after it: the
  backend lists them again then (as an informer's resync does), so a missed event is repaired
  within that time. A watch that had to restart marks every run for a new list.
- What the operator creates is put in the cache at once (:meth:`JobCache.put`), so the next
  reconcile never plans a Job twice while its ADDED event is on its way.
- An event never replaces a newer state: ``resourceVersion`` values are compared as numbers
  when both are numbers (as every API server numbers them), else the later arrival wins.

What must stay true: everything is keyed by namespace and Job name, and a run's Jobs are
filtered by its name and uid labels on the way out, so one run never sees another's Jobs.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genesys.api.base import API_GROUP
from genesys.api.labels import LABEL_DESIGN, LABEL_ROLE, LABEL_RUN, LABEL_RUN_UID, LABEL_RUNG
from genesys.api.runconfig import RunIdentity
from genesys.backends import manifests
from genesys.backends.torchx_job import LABEL_KUEUE_QUEUE

RESYNC_SECONDS = float(os.environ.get("GENESYS_RESYNC_SECONDS", "300"))
"""How long a run's Jobs (and Designs) are trusted from memory before they are listed again."""
ANNOTATION_INGESTED = f"{API_GROUP}/ingested"
ANNOTATION_SUSPENDED = f"{API_GROUP}/suspended-by-run"
KEPT_LABELS = (
    LABEL_RUN,
    LABEL_RUN_UID,
    LABEL_ROLE,
    manifests.LABEL_SESSION,
    LABEL_DESIGN,
    LABEL_RUNG,
    LABEL_KUEUE_QUEUE,
)
"""The labels of a Job the operator reads (its run, role, session, design, rung and queue)."""
KEPT_ANNOTATIONS = (ANNOTATION_INGESTED, ANNOTATION_SUSPENDED)


@dataclass(frozen=True, slots=True)
class JobView:
    """What the backend needs of one Job."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    finished: str | None  # "Complete" | "Failed" | None while it runs
    reason: str
    suspended: bool
    gpus: int
    started: datetime | None
    completed: datetime | None
    created: datetime | None = None
    queue: str | None = None  # the Kueue LocalQueue it was submitted to
    namespace: str = ""
    resource_version: str = ""
    ended: datetime | None = None  # when it finished (a failed Job has no completionTime)


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _finishing_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None


def _finished(status: Mapping[str, Any]) -> tuple[str | None, str]:
    condition = _finishing_condition(status)
    if condition is None:
        return None, ""
    reason = condition.get("reason") or condition.get("message") or condition["type"]
    return str(condition["type"]), str(reason)


def _ended(status: Mapping[str, Any]) -> datetime | None:
    condition = _finishing_condition(status)
    if condition is None:
        return None
    return _when(status.get("completionTime") or condition.get("lastTransitionTime"))


def _gpus(job: Mapping[str, Any]) -> int:
    try:
        containers = job["spec"]["template"]["spec"]["containers"]
        limits = containers[0].get("resources", {}).get("limits") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return 0
    return int(limits.get("nvidia.com/gpu", 0) or 0)


def _kept(given: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, str]:
    """The entries of ``given`` under ``keys``, their values interned (shared by many Jobs)."""
    given = given or {}
    return {key: sys.intern(str(given[key])) for key in keys if key in given}


def job_view_of(job: Mapping[str, Any]) -> JobView:
    """A JobView of a Job in its JSON form (a watch event's object, or a manifest).

    Only the labels and annotations the operator reads are kept (:data:`KEPT_LABELS`,
    :data:`KEPT_ANNOTATIONS`): the cache holds every Job of every run until its TTL removes it.
    """
    metadata = job.get("metadata") or {}
    status = job.get("status") or {}
    labels = _kept(metadata.get("labels"), KEPT_LABELS)
    finished, reason = _finished(status)
    return JobView(
        name=str(metadata.get("name")),
        labels=labels,
        annotations=_kept(metadata.get("annotations"), KEPT_ANNOTATIONS),
        finished=finished,
        reason=reason,
        suspended=bool((job.get("spec") or {}).get("suspend")),
        gpus=_gpus(job),
        started=_when(status.get("startTime")),
        completed=_when(status.get("completionTime")),
        created=_when(metadata.get("creationTimestamp")),
        queue=labels.get(LABEL_KUEUE_QUEUE),
        namespace=str(metadata.get("namespace") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
        ended=_ended(status),
    )


def newer(incoming: str, current: str) -> bool:
    """True unless ``current`` is a strictly later numbered ``resourceVersion``."""
    if incoming.isdigit() and current.isdigit():
        return int(incoming) >= int(current)
    return True


def labelled_for(labels: Mapping[str, str], identity: RunIdentity) -> bool:
    """True when ``labels`` carry all of the run's identity labels (so the object is its)."""
    wanted = manifests.run_labels(identity)
    return all(labels.get(key) == value for key, value in wanted.items())


class JobCache:
    """Every run's Jobs by namespace, run name and Job name, fed by watch events; thread-safe."""

    def __init__(self, resync_seconds: float = RESYNC_SECONDS) -> None:
        self.resync_seconds = resync_seconds
        self._runs: dict[tuple[str, str], dict[str, JobView]] = {}  # (namespace, run) -> Jobs
        self._listed: dict[tuple[str, str], float] = {}  # (namespace, run uid) -> when
        self._lock = threading.Lock()
        self.events = 0

    def _jobs_of(self, namespace: str, run: str) -> dict[str, JobView]:
        return self._runs.setdefault((namespace, run), {})

    def observe(self, event_type: str | None, job: Mapping[str, Any]) -> None:
        """Apply one watch event (``DELETED`` removes; anything else adds or updates)."""
        view = job_view_of(job)
        run = view.labels.get(LABEL_RUN)
        if run is None:
            return
        with self._lock:
            self.events += 1
            jobs = self._jobs_of(view.namespace, run)
            current = jobs.get(view.name)
            if current is not None and not newer(view.resource_version, current.resource_version):
                return
            if event_type == "DELETED":
                jobs.pop(view.name, None)
            else:
                jobs[view.name] = view

    def put(self, namespace: str, job: Mapping[str, Any]) -> None:
        """Record a Job this operator just created (its event may come later)."""
        metadata = {**(job.get("metadata") or {}), "namespace": namespace}
        view = job_view_of({**job, "metadata": metadata})
        run = view.labels.get(LABEL_RUN)
        if run is not None:
            with self._lock:
                self._jobs_of(namespace, run).setdefault(view.name, view)

    def drop(self, namespace: str, identity: RunIdentity, name: str) -> None:
        """Forget a Job of the run that this operator just deleted."""
        with self._lock:
            self._jobs_of(namespace, identity.name).pop(name, None)

    def run_jobs(self, namespace: str, identity: RunIdentity) -> list[JobView] | None:
        """The run's Jobs, or None when they must be listed (never yet, or resync due)."""
        with self._lock:
            listed = self._listed.get((namespace, str(identity.uid)))
            if listed is None or time.monotonic() - listed > self.resync_seconds:
                return None
            jobs = self._jobs_of(namespace, identity.name).values()
            mine = [view for view in jobs if labelled_for(view.labels, identity)]
        return sorted(mine, key=lambda view: view.name)

    def replace_run(self, namespace: str, identity: RunIdentity, jobs: list[JobView]) -> None:
        """Replace the run's Jobs with a full list of them (newer states seen meanwhile stay)."""
        with self._lock:
            current = self._jobs_of(namespace, identity.name)
            replaced = {
                name: view
                for name, view in current.items()
                if not labelled_for(view.labels, identity)
            }  # another run of the same name (another uid): not ours to replace
            for view in jobs:
                seen = current.get(view.name)
                keep = seen is not None and not newer(view.resource_version, seen.resource_version)
                replaced[view.name] = seen if keep and seen is not None else view
            self._runs[namespace, identity.name] = replaced
            self._listed[namespace, str(identity.uid)] = time.monotonic()

    def invalidate(self) -> None:
        """Every run lists its Jobs again (the watch restarted: events may have been missed)."""
        with self._lock:
            self._listed.clear()

    def forget_run(self, namespace: str, identity: RunIdentity) -> None:
        """Drop a deleted run's Jobs and its listing."""
        with self._lock:
            jobs = self._jobs_of(namespace, identity.name)
            for name, view in list(jobs.items()):
                if labelled_for(view.labels, identity):
                    del jobs[name]
            if not jobs:
                self._runs.pop((namespace, identity.name), None)
            self._listed.pop((namespace, str(identity.uid)), None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(jobs) for jobs in self._runs.values())


__all__ = ["RESYNC_SECONDS", "JobCache", "JobView", "job_view_of", "labelled_for", "newer"]
