"""What the backends trace and measure: design traces, job spans, and metrics from the store.

Both backends (processes and Kubernetes Jobs) call these, so a run's telemetry is the same on a
laptop and on a cluster:

- :func:`design_root`: the root span of a design's trace (``genesys.design``), with the ids
  derived from the run and the design (:mod:`genesys.telemetry.ids`); a session's design gets
  it when its session starts, a seed when it is written;
- :func:`job_span`: a ``genesys.job.create`` span, child of the design's root and linked to the
  reconcile that planned it, around starting a session or training job; it yields the
  ``TRACEPARENT`` variables the job's process continues the trace from;
- :func:`ingest_session` and :func:`ingest_verification`: when a job has ended, its metrics are
  read from what it wrote to the store (LLM calls, check records, ``result.json``), and the
  training's spans (``<verification>/spans.json``, the pod has no collector access) are
  relayed to this process's exporters, then deleted;
- :func:`set_gauges`: jobs by kind and state, designs by phase, for the gauges.

What must stay true: nothing here decides anything or fails a reconcile: telemetry errors are
logged and dropped; metrics come from the store, so the operator's ``/metrics`` counts what
agent and training pods did without them pushing anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import trace

from genesys import telemetry
from genesys.api.runconfig import RunIdentity
from genesys.engine.actions import StartSession, StartVerification
from genesys.engine.plan import Observed
from genesys.store.archive import Archive, session_key, verification_prefix
from genesys.store.base import Store
from genesys.store.documents import DocumentError, VerificationResult, read_document
from genesys.telemetry import genai
from genesys.telemetry.relay import relay_spans

log = logging.getLogger(__name__)

SPANS_KEY = "spans.json"  # what the trainer writes under its output prefix


def trace_key(identity: RunIdentity) -> str:
    """The run part of its designs' trace ids."""
    return telemetry.run_key(identity.namespace, identity.name, identity.uid)


def run_attributes(identity: RunIdentity) -> dict[str, str]:
    """Attributes that name a run on spans."""
    attributes = {"genesys.run": identity.describe()}
    if identity.namespace:
        attributes["k8s.namespace.name"] = identity.namespace
    if identity.uid:
        attributes["genesys.run.uid"] = identity.uid
    return attributes


def plan_attributes(phase: str, actions: Mapping[str, int]) -> dict[str, str | int]:
    """What a ``genesys.reconcile`` span says of its plan: the phase and the actions by kind."""
    return {
        "genesys.run.phase": phase,
        "genesys.actions.planned": sum(actions.values()),
        **{f"genesys.actions.{kind}": count for kind, count in actions.items()},
    }


def design_trace(identity: RunIdentity, design_id: str) -> str:
    """A design's trace id, as trace viewers show it."""
    return telemetry.trace_id_hex(telemetry.design_trace_id(trace_key(identity), design_id))


TRACE_URL_VAR = "GENESYS_TRACE_URL"
"""A trace viewer's URL with ``{trace_id}`` in it; the report links each design's trace there."""


def design_traces(identity: RunIdentity, design_ids: Iterable[str]) -> dict[str, str]:
    """Each design's trace id (hex), for the report."""
    return {design_id: design_trace(identity, design_id) for design_id in design_ids}


def trace_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The trace viewer URL template of ``GENESYS_TRACE_URL``, if set."""
    variables = os.environ if environ is None else environ
    return variables.get(TRACE_URL_VAR) or None


def _planner_link() -> list[trace.Link]:
    """A link to the span under way (the reconcile that planned the action), if any."""
    context = trace.get_current_span().get_span_context()
    return [trace.Link(context)] if context.is_valid else []


def design_root(
    identity: RunIdentity,
    design_id: str,
    attributes: Mapping[str, Any],
) -> None:
    """Record the root span of a design's trace (a moment: the design's start)."""
    tracer = telemetry.current().tracer
    if not telemetry.current().tracing:
        return
    span = telemetry.start_root_span(
        tracer,
        "genesys.design",
        trace_key(identity),
        design_id,
        attributes={**run_attributes(identity), "genesys.design.id": design_id, **attributes},
        links=_planner_link(),
    )
    span.end()


def seeds_written(identity: RunIdentity, seeds: list[str]) -> None:
    """The root spans of seed designs just written."""
    for seed in seeds:
        design_root(identity, seed, {"genesys.design.operator": "seed"})


def session_started(identity: RunIdentity, action: StartSession) -> None:
    """The root span of the design a session may add."""
    design_root(
        identity,
        action.design_id,
        {
            "genesys.design.operator": action.operator,
            "genesys.design.parents": list(action.parents),
            "genesys.session.id": action.session,
        },
    )


def session_job_span(
    identity: RunIdentity, action: StartSession
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """The span of starting a session's job (see :func:`job_span`)."""
    return job_span(identity, action.design_id, "session", {"genesys.session.id": action.session})


def training_job_span(
    identity: RunIdentity, action: StartVerification
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """The span of starting a verification's job (see :func:`job_span`)."""
    attributes = {"genesys.rung": action.rung, "genesys.attempt": action.attempt}
    return job_span(identity, action.design_id, "training", attributes)


@contextlib.contextmanager
def job_span(
    identity: RunIdentity, design_id: str, kind: str, attributes: Mapping[str, Any]
) -> Iterator[dict[str, str]]:
    """A ``genesys.job.create`` span in the design's trace; yields the job's trace variables."""
    context = telemetry.design_context(trace_key(identity), design_id)
    wanted = {
        **run_attributes(identity),
        "genesys.design.id": design_id,
        "genesys.job.kind": kind,
        **attributes,
    }
    with telemetry.span(
        "genesys.job.create", wanted, context=context, links=_planner_link()
    ) as span:
        yield telemetry.child_env(span)


# --------------------------------------------------------------------------------- ingestion


def _read_json(store: Store, key: str) -> Any:
    try:
        return json.loads(store.get_text(key))
    except (OSError, ValueError, KeyError):
        return None


def _session_folder(session: str) -> str:
    return session_key(session).rsplit("/", 1)[0]


def _record_calls(store: Store, session: str, run: str) -> None:
    instruments = telemetry.current().instruments
    for key in store.list(f"{_session_folder(session)}/calls"):
        call = _read_json(store, key)
        if not isinstance(call, dict):
            continue
        operation = "embeddings" if call.get("role") == "embeddings" else "chat"
        base = {
            genai.OPERATION: operation,
            genai.PROVIDER: genai.PROVIDER_OPENAI,
            genai.REQUEST_MODEL: str(call.get("model", "")),
            genai.ROLE: str(call.get("role", "")),
            "genesys.run": run,
        }
        duration = dict(base)
        if call.get("error"):
            duration[genai.ERROR_TYPE] = str(call["error"]).split(":", 1)[0][:80]
        instruments.operation_duration.record(float(call.get("latency_s") or 0.0), duration)
        for token_type, field in (("input", "prompt_tokens"), ("output", "completion_tokens")):
            tokens = int(call.get(field) or 0)
            if tokens:
                instruments.token_usage.record(tokens, {**base, genai.TOKEN_TYPE: token_type})
        cost = float(call.get("cost_usd") or 0.0)
        if cost:
            instruments.llm_cost.add(cost, base)


def _record_checks(store: Store, session: str) -> None:
    instruments = telemetry.current().instruments
    for key in store.list(f"{_session_folder(session)}/checks"):
        record = _read_json(store, key)
        if not isinstance(record, dict):
            continue
        for name, verdict in (record.get("verdicts") or {}).items():
            instruments.checks.add(
                1, {"genesys.check.name": str(name), "genesys.check.verdict": str(verdict)}
            )


def ingest_session(store: Store, identity: RunIdentity, session: str) -> None:
    """Metrics of an ended session from its store records (calls, checks, outcome).

    Without a metrics exporter nothing would keep them, so the records are not read.
    """
    if not telemetry.current().metering:
        return
    try:
        run = identity.describe()
        _record_calls(store, session, run)
        _record_checks(store, session)
        outcome = _read_json(store, session_key(session)) or {}
        status = "succeeded" if outcome.get("status") == "implemented" else "failed"
        telemetry.current().instruments.jobs_ended.add(
            1, {"genesys.run": run, "genesys.job.kind": "session", "genesys.job.outcome": status}
        )
    except Exception as exc:  # telemetry never fails a reconcile
        log.warning("could not record the metrics of session %s: %s", session, exc)


def relay_training_spans(store: Store, identity: RunIdentity, design_id: str, rung: str) -> int:
    """Relay, then delete, the spans a training job wrote; how many were passed on."""
    key = f"{verification_prefix(design_id, rung)}/{SPANS_KEY}"
    try:
        text = store.get_text(key)
    except KeyError:
        return 0
    relayed = relay_spans(text, {telemetry.design_trace_id(trace_key(identity), design_id)})
    if relayed.refused:
        log.warning("%s: dropped %d spans not of %s", key, relayed.refused, design_id)
    store.delete(key)
    return relayed.passed


def ingest_verification(
    store: Store,
    identity: RunIdentity,
    design_id: str,
    rung: str,
    *,
    gpu_seconds: float | None = None,
) -> None:
    """Relay an ended training job's spans and record its metrics from ``result.json``."""
    instruments = telemetry.current().instruments
    try:
        if telemetry.current().tracing:  # untraced, the trainer wrote no spans
            relay_training_spans(store, identity, design_id, rung)
        if not telemetry.current().metering:
            return  # no exporter would keep the metrics: result.json is not read for them
        try:
            result = read_document(
                store, f"{verification_prefix(design_id, rung)}/result.json", VerificationResult
            )
        except DocumentError:
            result = None
        attributes = {"genesys.run": identity.describe(), "genesys.rung": rung}
        if result is not None and result.tokens_per_second:
            instruments.training_throughput.record(result.tokens_per_second, attributes)
        if gpu_seconds is None and result is not None and result.device == "cuda":
            gpu_seconds = result.device_seconds
        if gpu_seconds:
            instruments.training_gpu_time.add(gpu_seconds, attributes)
        ok = result is not None and result.status in ("succeeded", "failed")
        instruments.jobs_ended.add(
            1,
            {
                "genesys.run": identity.describe(),
                "genesys.job.kind": "training",
                "genesys.job.outcome": "succeeded" if ok else "failed",
            },
        )
    except Exception as exc:  # telemetry never fails a reconcile
        log.warning("could not record the telemetry of %s at %s: %s", design_id, rung, exc)


# ------------------------------------------------------------------------------------ gauges


def design_phases(archive: Archive, running: frozenset[tuple[str, str]]) -> dict[str, int]:
    """Designs by phase: verifying, verified, failed or implemented (none verified yet)."""
    busy = {design for design, _ in running}
    counts: dict[str, int] = {}
    for record in archive.designs.values():
        statuses = {v.status for v in record.verifications.values()}
        if record.id in busy:
            phase = "verifying"
        elif "succeeded" in statuses:
            phase = "verified"
        elif statuses:
            phase = "failed"
        else:
            phase = "implemented"
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def set_gauges(identity: RunIdentity, observed: Observed) -> None:
    """Report the run's jobs (by kind and state) and designs (by phase) on the gauges."""
    waiting = set(observed.waiting_jobs)
    jobs = {
        ("session", "running"): len(observed.running_sessions),
        ("training", "running"): len(observed.running_jobs - waiting),
        ("training", "waiting"): len(waiting),
    }
    phases = design_phases(observed.archive, observed.running_jobs)
    telemetry.current().instruments.gauges.set(identity.describe(), jobs=jobs, designs=phases)


__all__ = [
    "SPANS_KEY",
    "TRACE_URL_VAR",
    "design_phases",
    "design_root",
    "design_trace",
    "design_traces",
    "ingest_session",
    "ingest_verification",
    "job_span",
    "plan_attributes",
    "relay_training_spans",
    "run_attributes",
    "seeds_written",
    "session_job_span",
    "session_started",
    "set_gauges",
    "trace_key",
    "trace_url",
    "training_job_span",
]
