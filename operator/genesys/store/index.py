"""A run's archive kept in memory and updated from the store's listing by version.

The operator reconciles every run every few seconds. Rebuilding the archive each time
(:func:`~genesys.store.archive.load_archive`) costs in proportion to the run's history; an
:class:`ArchiveIndex` instead lists the run's keys with their version tags (ETags on S3, inode,
mtime and size on a local store) and reads only the documents that were added or changed,
dropping what was removed. The first refresh is the full rebuild; a refresh that fails half-way
forgets everything, so the next one is a full rebuild again (a detected gap never leaves a
half-applied index).

A refresh may list only some folders (a hinted refresh): the caller names where writes may have
happened since the last refresh (the folders of the Jobs that just ended), and keys elsewhere
are taken as unchanged. Its cost then follows what changed, not the run's size; a whole
listing now and then (the caller's resync) catches writes no hint named.

Besides the archive, the index keeps what the operator used to list the store for on every
reconcile: the failed training attempts per (design, rung), the GPU time of finished training
Jobs, and the LLM spend of the sessions.

What must stay true: :meth:`ArchiveIndex.archive` equals ``load_archive`` of the same store
after any sequence of writes and deletions, when every refresh is whole or names the folders
written since the last one (a property test checks both), the attempt counts
equal :func:`~genesys.backends.common.failed_attempts`, and nothing per design is kept beyond
its record, its verifications and the version tags of the keys it reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from genesys.store.archive import (
    Archive,
    DesignRecord,
    Rejection,
    Verification,
    design_record,
    quarantine_implausible,
    rejection,
)
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    GpuUsage,
    RejectionRecord,
    SessionOutcome,
    SessionState,
    VerificationResult,
    read_document,
)
from genesys.store.noise import NoiseFloor

if TYPE_CHECKING:
    from genesys.store.base import Store

D = TypeVar("D", bound=BaseModel)

DESIGN, VERIFICATION, ATTEMPT, GPU_USAGE = "design", "verification", "attempt", "gpu-usage"
SESSION, SESSION_STATE, REJECTION, NOISE = "session", "session-state", "rejection", "noise"
ARCHIVE_KINDS = frozenset({DESIGN, VERIFICATION, SESSION, REJECTION, NOISE})
"""The kinds whose unreadable documents the archive lists as problems."""


def key_kind(key: str) -> str | None:
    """What a run-store key holds, for the index (None: a key the index does not read)."""
    parts = key.split("/")
    match parts:
        case ["designs", _design, "design.json"]:
            return DESIGN
        case ["designs", _design, "verifications", _rung, "result.json"]:
            return VERIFICATION
        case ["designs", _design, "verifications", _rung, "attempts", _name]:
            return ATTEMPT
        case ["designs", _design, "verifications", _rung, "gpu-usage", _name]:
            return GPU_USAGE
        case ["sessions", _session, "session.json"]:
            return SESSION
        case ["sessions", _session, "state.json"]:
            return SESSION_STATE
        case ["rejected", name] if name.endswith(".json"):
            return REJECTION
        case ["noise", _rung, name] if name.endswith(".json"):
            return NOISE
    return None


@dataclass(frozen=True, slots=True)
class Refresh:
    """What one :meth:`ArchiveIndex.refresh` did."""

    rebuilt: bool  # a full rebuild (first refresh, or after a gap)
    whole: bool  # the whole run was listed (not only the folders named)
    read: int  # documents read (added or changed keys)
    removed: int  # keys that are gone
    keys: int  # keys the index follows now


class ArchiveIndex:
    """One run's archive in memory, brought up to date by :meth:`refresh`."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.rebuilds = 0
        self._clear()

    def _clear(self) -> None:
        self._built = False  # False until a refresh applied the whole listing
        self._versions: dict[str, str] = {}
        self._designs: dict[str, DesignRecord] = {}
        self._verifications: dict[tuple[str, str], Verification] = {}
        self._attempts: dict[str, tuple[str, str]] = {}  # attempt key -> (design, rung)
        self._gpu_seconds: dict[str, float] = {}
        self._sessions: dict[str, SessionOutcome] = {}
        self._spend: dict[str, float] = {}  # by session
        self._rejections: dict[str, Rejection] = {}
        self._noise: dict[str, NoiseFloor] = {}
        self._problems: dict[str, str] = {}

    # ---------------------------------------------------------------------------- refresh

    @property
    def built(self) -> bool:
        """True once a refresh applied a whole listing (and no failure undid it since)."""
        return self._built

    def refresh(self, store: Store, folders: Collection[str] | None = None) -> Refresh:
        """List the store by version and apply what changed since the last refresh.

        ``folders`` (run-store folders, e.g. ``sessions/s0001``) limits the listing to them:
        keys outside them are taken as unchanged. The caller must name every folder written
        since the last refresh; ``None``, or an index not built yet, lists the whole run.
        A key whose tag is unknown ('') is read every time. If reading fails half-way, the
        index forgets everything (the next refresh is a full rebuild) and the error propagates.
        """
        rebuilt = not self._built
        whole = folders is None or rebuilt
        if whole:
            listed = _followed(store.list_versions())
            in_scope: Collection[str] = list(self._versions)
        else:
            roots = _outermost(folders or ())
            listed = {}
            for folder in roots:
                listed.update(_followed(store.list_versions(folder)))
            under = tuple(f"{folder}/" for folder in roots)
            in_scope = [key for key in self._versions if key.startswith(under)] if under else []
        if rebuilt:
            self._clear()
            self.rebuilds += 1
        removed = [key for key in in_scope if key not in listed]
        changed = sorted(
            (key for key, tag in listed.items() if not tag or self._versions.get(key) != tag),
            key=_design_first,
        )
        try:
            for key in removed:
                self._forget(key)
                del self._versions[key]
            for key in changed:
                self._apply(store, key)
                self._versions[key] = listed[key]
        except BaseException:
            self._clear()
            raise
        self._built = True
        return Refresh(rebuilt, whole, len(changed), len(removed), len(self._versions))

    def _read(self, store: Store, key: str, model: type[D]) -> D | None:
        """The document, or None when it does not parse (an archive problem, if it is one)."""
        try:
            return read_document(store, key, model)
        except DocumentError as exc:
            if key_kind(key) in ARCHIVE_KINDS:
                self._problems[key] = str(exc)
            return None

    def _apply(self, store: Store, key: str) -> None:
        """Read one added or changed key into the index."""
        self._forget(key)
        kind = key_kind(key)
        parts = key.split("/")
        if kind == ATTEMPT:
            self._attempts[key] = (parts[1], parts[3])
        elif kind is not None:
            model, add = self._readers[kind]
            document = self._read(store, key, model)
            add(key, parts, document)

    @property
    def _readers(self) -> dict[str, tuple[type[BaseModel], Callable[[str, list[str], Any], None]]]:
        """Each kind's document model, and how a read document (or None) enters the index."""
        return {
            DESIGN: (DesignDocument, self._add_design),
            VERIFICATION: (VerificationResult, self._add_verification),
            GPU_USAGE: (GpuUsage, self._add_gpu_usage),
            SESSION: (SessionOutcome, self._add_session),
            SESSION_STATE: (SessionState, self._add_session_state),
            REJECTION: (RejectionRecord, self._add_rejection),
            NOISE: (NoiseFloor, self._add_noise),
        }

    def _add_design(self, key: str, parts: list[str], document: DesignDocument | None) -> None:
        if document is not None:
            self._designs[parts[1]] = design_record(parts[1], document)

    def _add_verification(
        self, key: str, parts: list[str], result: VerificationResult | None
    ) -> None:
        if result is not None:
            self._verifications[parts[1], parts[3]] = Verification.from_result(parts[3], result)

    def _add_gpu_usage(self, key: str, parts: list[str], usage: GpuUsage | None) -> None:
        self._gpu_seconds[key] = usage.gpus * usage.seconds if usage is not None else 0.0

    def _add_session(self, key: str, parts: list[str], outcome: SessionOutcome | None) -> None:
        if outcome is not None:
            self._sessions[parts[1]] = outcome

    def _add_session_state(self, key: str, parts: list[str], state: SessionState | None) -> None:
        self._spend[parts[1]] = state.spent_usd if state is not None else 0.0

    def _add_rejection(self, key: str, parts: list[str], record: RejectionRecord | None) -> None:
        if record is not None:
            self._rejections[key] = rejection(key, record)

    def _add_noise(self, key: str, parts: list[str], floor: NoiseFloor | None) -> None:
        if floor is not None:
            self._noise[key] = floor

    def _forget(self, key: str) -> None:
        """Drop what ``key`` contributed (it was removed, or is about to be read again)."""
        parts = key.split("/")
        kind = key_kind(key)
        self._problems.pop(key, None)
        if kind == DESIGN:
            self._designs.pop(parts[1], None)
        elif kind == VERIFICATION:
            self._verifications.pop((parts[1], parts[3]), None)
        elif kind == SESSION:
            self._sessions.pop(parts[1], None)
        elif kind == SESSION_STATE:
            self._spend.pop(parts[1], None)
        for registry in (self._attempts, self._gpu_seconds, self._rejections, self._noise):
            registry.pop(key, None)

    # ---------------------------------------------------------------------------- reading

    def archive(self) -> Archive:
        """The archive as :func:`~genesys.store.archive.load_archive` would rebuild it now.

        Records are copied, so the implausible-loss quarantine (which depends on the best
        seed's loss of the moment) is applied afresh and a caller's changes stay its own.
        """
        archive = Archive(self.name)
        for design_id in sorted(self._designs):
            record = copy.copy(self._designs[design_id])
            record.parents = list(record.parents)
            record.verifications = {}
            archive.designs[design_id] = record
        for (design_id, rung), verification in sorted(self._verifications.items()):
            owner = archive.designs.get(design_id)
            if owner is not None:
                owner.verifications[rung] = copy.copy(verification)
        archive.sessions = {key: self._sessions[key] for key in sorted(self._sessions)}
        archive.rejections = [self._rejections[key] for key in sorted(self._rejections)]
        archive.noise = {key: self._noise[key] for key in sorted(self._noise)}
        archive.problems = [
            self._problems[key]
            for key in sorted(self._problems, key=_problem_order)
            if key_kind(key) != VERIFICATION or key.split("/")[1] in archive.designs
        ]  # the rebuild reads no verification of a design it does not have
        quarantine_implausible(archive)
        return archive

    def failed_attempts(self) -> dict[tuple[str, str], int]:
        """Failed training attempts per (design, rung), as the store records them."""
        counts: dict[tuple[str, str], int] = {}
        for design_rung in self._attempts.values():
            counts[design_rung] = counts.get(design_rung, 0) + 1
        return counts

    def gpu_hours(self) -> float:
        """GPU-hours of the finished training Jobs recorded in the store."""
        return sum(self._gpu_seconds.values()) / 3600

    def spent_usd(self) -> float:
        """USD the run's LLM sessions spent so far (their ``state.json``)."""
        return sum(self._spend.values())


def _followed(versions: dict[str, str]) -> dict[str, str]:
    """The listed keys the index reads (or counts), with their version tags."""
    return {key: tag for key, tag in versions.items() if key_kind(key)}


def _outermost(folders: Collection[str]) -> list[str]:
    """The folders, normalised, less those inside another one (each key is listed once)."""
    cleaned = sorted({folder.strip("/") for folder in folders if folder.strip("/")}, key=len)
    kept: list[str] = []
    for folder in cleaned:  # shortest first: a folder comes after any folder that holds it
        if not any(folder.startswith(f"{outer}/") for outer in kept):
            kept.append(folder)
    return sorted(kept)


def _design_first(key: str) -> tuple[int, str]:
    """Design records before everything else, then key order (as the full rebuild reads)."""
    return (0 if key_kind(key) == DESIGN else 1, key)


def _problem_order(key: str) -> tuple[int, str]:
    """The order of the full rebuild's problems: records first, verifications after."""
    return (1 if key_kind(key) == VERIFICATION else 0, key)


__all__ = ["ArchiveIndex", "Refresh", "key_kind"]
