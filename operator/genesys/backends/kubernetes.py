"""The Kubernetes backend: design sessions as agent Jobs, verifications as TorchX Jobs.

It executes the engine's actions in one namespace and observes their results, like the local
backend does with processes:

- ``StartSession`` creates the session's check pod (a Job: the only place its design code
  runs) and its agent Job (:func:`~genesys.backends.manifests.agent_job`); the run's first
  session in an operator process also makes sure of the run's headless check Service and its
  NetworkPolicy, shared by all its check pods. A session's outcome is the run store's
  ``session.json``; a Job that ends without one gets a failed outcome with the Job's reason.
  The agent stops its check server when its session ends, so the check Job ends by itself;
  one still running :data:`CHECK_GRACE_SECONDS` after its agent ended (or at once, when the
  agent failed) is deleted. A check pod that fails while its session runs ends the session at
  once: the agent Job is deleted (it would wait for the check server in vain) and the outcome
  names the check Job.
- ``StartVerification`` submits the verification AppDef every backend shares
  (:func:`~genesys.backends.common.verification_app`) through TorchX's ``kubernetes_job``
  scheduler: a plain ``batch/v1`` Job (Kueue-ready), owned by the run, with the rung's
  ``deadlineSeconds`` as ``activeDeadlineSeconds`` and a ``ttlSecondsAfterFinished``. The pod
  holds no credential: a store grant issued at submission (:mod:`genesys.store.grant`) lets
  it read its inputs and write its own output prefix, nothing else. A Job that
  ends without a final ``result.json`` is a failed attempt
  (:func:`~genesys.backends.common.record_verification_end`), retried by the planner up to
  ``verification.maxRetries``; the GPU time of every finished training Job is recorded in the
  store, so the run's GPU-hours survive the Job's removal.
- An ended Job is checked against the store once per operator process (``ingested``); one whose
  end had to be recorded (a failure) is also annotated ``genesys.dev/ingested``, so a restarted
  operator records nothing twice.
- Design resources mirror the archive: one per design, created once, status patched when it
  changes (:meth:`KubernetesBackend.sync_designs`; a change of fitness or rank alone waits for
  the next rank refresh, which writes each such Design once). A Design left by an earlier run
  of the same name (another uid) is replaced, never adopted.
- What a reconcile costs grows with what changed, not with the run's history: the archive is
  an :class:`~genesys.store.index.ArchiveIndex` kept in the run's :class:`RunState` that lists
  only the store folders written since the last reconcile (those of the Jobs that ended and of
  the operator's own writes; the whole run every :data:`STORE_RESYNC_SECONDS`), the
  run's Jobs come from the watch-fed :class:`~genesys.backends.jobcache.JobCache`, and the
  Designs' statuses are compared with what was last written. One reconcile creates at most
  ``max_creates`` objects; the planner plans the rest again next time.

What must stay true: the backend decides nothing (all choices come from ``plan()``); every
object has a deterministic name, so applying a plan twice creates nothing twice (409 is
success); children are found by the run's name and uid labels, checked again client-side; every
store key is inside the run's own store.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genesys.api.base import API_GROUP, API_VERSION
from genesys.api.labels import LABEL_DESIGN, LABEL_ROLE, LABEL_RUNG
from genesys.api.placement import rung_placement
from genesys.api.runconfig import RunIdentity
from genesys.backends import manifests, observability
from genesys.backends.common import (
    RunHandle,
    record_session_end,
    record_verification_end,
    verification_app,
    write_failure,
    write_seeds,
)
from genesys.backends.jobcache import (
    ANNOTATION_INGESTED,
    ANNOTATION_SUSPENDED,
    JobCache,
    JobView,
    job_view_of,
    labelled_for,
)
from genesys.engine.actions import (
    Action,
    CancelVerification,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import Observed
from genesys.engine.state import Waiting
from genesys.store.archive import (
    Archive,
    design_key,
    session_folder,
    verification_prefix,
)
from genesys.store.base import S3Store
from genesys.store.documents import GpuUsage, create_document
from genesys.store.grant import StoreGrant, grant_env, training_grant
from genesys.store.index import ArchiveIndex

LABEL_ATTEMPT = f"{API_GROUP}/attempt"
DESIGNS = "designs"
MAX_CREATES = int(os.environ.get("GENESYS_MAX_CREATES_PER_RECONCILE", "12"))
"""At most this many objects are created by one reconcile; the rest wait for the next one."""
RANK_REFRESH_SECONDS = float(os.environ.get("GENESYS_RANK_REFRESH_SECONDS", "600"))
"""How often a Design whose only change is its fitness or rank is patched."""
RANKING_FIELDS = ("fitness", "rank")
RANK_PATCHES = 12
"""At most this many Designs whose only change is their rank are patched by one reconcile."""
EXACT_RANKS = 10
"""A rank refresh writes every change among the top ranks; below them, moves of a tenth."""
SESSION_OBJECTS = 2  # a session's check Job and agent Job
CHECK_NETWORK_OBJECTS = 2  # a run's check Service and NetworkPolicy, once per process
CHECK_GRACE_SECONDS = 60.0
"""A check Job still running this long after its agent ended is deleted (it missed the stop)."""
STORE_RESYNC_SECONDS = float(os.environ.get("GENESYS_STORE_RESYNC_SECONDS", "60"))
"""How often a reconcile lists the run's whole store, not only the folders written since the
last one: it picks up what no ended Job announced (the spend of sessions still running, a
noise floor recorded by hand, a key deleted from outside)."""
REJECTIONS = "rejected"  # the store folder of rejection records


@dataclass
class Happening:
    """Something worth a Kubernetes Event, for the controller to post."""

    kind: str  # "run" | "design"
    name: str  # the object's name (the run, or the Design resource)
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Observation:
    """``Observed`` for the planner plus what the status needs."""

    observed: Observed
    gpu_hours: float
    happenings: list[Happening] = field(default_factory=list)


def failed_check_pods(jobs: Sequence[JobView]) -> dict[str, JobView]:
    """The check Jobs that failed, by their session."""
    return {
        job.labels.get(manifests.LABEL_SESSION, ""): job
        for job in jobs
        if job.labels.get(LABEL_ROLE) == manifests.ROLE_CHECK and job.finished == "Failed"
    }


def written_folders(job: JobView) -> list[str] | None:
    """The run-store folders an ended Job (and the operator's ingest of it) may have written.

    A session writes under its own folder, its design's and the rejection records; a training
    Job (and its ingest) under its verification's; a check pod holds no store credential and
    writes nothing. None when a label that says where is missing: the whole run must be listed.
    """
    role, labels = job.labels.get(LABEL_ROLE), job.labels
    design = labels.get(LABEL_DESIGN, "")
    if role == manifests.ROLE_CHECK:
        return []
    if role == manifests.ROLE_SESSION:
        session = labels.get(manifests.LABEL_SESSION, "")
        if session and design:
            return [session_folder(session), design_key(design), REJECTIONS]
    elif role == manifests.ROLE_VERIFICATION:
        rung = labels.get(LABEL_RUNG, "")
        if design and rung:
            return [verification_prefix(design, rung)]
    return None


def rank_moved(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when a rank refresh should rewrite a Design whose fitness or rank alone changed.

    Every new result moves the fitness of all designs and the rank of those below it, so in a
    run of thousands of designs almost every Design would be rewritten at every refresh. A
    refresh therefore writes a Design's first rank, any change of rank within the top
    :data:`EXACT_RANKS`, and below them a move of at least a tenth of its rank; smaller moves
    wait until they add up, or for the run's end, when every rank is written exactly.
    """
    old, new = current.get("rank"), wanted.get("rank")
    if old is None or new is None:
        return old != new or current.get("fitness") != wanted.get("fitness")
    if min(old, new) <= EXACT_RANKS:
        return old != new or current.get("fitness") != wanted.get("fitness")
    return bool(abs(int(new) - int(old)) >= max(1, int(old) // 10))


def lingering_checks(jobs: Sequence[JobView], now: datetime) -> list[str]:
    """The running check Jobs whose session is over: to be deleted.

    A session's agent stops its check server as it ends, so its check Job normally ends
    within moments of the agent's. One is lingering when its agent Job failed (it may not
    have stopped the server), when its agent ended more than :data:`CHECK_GRACE_SECONDS` ago,
    or when its agent Job is gone and the check Job is older than that.
    """
    agents = {
        job.labels.get(manifests.LABEL_SESSION, ""): job
        for job in jobs
        if job.labels.get(LABEL_ROLE) == manifests.ROLE_SESSION
    }

    def older(when: datetime | None) -> bool:
        return when is None or (now - when).total_seconds() >= CHECK_GRACE_SECONDS

    lingering = []
    for job in jobs:
        if job.labels.get(LABEL_ROLE) != manifests.ROLE_CHECK or job.finished is not None:
            continue
        agent = agents.get(job.labels.get(manifests.LABEL_SESSION, ""))
        if agent is None:
            over = older(job.created)
        else:
            over = agent.finished == "Failed" or (agent.finished is not None and older(agent.ended))
        if over:
            lingering.append(job.name)
    return lingering


@functools.cache
def _serializer() -> Any:
    """One API client, used only to turn client models into their JSON form."""
    from kubernetes.client import ApiClient

    return ApiClient()


def job_view(job: Any) -> JobView:
    """A JobView of a ``V1Job`` (through its JSON form, as a watch event carries it)."""
    return job_view_of(_serializer().sanitize_for_serialization(job))


def _scheduled(pod: Any) -> bool | None:
    """True once a pod is on a node, False while the scheduler finds none, None before it looks."""
    for condition in (pod.status.conditions if pod.status else None) or []:
        if condition.type == "PodScheduled":
            return bool(condition.status == "True")
    return None


def _unschedulable(pod: Any) -> Any:
    """The pod's ``PodScheduled=False`` condition (the scheduler's words), or None."""
    return next(
        (
            c
            for c in (pod.status.conditions if pod.status else None) or []
            if c.type == "PodScheduled" and c.status == "False"
        ),
        None,
    )


def job_waiting(job: JobView, pods: Sequence[Any], now: datetime) -> Waiting | None:
    """Why a running training Job is not on a node yet; None once one of its pods is.

    A suspended Job waits for Kueue to admit it; a pod the scheduler cannot place waits for
    capacity (its ``PodScheduled`` condition says why); a Job with no pod yet, or a pod the
    scheduler has not looked at, is being scheduled.
    """
    since = job.created or now
    if job.suspended:
        queue = f" {job.queue}" if job.queue else ""
        return Waiting(since, "Queued", f"not admitted yet by the Kueue queue{queue}")
    live = [p for p in pods if p.status is None or p.status.phase in ("Pending", "Running")]
    if any(_scheduled(p) or (p.status and p.status.phase == "Running") for p in live):
        return None
    refused = next((c for c in map(_unschedulable, live) if c is not None), None)
    if refused is not None:
        when = refused.last_transition_time or since
        return Waiting(when, refused.reason or "Unschedulable", refused.message or "")
    return Waiting(since, "Scheduling")


def job_seconds(job: JobView, now: datetime) -> float:
    """How long a Job has run (to its completion, or to now)."""
    if job.started is None:
        return 0.0
    return max(0.0, ((job.completed or now) - job.started).total_seconds())


def gpu_hours(jobs: Sequence[JobView], now: datetime) -> float:
    """GPU-hours of training Jobs: GPUs x (end or now - start)."""
    return sum(job.gpus * job_seconds(job, now) for job in jobs) / 3600


@dataclass
class RunState:
    """What the operator keeps of one run between its reconciles (none of it is needed).

    A new state (a restarted operator) rebuilds everything from the store and one list of the
    run's Jobs and Designs; nothing is created twice, because every object has a fixed name.
    """

    index: ArchiveIndex = field(default_factory=ArchiveIndex)
    ingested: set[str] = field(default_factory=set)  # ended Jobs already checked
    designs: dict[str, dict[str, Any]] | None = None  # Design name -> status as last written
    designs_listed: float = 0.0  # time.monotonic() of the last list of the run's Designs
    ranks_written: float = 0.0  # ... and of the start of the last rank refresh
    rank_sweep: set[str] | None = None  # the Designs the rank refresh under way has still to write
    check_network: bool = False  # the run's check Service and NetworkPolicy are known to exist
    unlisted: set[str] | None = None  # store folders written since the last refresh; None: all
    store_listed: float = -math.inf  # time.monotonic() of the last listing of the whole run
    opened: tuple[Any, RunHandle] | None = None  # (generation, the run opened at it)


class KubernetesBackend:
    """Runs a DiscoveryRun's children as Jobs in one namespace."""

    def __init__(
        self,
        handle: RunHandle,
        body: Mapping[str, Any],
        *,
        namespace: str,
        api_client: Any,
        state: RunState | None = None,
        job_cache: JobCache | None = None,
        max_creates: int | None = None,
    ) -> None:
        from kubernetes import client

        self.handle, self.body, self.namespace = handle, body, namespace
        self.run, self.identity, self.store = handle.run, handle.identity, handle.store
        self.state = state if state is not None else RunState()
        self.state.index.name = handle.identity.name
        self.job_cache = job_cache
        self.ingested = self.state.ingested
        self.max_creates = MAX_CREATES if max_creates is None else max_creates
        self.creates_left = self.max_creates
        self.design_creates_left = self.max_creates  # Designs have a budget of their own
        self.deferred = 0  # actions and Designs left for the next reconcile
        self.started: set[tuple[str, str]] = set()  # (design, rung) trainings started now
        self.final_ranks: dict[str, dict[str, Any]] = {}  # Design name -> its final status
        self.name = handle.identity.name
        self.api_client = api_client
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self._jobs: list[JobView] | None = None

    # ------------------------------------------------------------------------------- jobs

    def jobs(self, *, fresh: bool = False) -> list[JobView]:
        """The run's Jobs: from the watch cache when it has them, else listed (and cached)."""
        if self._jobs is not None and not fresh:
            return self._jobs
        cached = (
            None
            if fresh or self.job_cache is None
            else self.job_cache.run_jobs(self.namespace, self.identity)
        )
        if cached is None:
            cached = list_run_jobs(self.batch, self.namespace, self.identity)
            if self.job_cache is not None:
                self.job_cache.replace_run(self.namespace, self.identity, cached)
        self._jobs = cached
        return cached

    def _created_job(self, manifest: Mapping[str, Any]) -> None:
        if self.job_cache is not None:
            self.job_cache.put(self.namespace, manifest)

    def _deleted_job(self, name: str) -> None:
        if self.job_cache is not None:
            self.job_cache.drop(self.namespace, self.identity, name)

    def _delete_job(self, name: str) -> None:
        _delete_if_present(
            self.batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background"
        )
        self._deleted_job(name)

    def _mark_ingested(self, job: JobView) -> None:
        patch = {"metadata": {"annotations": {ANNOTATION_INGESTED: "true"}}}
        self.batch.patch_namespaced_job(job.name, self.namespace, patch)

    def _create(self, create: Any, *args: Any) -> bool:
        """Create an object; False when it already exists (a replayed plan)."""
        from kubernetes.client.exceptions import ApiException

        try:
            create(*args)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # ---------------------------------------------------------------------------- observe

    def observe(self, now: datetime | None = None) -> Observation:
        """Record ended Jobs, then bring the run's archive index up to date from the store."""
        now = now or datetime.now(UTC)
        jobs = self.jobs()
        happenings: list[Happening] = []
        running_sessions: set[str] = set()
        running_jobs: set[tuple[str, str]] = set()
        waiting_jobs: dict[tuple[str, str], Waiting] = {}
        pods: dict[str, list[Any]] | None = None  # training pods by Job, listed when needed
        running_gpu_hours = 0.0
        if any(job.labels.get(LABEL_ROLE) == manifests.ROLE_CHECK for job in jobs):
            self.state.check_network = True  # made before the run's first check Job: it exists
        for job in jobs:
            role = job.labels.get(LABEL_ROLE)
            done = job.name in self.ingested or ANNOTATION_INGESTED in job.annotations
            if role == manifests.ROLE_SESSION:
                session = job.labels.get(manifests.LABEL_SESSION, "")
                if job.finished is None:
                    running_sessions.add(session)
                elif not done:
                    happenings += self._session_ended(job, session)
                    self._wrote(written_folders(job))
            elif role == manifests.ROLE_VERIFICATION:
                key = (job.labels.get(LABEL_DESIGN, ""), job.labels.get(LABEL_RUNG, ""))
                if job.finished is None:
                    running_jobs.add(key)
                    running_gpu_hours += gpu_hours([job], now)
                    pods = self.training_pods() if pods is None else pods
                    waiting = job_waiting(job, pods.get(job.name, []), now)
                    if waiting is not None:
                        waiting_jobs[key] = waiting
                elif not done:
                    happenings += self._verification_ended(job, key, now)
                    self._wrote(written_folders(job))
        happenings += self._end_sessions_without_checks(running_sessions, failed_check_pods(jobs))
        self._stop_lingering_checks(jobs, now)
        index = self.state.index
        self._refresh_index()  # after the ended Jobs' records: they are in it
        observed = Observed(
            archive=index.archive(),
            running_sessions=frozenset(running_sessions),
            running_jobs=frozenset(running_jobs),
            failed_attempts=index.failed_attempts(),
            spend_usd=index.spent_usd(),
            waiting_jobs=waiting_jobs,
        )
        spent = index.gpu_hours() + running_gpu_hours
        observability.set_gauges(self.identity, observed)
        return Observation(observed, spent, happenings)

    def archive(self) -> Archive:
        """The run's archive as the store holds it now (the index, brought up to date)."""
        self._refresh_index(whole=True)
        return self.state.index.archive()

    def _wrote(self, folders: Sequence[str] | None) -> None:
        """Note store folders just written (None: anywhere), for the next refresh to list."""
        if folders is None:
            self.state.unlisted = None
        elif self.state.unlisted is not None:
            self.state.unlisted.update(folders)

    def _refresh_index(self, *, whole: bool = False) -> None:
        """Bring the archive index up to date from the folders written since the last refresh.

        The whole run is listed instead the first time, after a write that names no folder,
        and every :data:`STORE_RESYNC_SECONDS`.
        """
        state, now = self.state, time.monotonic()
        unlisted = state.unlisted
        whole = whole or unlisted is None or now - state.store_listed >= STORE_RESYNC_SECONDS
        state.index.refresh(self.store, None if whole else unlisted)
        if whole:
            state.store_listed = now
        state.unlisted = set()

    def training_pods(self) -> dict[str, list[Any]]:
        """The run's training pods, by the name of their Job (the ``job-name`` label)."""
        selector = (
            f"{manifests.run_selector(self.identity)},{LABEL_ROLE}={manifests.ROLE_VERIFICATION}"
        )
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        by_job: dict[str, list[Any]] = {}
        for pod in listed.items:
            labels = pod.metadata.labels or {}
            if labelled_for(labels, self.identity) and "job-name" in labels:
                by_job.setdefault(labels["job-name"], []).append(pod)
        return by_job

    def _end_sessions_without_checks(
        self, running: set[str], failed_checks: Mapping[str, JobView]
    ) -> list[Happening]:
        """End each running session whose check pod failed: none of its checks can run now.

        Its agent would otherwise wait for the check server until its own deadline. The agent
        Job is deleted and the session gets a failed outcome that names the check pod's Job.
        """
        happenings = []
        for session in sorted(running & failed_checks.keys()):
            check = failed_checks[session]
            reason = (
                f"the check pod (Job {check.name}) failed ({check.reason}) while the session "
                f"ran, so its design checks cannot run; its log says why "
                f"(kubectl logs job/{check.name})"
            )
            agent = manifests.session_job_name(self.identity, session)
            self._delete_job(agent)
            if record_session_end(self.store, session, reason):
                happenings.append(Happening("run", self.name, "Warning", "CheckPodFailed", reason))
            observability.ingest_session(self.store, self.identity, session)
            running.discard(session)
            self.ingested.add(agent)
            self._wrote(None)  # its agent may have written its design: no Job view says which
        return happenings

    def _stop_lingering_checks(self, jobs: Sequence[JobView], now: datetime) -> None:
        """Delete the check Jobs that outlive their session (see :func:`lingering_checks`)."""
        for name in lingering_checks(jobs, now):
            self._delete_job(name)

    def _session_ended(self, job: JobView, session: str) -> list[Happening]:
        observability.ingest_session(self.store, self.identity, session)
        happenings = []
        reason = f"agent Job {job.name} ended {job.finished}: {job.reason}"
        if record_session_end(self.store, session, reason):
            happenings.append(Happening("run", self.name, "Warning", "SessionFailed", reason))
            self._mark_ingested(job)
        self.ingested.add(job.name)
        return happenings

    def _verification_ended(
        self, job: JobView, key: tuple[str, str], now: datetime
    ) -> list[Happening]:
        design, rung = key
        happenings = []
        usage = GpuUsage(job=job.name, gpus=job.gpus, seconds=job_seconds(job, now))
        create_document(
            self.store, f"{verification_prefix(design, rung)}/gpu-usage/{job.name}.json", usage
        )
        observability.ingest_verification(
            self.store, self.identity, design, rung, gpu_seconds=usage.gpus * usage.seconds
        )
        state = f"{job.finished} ({job.reason})"
        if record_verification_end(self.store, design, rung, state, job=job.name):
            happenings.append(
                Happening(
                    "design",
                    manifests.design_name(self.name, design),
                    "Warning",
                    "TrainingAttemptFailed",
                    f"training Job {job.name} ended {job.finished} ({job.reason}) without a result",
                )
            )
            self._mark_ingested(job)  # a restarted operator must not count it again
        self.ingested.add(job.name)
        return happenings

    # ------------------------------------------------------------------------------ apply

    def _spend(self, creates: int) -> bool:
        """Take ``creates`` from this reconcile's budget; False (and counted) when it is short.

        The first start of a reconcile always goes through, even one larger than the whole
        budget, so a small budget slows a run down but never stops it.
        """
        if creates > self.creates_left and self.creates_left < self.max_creates:
            self.deferred += 1
            return False
        self.creates_left = max(0, self.creates_left - creates)
        return True

    def _spend_design(self) -> bool:
        """Take one Design create from this reconcile's Design budget; False when none is left.

        Designs have their own budget, as large as the Jobs', so a run that starts as many
        sessions and trainings as it may never starves its Design mirror.
        """
        if self.design_creates_left <= 0:
            self.deferred += 1
            return False
        self.design_creates_left -= 1
        return True

    def _objects_of(self, action: StartSession | StartVerification) -> int:
        """How many objects starting ``action`` creates."""
        if isinstance(action, StartVerification):
            return 1
        return SESSION_OBJECTS + (0 if self.state.check_network else CHECK_NETWORK_OBJECTS)

    def apply(self, actions: Sequence[Action]) -> list[Happening]:
        """Execute the actions (Finish is the controller's business).

        Starts that would take this reconcile past its creates (``max_creates``) are left out:
        the planner plans them again next time, as nothing of them exists yet.
        """
        happenings: list[Happening] = []
        for action in actions:
            if isinstance(action, InitSeeds):
                observability.seeds_written(self.identity, write_seeds(self.store))
                self._wrote(None)  # the seeds' designs and their hash claims
            elif isinstance(action, StartSession | StartVerification) and not self._spend(
                self._objects_of(action)
            ):
                continue  # over this reconcile's creates: the next reconcile plans it again
            elif isinstance(action, StartSession):
                if self.start_session(action):
                    happenings.append(
                        Happening(
                            "run",
                            self.name,
                            "Normal",
                            "SessionStarted",
                            f"{action.session}: {action.operator} of {list(action.parents)}",
                        )
                    )
            elif isinstance(action, StartVerification):
                self.started.add((action.design_id, action.rung))
                if self.start_verification(action):
                    happenings.append(
                        Happening(
                            "design",
                            manifests.design_name(self.name, action.design_id),
                            "Normal",
                            "TrainingStarted",
                            f"rung {action.rung}, attempt {action.attempt}",
                        )
                    )
            elif isinstance(action, RecordFailure):
                write_failure(self.store, action)
                self._wrote([verification_prefix(action.design_id, action.rung)])
                happenings.append(
                    Happening(
                        "design",
                        manifests.design_name(self.name, action.design_id),
                        "Warning",
                        "VerificationFailed",
                        f"rung {action.rung}: {action.reason}",
                    )
                )
            elif isinstance(action, CancelVerification):
                happenings.append(self.cancel_verification(action))
        return happenings

    def cancel_verification(self, action: CancelVerification) -> Happening:
        """Delete the training Job that waited too long for capacity; record the error."""
        for job in self.jobs():
            key = (job.labels.get(LABEL_DESIGN), job.labels.get(LABEL_RUNG))
            wanted = (manifests.label_value(action.design_id), manifests.label_value(action.rung))
            if job.finished is None and key == wanted:
                self._delete_job(job.name)
        write_failure(self.store, action)
        self._wrote([verification_prefix(action.design_id, action.rung)])
        return Happening(
            "design",
            manifests.design_name(self.name, action.design_id),
            "Warning",
            "TrainingCancelled",
            f"rung {action.rung}: {action.reason}",
        )

    def start_session(self, action: StartSession) -> bool:
        """Create the session's check Job, then its agent Job.

        The check pod comes first, so the agent never waits on a name that is not there; the
        run's check Service and NetworkPolicy are made sure of before the first one. Each
        create that meets an existing object (a replayed plan) is skipped.
        """
        owner, namespace = self.body, self.namespace
        check = manifests.check_job(self.handle, action, owner=owner, namespace=namespace)
        with observability.session_job_span(self.identity, action) as trace_env:
            self.ensure_check_network()
            self._create(self.batch.create_namespaced_job, namespace, check)
            job = manifests.agent_job(
                self.handle, action, owner=owner, namespace=namespace, trace_env=trace_env
            )
            created = self._create(self.batch.create_namespaced_job, namespace, job)
        self._created_job(check)
        self._created_job(job)
        if created:
            observability.session_started(self.identity, action)
        return created

    def ensure_check_network(self) -> None:
        """Create the run's check NetworkPolicy and headless Service, once per process.

        Not at all when a check Job of the run is already seen (a restarted operator): the
        pair is created before the run's first check Job. The policy comes first, so no check
        pod is ever reachable without it. Both are owned by the run (removed with it) and
        shared by all its check pods.
        """
        if self.state.check_network:
            return
        owner, namespace = self.body, self.namespace
        policy = manifests.check_network_policy(self.identity, owner=owner, namespace=namespace)
        service = manifests.check_service(self.identity, owner=owner, namespace=namespace)
        self._create(self.networking.create_namespaced_network_policy, namespace, policy)
        self._create(self.core.create_namespaced_service, namespace, service)
        self.state.check_network = True

    def training_app(
        self, action: StartVerification, trace_env: Mapping[str, str] | None = None
    ) -> Any:
        """The TorchX AppDef of one verification: no credential, a fresh store grant.

        The pod gets the store's endpoint and region as plain values and, instead of the
        store's credentials, a grant issued now (:meth:`store_grant`): presigned URLs to read
        its inputs and write its own output prefix, nothing else.
        """
        env = {
            item["name"]: item["value"] for item in manifests.store_env(self.run) if "value" in item
        }
        env.update(trace_env or {})
        grant = self.store_grant(action)
        if grant is not None:
            env.update(grant_env(grant))
        return verification_app(self.handle, action, env=env)

    def store_grant(self, action: StartVerification) -> StoreGrant | None:
        """A new grant of one verification, signed by the operator's own store credentials.

        None for a run store that is not S3 (only tests build one): nothing to sign with.
        """
        if not isinstance(self.store, S3Store):
            return None
        handle = self.handle
        return training_grant(
            self.store,
            design=handle.uri(design_key(action.design_id, "design.json")),
            config=handle.config_uri,
            data=handle.config.data.uri,
            out=handle.uri(verification_prefix(action.design_id, action.rung)),
            deadline_seconds=handle.config.rung(action.rung).deadline_seconds,
        )

    def scheduler_config(self, action: StartVerification) -> dict[str, Any]:
        """The ``kubernetes_job`` run options of one verification (no Secret reaches the pod)."""
        verification = self.run.spec.verification
        placement = rung_placement(self.run.spec, action.rung)
        # name and managed-by are the scheduler's labels (genesys-trainer, the option below)
        standard = manifests.standard_labels(self.identity, manifests.COMPONENT_TRAINER)
        labels = {
            **{
                key: value
                for key, value in standard.items()
                if key not in (manifests.LABEL_NAME, manifests.LABEL_MANAGED_BY)
            },
            **manifests.run_labels(self.identity),
            LABEL_ROLE: manifests.ROLE_VERIFICATION,
            LABEL_DESIGN: manifests.label_value(action.design_id),
            LABEL_RUNG: manifests.label_value(action.rung),
            LABEL_ATTEMPT: str(action.attempt),
        }
        cfg: dict[str, Any] = {
            "namespace": self.namespace,
            "labels": labels,
            "node_selector": dict(placement.node_selector),
            "tolerations": manifests.training_tolerations(
                [t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations],
                placement.resources.gpus,
            ),
            "affinity": dict(placement.affinity),
            "annotations": dict(manifests.TRAINING_POD_ANNOTATIONS),
            "shm_size": placement.resources.shm_size,
            "backoff_limit": 0,
            "retry_disrupted": True,
            "termination_grace_period_seconds": verification.termination_grace_period_seconds,
            "owner_references": [manifests.owner_reference(self.body)],
            "managed_by": manifests.MANAGED_BY,
            "run_as_user": manifests.NOBODY,
            "active_deadline_seconds": self.handle.config.rung(action.rung).deadline_seconds,
            "ttl_seconds_after_finished": manifests.JOB_TTL_SECONDS,
        }
        if placement.queue_name:
            cfg["queue"] = placement.queue_name
        if placement.priority_class_name:
            cfg["priority_class_name"] = placement.priority_class_name
        if verification.runtime_class_name:
            cfg["runtime_class_name"] = verification.runtime_class_name
        return cfg

    def scheduler(self) -> Any:
        """The ``kubernetes_job`` TorchX scheduler, bound to this backend's API client."""
        from genesys.backends.torchx_job import create_scheduler

        return create_scheduler("genesys", client=self.api_client)

    def start_verification(self, action: StartVerification) -> bool:
        """Submit the training Job through TorchX (with a grant issued now); False when it exists.

        A retry is a new submission (a new attempt, a new Job), so it gets a fresh grant.
        """
        from kubernetes.client.exceptions import ApiException

        scheduler = self.scheduler()
        with observability.training_job_span(self.identity, action) as trace_env:
            app = self.training_app(action, trace_env)
            dryrun = scheduler.submit_dryrun(app, self.scheduler_config(action))
            try:
                scheduler.schedule(dryrun)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        self._created_job(dryrun.request)
        return True

    # --------------------------------------------------------------------------- designs

    def designs(self) -> dict[str, dict[str, Any]]:
        """The run's Design resources by name."""
        return list_run_designs(self.custom, self.namespace, self.identity)

    def design_statuses(self) -> dict[str, dict[str, Any]]:
        """The status of each of the run's Designs as last written (listed when not known)."""
        state = self.state
        resync = self.job_cache.resync_seconds if self.job_cache is not None else 0.0
        if state.designs is None or time.monotonic() - state.designs_listed > resync:
            listed = self.designs()
            state.designs = {name: dict(d.get("status") or {}) for name, d in listed.items()}
            state.designs_listed = time.monotonic()
        return state.designs

    def _create_design(self, body: dict[str, Any]) -> None:
        """Create a Design; one left by an earlier run of the same name is replaced."""
        from kubernetes.client.exceptions import ApiException

        args = (API_GROUP, API_VERSION, self.namespace, DESIGNS)
        if self._create(self.custom.create_namespaced_custom_object, *args, body):
            return
        name = body["metadata"]["name"]
        try:
            existing = self.custom.get_namespaced_custom_object(*args, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            existing = None
        if existing is not None and owned_by(existing, self.identity):
            return
        if existing is not None:
            self.custom.delete_namespaced_custom_object(*args, name)
        self._create(self.custom.create_namespaced_custom_object, *args, body)

    def sync_designs(
        self, archive: Archive, statuses: Mapping[str, dict[str, Any]], *, final: bool = False
    ) -> list[Happening]:
        """Create missing Design resources and patch the statuses that changed (by design id).

        A status whose only change is its fitness or rank (one new result moves the rank of
        every design below it) waits for the rank refresh (:meth:`_refresh_ranks`); on the
        run's last reconcile (``final``) they are all kept in :attr:`final_ranks`, for
        :meth:`write_ranks` (which the operator runs off the reconcile, on its report thread).
        Creates beyond this reconcile's Design budget wait for the next reconcile; the last
        reconcile creates every Design still missing.
        """
        written = self.design_statuses()
        happenings: list[Happening] = []
        flow = self.handle.config.session_flow
        rank_only: dict[str, dict[str, Any]] = {}  # Design name -> wanted status
        for design_id, record in sorted(archive.designs.items()):
            name = manifests.design_name(self.name, design_id)
            if name not in written:
                if not final and not self._spend_design():
                    continue  # the run's last reconcile creates every Design left
                body = manifests.design_object(
                    self.identity, record, owner=self.body, namespace=self.namespace, flow=flow
                )
                self._create_design(body)
                message = f"{record.operator}: {record.title}"[:200]
                happenings.append(Happening("design", name, "Normal", "Created", message))
                written[name] = {}
            wanted = statuses.get(design_id)
            current = written[name]
            if wanted is None or current == wanted:
                continue
            if _without_ranking(current) == _without_ranking(wanted):
                rank_only[name] = wanted
                continue
            self.patch_status(DESIGNS, name, wanted)
            written[name] = dict(wanted)
            phase = str(wanted.get("phase"))
            if current.get("phase") != phase:
                happenings.append(Happening("design", name, "Normal", phase, f"now {phase}"))
        if final:
            self.final_ranks = rank_only
        else:
            self._refresh_ranks(rank_only, written)
        return happenings

    def write_ranks(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        """Patch these Designs' statuses (their final fitness and rank), by name."""
        written = self.design_statuses()
        for name, status in sorted(statuses.items()):
            self.patch_status(DESIGNS, name, status)
            written[name] = dict(status)

    def _refresh_ranks(
        self, rank_only: Mapping[str, dict[str, Any]], written: dict[str, dict[str, Any]]
    ) -> None:
        """Write the Designs whose only change is their fitness or rank, one sweep at a time.

        A refresh starts every :data:`RANK_REFRESH_SECONDS` with the Designs whose rank is
        stale at that moment and moved enough to be worth a write (:func:`rank_moved`), and
        writes at most :data:`RANK_PATCHES` of them per reconcile until none is left. A rank
        that changes while a sweep is under way waits for the next refresh, so a run whose
        results keep coming patches each Design at most once per refresh, not on every
        reconcile.
        """
        state, now = self.state, time.monotonic()
        if state.rank_sweep is None and now - state.ranks_written >= RANK_REFRESH_SECONDS:
            state.ranks_written = now
            state.rank_sweep = {
                name
                for name, wanted in rank_only.items()
                if rank_moved(written.get(name, {}), wanted)
            }
        if state.rank_sweep is None:
            return
        state.rank_sweep &= rank_only.keys()  # a rank back to its written value needs nothing
        for name in sorted(state.rank_sweep)[:RANK_PATCHES]:
            self.patch_status(DESIGNS, name, rank_only[name])
            written[name] = dict(rank_only[name])
            state.rank_sweep.discard(name)
        if not state.rank_sweep:
            state.rank_sweep = None

    def patch_status(self, plural: str, name: str, status: Mapping[str, Any]) -> None:
        """Replace-merge ``status`` of a custom object through its status subresource."""
        patch_custom_status(self.custom, self.namespace, plural, name, status)

    # ------------------------------------------------------------------- suspend, cleanup

    def set_suspended(self, suspended: bool) -> int:
        """Suspend this run's running Jobs, or resume the ones it suspended; how many changed."""
        changed = 0
        for job in self.jobs():
            if job.finished is not None:
                continue
            if suspended and not job.suspended:
                patch: dict[str, Any] = {
                    "metadata": {"annotations": {ANNOTATION_SUSPENDED: "true"}},
                    "spec": {"suspend": True},
                }
            elif not suspended and job.annotations.get(ANNOTATION_SUSPENDED) == "true":
                patch = {
                    "metadata": {"annotations": {ANNOTATION_SUSPENDED: None}},
                    "spec": {"suspend": False},
                }
            else:
                continue
            self.batch.patch_namespaced_job(job.name, self.namespace, patch)
            changed += 1
        if changed:
            self._jobs = None
        return changed


# ------------------------------------------------------------ children by identity alone


def _without_ranking(status: Mapping[str, Any]) -> dict[str, Any]:
    """A Design status less its fitness and rank."""
    return {key: value for key, value in status.items() if key not in RANKING_FIELDS}


def owned_by(obj: Mapping[str, Any], identity: RunIdentity) -> bool:
    """True when ``obj`` has a controller owner reference to this run (by uid)."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == identity.uid for ref in references)


def list_run_jobs(batch: Any, namespace: str, identity: RunIdentity) -> list[JobView]:
    """The Jobs of one run (by name and uid labels, checked again here)."""
    listed = batch.list_namespaced_job(namespace, label_selector=manifests.run_selector(identity))
    views = [job_view(job) for job in listed.items]
    return [view for view in views if labelled_for(view.labels, identity)]


def list_run_designs(
    custom: Any, namespace: str, identity: RunIdentity
) -> dict[str, dict[str, Any]]:
    """The Design resources of one run by name."""
    listed = custom.list_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, DESIGNS, label_selector=manifests.run_selector(identity)
    )
    return {
        item["metadata"]["name"]: item
        for item in listed.get("items", [])
        if labelled_for((item.get("metadata") or {}).get("labels") or {}, identity)
    }


def _delete_if_present(delete: Any, *args: Any, **kwargs: Any) -> None:
    """Call a client's delete; an object already gone (404) is not an error."""
    from kubernetes.client.exceptions import ApiException

    try:
        delete(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise


def delete_run_children(api_client: Any, namespace: str, identity: RunIdentity) -> tuple[int, int]:
    """Delete one run's Jobs (with their pods), Services, NetworkPolicies and Designs.

    The answer counts (jobs, designs).
    It needs only the run's identity, so a run whose spec is invalid is cleaned up too.
    """
    from kubernetes import client

    batch, custom = client.BatchV1Api(api_client), client.CustomObjectsApi(api_client)
    core, networking = client.CoreV1Api(api_client), client.NetworkingV1Api(api_client)
    jobs = list_run_jobs(batch, namespace, identity)
    for job in jobs:
        _delete_if_present(
            batch.delete_namespaced_job, job.name, namespace, propagation_policy="Background"
        )
    selector = manifests.run_selector(identity)
    kinds = (
        (core.list_namespaced_service, core.delete_namespaced_service),
        (networking.list_namespaced_network_policy, networking.delete_namespaced_network_policy),
    )
    for list_kind, delete in kinds:
        for item in list_kind(namespace, label_selector=selector).items:
            if labelled_for(item.metadata.labels or {}, identity):
                _delete_if_present(delete, item.metadata.name, namespace)
    designs = list_run_designs(custom, namespace, identity)
    for name in designs:
        _delete_if_present(
            custom.delete_namespaced_custom_object, API_GROUP, API_VERSION, namespace, DESIGNS, name
        )
    return len(jobs), len(designs)


def patch_custom_status(
    custom: Any, namespace: str, plural: str, name: str, status: Mapping[str, Any]
) -> Any:
    """Replace-merge ``status`` of a custom object through its status subresource; the object.

    The CRDs declare the subresource; the operator may patch it, not the object itself.
    """
    body = {"status": json.loads(json.dumps(status, default=str))}
    return custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, plural, name, body
    )


__all__ = [
    "ANNOTATION_INGESTED",
    "ANNOTATION_SUSPENDED",
    "Happening",
    "JobView",
    "KubernetesBackend",
    "Observation",
    "delete_run_children",
    "gpu_hours",
    "job_view",
    "lingering_checks",
    "list_run_designs",
    "list_run_jobs",
    "owned_by",
    "patch_custom_status",
]
