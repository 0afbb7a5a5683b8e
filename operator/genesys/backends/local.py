"""The local backend: design sessions as subprocesses, verifications as TorchX ``local_cwd`` jobs.

It executes the engine's actions on one machine and observes their results in the store:

- ``StartSession`` runs ``genesys agent design ...`` (the offline proposer, or an LLM session
  with only the spec's API-key variable added to its scrubbed environment) in its own process
  group; its outcome is ``sessions/<id>/session.json`` in the run's store.
- ``StartVerification`` launches the verification AppDef every backend shares
  (:func:`~genesys.backends.common.verification_app`) with TorchX's ``local_cwd`` scheduler,
  behind the operating-system boundary (``GENESYS_SANDBOX``, default ``bubblewrap``: the
  command runs under bwrap with its inputs read-only and only its output prefix writable, see
  :mod:`genesys.backends.sandboxed`; ``container`` and ``unconfined`` start the plain command);
  where the store or the data is in S3, the job gets a store grant issued at its start
  (:mod:`genesys.store.grant`), and under bubblewrap no store credential (the ``container`` and
  ``unconfined`` commands inherit the driver's environment);
  its outcome is ``designs/<id>/verifications/<rung>/result.json``. A job that ends without a
  result, or with ``status: error``, or that runs past its rung's ``deadlineSeconds`` (then it is
  cancelled), is a failed attempt: it is recorded as ``.../attempts/<n>.json`` and retried by
  the planner.
- The process groups of every child are written to ``<workdir>/.genesys/<run>-children.json``; a
  restarted driver kills the ones a crashed driver left, so no two writers share a key.

What must stay true: the backend decides nothing; all choices come from ``plan()``; every child
is keyed by the action's deterministic id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genesys.api.discoveryrun import DiscoveryRun
from genesys.backends import observability
from genesys.backends.common import (
    RunHandle,
    failed_attempts,
    record_session_end,
    record_verification_end,
    session_arguments,
    verification_app,
    write_failure,
    write_seeds,
)
from genesys.backends.sandboxed import confine, training_binds
from genesys.engine.actions import (
    Action,
    CancelVerification,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import Observed
from genesys.sandbox.boundary import Boundary, local_boundary, requested_boundary
from genesys.sandbox.env import scrubbed_env
from genesys.store.archive import (
    design_key,
    load_archive,
    run_spent_usd,
    session_key,
    verification_prefix,
)
from genesys.store.base import S3Store
from genesys.store.grant import StoreGrant, grant_env, is_s3, split_uri, training_grant


@dataclass(slots=True)
class LocalJob:
    """A running verification: its TorchX handle, and when it must end."""

    handle: str
    deadline: float  # time.monotonic() past which it is cancelled
    scratch: Path | None = None  # the sandbox's /sandbox, removed when the job ends


class LocalBackend:
    """Runs a DiscoveryRun's children on this machine."""

    def __init__(
        self,
        handle: RunHandle,
        *,
        workdir: Path,
        python: str = sys.executable,
        boundary: Boundary | str | None = None,
    ) -> None:
        """A backend for ``handle``'s run, with its logs and job scratch under ``workdir``.

        ``boundary`` is what trains design code (default ``GENESYS_SANDBOX``, else bubblewrap);
        it is checked when the first verification starts (``SandboxUnavailableError``).
        """
        self.handle, self.store = handle, handle.store
        self.boundary = requested_boundary(boundary)
        self._resolved: Boundary | None = None
        self.run: DiscoveryRun = handle.run
        self.name = handle.identity.name
        self.workdir, self.python = workdir, python
        self.sessions: dict[str, subprocess.Popen[bytes]] = {}
        self.jobs: dict[tuple[str, str], LocalJob] = {}
        self.logs = workdir / ".genesys" / "logs" / self.name
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children_file = workdir / ".genesys" / f"{self.name}-children.json"
        self._runner: Any = None
        self.kill_leftovers()

    # ------------------------------------------------------------------ children bookkeeping

    def kill_leftovers(self) -> None:
        """Kill the process groups a previous (crashed) driver left running."""
        if not self.children_file.exists():
            return
        try:
            groups = json.loads(self.children_file.read_text(encoding="utf-8"))
        except ValueError:
            groups = []
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(group), signal.SIGKILL)
        self.children_file.unlink(missing_ok=True)

    def _remember(self, pid: int) -> None:
        groups = []
        if self.children_file.exists():
            with contextlib.suppress(ValueError):
                groups = json.loads(self.children_file.read_text(encoding="utf-8"))
        groups.append(pid)
        self.children_file.write_text(json.dumps(groups), encoding="utf-8")

    @property
    def runner(self) -> Any:
        """The TorchX runner (created on first use)."""
        if self._runner is None:
            from torchx.runner import get_runner

            self._runner = get_runner()
        return self._runner

    # ---------------------------------------------------------------------------- observe

    def observe(self) -> Observed:
        """Poll children, record failures, and rebuild the archive from the store."""
        for session, process in list(self.sessions.items()):
            if process.poll() is None:
                continue
            del self.sessions[session]
            tail = ""
            if not self.store.exists(session_key(session)):
                tail = (self.logs / f"{session}.log").read_text(errors="replace")[-800:]
            record_session_end(
                self.store, session, f"session exited with status {process.returncode}: {tail}"
            )
            observability.ingest_session(self.store, self.handle.identity, session)
        now = time.monotonic()
        for (design, rung), job in list(self.jobs.items()):
            status = self.runner.status(job.handle)
            state = str(status.state.name) if status else "UNKNOWN"
            if status is not None and not status.is_terminal():
                if now < job.deadline:
                    continue
                self.runner.cancel(job.handle)
                limit = self.handle.config.rung(rung).deadline_seconds
                state = f"DeadlineExceeded (ran past the rung's deadlineSeconds={limit})"
            del self.jobs[(design, rung)]
            record_verification_end(self.store, design, rung, state, job=job.handle)
            observability.ingest_verification(self.store, self.handle.identity, design, rung)
            if job.scratch is not None:
                shutil.rmtree(job.scratch, ignore_errors=True)
        archive = load_archive(self.store, self.name)
        observed = Observed(
            archive=archive,
            running_sessions=frozenset(self.sessions),
            running_jobs=frozenset(self.jobs),
            failed_attempts=failed_attempts(self.store),
            spend_usd=run_spent_usd(self.store),
        )
        observability.set_gauges(self.handle.identity, observed)
        return observed

    # ------------------------------------------------------------------------------ apply

    def apply(self, actions: list[Action]) -> None:
        """Execute the actions (Finish is the driver's business)."""
        for action in actions:
            if isinstance(action, InitSeeds):
                observability.seeds_written(self.handle.identity, write_seeds(self.store))
            elif isinstance(action, StartSession):
                self.start_session(action)
            elif isinstance(action, StartVerification):
                self.start_verification(action)
            elif isinstance(action, RecordFailure):
                write_failure(self.store, action)
            elif isinstance(action, CancelVerification):
                self.cancel_verification(action)

    def cancel_verification(self, action: CancelVerification) -> None:
        """Stop a verification's job, if it runs, and record its error.

        Local jobs start at once and never wait for capacity, so the planner has no reason to
        cancel one here; the action is honoured all the same.
        """
        job = self.jobs.pop((action.design_id, action.rung), None)
        if job is not None:
            self.runner.cancel(job.handle)
        write_failure(self.store, action)

    def start_session(self, action: StartSession) -> None:
        """Run one design session (offline or LLM, as the run config says) in a child process."""
        command = [self.python, "-m", "genesys", *session_arguments(self.handle, action)]
        log = (self.logs / f"{action.session}.log").open("wb")
        observability.session_started(self.handle.identity, action)
        with observability.session_job_span(self.handle.identity, action) as trace_env:
            extra = {**_store_env(), **_agent_env(self.run), **_telemetry_env(), **trace_env}
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=scrubbed_env(os.environ, extra),
                cwd=self.workdir,
            )
        log.close()
        self.sessions[action.session] = process
        self._remember(process.pid)

    def training_app(
        self,
        action: StartVerification,
        grant: StoreGrant | None = None,
        trace_env: Mapping[str, str] | None = None,
    ) -> Any:
        """The TorchX AppDef of one verification: the shared one, run by this interpreter.

        Its environment has the store's endpoint settings, the trace context (``trace_env``)
        and, for a remote store or data, the job's store grant (:meth:`store_grant`), never
        the store's credentials.
        """
        env = {**_training_env(), **(trace_env or {})}
        if grant is not None:
            env.update(grant_env(grant))
        return verification_app(self.handle, action, python=self.python, env=env)

    def store_grant(self, action: StartVerification) -> StoreGrant | None:
        """A new grant of one verification, signed with this driver's store credentials.

        None when nothing the job reads or writes is in S3. The signer is the run's store, or
        for local runs with S3 data a store of the data's bucket.
        """
        handle = self.handle
        design = handle.uri(design_key(action.design_id, "design.json"))
        out = handle.uri(verification_prefix(action.design_id, action.rung))
        data = handle.config.data.uri
        remote = [uri for uri in (design, handle.config_uri, data, out) if is_s3(uri)]
        if not remote:
            return None
        signer = self.store if isinstance(self.store, S3Store) else S3Store(split_uri(remote[0])[0])
        return training_grant(
            signer,
            design=design,
            config=handle.config_uri,
            data=data,
            out=out,
            deadline_seconds=handle.config.rung(action.rung).deadline_seconds,
        )

    def scratch_dir(self, action: StartVerification) -> Path:
        """The sandbox's ``/sandbox`` of one verification attempt (beside the TorchX logs)."""
        name: str = self.training_app(action).name
        return self.logs / "sandbox" / name

    def launch_app(
        self,
        action: StartVerification,
        boundary: Boundary | None = None,
        grant: StoreGrant | None = None,
        trace_env: Mapping[str, str] | None = None,
    ) -> Any:
        """The AppDef local_cwd starts: :meth:`training_app`, confined by the boundary.

        Pure: it reads the machine (which binds exist) but creates nothing;
        :meth:`start_verification` makes the scratch and output directories first and issues
        the grant.
        """
        app = self.training_app(action, grant, trace_env)
        if (boundary or self.boundary) is not Boundary.BUBBLEWRAP:
            return app  # container / unconfined: today's plain process
        binds = training_binds(self.handle, action)
        return confine(app, binds, scratch=self.scratch_dir(action), python=self.python)

    def start_verification(self, action: StartVerification) -> None:
        """Launch the verification with TorchX's local_cwd scheduler, behind the boundary."""
        if self._resolved is None:
            self._resolved = local_boundary(self.boundary)
        scratch: Path | None = None
        if self._resolved is Boundary.BUBBLEWRAP:
            scratch = self.scratch_dir(action)
            shutil.rmtree(scratch, ignore_errors=True)  # a crashed driver's attempt
            scratch.mkdir(parents=True)
            for path in training_binds(self.handle, action).writable:
                Path(path).mkdir(parents=True, exist_ok=True)
        with observability.training_job_span(self.handle.identity, action) as trace_env:
            app = self.launch_app(action, self._resolved, self.store_grant(action), trace_env)
            handle = self.runner.run(
                app, scheduler="local_cwd", cfg={"log_dir": str(self.logs / "jobs")}
            )
        deadline = time.monotonic() + self.handle.config.rung(action.rung).deadline_seconds
        self.jobs[(action.design_id, action.rung)] = LocalJob(handle, deadline, scratch)
        for pid in self._job_pids(handle):
            self._remember(pid)

    def _job_pids(self, handle: str) -> list[int]:
        """Process ids (= process groups) of a local_cwd job, for crash cleanup."""
        try:
            scheduler = self.runner._scheduler("local_cwd")
            app = scheduler._apps[handle.rsplit("/", 1)[-1]]
            return [r.proc.pid for replicas in app.role_replicas.values() for r in replicas]
        except (AttributeError, KeyError, TypeError):  # torchx internals moved: no cleanup
            return []

    def stop(self) -> None:
        """Cancel every running child (on interrupt)."""
        for process in self.sessions.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        for job in self.jobs.values():
            with contextlib.suppress(Exception):
                self.runner.cancel(job.handle)


def _agent_env(run: DiscoveryRun) -> dict[str, str]:
    """The LLM endpoint settings an LLM session needs: its API key variable and base URL."""
    agents = run.spec.agents
    if agents.offline:
        return {}
    names = (agents.api_key_env, "OPENAI_BASE_URL")
    return {name: os.environ[name] for name in names if name in os.environ}


def _store_env() -> dict[str, str]:
    """Store settings a session needs (never LLM keys: see _agent_env)."""
    names = (
        "GENESYS_S3_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "GENESYS_CORPUS_DIR",
    )
    return {name: os.environ[name] for name in names if name in os.environ}


TRACE_FILE_VAR = "GENESYS_TRACE_FILE"
"""The trace file of ``genesys run --trace``, which session processes append their spans to."""


def _telemetry_env() -> dict[str, str]:
    """What a session process needs to export its spans like the driver does.

    Not the service name (each process names itself) nor the metrics exporter (the driver
    records the sessions' metrics from the store).
    """
    forwarded = ("OTEL_EXPORTER_OTLP_", "OTEL_TRACES_", "OTEL_RESOURCE_ATTRIBUTES")
    return {
        name: value
        for name, value in os.environ.items()
        if name.startswith(forwarded) or name in ("OTEL_SDK_DISABLED", TRACE_FILE_VAR)
    }


def _training_env() -> dict[str, str]:
    """Store settings a training job needs: no credential (its store grant replaces them)."""
    names = ("GENESYS_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "GENESYS_CORPUS_DIR")
    return {name: os.environ[name] for name in names if name in os.environ}


__all__ = ["LocalBackend"]
