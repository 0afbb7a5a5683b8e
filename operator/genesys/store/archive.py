"""The design archive: lineage, statuses and per-rung results, rebuilt from the store alone.

Key layout of one run (under the store's root)::

    runs/<run>/spec.json                              the DiscoveryRun (as JSON)
    runs/<run>/designs/<id>/design.json               unit tree; metadata: title, operator,
                                                      parents, session, proposal, rating, seq
    runs/<run>/designs/<id>/proposal.md               the proposal text
    runs/<run>/designs/<id>/checks/<rung>.json        the check report at that rung
    runs/<run>/designs/<id>/verifications/<rung>/     the trainer's output: result.json,
                                                      checkpoint.pt, model.pt, config.json, log
    runs/<run>/rejected/<id>.json                     a rejected candidate: reason, report
    runs/<run>/sessions/<session>/session.json        outcome: design id or failure reason
    runs/<run>/sessions/<session>/trace.jsonl         the session's steps (LLM calls, checks)

What must stay true: every field of :class:`DesignRecord` is derived from these keys, so a
restarted driver or operator recomputes the archive from the store and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the archive's records are pure; only the loader touches a store
    from genesys.store.base import Store


def run_prefix(run: str) -> str:
    """The key prefix of a run."""
    return f"runs/{run}"


def design_key(run: str, design_id: str, *rest: str) -> str:
    """A key under one design."""
    return "/".join([run_prefix(run), "designs", design_id, *rest])


def verification_prefix(run: str, design_id: str, rung: str) -> str:
    """Where the trainer writes the verification of (design, rung)."""
    return design_key(run, design_id, "verifications", rung)


def session_key(run: str, session_id: str, name: str = "session.json") -> str:
    """A key under one design session."""
    return f"{run_prefix(run)}/sessions/{session_id}/{name}"


@dataclass(slots=True)
class Verification:
    """One design's verification at one rung (from the trainer's result.json)."""

    rung: str
    status: str  # succeeded | failed (guard) | error (crash)
    val_loss: float | None = None
    train_loss: float | None = None
    params: int | None = None
    tokens: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> {acc, ...}
    reason: str = ""
    finished: str | None = None

    @classmethod
    def from_result(cls, rung: str, result: dict[str, Any]) -> Verification:
        """From a trainer ``result.json``."""
        return cls(
            rung=rung,
            status=str(result.get("status", "error")),
            val_loss=result.get("val_loss"),
            train_loss=result.get("train_loss"),
            params=result.get("params"),
            tokens=result.get("tokens"),
            metrics=dict(result.get("eval") or {}),
            reason=str(result.get("reason", "")),
            finished=result.get("finished"),
        )


@dataclass(slots=True)
class DesignRecord:
    """One implemented design of a run, with its lineage and per-rung verifications."""

    id: str
    title: str
    operator: str  # seed | mutation | crossover | scratch
    parents: list[str]
    seq: int  # creation order within the run
    session: str | None = None
    proposal_rating: float | None = None
    verifications: dict[str, Verification] = field(default_factory=dict)

    @property
    def is_seed(self) -> bool:
        """True for the seed designs the run starts from."""
        return self.operator == "seed"

    def verified(self, rung: str) -> bool:
        """True when a verification at ``rung`` finished (passed or failed)."""
        return rung in self.verifications


@dataclass(slots=True)
class Rejection:
    """A candidate that failed its checks (or a session that produced nothing)."""

    id: str
    session: str | None
    operator: str
    parents: list[str]
    reason: str
    check: str = ""


@dataclass(slots=True)
class Archive:
    """Everything a run has produced, as the store holds it."""

    run: str
    designs: dict[str, DesignRecord] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ordered(self) -> list[DesignRecord]:
        """Designs in creation order."""
        return sorted(self.designs.values(), key=lambda d: (d.seq, d.id))


def read_json_object(store: Store, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key``; None when it is missing, not JSON, or not an object."""
    try:
        value = json.loads(store.get_text(key))
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_json(store: Store, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(store.get_text(key))
    except KeyError:
        return None
    return value if isinstance(value, dict) else None


class JsonCache:
    """Parsed JSON objects by key, read again only when their version tag changes.

    A long-lived reader (the operator reconciles each run every few seconds) lists the run's
    keys with their tags (:meth:`Store.list_versions`: ETags on S3) and fetches only what
    changed, instead of every object on every pass.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, dict[str, Any] | None]] = {}

    def read(self, store: Store, key: str, version: str) -> dict[str, Any] | None:
        """The object at ``key`` (cached under ``version``; '' means never cache)."""
        entry = self._entries.get(key)
        if version and entry is not None and entry[0] == version:
            return entry[1]
        value = _read_json(store, key)
        if version:
            self._entries[key] = (version, value)
        return value


def design_record(design_id: str, document: dict[str, Any]) -> DesignRecord:
    """A record from a design.json document (without verifications)."""
    meta = document.get("metadata") or {}
    return DesignRecord(
        id=design_id,
        title=str(meta.get("title", design_id)),
        operator=str(meta.get("operator", "seed")),
        parents=[str(p) for p in meta.get("parents", [])],
        seq=int(meta.get("seq", 0)),
        session=meta.get("session"),
        proposal_rating=meta.get("rating"),
    )


def load_archive(
    store: Store, run: str, keys: Iterable[str] | None = None, *, cache: JsonCache | None = None
) -> Archive:
    """Rebuild the archive of ``run`` from the store (unchanged objects from ``cache``)."""
    archive = Archive(run)
    prefix = run_prefix(run) + "/"
    if cache is not None and keys is None:
        versions = store.list_versions(run_prefix(run))
        all_keys = sorted(versions)

        def _json(store: Store, key: str) -> dict[str, Any] | None:
            return cache.read(store, key, versions.get(key, ""))

    else:
        all_keys = sorted(keys if keys is not None else store.list(run_prefix(run)))
        _json = _read_json
    for key in all_keys:
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split("/")
        if parts[0] == "designs" and len(parts) == 3 and parts[2] == "design.json":
            document = _json(store, key)
            if document is not None:
                archive.designs[parts[1]] = design_record(parts[1], document)
        elif parts[0] == "sessions" and len(parts) == 3 and parts[2] == "session.json":
            outcome = _json(store, key)
            if outcome is not None:
                archive.sessions[parts[1]] = outcome
        elif parts[0] == "rejected" and len(parts) == 2 and parts[1].endswith(".json"):
            item = _json(store, key)
            if item is not None:
                archive.rejections.append(
                    Rejection(
                        id=parts[1].removesuffix(".json"),
                        session=item.get("session"),
                        operator=str(item.get("operator", "")),
                        parents=list(item.get("parents", [])),
                        reason=str(item.get("reason", "")),
                        check=str(item.get("check", "")),
                    )
                )
    for key in all_keys:
        parts = key[len(prefix) :].split("/") if key.startswith(prefix) else []
        if (
            len(parts) == 5
            and parts[0] == "designs"
            and parts[2] == "verifications"
            and parts[4] == "result.json"
            and parts[1] in archive.designs
        ):
            result = _json(store, key)
            if result is not None:
                archive.designs[parts[1]].verifications[parts[3]] = Verification.from_result(
                    parts[3], result
                )
    return archive


def run_spent_usd(
    store: Store, run: str, *, exclude: str | None = None, cache: JsonCache | None = None
) -> float:
    """USD the run's LLM sessions spent so far, from their ``state.json``, less ``exclude``'s."""
    prefix = f"{run_prefix(run)}/sessions/"
    versions = store.list_versions(prefix) if cache is not None else None
    total = 0.0
    for key in versions if versions is not None else store.list(prefix):
        parts = key.removeprefix(prefix).split("/")
        if len(parts) == 2 and parts[1] == "state.json" and parts[0] != exclude:
            try:
                if cache is not None and versions is not None:
                    state = cache.read(store, key, versions[key]) or {}
                else:
                    state = _read_json(store, key) or {}
            except ValueError:
                continue
            total += float(state.get("spent_usd") or 0.0)
    return total


__all__ = [
    "Archive",
    "DesignRecord",
    "JsonCache",
    "Rejection",
    "Verification",
    "design_key",
    "design_record",
    "load_archive",
    "read_json_object",
    "run_prefix",
    "run_spent_usd",
    "session_key",
    "verification_prefix",
]
