"""``genesys noise``: one design trained N times with different seeds at one rung.

A difference between two designs means something only when it is larger than what retraining
one design with another seed changes. The repeats are runs of their own
(``<run>-noise-<design>-<rung>-<spec digest>-<k>``, run seed ``spec.seed + k``) on the spec's
prepared data, trained by the same local backend as ``genesys run`` (TorchX ``local_cwd``
behind the sandbox boundary), so the design's code is confined as in a discovery. Repeats that
succeeded are not trained again (failed ones are); an edited spec gets new repeats. The
figures are stored as a noise floor in the run's own store (:mod:`genesys.store.noise`).

What must stay true: a repeat differs from the others only by its seed (same data, same rung,
same design).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.backends.common import RunHandle, open_run, write_seeds
from genesys.backends.local import LocalBackend
from genesys.engine.actions import StartVerification
from genesys.store.archive import design_key, verification_prefix
from genesys.store.base import Store
from genesys.store.documents import VerificationResult, read_document

POLL_SECONDS = 1.0


def spec_digest(run: DiscoveryRun) -> str:
    """Six hex digits of the spec: repeats of an edited spec are runs of their own."""
    return hashlib.sha256(run.spec.model_dump_json().encode("utf-8")).hexdigest()[:6]


def repeat_name(run: DiscoveryRun, design: str, rung: str, k: int) -> str:
    """The name of repeat ``k``'s run (a DNS label, at most 63 characters)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", f"{run.metadata.name}-noise-{design}-{rung}".lower())
    return f"{stem[:48].strip('-')}-{spec_digest(run)}-{k}"


def repeat_run(run: DiscoveryRun, design: str, rung: str, k: int) -> DiscoveryRun:
    """Repeat ``k``: the spec with its own name and the run seed ``spec.seed + k``."""
    metadata = run.metadata.model_copy(update={"name": repeat_name(run, design, rung, k)})
    spec = run.spec.model_copy(update={"seed": run.spec.seed + k})
    return run.model_copy(update={"metadata": metadata, "spec": spec})


def design_document(source: Store, design: str) -> str | None:
    """``design``'s design.json text: a design of the run's store, else None."""
    key = design_key(design, "design.json")
    return source.get_text(key) if source.exists(key) else None


def place_design(store: Store, design: str, text: str | None) -> None:
    """Put the design into a repeat's store: ``text`` as its design.json, or (None) the seeds."""
    if text is None:
        write_seeds(store)
    elif not store.exists(design_key(design, "design.json")):
        store.put_text(design_key(design, "design.json"), text)


def repeat_result(store: Store, design: str, rung: str) -> VerificationResult | None:
    """A repeat's result.json, once there is one."""
    return read_document(
        store, f"{verification_prefix(design, rung)}/result.json", VerificationResult
    )


def needs_training(store: Store, design: str, rung: str) -> bool:
    """True unless the repeat succeeded; a failed repeat's result is removed so it can rerun."""
    result = repeat_result(store, design, rung)
    if result is None:
        return True
    if result.status == "succeeded":
        return False
    store.delete(f"{verification_prefix(design, rung)}/result.json")
    return True


def finished(running: Sequence[Repeat]) -> list[Repeat]:
    """The running repeats whose training has ended (their backends observed once)."""
    ended = []
    for repeat in running:
        assert repeat.backend is not None
        repeat.backend.observe()
        if not repeat.backend.jobs:
            ended.append(repeat)
    return ended


@dataclass(slots=True)
class Repeat:
    """One repeat's run, bound to its store, and its backend once started."""

    handle: RunHandle
    backend: LocalBackend | None = None


def open_repeats(
    run: DiscoveryRun,
    root: Store,
    design: str,
    rung: str,
    repeats: int,
    data_uri: str,
    *,
    seed_offset: int = 0,
) -> list[Repeat]:
    """The repeats' runs (seeds ``spec.seed + seed_offset + k``), each bound to its own prefix."""
    opened = []
    for k in range(seed_offset, seed_offset + repeats):
        copy = repeat_run(run, design, rung, k)
        handle, _ = open_run(copy, RunIdentity(name=copy.metadata.name), root, data_uri=data_uri)
        opened.append(Repeat(handle))
    return opened


def train_repeats(
    repeats: Sequence[Repeat],
    design: str,
    rung: str,
    *,
    workdir: Path,
    parallel: int,
    progress: Callable[[str], None],
) -> list[VerificationResult | str]:
    """Train every repeat without a successful result, ``parallel`` at a time; each one's result.

    A repeat that failed before (a crash, or the slowdown guard on a loaded machine) is trained
    again. On an interrupt the trainings running are stopped before it is raised again.
    """
    waiting = [r for r in repeats if needs_training(r.handle.store, design, rung)]
    running: list[Repeat] = []
    started = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                repeat = waiting.pop(0)
                repeat.backend = LocalBackend(repeat.handle, workdir=workdir)
                repeat.backend.start_verification(StartVerification(design, rung, 0))
                running.append(repeat)
                progress(f"training {repeat.handle.identity.name}")
            time.sleep(POLL_SECONDS)
            for repeat in finished(running):
                running.remove(repeat)
                done = len(repeats) - len(waiting) - len(running)
                progress(f"[{time.monotonic() - started:.0f}s] {done}/{len(repeats)} trained")
    except KeyboardInterrupt:
        for repeat in running:
            if repeat.backend is not None:
                repeat.backend.stop()
        raise
    results: list[VerificationResult | str] = []
    for repeat in repeats:
        result = repeat_result(repeat.handle.store, design, rung)
        results.append(result if result is not None else "no result.json was written")
    return results


__all__ = [
    "Repeat",
    "design_document",
    "finished",
    "needs_training",
    "open_repeats",
    "place_design",
    "repeat_name",
    "repeat_run",
    "spec_digest",
    "train_repeats",
]
