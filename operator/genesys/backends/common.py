"""What every backend shares: the run's place in the store, its jobs' inputs, and bookkeeping.

The local backend (processes) and the Kubernetes backend (Jobs) differ only in how they start
children and see them end. Everything else lives here:

- :func:`open_run`: bind the run to its store prefix (:func:`~genesys.store.claims.bind_run`)
  and store its resolved config, content-addressed; the :class:`RunHandle` it returns is what
  a backend works with (the run's own store, the config and its URI);
- :func:`session_arguments`: the ``genesys agent design`` command line of a session;
- :func:`agent_image`, :func:`trainer_image`: the images of a run's pods, the spec's or the
  operator's defaults (``GENESYS_AGENT_IMAGE``, ``GENESYS_TRAINER_IMAGE``, then
  ``genesys-agent`` and ``genesys-trainer`` at the operator's version);
- :func:`verification_app`: the TorchX AppDef of one verification, the only place a training
  job is described (the backends add only their scheduler's options);
- :func:`write_seeds`: the seed designs as ``seed-<name>`` (``InitSeeds``);
- :func:`record_session_end`: a session child that ended without writing ``session.json`` gets
  a failed outcome with the reason (a crash, an OOM kill, a deleted pod);
- :func:`record_verification_end`: a training job that ended without a final ``result.json``
  (or with ``status: error``) becomes an attempt record, and its result is removed so the
  planner retries it;
- :func:`failed_attempts`: attempts per (design, rung), for the planner's retry bound;
- :func:`write_failure`: the final ``error`` result of a verification given up (``RecordFailure``).

What must stay true: these functions are idempotent (applying them twice writes nothing new the
second time), every key they write is inside the run's own store, and they never import torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genesys import __version__
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.placement import rung_placement
from genesys.api.runconfig import RunConfig, RunIdentity, resolve_run_config
from genesys.api.seeds import SEED_NAMES
from genesys.backends.observability import design_traces, trace_url
from genesys.engine.actions import (
    CancelVerification,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.store.archive import (
    Archive,
    design_key,
    load_archive,
    session_key,
    verification_prefix,
)
from genesys.store.base import Store
from genesys.store.claims import Binding, bind_run, claim_hash
from genesys.store.configs import write_run_config
from genesys.store.documents import (
    AttemptRecord,
    DesignDocument,
    DocumentError,
    SessionOutcome,
    VerificationResult,
    create_document,
    read_document,
    write_document,
)


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A run bound to its store: what a backend works with."""

    run: DiscoveryRun
    identity: RunIdentity
    store: Store  # the run's own store (its prefix); keys are relative to it
    config: RunConfig
    config_uri: str

    @property
    def store_uri(self) -> str:
        """The URI of the run's own store."""
        return self.store.uri.rstrip("/")

    def uri(self, key: str) -> str:
        """The URI of a key of the run's store."""
        return f"{self.store_uri}/{key}"


class BindError(RuntimeError):
    """The run's store prefix belongs to another run (the message says how to go on)."""


def open_run(
    run: DiscoveryRun, identity: RunIdentity, root: Store, *, data_uri: str
) -> tuple[RunHandle, Binding]:
    """Bind the run to ``root``'s prefix for it and store its config; BindError on a conflict."""
    store = root.child(identity.store_prefix)
    binding = bind_run(store, identity, run)
    if not binding.bound:
        raise BindError(binding.message)
    config = resolve_run_config(run, identity=identity, data_uri=data_uri)
    return RunHandle(run, identity, store, config, write_run_config(store, config)), binding


def session_arguments(handle: RunHandle, action: StartSession) -> list[str]:
    """``genesys`` arguments of one design session (its flow comes from the run config)."""
    return [
        "agent",
        "design",
        "--store",
        handle.store_uri,
        "--config",
        handle.config_uri,
        "--session",
        action.session,
        "--design-id",
        action.design_id,
        "--seq",
        str(action.seq),
        "--operator",
        action.operator,
        "--parents",
        ",".join(action.parents),
        "--seed",
        str(action.seed),
    ]


def job_stem(identity: RunIdentity, design_id: str) -> str:
    """What a training Job's name is made of: run, uid (on a cluster) and design."""
    parts = [identity.name, identity.short_uid, design_id]
    return "-".join(part for part in parts if part)


AGENT_IMAGE_VAR = "GENESYS_AGENT_IMAGE"
TRAINER_IMAGE_VAR = "GENESYS_TRAINER_IMAGE"


def agent_image(run: DiscoveryRun, environ: Mapping[str, str] | None = None) -> str:
    """The image of a run's agent and check pods: the spec's, else the operator's default."""
    variables = os.environ if environ is None else environ
    return (
        run.spec.agents.pod.image
        or variables.get(AGENT_IMAGE_VAR)
        or f"genesys-agent:{__version__}"
    )


def trainer_image(run: DiscoveryRun, environ: Mapping[str, str] | None = None) -> str:
    """The image of a run's training pods: the spec's, else the operator's default."""
    variables = os.environ if environ is None else environ
    return (
        run.spec.verification.image
        or variables.get(TRAINER_IMAGE_VAR)
        or f"genesys-trainer:{__version__}"
    )


def verification_app(
    handle: RunHandle,
    action: StartVerification,
    *,
    python: str = "python",
    env: dict[str, str] | None = None,
) -> Any:
    """The TorchX AppDef of one verification; both backends run exactly this."""
    from genesys.quantities import cpus, memory_mib
    from genesys_trainer.component import verify

    resources = rung_placement(handle.run.spec, action.rung).resources
    return verify(
        design=handle.uri(design_key(action.design_id, "design.json")),
        rung=action.rung,
        out=handle.uri(verification_prefix(action.design_id, action.rung)),
        config=handle.config_uri,
        image=trainer_image(handle.run),
        nproc_per_node=max(1, resources.gpus),
        gpus=resources.gpus,
        cpu=cpus(resources.cpu),
        memMB=memory_mib(resources.memory),
        python=python,
        attempt=action.attempt,
        env=dict(env or {}),
        name=job_stem(handle.identity, action.design_id),
    )


def write_seeds(store: Store) -> list[str]:
    """Write the seed designs into the archive as ``seed-<name>`` (once), claiming their hashes.

    Returns the ids written now (none when they were all there).
    """
    from genesys.agents.library import structural_hash
    from genesys_trainer.seeds import load_seed  # torch-free: reads JSON

    written = []
    for seq, name in enumerate(SEED_NAMES):
        design_id = f"seed-{name}"
        key = design_key(design_id, "design.json")
        if store.exists(key):
            continue
        document = DesignDocument.model_validate(load_seed(name).to_json())
        digest = structural_hash(document.model_dump(mode="json"))
        document.metadata = document.metadata.model_copy(
            update={"seq": seq, "operator": "seed", "parents": [], "hash": digest}
        )
        claim_hash(store, digest, design=design_id, session="seeds")
        if create_document(store, key, document):
            written.append(design_id)
    return written


def record_session_end(store: Store, session: str, reason: str) -> bool:
    """Record a failed outcome for a session that ended without one; True when written."""
    outcome = SessionOutcome(status="failed", design=None, reason=reason)
    return create_document(store, session_key(session), outcome)


def record_verification_end(
    store: Store, design: str, rung: str, state: str, *, job: str | None = None
) -> bool:
    """Turn a job that ended without a final result into an attempt record; True if it did."""
    prefix = verification_prefix(design, rung)
    result_key = f"{prefix}/result.json"
    try:
        result = read_document(store, result_key, VerificationResult)
        reason = result.reason if result is not None else ""
    except DocumentError as exc:
        result, reason = None, f"unreadable result.json ({exc})"
    if result is not None and result.status != "error":
        return False  # a finished verification (a guard stop is a result too)
    attempts = len(list(store.list(f"{prefix}/attempts")))
    record = AttemptRecord(
        state=state, reason=reason or f"job ended {state} without a result", job=job
    )
    write_document(store, f"{prefix}/attempts/{attempts}.json", record)
    store.delete(result_key)  # so the planner retries
    return True


def failed_attempts(store: Store) -> dict[tuple[str, str], int]:
    """Failed training attempts per (design, rung)."""
    counts: dict[tuple[str, str], int] = {}
    for key in store.list("designs"):
        parts = key.split("/")
        if len(parts) == 6 and parts[2] == "verifications" and parts[4] == "attempts":
            counts[(parts[1], parts[3])] = counts.get((parts[1], parts[3]), 0) + 1
    return counts


def write_failure(store: Store, action: RecordFailure | CancelVerification) -> None:
    """The final ``error`` result of a verification given up (retries spent, or no capacity)."""
    key = f"{verification_prefix(action.design_id, action.rung)}/result.json"
    result = VerificationResult(
        design=action.design_id, rung=action.rung, status="error", reason=action.reason
    )
    write_document(store, key, result)


def publish_report(handle: RunHandle, archive: Archive | None = None) -> tuple[str, list[Any], Any]:
    """Render the run's HTML report into its store; (html, leaderboard rows, headline).

    ``archive`` is the run's archive when the caller has it up to date (else it is loaded).
    """
    from genesys.evolution.ranking import fitness as compute_fitness
    from genesys.report import headline, leaderboard, render_html

    run, config = handle.run, handle.config
    archive = archive if archive is not None else load_archive(handle.store, run.metadata.name)
    fitness = compute_fitness(archive, run.spec.selection)
    order = config.rung_names()
    rows = leaderboard(archive, fitness, order)
    html = render_html(
        archive,
        fitness,
        order,
        {r.name: r.budget for r in config.rungs},
        title=f"genesys run {run.metadata.name}",
        summary={
            "designs": str(len(archive.designs)),
            "rejected candidates": str(len(archive.rejections)),
        },
        traces=design_traces(handle.identity, archive.designs),
        trace_url=trace_url(),
    )
    handle.store.put_text("report.html", html)
    return html, rows, headline(archive, fitness, order)


__all__ = [
    "AGENT_IMAGE_VAR",
    "TRAINER_IMAGE_VAR",
    "BindError",
    "RunHandle",
    "agent_image",
    "failed_attempts",
    "job_stem",
    "open_run",
    "publish_report",
    "record_session_end",
    "record_verification_end",
    "session_arguments",
    "trainer_image",
    "verification_app",
    "write_failure",
    "write_seeds",
]
