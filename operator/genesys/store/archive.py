"""The design archive: lineage, statuses and per-rung results, rebuilt from the store alone.

Every function here works on one run's own store: the store opened at the run's prefix
(``runs/[<namespace>/]<name>`` under the store root; see :mod:`genesys.api.runconfig`), so no
key of one run can name another run's objects. The keys and their documents are listed in
:mod:`genesys.store.documents`; :func:`design_key`, :func:`verification_prefix` and
:func:`session_key` build them.

What must stay true: every field of :class:`DesignRecord` is derived from these keys, so a
restarted driver or operator recomputes the archive from the store and nothing else; documents
are read through their models, and one that does not parse is recorded in
:attr:`Archive.problems` (never half-read, never fatal to the reader). Quarantined results (the
trainer's leak guard, or an implausibly low loss: :mod:`genesys.store.quarantine`) are marked
when the archive is loaded, so every reader sees the same quarantine. Noise floors measured
with ``genesys noise`` (:mod:`genesys.store.noise`) are read with the archive, so the fitness and
the report see the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    RejectionRecord,
    SessionOutcome,
    SessionState,
    VerificationResult,
    read_document,
)
from genesys.store.noise import NoiseFloor, pooled_floor
from genesys.store.quarantine import (
    QUARANTINED,
    best_seed_losses,
    implausible_loss,
    leak_guard_reason,
)

if TYPE_CHECKING:  # the archive's records are pure; only the loader touches a store
    from genesys.store.base import Store

SPEC_KEY = "spec.json"
D = TypeVar("D", bound=BaseModel)


def design_key(design_id: str, *rest: str) -> str:
    """A key under one design."""
    return "/".join(["designs", design_id, *rest])


def verification_prefix(design_id: str, rung: str) -> str:
    """Where the trainer writes the verification of (design, rung)."""
    return design_key(design_id, "verifications", rung)


def session_folder(session_id: str) -> str:
    """The folder of one design session."""
    return f"sessions/{session_id}"


def session_key(session_id: str, name: str = "session.json") -> str:
    """A key under one design session."""
    return f"{session_folder(session_id)}/{name}"


def rejection_key(design_id: str, what: str) -> str:
    """The key of one rejected candidate or proposal of a design slot."""
    return f"rejected/{design_id}-{what}.json"


def hash_key(digest: str) -> str:
    """The key that claims a design's structural hash (see :mod:`genesys.store.claims`)."""
    return f"hashes/{digest}.json"


@dataclass(slots=True)
class Verification:
    """One design's verification at one rung (from the trainer's result.json)."""

    rung: str
    status: str  # succeeded | failed (guard) | error (crash) | quarantined (never scores)
    val_loss: float | None = None
    train_loss: float | None = None
    params: int | None = None
    tokens: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> {acc, ...}
    reason: str = ""
    finished: str | None = None

    @classmethod
    def from_result(cls, rung: str, result: VerificationResult) -> Verification:
        """From a trainer ``result.json`` (quarantined when its leak guard says so)."""
        leak = leak_guard_reason(result)
        return cls(
            rung=rung,
            status=QUARANTINED if leak else result.status,
            val_loss=result.val_loss,
            train_loss=result.train_loss,
            params=result.params,
            tokens=result.tokens,
            metrics={task: dict(values) for task, values in result.eval.items()},
            reason=leak or result.reason,
            finished=result.finished,
        )

    @property
    def quarantined(self) -> bool:
        """True when this result must never score (see :mod:`genesys.store.quarantine`)."""
        return self.status == QUARANTINED


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

    @property
    def quarantine(self) -> str | None:
        """Why the design is quarantined (its first quarantined rung, by name), or None.

        A quarantined design is never ranked, promoted or chosen as a parent.
        """
        for rung, verification in sorted(self.verifications.items()):
            if verification.quarantined:
                return f"{rung}: {verification.reason}"
        return None


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
    sessions: dict[str, SessionOutcome] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # documents that did not parse
    noise: dict[str, NoiseFloor] = field(default_factory=dict)  # by key (genesys noise)

    def ordered(self) -> list[DesignRecord]:
        """Designs in creation order."""
        return sorted(self.designs.values(), key=lambda d: (d.seq, d.id))

    def noise_floor(self) -> dict[str, float]:
        """Each metric's noise floor: its standard deviation pooled over every measurement."""
        return pooled_floor(list(self.noise.values()))


def design_record(design_id: str, document: DesignDocument) -> DesignRecord:
    """A record from a design.json document (without verifications)."""
    meta = document.metadata
    return DesignRecord(
        id=design_id,
        title=meta.title or design_id,
        operator=meta.operator,
        parents=list(meta.parents),
        seq=meta.seq,
        session=meta.session,
        proposal_rating=meta.rating,
    )


def rejection(key: str, record: RejectionRecord) -> Rejection:
    """An archive rejection from its record (the id is the key's file name)."""
    return Rejection(
        id=key.rsplit("/", 1)[-1].removesuffix(".json"),
        session=record.session,
        operator=record.operator,
        parents=list(record.parents),
        reason=record.reason,
        check=record.check,
    )


class _Reader:
    """Reads the documents of one archive load, recording those that do not parse."""

    def __init__(self, store: Store):
        self.store = store
        self.problems: list[str] = []

    def read(self, key: str, model: type[D]) -> D | None:
        try:
            return read_document(self.store, key, model)
        except DocumentError as exc:
            self.problems.append(str(exc))
            return None


def _read_record(archive: Archive, reader: _Reader, key: str) -> None:
    """Add the design, session outcome or rejection at ``key`` (other keys are skipped)."""
    match key.split("/"):
        case ["designs", design_id, "design.json"]:
            document = reader.read(key, DesignDocument)
            if document is not None:
                archive.designs[design_id] = design_record(design_id, document)
        case ["sessions", session_id, "session.json"]:
            outcome = reader.read(key, SessionOutcome)
            if outcome is not None:
                archive.sessions[session_id] = outcome
        case ["rejected", name] if name.endswith(".json"):
            record = reader.read(key, RejectionRecord)
            if record is not None:
                archive.rejections.append(rejection(key, record))
        case ["noise", _rung, name] if name.endswith(".json"):
            floor = reader.read(key, NoiseFloor)
            if floor is not None:
                archive.noise[key] = floor


def _read_verification(archive: Archive, reader: _Reader, key: str) -> None:
    """Add the verification at ``key`` to its design, when that design is in the archive."""
    match key.split("/"):
        case ["designs", design_id, "verifications", rung, "result.json"]:
            record = archive.designs.get(design_id)
            if record is None:
                return
            result = reader.read(key, VerificationResult)
            if result is not None:
                record.verifications[rung] = Verification.from_result(rung, result)


def load_archive(store: Store, name: str = "", keys: Iterable[str] | None = None) -> Archive:
    """Rebuild the archive from a run's store, reading every document.

    The operator keeps an incremental index instead (:mod:`genesys.store.index`), which equals
    this rebuild.
    """
    archive = Archive(name)
    all_keys = sorted(keys if keys is not None else store.list())
    reader = _Reader(store)
    for key in all_keys:
        _read_record(archive, reader, key)
    for key in all_keys:  # after every design record: a verification needs its design
        _read_verification(archive, reader, key)
    archive.problems = reader.problems
    quarantine_implausible(archive)
    return archive


def quarantine_implausible(archive: Archive) -> list[tuple[str, str]]:
    """Quarantine every non-seed success whose loss is implausibly below the best seed's.

    Marks those verifications ``quarantined`` with the reason, in place, and returns their
    (design id, rung). Applying it twice changes nothing more.
    """
    best = best_seed_losses(
        (rung, v.status, v.val_loss)
        for record in archive.designs.values()
        if record.is_seed
        for rung, v in record.verifications.items()
    )
    marked: list[tuple[str, str]] = []
    for record in archive.ordered():
        if record.is_seed:
            continue
        for rung, verification in sorted(record.verifications.items()):
            if verification.status != "succeeded":
                continue
            reason = implausible_loss(rung, verification.val_loss, best.get(rung))
            if reason is not None:
                verification.status, verification.reason = QUARANTINED, reason
                marked.append((record.id, rung))
    return marked


def run_spent_usd(store: Store, *, exclude: str | None = None) -> float:
    """USD the run's LLM sessions spent so far, from their ``state.json``, less ``exclude``'s."""
    reader = _Reader(store)
    total = 0.0
    for key in store.list("sessions"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "state.json" and parts[1] != exclude:
            state = reader.read(key, SessionState)
            total += state.spent_usd if state is not None else 0.0
    return total


__all__ = [
    "SPEC_KEY",
    "Archive",
    "DesignRecord",
    "Rejection",
    "Verification",
    "design_key",
    "design_record",
    "hash_key",
    "load_archive",
    "quarantine_implausible",
    "rejection_key",
    "run_spent_usd",
    "session_folder",
    "session_key",
    "verification_prefix",
]
