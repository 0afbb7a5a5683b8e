"""Claims in the store: a run binding its prefix, a design claiming its structural hash.

Both use the store's conditional create (``O_EXCL`` locally, ``If-None-Match: *`` on S3), so two
writers racing for the same claim cannot both win.

- :func:`bind_run`: a run's ``spec.json`` records its identity. The first run to create it owns
  the prefix; the same run (same uid) rewrites it when its spec changes. Another uid is refused,
  unless its spec names the owner in ``spec.storage.resumeFrom``: then it adopts the archive (and
  the owner's uid joins ``adoptedFrom``). ``genesys run`` (no uid) always resumes its own prefix.
- :func:`claim_hash`: before a design session records a design, it claims the tree's structural
  hash; a session that loses the race gets the holder's id back and tries another candidate, so
  parallel sessions never verify the same design twice.

What must stay true: a claim is never taken from its holder (a refused bind writes nothing), and
re-running a claim by its holder (a resumed session, a re-applied reconcile) succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.store.archive import SPEC_KEY, hash_key
from genesys.store.documents import (
    DocumentError,
    HashClaim,
    RunRecord,
    create_document,
    dump_document,
    read_document,
    write_document,
)

if TYPE_CHECKING:
    from genesys.store.base import Store


@dataclass(frozen=True, slots=True)
class Binding:
    """The result of binding a run to its store prefix."""

    bound: bool
    message: str = ""
    adopted: str | None = None  # the uid whose archive this bind adopted


def conflict_message(store_uri: str, owner: str) -> str:
    """How to resolve a prefix held by another run, in words for a condition."""
    return (
        f"the store prefix {store_uri} holds the archive of another run (uid {owner}), kept "
        "after it was deleted: delete those artifacts, or set spec.storage.resumeFrom: "
        f"{owner} to continue that archive on purpose"
    )


def _record_of(store: Store) -> RunRecord | None:
    """The current record, treating an unreadable one (an older layout) as absent."""
    try:
        return read_document(store, SPEC_KEY, RunRecord)
    except DocumentError:
        return None


def bind_run(store: Store, identity: RunIdentity, run: DiscoveryRun) -> Binding:
    """Bind the run's store (opened at its prefix) to ``identity``; write its spec."""
    wanted = RunRecord(identity=identity, run=run)
    if create_document(store, SPEC_KEY, wanted):
        return Binding(True)
    current = _record_of(store)
    if current is None:  # unreadable: an older layout of the same prefix; take it over
        write_document(store, SPEC_KEY, wanted)
        return Binding(True)
    owner = current.identity.uid
    if owner == identity.uid:
        updated = current.model_copy(update={"run": run, "identity": identity})
        if dump_document(updated) != dump_document(current):
            write_document(store, SPEC_KEY, updated)
        return Binding(True)
    if owner is not None and run.spec.storage.resume_from == owner:
        adopted = RunRecord(identity=identity, run=run, adopted_from=[*current.adopted_from, owner])
        write_document(store, SPEC_KEY, adopted)
        return Binding(True, f"adopted the archive of run uid {owner}", adopted=owner)
    return Binding(False, conflict_message(store.uri, owner or "unknown"))


def bound_to(store: Store, identity: RunIdentity) -> bool:
    """True when the prefix is bound to this run, or to no run at all."""
    current = _record_of(store)
    return current is None or current.identity.uid == identity.uid


def claim_hash(store: Store, digest: str, *, design: str, session: str) -> str | None:
    """Claim a structural hash for ``design``; None when it is ours, else the holder's id."""
    key = hash_key(digest)
    if create_document(store, key, HashClaim(design=design, session=session)):
        return None
    holder = read_document(store, key, HashClaim)
    if holder is None or holder.design == design:
        return None
    return holder.design


__all__ = ["Binding", "bind_run", "bound_to", "claim_hash", "conflict_message"]
