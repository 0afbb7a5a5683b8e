"""One reconcile of a DiscoveryRun: validate, bind, observe, plan, apply, compute the status.

The kopf handlers (:mod:`genesys.controller.handlers`) call :func:`reconcile` and write what it
returns: one status patch and the Kubernetes Events of what happened. The discovery logic is
the engine's :func:`~genesys.engine.plan.plan`, the same pure function ``genesys run`` uses;
only the backend differs (:class:`~genesys.backends.kubernetes.KubernetesBackend`).

- A run is ``(namespace, name, uid)``. Its artifacts live under ``runs/<namespace>/<name>`` in
  the store, bound to its uid by ``spec.json`` (:func:`~genesys.store.claims.bind_run`). A
  prefix that holds another run's archive is refused (phase ``Pending``, ``Progressing=False``,
  reason ``ArchiveConflict``, with how to resume on purpose); the check is repeated every tick,
  so deleting the old archive lets the run start.
- An invalid spec (by the pydantic models, or by what a cluster run needs: an S3 store that the
  pods share, prepared data shards, the kubernetes scheduler) becomes phase ``SpecInvalid`` with
  a ``SpecValid=False`` condition naming the fields. It is not retried: the next spec change is.
- A finished run (``Succeeded`` or ``Failed``) keeps its result: a later spec edit is reported
  (an Event and the ``SpecValid`` condition of the edited spec), never applied.

What must stay true: every side effect goes through the backend, whose creates are idempotent;
nothing here reads or writes outside the run's own store prefix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genesys.api.discoveryrun import TERMINAL_PHASES, DiscoveryRun, FinishReason, Phase
from genesys.api.runconfig import RunIdentity
from genesys.api.validation import SpecError, SpecValidationError, parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import BindError, RunHandle, open_run, publish_report
from genesys.backends.jobcache import JobCache
from genesys.backends.kubernetes import Happening, KubernetesBackend, Observation, RunState
from genesys.controller.status import (
    conflict_status,
    design_status,
    finished_edit_status,
    invalid_status,
    ranks,
    run_status,
)
from genesys.engine.actions import count_actions
from genesys.engine.plan import plan
from genesys.store.archive import Archive, design_key
from genesys.store.base import Store, open_store


@dataclass
class Outcome:
    """What one reconcile wants written: the status and the events."""

    status: dict[str, Any]
    happenings: list[Happening] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)  # planned, by kind
    deferred: int = 0  # starts and Designs left for the next reconcile (its create budget)

    @property
    def phase(self) -> str:
        """The run's phase after this reconcile."""
        return str(self.status.get("phase", ""))


def identity_of(body: Mapping[str, Any]) -> RunIdentity:
    """The identity of a DiscoveryRun object: namespace, name, uid."""
    metadata = body.get("metadata") or {}
    return RunIdentity(
        namespace=str(metadata.get("namespace") or "default"),
        name=str(metadata.get("name")),
        uid=str(metadata.get("uid") or "") or None,
    )


def cluster_spec_errors(run: DiscoveryRun) -> list[SpecError]:
    """What a valid spec still lacks to run on a cluster."""
    spec = run.spec
    errors = []
    if spec.verification.scheduler == "local":
        message = "expected kubernetes on a cluster ('local' is for genesys run)"
        errors.append(SpecError("spec.verification.scheduler", message, "local"))
    if spec.storage.s3 is None:
        message = "expected an S3 store: the operator and its pods share artifacts through it"
        errors.append(SpecError("spec.storage.s3", message))
    if not spec.verification.data.shards:
        message = "expected prepared shards (genesys data prepare --out s3://...) on a cluster"
        errors.append(SpecError("spec.verification.data.shards", message))
    return errors


def _document(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = dict(body.get("metadata") or {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: metadata[k] for k in ("name", "namespace", "labels") if k in metadata},
        "spec": body.get("spec"),
    }


def validate(body: Mapping[str, Any]) -> tuple[DiscoveryRun | None, list[str]]:
    """The parsed run, or None and one message per problem (each naming its field)."""
    try:
        run = parse_discovery_run(_document(body))
    except SpecValidationError as exc:
        return None, [error.render() for error in exc.errors]
    errors = cluster_spec_errors(run)
    return (None, [e.render() for e in errors]) if errors else (run, [])


def open_root_store(run: DiscoveryRun) -> Store:
    """The S3 store a cluster run names (its root; the run's own prefix is below it)."""
    s3 = run.spec.storage.s3
    assert s3 is not None
    return open_store(manifests.store_uri(run), endpoint_url=s3.endpoint_url)


def reconcile(
    body: Mapping[str, Any],
    *,
    api_client: Any,
    store: Store | None = None,
    state: RunState | None = None,
    job_cache: JobCache | None = None,
    max_creates: int | None = None,
    publish: Callable[[RunHandle, Archive], object] | None = None,
    later: Callable[[Callable[[], object]], object] | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Reconcile one DiscoveryRun object (its body as a dict).

    ``store`` is the store root (default: the one the spec names). ``state`` is what this
    process keeps of the run between reconciles (its archive index, the Designs as written),
    ``job_cache`` the Jobs seen on the watch stream, and ``max_creates`` the objects one
    reconcile may create (default ``GENESYS_MAX_CREATES_PER_RECONCILE``). Without them every
    reconcile starts from the store and lists the run's Jobs and Designs. ``publish`` renders
    a finished run's report (default: :func:`publish_report`, here and now; the operator hands
    it to a background thread, so a slow report holds up no reconcile). ``later`` runs the
    finished run's last Design writes, their final fitness and rank (default: here and now;
    the operator runs them on the same thread, before the report).
    """
    now = now or datetime.now(UTC)
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    old = dict(body.get("status") or {})
    name = str(metadata.get("name"))
    run, problems = validate(body)
    if holds_result(old.get("phase")):
        if old.get("observedGeneration") == generation:
            return Outcome(old)
        message = (
            f"the run has finished ({old.get('phase')}); the edit of generation {generation} is "
            "not applied and its result is kept: create a new DiscoveryRun to run again"
        )
        status = finished_edit_status(old, problems, now, generation)
        return Outcome(status, [Happening("run", name, "Warning", "SpecChangeIgnored", message)])
    if run is None:
        happening = Happening("run", name, "Warning", "SpecInvalid", "; ".join(problems)[:1000])
        changed = old.get("phase") != Phase.SPEC_INVALID.value
        return Outcome(
            invalid_status(old, problems, now, generation), [happening] if changed else []
        )
    happenings: list[Happening] = []
    if state is not None and state.opened is not None and state.opened[0] == generation:
        handle = state.opened[1]  # bound and its config stored at this generation already
    else:
        root = store or open_root_store(run)
        shards = run.spec.verification.data.shards or ""
        try:
            handle, binding = open_run(run, identity_of(body), root, data_uri=shards)
        except BindError as exc:
            status = conflict_status(old, str(exc), now, generation)
            changed = status["conditions"] != old.get("conditions")
            happening = Happening("run", name, "Warning", "ArchiveConflict", str(exc))
            return Outcome(status, [happening] if changed else [])
        if binding.adopted:
            message = binding.message
            happenings.append(Happening("run", name, "Normal", "ArchiveAdopted", message))
        if state is not None:
            state.opened = (generation, handle)
    namespace = str(metadata.get("namespace") or "default")
    backend = KubernetesBackend(
        handle,
        body,
        namespace=namespace,
        api_client=api_client,
        state=state,
        job_cache=job_cache,
        max_creates=max_creates,
    )
    backend.set_suspended(run.spec.suspend)
    observation = backend.observe(now)
    result = plan(run.spec, observation.observed, now)
    happenings += observation.happenings + backend.apply(result.actions)
    finish = result.finish
    archive = observation.observed.archive
    statuses = design_statuses(handle, observation, result.fitness, started=backend.started)
    happenings += backend.sync_designs(archive, statuses, final=finish is not None)
    if finish is not None:
        # the Designs' final ranks (a write per Design) before the report, off this reconcile
        (later or _at_once)(functools.partial(backend.write_ranks, backend.final_ranks))
        (publish or publish_report)(handle, backend.archive())  # with what it just wrote
    status = run_status(
        old,
        result,
        archive,
        now=now,
        generation=generation,
        finish=finish,
        llm_usd=observation.observed.spend_usd,
        gpu_hours=observation.gpu_hours,
        waiting=observation.observed.waiting_jobs,
    )
    if status["phase"] != old.get("phase"):
        happenings.append(_phase_event(name, status["phase"], finish))
    return Outcome(status, happenings, count_actions(result.actions), backend.deferred)


def _at_once(work: Callable[[], object]) -> object:
    return work()


def holds_result(phase: object) -> bool:
    """True for a terminal phase with a result (``SpecInvalid`` has none: it is validated again)."""
    return phase in TERMINAL_PHASES and phase != Phase.SPEC_INVALID


def _phase_event(name: str, phase: str, finish: FinishReason | None) -> Happening:
    message = f"phase {phase}" + (f" ({finish.value})" if finish else "")
    kind = "Warning" if phase == Phase.FAILED.value else "Normal"
    return Happening("run", name, kind, phase, message)


def design_statuses(
    handle: RunHandle,
    observation: Observation,
    fitness: Mapping[str, float],
    *,
    started: Collection[tuple[str, str]] = (),
) -> dict[str, dict[str, Any]]:
    """The wanted status of every design of the archive, by design id.

    ``started`` are the (design, rung) trainings this reconcile just started: they count as
    running, so a Design created with its training shows it at once (one status write less).
    """
    observed = observation.observed
    rungs = handle.config.rungs
    order = [r.name for r in rungs]
    points = {r.name: r.confidence_points for r in rungs}
    rank = ranks(fitness)
    waiting = {job for job, state in observed.waiting_jobs.items() if state.for_capacity}
    statuses = {}
    for design_id, record in observed.archive.designs.items():
        statuses[design_id] = design_status(
            record,
            rung_order=order,
            fitness=fitness,
            rank=rank,
            running=set(observed.running_jobs) | set(started),
            attempts=observed.failed_attempts,
            rung_points=points,
            artifact_uri=handle.uri(design_key(design_id)).rstrip("/"),
            waiting=waiting,
        )
    return statuses


__all__ = [
    "Outcome",
    "cluster_spec_errors",
    "design_statuses",
    "holds_result",
    "identity_of",
    "open_root_store",
    "reconcile",
    "validate",
]
