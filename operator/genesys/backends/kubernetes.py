"""The Kubernetes backend: design sessions as agent Jobs, verifications as TorchX Jobs.

It executes the engine's actions in one namespace and observes their results, like the local
backend does with processes:

- ``StartSession`` creates the session's agent Job (:func:`~genesys.controller.builders.
  agent_job`); its outcome is the store's ``session.json``. A Job that ends without one gets a
  failed outcome with the Job's reason.
- ``StartVerification`` submits the trainer component (:func:`genesys_trainer.component.verify`)
  through TorchX: our ``kubernetes_job`` scheduler (plain ``batch/v1`` Jobs, Kueue-ready) or
  upstream's Volcano ``kubernetes`` scheduler. A Job that ends without a final ``result.json``
  is a failed attempt (:func:`~genesys.backends.common.record_verification_end`), retried by
  the planner up to ``verification.maxRetries``.
- An ended Job is checked against the store once per operator process (``ingested``); one whose
  end had to be recorded (a failure) is also annotated ``genesys.dev/ingested``, so a restarted
  operator records nothing twice.
- Design resources mirror the archive: one per design, created once, status patched when it
  changes (:meth:`KubernetesBackend.sync_designs`).

What must stay true: the backend decides nothing (all choices come from ``plan()``); every
object has a deterministic name, so applying a plan twice creates nothing twice (409 is
success); children are found by the ``genesys.dev/run`` label, checked again client-side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genesys.api.base import API_GROUP, API_VERSION, parse_quantity_bytes
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.labels import LABEL_DESIGN, LABEL_ROLE, LABEL_RUN, LABEL_RUNG
from genesys.backends.common import (
    failed_attempts,
    record_session_end,
    record_verification_end,
    write_failure,
    write_seeds,
)
from genesys.controller import builders
from genesys.engine.actions import (
    Action,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import Observed
from genesys.store.archive import (
    Archive,
    JsonCache,
    design_key,
    load_archive,
    run_spent_usd,
)
from genesys.store.archive import verification_prefix as verification_key_prefix
from genesys.store.base import Store

ANNOTATION_INGESTED = f"{API_GROUP}/ingested"
ANNOTATION_SUSPENDED = f"{API_GROUP}/suspended-by-run"
LABEL_ATTEMPT = f"{API_GROUP}/attempt"
DESIGNS = "designs"


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


def _finished(job: Any) -> tuple[str | None, str]:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type, str(condition.reason or condition.message or condition.type)
    return None, ""


def _gpus(job: Any) -> int:
    try:
        containers = job.spec.template.spec.containers
        limits = containers[0].resources.limits or {}
    except (AttributeError, IndexError, TypeError):
        return 0
    return int(limits.get("nvidia.com/gpu", 0) or 0)


def job_view(job: Any) -> JobView:
    """A JobView of a ``V1Job``."""
    finished, reason = _finished(job)
    status = job.status
    return JobView(
        name=job.metadata.name,
        labels=dict(job.metadata.labels or {}),
        annotations=dict(job.metadata.annotations or {}),
        finished=finished,
        reason=reason,
        suspended=bool(job.spec and job.spec.suspend),
        gpus=_gpus(job),
        started=status.start_time if status else None,
        completed=status.completion_time if status else None,
    )


def gpu_hours(jobs: Sequence[JobView], now: datetime) -> float:
    """GPU-hours of the training Jobs: GPUs x (end or now - start)."""
    total = 0.0
    for job in jobs:
        if job.gpus and job.started is not None:
            end = job.completed or now
            total += job.gpus * max(0.0, (end - job.started).total_seconds()) / 3600
    return total


def _memory_mib(quantity: str) -> int:
    return max(1, parse_quantity_bytes(quantity) // 2**20)


def _cpu(quantity: str) -> int:
    text = quantity[:-1] if quantity.endswith("m") else quantity
    value = float(text) / (1000 if quantity.endswith("m") else 1)
    return max(1, int(value))


class KubernetesBackend:
    """Runs a DiscoveryRun's children as Jobs in one namespace."""

    def __init__(
        self,
        run: DiscoveryRun,
        body: Mapping[str, Any],
        *,
        namespace: str,
        store: Store,
        api_client: Any,
        cache: JsonCache | None = None,
        ingested: set[str] | None = None,
    ) -> None:
        from kubernetes import client

        self.run, self.body, self.namespace, self.store = run, body, namespace, store
        self.cache = cache
        self.ingested = ingested if ingested is not None else set()
        self.name = run.metadata.name
        self.api_client = api_client
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.store_uri = builders.store_uri(run)
        self._jobs: list[JobView] | None = None

    # ------------------------------------------------------------------------------- jobs

    def jobs(self, *, fresh: bool = False) -> list[JobView]:
        """The run's Jobs (label-selected, checked again here); listed once unless ``fresh``."""
        if self._jobs is None or fresh:
            listed = self.batch.list_namespaced_job(
                self.namespace, label_selector=f"{LABEL_RUN}={self.name}"
            )
            views = [job_view(job) for job in listed.items]
            self._jobs = [view for view in views if view.labels.get(LABEL_RUN) == self.name]
        return self._jobs

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
        """Record ended Jobs, then rebuild the archive from the store."""
        now = now or datetime.now(UTC)
        jobs = self.jobs()
        happenings: list[Happening] = []
        running_sessions: set[str] = set()
        running_jobs: set[tuple[str, str]] = set()
        for job in jobs:
            role = job.labels.get(LABEL_ROLE)
            done = job.name in self.ingested or ANNOTATION_INGESTED in job.annotations
            if role == builders.ROLE_SESSION:
                session = job.labels.get(builders.LABEL_SESSION, "")
                if job.finished is None:
                    running_sessions.add(session)
                elif not done:
                    reason = f"agent Job {job.name} ended {job.finished}: {job.reason}"
                    if record_session_end(self.store, self.name, session, reason):
                        happenings.append(
                            Happening("run", self.name, "Warning", "SessionFailed", reason)
                        )
                        self._mark_ingested(job)
                    self.ingested.add(job.name)
            elif role == builders.ROLE_VERIFICATION:
                key = (job.labels.get(LABEL_DESIGN, ""), job.labels.get(LABEL_RUNG, ""))
                if job.finished is None:
                    running_jobs.add(key)
                elif not done:
                    design, rung = key
                    if record_verification_end(self.store, self.name, design, rung, job.finished):
                        happenings.append(Happening(
                            "design", builders.design_name(self.name, design), "Warning",
                            "TrainingAttemptFailed",
                            f"training Job {job.name} ended {job.finished} ({job.reason}) "
                            "without a result",
                        ))  # fmt: skip
                        self._mark_ingested(job)  # a restarted operator must not count it again
                    self.ingested.add(job.name)
        observed = Observed(
            archive=load_archive(self.store, self.name, cache=self.cache),
            running_sessions=frozenset(running_sessions),
            running_jobs=frozenset(running_jobs),
            failed_attempts=failed_attempts(self.store, self.name),
            spend_usd=run_spent_usd(self.store, self.name, cache=self.cache),
        )
        trainings = [j for j in jobs if j.labels.get(LABEL_ROLE) == builders.ROLE_VERIFICATION]
        return Observation(observed, gpu_hours(trainings, now), happenings)

    # ------------------------------------------------------------------------------ apply

    def apply(self, actions: Sequence[Action]) -> list[Happening]:
        """Execute the actions (Finish is the controller's business)."""
        happenings: list[Happening] = []
        for action in actions:
            if isinstance(action, InitSeeds):
                write_seeds(self.store, self.name)
            elif isinstance(action, StartSession):
                if self.start_session(action):
                    happenings.append(Happening(
                        "run", self.name, "Normal", "SessionStarted",
                        f"{action.session}: {action.operator} of {list(action.parents)}",
                    ))  # fmt: skip
            elif isinstance(action, StartVerification):
                if self.start_verification(action):
                    happenings.append(Happening(
                        "design", builders.design_name(self.name, action.design_id), "Normal",
                        "TrainingStarted", f"rung {action.rung}, attempt {action.attempt}",
                    ))  # fmt: skip
            elif isinstance(action, RecordFailure):
                write_failure(self.store, self.name, action)
                happenings.append(Happening(
                    "design", builders.design_name(self.name, action.design_id), "Warning",
                    "VerificationFailed", f"rung {action.rung}: {action.reason}",
                ))  # fmt: skip
        return happenings

    def start_session(self, action: StartSession) -> bool:
        """Create the session's agent Job; False when it exists already."""
        job = builders.agent_job(self.run, action, owner=self.body, namespace=self.namespace)
        return self._create(self.batch.create_namespaced_job, self.namespace, job)

    def training_app(self, action: StartVerification) -> Any:
        """The TorchX AppDef of one verification."""
        from genesys.api.ladder import resolve_ladder
        from genesys_trainer.component import verify

        spec = self.run.spec
        ladder = resolve_ladder(spec.ladder, vocab_size=spec.verification.data.vocab_size)
        rungs = {r.name: r for r in ladder}
        resources = spec.verification.resources
        design_uri = f"{self.store_uri}/{design_key(self.name, action.design_id, 'design.json')}"
        out = (
            f"{self.store_uri}/{verification_key_prefix(self.name, action.design_id, action.rung)}"
        )
        env = {item["name"]: item["value"] for item in builders.store_env(self.run)
               if "value" in item}  # fmt: skip
        return verify(
            design=design_uri, rung=action.rung, data=spec.verification.data.shards or "",
            out=out, image=spec.verification.image, tokens=rungs[action.rung].tokens or 0,
            nproc_per_node=max(1, resources.gpus), gpus=resources.gpus,
            cpu=_cpu(resources.cpu), memMB=_memory_mib(resources.memory), attempt=action.attempt,
            env=env, name=f"{self.name}-{action.design_id}",
            extra_args=["--seed", str(spec.seed), "--checkpoint-every-minutes",
                        str(spec.verification.training.checkpoint_every_minutes),
                        "--eval-tasks", ",".join(spec.verification.eval_tasks)],
        )  # fmt: skip

    def scheduler_config(self, action: StartVerification) -> dict[str, Any]:
        """The TorchX run options of one verification."""
        verification = self.run.spec.verification
        labels = {
            LABEL_RUN: self.name,
            LABEL_ROLE: builders.ROLE_VERIFICATION,
            LABEL_DESIGN: builders.label_value(action.design_id),
            LABEL_RUNG: builders.label_value(action.rung),
            LABEL_ATTEMPT: str(action.attempt),
        }
        cfg: dict[str, Any] = {"namespace": self.namespace}
        if verification.queue_name:
            cfg["queue"] = verification.queue_name
        if verification.scheduler == "volcano":
            return cfg
        secrets = {item["name"]: "{name}:{key}".format(**item["valueFrom"]["secretKeyRef"])
                   for item in builders.store_env(self.run) if "valueFrom" in item}  # fmt: skip
        cfg.update({
            "labels": labels,
            "node_selector": dict(verification.node_selector),
            "tolerations": [t.model_dump(by_alias=True, exclude_none=True)
                            for t in verification.tolerations],
            "shm_size": verification.resources.shm_size,
            "env_from_secrets": secrets,
            "backoff_limit": 0,
        })  # fmt: skip
        if verification.priority_class_name:
            cfg["priority_class_name"] = verification.priority_class_name
        return cfg

    def scheduler(self) -> Any:
        """The TorchX scheduler the spec names, bound to this backend's API client."""
        if self.run.spec.verification.scheduler == "volcano":
            from torchx.schedulers.kubernetes_scheduler import create_scheduler as volcano

            return volcano("genesys", client=self.api_client)
        from genesys.backends.torchx_job import create_scheduler

        return create_scheduler("genesys", client=self.api_client)

    def start_verification(self, action: StartVerification) -> bool:
        """Submit the training Job through TorchX; False when it exists already."""
        from kubernetes.client.exceptions import ApiException

        scheduler = self.scheduler()
        dryrun = scheduler.submit_dryrun(self.training_app(action), self.scheduler_config(action))
        try:
            scheduler.schedule(dryrun)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # --------------------------------------------------------------------------- designs

    def designs(self) -> dict[str, dict[str, Any]]:
        """The run's Design resources by name."""
        listed = self.custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, DESIGNS,
            label_selector=f"{LABEL_RUN}={self.name}",
        )  # fmt: skip
        return {
            item["metadata"]["name"]: item
            for item in listed.get("items", [])
            if (item.get("metadata", {}).get("labels") or {}).get(LABEL_RUN) == self.name
        }

    def sync_designs(
        self, archive: Archive, statuses: Mapping[str, dict[str, Any]]
    ) -> list[Happening]:
        """Create missing Design resources and patch changed statuses (by design id)."""
        existing = self.designs()
        happenings: list[Happening] = []
        flow = "offline" if self.run.spec.agents.offline else self.run.spec.sessions.flow
        for design_id, record in sorted(archive.designs.items()):
            name = builders.design_name(self.name, design_id)
            current = existing.get(name)
            if current is None:
                body = builders.design_object(self.name, record, owner=self.body,
                                              namespace=self.namespace, flow=flow)  # fmt: skip
                self._create(self.custom.create_namespaced_custom_object, API_GROUP, API_VERSION,
                             self.namespace, DESIGNS, body)  # fmt: skip
                message = f"{record.operator}: {record.title}"[:200]
                happenings.append(Happening("design", name, "Normal", "Created", message))
                current = body
            wanted = statuses.get(design_id)
            if wanted is not None and (current.get("status") or {}) != wanted:
                before = (current.get("status") or {}).get("phase")
                self.patch_status(DESIGNS, name, wanted)
                phase = str(wanted.get("phase"))
                if before != phase:
                    happenings.append(Happening("design", name, "Normal", phase, f"now {phase}"))
        return happenings

    def patch_status(self, plural: str, name: str, status: Mapping[str, Any]) -> None:
        """Replace-merge ``status`` of a custom object through its status subresource."""
        from kubernetes.client.exceptions import ApiException

        body = {"status": json.loads(json.dumps(status, default=str))}
        try:
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, self.namespace, plural, name, body
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            # an API server without the status subresource (an emulator): the main resource
            self.custom.patch_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, plural, name, body
            )

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

    def delete_children(self) -> tuple[int, int]:
        """Delete this run's Jobs (with their pods) and Design resources; (jobs, designs)."""
        from kubernetes.client.exceptions import ApiException

        jobs = self.jobs(fresh=True)
        for job in jobs:
            try:
                self.batch.delete_namespaced_job(
                    job.name, self.namespace, propagation_policy="Background"
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        designs = self.designs()
        for name in designs:
            try:
                self.custom.delete_namespaced_custom_object(
                    API_GROUP, API_VERSION, self.namespace, DESIGNS, name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return len(jobs), len(designs)


__all__ = [
    "ANNOTATION_INGESTED",
    "ANNOTATION_SUSPENDED",
    "Happening",
    "JobView",
    "KubernetesBackend",
    "Observation",
    "gpu_hours",
    "job_view",
]
