"""The kopf handlers of ``genesys operator``: DiscoveryRuns in, Jobs and Designs out.

Handlers (each with an explicit ``id``, so renaming a function keeps kopf's stored progress):

- ``genesys-create`` / ``genesys-resume`` / ``genesys-update`` (spec changes) and the timer
  ``genesys-tick`` each run one :func:`~genesys.controller.reconcile.reconcile` of the run and
  write its status in one patch;
- ``genesys-job-event``: every event of a run's Job updates the shared Job cache
  (:class:`~genesys.backends.jobcache.JobCache`), which reconciles read instead of listing the
  run's Jobs; a Job that just ended triggers a reconcile of its run, so results are ingested
  without waiting for the timer;
- ``genesys-delete``: under the finalizer ``genesys.dev/finalizer``, deletes the run's Jobs and
  Designs (found by its name and uid, so a run whose spec is invalid is cleaned up too), and
  its artifacts when ``spec.storage.retention`` is ``delete`` and the store prefix is bound to
  this run;
- ``genesys-health``: a liveness probe (``genesys operator --liveness``).

Reconciles of one run never overlap (a lock per run); reconciles of different runs run in
parallel on kopf's worker threads (``GENESYS_WORKERS``), and all share one Kubernetes API
client. What a run's reconciles keep between them (its archive index, its Designs as last
written, the ended Jobs already checked) is a :class:`~genesys.backends.kubernetes.RunState`
per run uid, dropped when the run is deleted; a restarted operator rebuilds it. The run itself
is the newest body seen (:class:`~genesys.controller.runcache.RunBodies`: kopf's event bodies
and the answers to the operator's own status writes), read from the API server only when none
is known. A finished run's last writes, its Designs' final ranks and then its report, go to
one background thread, so no reconcile waits for them; after each, freed memory is given
back to the system, as it is every ``GENESYS_MEMORY_TRIM_SECONDS`` (:mod:`.memory`).
Events go through kopf's own poster (:func:`post_events`), named ``genesys-operator-*``.
Kopf keeps its own state in annotations under ``kopf.genesys.dev``.

Errors are classified (:func:`is_transient`): a transient failure of the cluster or the store
(connection errors, timeouts, HTTP 429 and 5xx) is a ``kopf.TemporaryError`` retried with
backoff; anything else (a programming error, a refused request) is permanent: recorded once as
``Progressing=False`` with reason ``ReconcileError`` and a Warning Event, then retried only with
a growing delay (``GENESYS_PERMANENT_RETRY_SECONDS``, default 1 minute, doubling to 1 hour), on
a spec change, or by a restarted operator.

What must stay true: handlers decide nothing themselves (the engine does, through
:func:`reconcile`); an invalid spec is reported in the status, never raised (kopf would retry).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from genesys import __version__, telemetry
from genesys.api.base import API_GROUP, API_GROUP_VERSION, API_VERSION
from genesys.api.discoveryrun import TERMINAL_PHASES, Storage
from genesys.api.labels import ANNOTATION_PREFIX, FINALIZER, LABEL_RUN
from genesys.backends.common import RunHandle, open_run, publish_report
from genesys.backends.jobcache import JobCache
from genesys.backends.kubernetes import (
    ANNOTATION_INGESTED,
    Happening,
    RunState,
    delete_run_children,
    patch_custom_status,
)
from genesys.backends.observability import plan_attributes
from genesys.controller import memory
from genesys.controller.reconcile import (
    Outcome,
    holds_result,
    identity_of,
    open_root_store,
    reconcile,
    validate,
)
from genesys.controller.runcache import RunBodies
from genesys.controller.status import error_status
from genesys.store.archive import Archive
from genesys.store.base import open_store
from genesys.store.claims import bound_to

RUNS = "discoveryruns"
REPORT_KEY = "report.html"
TICK_SECONDS = float(os.environ.get("GENESYS_TICK_SECONDS", "15"))
RETRY_SECONDS = 10.0
COMPONENT = "genesys-operator"
USER_AGENT = f"genesys-operator/{__version__}"
"""The operator's own API client says so (kopf's says ``kopf/<version>``)."""

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_client: Any = None
_client_guard = threading.Lock()
_reconciles = {"count": 0}
_states: dict[str, RunState] = {}  # per run uid: its archive index, Designs, ingested Jobs
job_cache = JobCache()  # every run's Jobs, from the watch stream (genesys-job-event)
run_bodies = RunBodies()  # every run's newest body: kopf's events and our own status writes
_held: dict[str, Backoff] = {}  # per run uid: permanent errors, and when to try again
FIRST_RETRY_SECONDS = float(os.environ.get("GENESYS_PERMANENT_RETRY_SECONDS", "60"))
MAX_RETRY_SECONDS = 3600.0


@dataclass
class Backoff:
    """When a run whose reconcile failed permanently is tried again."""

    generation: int | None
    delay: float
    not_before: float  # time.monotonic()


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
            _client.user_agent = USER_AGENT  # how the API server's audit log names us
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


def involved_object(happening: Happening, *, namespace: str, run_uid: str | None) -> kopf.Body:
    """The object an Event is about, as kopf wants it: the run (with its uid) or a Design."""
    kind = "DiscoveryRun" if happening.kind == "run" else "Design"
    metadata = {"name": happening.name, "namespace": namespace}
    if happening.kind == "run" and run_uid:
        metadata["uid"] = run_uid
    raw = {"apiVersion": API_GROUP_VERSION, "kind": kind, "metadata": metadata}
    return kopf.Body(cast(kopf.RawBody, raw))


def post_events(happenings: Iterable[Happening], *, namespace: str, run_uid: str | None) -> None:
    """Post Kubernetes Events for what a reconcile did, through kopf's event poster.

    kopf posts them in the background and never fails the handler for them: events are
    informative, and the status is the record.
    """
    for happening in happenings:
        kopf.event(
            involved_object(happening, namespace=namespace, run_uid=run_uid),
            type=happening.type,
            reason=happening.reason,
            message=happening.message,
        )


# ---------------------------------------------------------------------------------- reconcile


def write_status(name: str, namespace: str, status: Mapping[str, Any], client: Any) -> None:
    """Patch a DiscoveryRun's status (its status subresource); the answer is the newest body."""
    from kubernetes import client as k8s

    written = patch_custom_status(k8s.CustomObjectsApi(client), namespace, RUNS, name, status)
    if isinstance(written, Mapping):
        run_bodies.offer(written)


def current_run(name: str, namespace: str, client: Any) -> dict[str, Any] | None:
    """The newest body of a run this process has seen, read from the API server when none."""
    known = run_bodies.get(namespace, name)
    if known is not None:
        return known
    found = read_run(name, namespace, client)
    if found is not None:
        run_bodies.offer(found)
    return found


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


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying soon: connections, timeouts, throttling, 5xx."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError  # type: ignore[import-untyped]

    if isinstance(exc, ApiException):
        return exc.status in (0, 408, 409, 429) or exc.status >= 500
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(exc.response.get("Error", {}).get("Code", ""))
        throttled = code in ("SlowDown", "Throttling", "RequestTimeout")
        return status >= 500 or status == 429 or throttled
    return isinstance(
        exc, ConnectionError | TimeoutError | HTTPError | BotoConnectionError | HTTPClientError
    )


def _permanent(
    key: str, plain: Mapping[str, Any], exc: BaseException, client: Any, logger: Any
) -> None:
    """Record a permanent failure once (condition and Event), and hold the run back a while."""
    metadata = plain.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    generation = metadata.get("generation")
    held = _held.get(key)
    delay = FIRST_RETRY_SECONDS
    if held is not None and held.generation == generation:
        delay = min(MAX_RETRY_SECONDS, held.delay * 2)
    _held[key] = Backoff(generation, delay, time.monotonic() + delay)
    message = f"{type(exc).__name__}: {exc}"[:900] + f" (retried in {delay:.0f}s or on a change)"
    old = dict(plain.get("status") or {})
    status = error_status(old, message, datetime.now(UTC), generation)
    first: dict[str, Any] = next(
        (c for c in old.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    if first.get("reason") != "ReconcileError" or not str(first.get("message", "")).startswith(
        f"{type(exc).__name__}: {exc}"[:200]
    ):
        happening = Happening("run", name, "Warning", "ReconcileError", message)
        post_events([happening], namespace=namespace, run_uid=metadata.get("uid"))
    write_status(name, namespace, status, client)
    logger.error(f"reconcile of {namespace}/{name} failed permanently: {message}")


def held_back(body: Mapping[str, Any]) -> bool:
    """True while a run's permanent failure waits for its retry (same generation)."""
    metadata = body.get("metadata") or {}
    held = _held.get(str(metadata.get("uid")))
    return (
        held is not None
        and held.generation == metadata.get("generation")
        and time.monotonic() < held.not_before
    )


def reconcile_and_write(body: Mapping[str, Any], logger: logging.Logger | Any) -> Outcome | None:
    """Reconcile one run under its lock, then write its status and post its events.

    The run reconciled is the newest body seen (:class:`RunBodies`: the event's, an earlier
    event's, or the answer to the last status write, whichever has the latest
    ``resourceVersion``), so a stale event body (a timer firing just after a spec change) never
    undoes newer work, and no reconcile reads the run again. A run being deleted is left to its
    finalizer.
    """
    if (body.get("metadata") or {}).get("resourceVersion"):
        run_bodies.offer(_plain(body))
    metadata = dict(body.get("metadata") or {})
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    with _lock(f"{namespace}/{name}"):
        outcome = traced_reconcile(
            namespace, name, metadata, lambda: _reconcile_locked(name, namespace, logger)
        )
    if outcome is None:
        return None
    _reconciles["count"] += 1
    logger.info(f"reconciled {namespace}/{name}: phase {outcome.phase}")
    return outcome


def traced_reconcile(
    namespace: str,
    name: str,
    metadata: Mapping[str, Any],
    work: Callable[[], Outcome | None],
) -> Outcome | None:
    """``work`` (one reconcile of a run) in a ``genesys.reconcile`` span, its duration recorded.

    The span carries the run, namespace and uid, then the phase and the actions planned.
    """
    attributes = {
        "genesys.run": f"{namespace}/{name}",
        "k8s.namespace.name": namespace,
        "genesys.run.uid": str(metadata.get("uid") or ""),
    }
    started = time.monotonic()
    try:
        with telemetry.span("genesys.reconcile", attributes) as span:
            outcome = work()
            if outcome is not None:
                span.set_attributes(plan_attributes(outcome.phase, outcome.actions))
            return outcome
    finally:
        telemetry.current().instruments.reconcile_duration.record(
            time.monotonic() - started, {"genesys.run": f"{namespace}/{name}"}
        )


def _reconcile_locked(name: str, namespace: str, logger: Any) -> Outcome | None:
    """The body of :func:`reconcile_and_write`, under the run's lock."""
    client = api_client()
    try:
        plain = current_run(name, namespace, client)
    except Exception as exc:
        raise kopf.TemporaryError(f"cannot read the run: {exc}", delay=RETRY_SECONDS) from exc
    if plain is None or (plain.get("metadata") or {}).get("deletionTimestamp"):
        return None
    metadata = plain.get("metadata") or {}
    key = str(metadata.get("uid") or f"{namespace}/{name}")
    state = _states.setdefault(key, RunState())
    try:
        outcome = reconcile(
            plain,
            api_client=client,
            state=state,
            job_cache=job_cache,
            publish=publish_in_background,
            later=run_in_background,
        )
        ensure_report(plain, logger)  # a finished run's report, lost to a restart
        if outcome.status != (plain.get("status") or {}):
            write_status(name, namespace, outcome.status, client)
    except Exception as exc:
        if is_transient(exc):
            raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=RETRY_SECONDS) from exc
        _permanent(key, plain, exc, client, logger)
        return None
    _held.pop(key, None)
    post_events(outcome.happenings, namespace=namespace, run_uid=metadata.get("uid"))
    return outcome


# ------------------------------------------------------------------------------------ reports

_reports = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
_trimming: threading.Event | None = None  # set to stop the heap-trimming thread
_reported: set[str] = set()  # run uids whose report is in the store, or being written


def publish_in_background(
    handle: RunHandle, archive: Archive | None
) -> concurrent.futures.Future[None]:
    """Render a finished run's report on the report thread; a failure is logged, not raised.

    Rendering takes seconds for a large run, and no reconcile should wait for it. A report lost
    to a restart is written again when the restarted operator first sees the run
    (:func:`ensure_report`).
    """
    _reported.add(str(handle.identity.uid))
    return _reports.submit(_publish_logged, handle, archive)


def run_in_background(work: Callable[[], object]) -> concurrent.futures.Future[None]:
    """Run a finished run's last writes on the report thread, before its report.

    A failure is logged, not raised: the Designs' final ranks are informative, and the store
    holds what they mirror.
    """
    return _reports.submit(_run_logged, work)


def _run_logged(work: Callable[[], object]) -> None:
    try:
        work()
    except Exception as exc:
        logging.getLogger(__name__).error(f"a finished run's last writes failed: {exc}")
    finally:
        memory.trim()


def _publish_logged(handle: RunHandle, archive: Archive | None) -> None:
    try:
        publish_report(handle, archive)
    except Exception as exc:  # informative only: the status and the store hold the result
        _reported.discard(str(handle.identity.uid))  # the next event of the run tries again
        logging.getLogger(__name__).error(f"{handle.identity.describe()}: no report: {exc}")
    finally:
        memory.trim()  # a report's pages, before the next run's (no full collection: it
        # would stop every thread)


def reports_written(timeout: float | None = None) -> None:
    """Wait until every report handed to the report thread so far is written (or failed)."""
    _reports.submit(lambda: None).result(timeout)


def ensure_report(plain: Mapping[str, Any], logger: Any) -> concurrent.futures.Future[None] | None:
    """Publish a finished run's report if its store has none (once per run and process).

    The check reads the store only; the run is opened (as a reconcile opens it) only when the
    report is missing.
    """
    identity = identity_of(plain)
    status = plain.get("status") or {}
    if str(identity.uid) in _reported or not holds_result(status.get("phase")):
        return None
    run, _problems = validate(plain)
    if run is None:
        return None
    try:
        root = open_root_store(run)
        if root.child(identity.store_prefix).exists(REPORT_KEY):
            _reported.add(str(identity.uid))
            return None
        handle, _binding = open_run(
            run, identity, root, data_uri=run.spec.verification.data.shards or ""
        )
    except Exception as exc:  # a store that cannot be read now: the next event tries again
        logger.warning(f"{identity.describe()}: cannot check the report: {exc}")
        return None
    logger.info(f"{identity.describe()}: writing the missing report")
    return publish_in_background(handle, None)


# ----------------------------------------------------------------------------------- handlers


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf settings: our finalizer and annotation prefix, watch timeouts, quiet posting.

    Once per process it also settles the interpreter and starts the heap-trimming thread
    (:mod:`genesys.controller.memory`).
    """
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
    global _trimming
    if _trimming is None:
        memory.settle()
        _trimming = memory.start_trimming()
    settings.posting.reporting_component = COMPONENT
    settings.posting.reporting_instance = os.environ.get("HOSTNAME", COMPONENT)
    settings.posting.event_name_prefix = f"{COMPONENT}-"
    settings.execution.max_workers = int(os.environ.get("GENESYS_WORKERS", "8"))


@kopf.on.create(API_GROUP, API_VERSION, RUNS, id="genesys-create")
@kopf.on.resume(API_GROUP, API_VERSION, RUNS, id="genesys-resume")
@kopf.on.update(API_GROUP, API_VERSION, RUNS, field="spec", id="genesys-update")
def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A run was created, seen again after a restart, or its spec changed."""
    reconcile_and_write(body, logger)


@kopf.timer(
    API_GROUP, API_VERSION, RUNS, id="genesys-tick", interval=TICK_SECONDS, initial_delay=1.0
)
def on_tick(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Periodic observe -> plan -> apply."""
    status = body.get("status") or {}
    metadata = body.get("metadata") or {}
    settled = status.get("phase") in TERMINAL_PHASES
    if (
        metadata.get("deletionTimestamp")
        or held_back(body)
        or (settled and status.get("observedGeneration") == metadata.get("generation"))
    ):
        return
    reconcile_and_write(body, logger)


def _job_ended(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    ended = any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return ended and ANNOTATION_INGESTED not in annotations


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN: kopf.PRESENT}, id="genesys-job-event")
def on_job_event(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
    """Keep the Job cache; when a run's Job just ended, reconcile its run now."""
    event_type = kwargs.get("type")  # ADDED, MODIFIED, DELETED; None: the initial listing
    job_cache.observe(event_type, _plain(body))
    if event_type == "DELETED" or not _job_ended(body):
        return

    metadata = body.get("metadata") or {}
    run_name = (metadata.get("labels") or {}).get(LABEL_RUN)
    namespace = metadata.get("namespace") or "default"
    reconcile_and_write({"metadata": {"name": run_name, "namespace": namespace}}, logger)


@kopf.on.delete(API_GROUP, API_VERSION, RUNS, id="genesys-delete")
def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Delete the run's Jobs and Designs; its artifacts too if the retention says so.

    Nothing here needs a valid spec: children are found by the run's name and uid, and the
    store by ``spec.storage`` alone. Artifacts are deleted only from a prefix bound to this
    run, never from one that holds another run's archive.
    """
    plain = _plain(body)
    run_bodies.offer(plain)  # a reconcile from a Job event now sees the deletion
    identity = identity_of(plain)
    namespace = identity.namespace or "default"
    try:
        jobs, designs = delete_run_children(api_client(), namespace, identity)
        removed = delete_artifacts(plain, logger)
    except Exception as exc:
        if is_transient(exc):
            raise kopf.TemporaryError(f"cleanup failed: {exc}", delay=RETRY_SECONDS) from exc
        raise
    for registry in (_states, _held):
        registry.pop(str(identity.uid), None)
    _reported.discard(str(identity.uid))
    job_cache.forget_run(namespace, identity)
    run_bodies.forget(namespace, identity.name)
    telemetry.current().instruments.gauges.forget(identity.describe())
    logger.info(
        f"{identity.describe()}: deleted {jobs} jobs, {designs} designs, {removed} store objects"
    )


def delete_artifacts(plain: Mapping[str, Any], logger: Any) -> int:
    """Delete the run's store prefix when ``retention: delete`` and it is bound to this run."""
    import pydantic

    identity = identity_of(plain)
    raw = (plain.get("spec") or {}).get("storage") or {}
    try:
        storage = Storage.model_validate(raw)
    except pydantic.ValidationError:
        logger.warning(f"{identity.describe()}: spec.storage is invalid; artifacts are kept")
        return 0
    if storage.retention != "delete" or storage.s3 is None:
        return 0
    root_uri = f"s3://{storage.s3.bucket}/{storage.s3.prefix}".rstrip("/")
    root = open_store(root_uri, endpoint_url=storage.s3.endpoint_url)
    store = root.child(identity.store_prefix)
    if not bound_to(store, identity):
        logger.warning(f"{identity.describe()}: {store.uri} holds another run's archive; kept")
        return 0
    return root.delete_prefix(identity.store_prefix)


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
