"""The kopf handlers of ``genesys operator``: DiscoveryRuns in, Jobs and Designs out.

Handlers (explicit ids, house style "Reconcile code"):

- ``genesys-create`` / ``genesys-resume`` / ``genesys-update`` (spec changes) and the timer
  ``genesys-tick`` each run one :func:`~genesys.controller.reconcile.reconcile` of the run and
  write its status in one patch;
- ``genesys-job-event``: a Job of a run that just ended triggers a reconcile of that run, so
  results are ingested without waiting for the timer;
- ``genesys-delete``: under the finalizer ``genesys.dev/finalizer``, deletes the run's Jobs and
  Designs, and its artifacts when ``spec.storage.retention`` is ``delete``;
- ``genesys-health``: a liveness probe (``genesys operator --liveness``).

Reconciles of one run never overlap (a lock per run), and all share one Kubernetes API client.
Kopf keeps its own state in annotations under ``kopf.genesys.dev``.

What must stay true: handlers decide nothing themselves (the engine does, through
:func:`reconcile`); an invalid spec is reported in the status, never raised (kopf would retry);
a failure of the cluster or the store is raised as a temporary error and retried with backoff.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from genesys.api.base import API_GROUP, API_GROUP_VERSION, API_VERSION
from genesys.api.labels import ANNOTATION_PREFIX, FINALIZER, LABEL_RUN
from genesys.backends.kubernetes import ANNOTATION_INGESTED, Happening, KubernetesBackend
from genesys.controller.reconcile import Outcome, open_run_store, reconcile, validate
from genesys.store.archive import JsonCache, run_prefix

RUNS = "discoveryruns"
TICK_SECONDS = float(os.environ.get("GENESYS_TICK_SECONDS", "15"))
RETRY_SECONDS = 10.0
COMPONENT = "genesys-operator"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_client: Any = None
_client_guard = threading.Lock()
_reconciles = {"count": 0}
_caches: dict[str, JsonCache] = {}  # per run uid: store objects read on earlier reconciles
_ingested: dict[str, set[str]] = {}  # per run uid: ended Jobs already checked


def api_client() -> Any:
    """The shared Kubernetes API client (in-cluster config in a pod, else the kubeconfig)."""
    global _client
    with _client_guard:
        if _client is None:
            from kubernetes import client, config

            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()
            else:
                config.load_kube_config()
            _client = client.ApiClient()
        return _client


def reset_api_client() -> None:
    """Forget the shared client (tests that point the kubeconfig elsewhere)."""
    global _client
    with _client_guard:
        _client = None


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(dict(body), default=str))
    return result


# ------------------------------------------------------------------------------------- events


def post_events(
    happenings: Iterable[Happening], *, namespace: str, run_uid: str | None, client: Any
) -> None:
    """Post Kubernetes Events for what a reconcile did (best effort: never fails a reconcile)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(client)
    for happening in happenings:
        kind = "DiscoveryRun" if happening.kind == "run" else "Design"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": API_GROUP_VERSION, "kind": kind, "name": happening.name,
                    "namespace": namespace}  # fmt: skip
        if happening.kind == "run" and run_uid:
            involved["uid"] = run_uid
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{happening.name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": happening.reason,
            "message": happening.message[:1024],
            "type": happening.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            core.create_namespaced_event(namespace, event)
        except Exception as exc:  # events are informative; the status is the record
            logging.getLogger(__name__).debug("event not posted: %s", exc)


# ---------------------------------------------------------------------------------- reconcile


def write_status(name: str, namespace: str, status: Mapping[str, Any], client: Any) -> None:
    """Patch a DiscoveryRun's status (status subresource, else the object on an emulator)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    custom = k8s.CustomObjectsApi(client)
    body = {"status": json.loads(json.dumps(status, default=str))}
    try:
        custom.patch_namespaced_custom_object_status(API_GROUP, API_VERSION, namespace, RUNS,
                                                     name, body)  # fmt: skip
    except ApiException as exc:
        if exc.status != 404:
            raise
        custom.patch_namespaced_custom_object(API_GROUP, API_VERSION, namespace, RUNS, name, body)


def read_run(name: str, namespace: str, client: Any) -> dict[str, Any] | None:
    """The run as the API server has it now (None once it is gone)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        found: dict[str, Any] = k8s.CustomObjectsApi(client).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, RUNS, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def reconcile_and_write(body: Mapping[str, Any], logger: logging.Logger | Any) -> Outcome | None:
    """Reconcile one run under its lock, then write its status and post its events.

    The run is read again under the lock, so a stale event body (a timer firing just after a
    spec change) never undoes newer work. A run being deleted is left to its finalizer.
    """
    metadata = dict(body.get("metadata") or {})
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    client = api_client()
    with _lock(f"{namespace}/{name}"):
        try:
            plain = read_run(name, namespace, client)
        except Exception as exc:
            raise kopf.TemporaryError(f"cannot read the run: {exc}", delay=RETRY_SECONDS) from exc
        if plain is None or (plain.get("metadata") or {}).get("deletionTimestamp"):
            return None
        metadata = plain.get("metadata") or {}
        key = str(metadata.get("uid") or f"{namespace}/{name}")
        cache, ingested = _caches.setdefault(key, JsonCache()), _ingested.setdefault(key, set())
        try:
            outcome = reconcile(plain, api_client=client, cache=cache, ingested=ingested)
        except Exception as exc:  # cluster or store trouble: kopf retries with a delay
            raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=RETRY_SECONDS) from exc
        if outcome.status != (plain.get("status") or {}):
            write_status(name, namespace, outcome.status, client)
        post_events(outcome.happenings, namespace=namespace, run_uid=metadata.get("uid"),
                    client=client)  # fmt: skip
    _reconciles["count"] += 1
    logger.info(f"reconciled {namespace}/{name}: phase {outcome.phase}")
    return outcome


# ----------------------------------------------------------------------------------- handlers


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf settings: our finalizer and annotation prefix, watch timeouts, quiet posting."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = int(os.environ.get("GENESYS_WORKERS", "8"))


@kopf.on.create(API_GROUP, API_VERSION, RUNS, id="genesys-create")
@kopf.on.resume(API_GROUP, API_VERSION, RUNS, id="genesys-resume")
@kopf.on.update(API_GROUP, API_VERSION, RUNS, field="spec", id="genesys-update")
def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A run was created, seen again after a restart, or its spec changed."""
    reconcile_and_write(body, logger)


@kopf.timer(API_GROUP, API_VERSION, RUNS, id="genesys-tick", interval=TICK_SECONDS,
            initial_delay=1.0)  # fmt: skip
def on_tick(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Periodic observe -> plan -> apply."""
    status = body.get("status") or {}
    metadata = body.get("metadata") or {}
    finished = status.get("phase") in ("Succeeded", "Failed", "SpecInvalid")
    if metadata.get("deletionTimestamp") or (
        finished and status.get("observedGeneration") == metadata.get("generation")
    ):
        return
    reconcile_and_write(body, logger)


def _job_ended(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    ended = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in conditions)  # fmt: skip
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return ended and ANNOTATION_INGESTED not in annotations


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN: kopf.PRESENT}, id="genesys-job-event")
def on_job_event(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A run's Job ended: reconcile its run now."""
    if not _job_ended(body):
        return

    metadata = body.get("metadata") or {}
    run_name = (metadata.get("labels") or {}).get(LABEL_RUN)
    namespace = metadata.get("namespace") or "default"
    reconcile_and_write({"metadata": {"name": run_name, "namespace": namespace}}, logger)


@kopf.on.delete(API_GROUP, API_VERSION, RUNS, id="genesys-delete")
def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Delete the run's Jobs and Designs; delete its artifacts if the retention says so."""
    plain = _plain(body)
    metadata = plain.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    run, _problems = validate(plain)
    if run is None:
        logger.info(f"{namespace}/{name}: invalid spec, nothing was started")
        return
    store = open_run_store(run)
    backend = KubernetesBackend(run, plain, namespace=namespace, store=store,
                                api_client=api_client())  # fmt: skip
    jobs, designs = backend.delete_children()
    _caches.pop(str(metadata.get("uid")), None)
    _ingested.pop(str(metadata.get("uid")), None)
    removed = 0
    if run.spec.storage.retention == "delete":
        for key in list(store.list(run_prefix(name))):
            store.delete(key)
            removed += 1
    logger.info(f"{namespace}/{name}: deleted {jobs} jobs, {designs} designs, {removed} objects")


@kopf.on.probe(id="genesys-health")
def health(**_: Any) -> dict[str, Any]:
    """Liveness details: how many reconciles this process has done."""
    return {"reconciles": _reconciles["count"]}


__all__ = [
    "RUNS",
    "api_client",
    "post_events",
    "reconcile_and_write",
    "reset_api_client",
    "write_status",
]
