"""The local driver: observe -> plan -> apply until the run finishes; ``genesys run`` and friends.

``genesys run SPEC [--workdir DIR]`` validates the spec, prepares the data when the spec names the
built-in corpus, then loops: the backend observes the store and its children, ``plan()`` decides,
the backend applies. It prints progress (sessions, checks, per-rung budget, jobs, best fitness,
elapsed time and an estimate of what is left), and at the end a leaderboard, the headline (the
best discovered design against the best seed, within the noise floor) and an HTML report.

What must stay true: the driver holds no state a restart needs; kill it at any point and rerun
the same command, and it resumes from the store without redoing finished work or duplicating
designs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from genesys import telemetry
from genesys.api.discoveryrun import Data, DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.backends import observability
from genesys.backends.common import RunHandle, open_run, publish_report
from genesys.backends.local import LocalBackend
from genesys.engine.actions import Finish, StartSession, StartVerification, count_actions
from genesys.engine.plan import Plan, plan
from genesys.progress import format_duration
from genesys.store.archive import SPEC_KEY, Archive
from genesys.store.base import Store, open_store

POLL_SECONDS = 1.0


EVAL_ITEMS_PER_TASK = 1500
"""Evaluation items prepared per task (``verification.evalLimit`` takes the first N): enough
for a standard error of at most 0.013 on an accuracy. Part of the prepared data's key, so data
prepared with another count is not reused."""


@dataclass(slots=True)
class RunPaths:
    """Where a run's store and data live."""

    store_uri: str
    data_uri: str


def resolve_paths(run: DiscoveryRun, workdir: Path) -> RunPaths:
    """The store URI (local paths relative to the workdir) and the prepared data's URI."""
    storage = run.spec.storage
    if storage.s3 is not None:
        store_uri = f"s3://{storage.s3.bucket}/{storage.s3.prefix}".rstrip("/")
    else:
        path = Path(storage.local.path if storage.local else ".genesys")
        store_uri = str(path if path.is_absolute() else (workdir / path).resolve())
    data = run.spec.verification.data
    if data.shards:
        data_uri = data.shards
    else:
        key = (
            f"{data.dataset.replace('/', '_')}-{data.tokenizer.replace(':', '')}-"
            f"syn{data.synthetic_fraction:g}-s{run.spec.seed}-e{EVAL_ITEMS_PER_TASK}"
        )
        source = data_source(data)
        if source != "builtin":  # a mixture: its subsets and weights name the data too
            key += "-" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:8]
        data_uri = str((workdir / ".genesys" / "data" / key).resolve())
    return RunPaths(store_uri, data_uri)


def data_source(data: Data) -> str:
    """What ``genesys data prepare`` reads for a spec's data: builtin, or a weighted HF mix."""
    if data.dataset == "builtin":
        return "builtin"
    return "hf:" + data.dataset + ":" + ",".join(f"{s.name}={s.weight}" for s in data.subsets)


def ensure_data(run: DiscoveryRun, data_uri: str, out: TextIO) -> None:
    """Prepare the run's data once (built-in corpus or a Hugging Face dataset)."""
    if run.spec.verification.data.shards or (Path(data_uri) / "meta.json").exists():
        return
    from genesys_trainer.data.prepare import prepare

    data = run.spec.verification.data
    source = data_source(data)
    print(f"preparing data ({source}, tokenizer {data.tokenizer}) into {data_uri}", file=out)
    prepare(
        source=source,
        tokenizer=data.tokenizer,
        out=data_uri,
        synthetic_fraction=data.synthetic_fraction,
        seed=run.spec.seed,
        eval_items=EVAL_ITEMS_PER_TASK,
        progress=False,
    )


def progress_line(result: Plan, archive: Archive, elapsed: float, jobs: int) -> str:
    """One status line."""
    rejected = len(archive.rejections)
    implemented = sum(1 for d in archive.designs.values() if not d.is_seed)
    failed = sum(1 for s in archive.sessions.values() if s.status != "implemented")
    rungs = " ".join(
        f"{r.name} {r.used}/{r.budget}" + (f"+{r.running}" if r.running else "")
        for r in result.rungs
    )
    best = f"{result.best} {result.fitness[result.best]:+.3f}" if result.best else "-"
    left = sum(max(0, r.budget - r.used) for r in result.rungs)
    done = sum(r.used for r in result.rungs)
    eta = f" | ETA ~{format_duration(elapsed / done * left)}" if done and left else ""
    return (
        f"[{format_duration(elapsed)}] sessions {result.sessions_running} running / "
        f"{result.sessions_done} done ({failed} failed) | designs {implemented} "
        f"(checks rejected {rejected}) | {rungs} | jobs {jobs} | best {best}{eta}"
    )


def finish_report(handle: RunHandle, workdir: Path, out: TextIO) -> Path:
    """Leaderboard to the terminal, HTML report to the store and the workdir."""
    from genesys.report import render_text

    html, rows, verdict = publish_report(handle)
    print(render_text(rows), file=out)
    print(verdict.text(), file=out)
    path = workdir / f"{handle.run.metadata.name}-report.html"
    path.write_text(html, encoding="utf-8")
    print(f"report: {path}", file=out)
    return path


def local_identity(run: DiscoveryRun) -> RunIdentity:
    """A run's identity for ``genesys run``: its name (the layout ``runs/<name>``)."""
    return RunIdentity(name=run.metadata.name)


def step(backend: LocalBackend) -> tuple[Plan, Archive]:
    """One observe -> plan -> apply, traced (``genesys.reconcile``) when it plans anything.

    Returns the plan and the archive it was made from.
    """
    identity = backend.handle.identity
    started = time.monotonic()
    observed = backend.observe()
    result = plan(backend.run.spec, observed, datetime.now(UTC))
    if result.actions:
        attributes = {
            **observability.run_attributes(identity),
            **observability.plan_attributes(result.phase.value, count_actions(result.actions)),
        }
        with telemetry.span("genesys.reconcile", attributes):
            backend.apply(result.actions)
    telemetry.current().instruments.reconcile_duration.record(
        time.monotonic() - started, {"genesys.run": identity.describe()}
    )
    return result, observed.archive


def drive(run: DiscoveryRun, workdir: Path, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the discovery to the end; the final summary."""
    paths = resolve_paths(run, workdir)
    handle, _ = open_run(
        run, local_identity(run), open_store(paths.store_uri), data_uri=paths.data_uri
    )
    ensure_data(run, paths.data_uri, out)
    backend = LocalBackend(handle, workdir=workdir)
    started = time.monotonic()
    last_line = ""
    try:
        while True:
            result, archive = step(backend)
            line = progress_line(result, archive, time.monotonic() - started, len(backend.jobs))
            started_work = [
                a for a in result.actions if isinstance(a, StartSession | StartVerification)
            ]
            key = line.split("] ", 1)[1].split(" | ETA")[0]  # without the clock and the ETA
            if key != last_line or started_work:
                print(line, file=out, flush=True)
                last_line = key
            finish = next((a for a in result.actions if isinstance(a, Finish)), None)
            if finish is not None:
                print(
                    f"finished: {finish.reason.value} in "
                    f"{format_duration(time.monotonic() - started)}"
                    + (f": {result.message}" if result.message else ""),
                    file=out,
                )
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        backend.stop()
        print("interrupted; rerun the same command to resume", file=out)
        raise
    report = finish_report(handle, workdir, out)
    summary = {
        "run": run.metadata.name,
        "store": handle.store_uri,
        "report": str(report),
        "reason": finish.reason.value,
        "seconds": time.monotonic() - started,
    }
    handle.store.put_text("summary.json", json.dumps(summary, indent=2))
    return summary


def run_stores(root: Store) -> list[str]:
    """The run prefixes of a store root: every ``runs/.../spec.json``'s folder."""
    return sorted(
        key.removesuffix(f"/{SPEC_KEY}")
        for key in root.list("runs")
        if key.endswith(f"/{SPEC_KEY}") and key.count("/") in (2, 3)
    )


def locate_run(target: str) -> tuple[Store, str]:
    """(the run's own store, its name) from a run's URI (``.../runs/[<ns>/]<name>``) or a root.

    A store root must hold exactly one run; otherwise the error lists the runs' URIs.
    """
    text = target.rstrip("/")
    store = open_store(text or ".")
    if store.exists(SPEC_KEY):
        return store, text.rsplit("/", 1)[-1]
    runs = run_stores(store)
    if len(runs) != 1:
        listed = ", ".join(f"{text}/{prefix}" for prefix in runs) or "none"
        raise ValueError(f"{target} is not a run; name one of the runs it holds: {listed}")
    return store.child(runs[0]), runs[0].rsplit("/", 1)[-1]


__all__ = [
    "data_source",
    "drive",
    "finish_report",
    "local_identity",
    "locate_run",
    "progress_line",
    "resolve_paths",
    "run_stores",
]
