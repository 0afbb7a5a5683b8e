"""Store bookkeeping every backend shares: seeds, ended children, failed attempts, give-ups.

The local backend (processes) and the Kubernetes backend (Jobs) differ only in how they start
children and see them end. What a child's end means for the store is the same, and lives here:

- :func:`session_arguments`: the ``genesys agent design`` command line of a session;
- :func:`write_seeds`: the seed designs as ``seed-<name>`` (``InitSeeds``);
- :func:`record_session_end`: a session child that ended without writing ``session.json`` gets
  a failed outcome with the reason (a crash, an OOM kill, a deleted pod);
- :func:`record_verification_end`: a training job that ended without a final ``result.json``
  (or with ``status: error``) becomes an attempt record, and its result is removed so the
  planner retries it;
- :func:`failed_attempts`: attempts per (design, rung), for the planner's retry bound;
- :func:`write_failure`: the final ``error`` result of a verification given up (``RecordFailure``).

What must stay true: these functions are idempotent (applying them twice writes nothing new the
second time) and never import torch.
"""

from __future__ import annotations

import json
from typing import Any

from genesys.api.discoveryrun import DiscoveryRun
from genesys.engine.actions import RecordFailure, StartSession
from genesys.engine.plan import SEED_NAMES
from genesys.store.archive import design_key, run_prefix, session_key, verification_prefix
from genesys.store.base import Store


def session_arguments(run: DiscoveryRun, action: StartSession, store_uri: str) -> list[str]:
    """``genesys`` arguments of one design session (offline, or the spec's LLM flow)."""
    spec = run.spec
    arguments = [
        "agent", "design", "--store", store_uri, "--run", run.metadata.name,
        "--session", action.session, "--design-id", action.design_id, "--seq", str(action.seq),
        "--operator", action.operator, "--parents", ",".join(action.parents),
        "--seed", str(action.seed), "--timeout", str(spec.checks.sandbox_timeout_seconds),
    ]  # fmt: skip
    if not spec.agents.offline:
        return [*arguments, "--mode", spec.sessions.flow]
    lowest = spec.ladder.rungs[0].name
    return [
        *arguments, "--mode", "offline", "--rung", lowest,
        "--vocab", str(spec.verification.data.vocab_size),
        "--settings", json.dumps(spec.checks.model_dump(by_alias=False)),
    ]  # fmt: skip


def write_seeds(store: Store, run: str) -> None:
    """Write the seed designs into the archive as ``seed-<name>`` (once)."""
    from genesys_trainer.seeds import load_seed  # torch-free: reads JSON

    for seq, name in enumerate(SEED_NAMES):
        key = design_key(run, f"seed-{name}", "design.json")
        if store.exists(key):
            continue
        document = load_seed(name).to_json()
        document["metadata"] = {
            **document["metadata"],
            "seq": seq,
            "operator": "seed",
            "parents": [],
            "title": document["metadata"]["title"],
        }
        store.put_text(key, json.dumps(document, indent=2))


def record_session_end(store: Store, run: str, session: str, reason: str) -> bool:
    """Record a failed outcome for a session that ended without one; True when written."""
    key = session_key(run, session)
    if store.exists(key):
        return False
    outcome = {"status": "failed", "design": None, "reason": reason}
    store.put_text(key, json.dumps(outcome))
    return True


def _read(store: Store, key: str) -> dict[str, Any] | None:
    if not store.exists(key):
        return None
    try:
        value = json.loads(store.get_text(key))
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def record_verification_end(store: Store, run: str, design: str, rung: str, state: str) -> bool:
    """Turn a job that ended without a final result into an attempt record; True if it did."""
    prefix = verification_prefix(run, design, rung)
    result_key = f"{prefix}/result.json"
    result = _read(store, result_key)
    if result is not None and result.get("status") in ("succeeded", "failed"):
        return False  # a finished verification (a guard stop is a result too)
    attempts = len(list(store.list(f"{prefix}/attempts")))
    reason = (result or {}).get("reason") or f"job ended {state} without a result"
    store.put_text(
        f"{prefix}/attempts/{attempts}.json", json.dumps({"state": state, "reason": reason})
    )
    store.delete(result_key)  # so the planner retries
    return True


def failed_attempts(store: Store, run: str) -> dict[tuple[str, str], int]:
    """Failed training attempts per (design, rung)."""
    counts: dict[tuple[str, str], int] = {}
    for key in store.list(f"{run_prefix(run)}/designs"):
        parts = key.split("/")
        if len(parts) == 8 and parts[4] == "verifications" and parts[6] == "attempts":
            counts[(parts[3], parts[5])] = counts.get((parts[3], parts[5]), 0) + 1
    return counts


def write_failure(store: Store, run: str, action: RecordFailure) -> None:
    """The final ``error`` result of a verification given up after its retries."""
    key = f"{verification_prefix(run, action.design_id, action.rung)}/result.json"
    document = {
        "design": action.design_id,
        "rung": action.rung,
        "status": "error",
        "reason": action.reason,
    }
    store.put_text(key, json.dumps(document))


__all__ = [
    "failed_attempts",
    "record_session_end",
    "record_verification_end",
    "session_arguments",
    "write_failure",
    "write_seeds",
]
