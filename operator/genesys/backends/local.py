"""The local backend: design sessions as subprocesses, verifications as TorchX ``local_cwd`` jobs.

It executes the engine's actions on one machine and observes their results in the store:

- ``StartSession`` runs ``genesys agent design ...`` (the offline proposer, or an LLM session
  with only the spec's API-key variable added to its scrubbed environment) in its own process
  group; its outcome is ``runs/<run>/sessions/<id>/session.json``.
- ``StartVerification`` launches the trainer component (:func:`genesys_trainer.component.verify`)
  with TorchX's ``local_cwd`` scheduler; its outcome is ``.../verifications/<rung>/result.json``.
  A job that ends without a result, or with ``status: error``, is a failed attempt: it is
  recorded as ``.../verifications/<rung>/attempts/<n>.json`` and retried by the planner.
- The process groups of every child are written to ``<workdir>/.genesys/<run>-children.json``; a
  restarted driver kills the ones a crashed driver left, so no two writers share a key.

What must stay true: the backend decides nothing; all choices come from ``plan()``; every child
is keyed by the action's deterministic id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.ladder import resolve_ladder
from genesys.engine.actions import (
    Action,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import SEED_NAMES, Observed
from genesys.sandbox.env import scrubbed_env
from genesys.store.archive import (
    design_key,
    load_archive,
    run_prefix,
    run_spent_usd,
    verification_prefix,
)
from genesys.store.base import Store


class LocalBackend:
    """Runs a DiscoveryRun's children on this machine."""

    def __init__(
        self,
        run: DiscoveryRun,
        *,
        store: Store,
        store_uri: str,
        data_uri: str,
        workdir: Path,
        python: str = sys.executable,
        eval_limit: int | None = 200,
    ) -> None:
        self.run, self.store, self.store_uri = run, store, store_uri.rstrip("/")
        self.name = run.metadata.name
        self.data_uri, self.workdir, self.python = data_uri, workdir, python
        self.eval_limit = eval_limit
        self.rungs = {
            r.name: r
            for r in resolve_ladder(
                run.spec.ladder, vocab_size=run.spec.verification.data.vocab_size
            )
        }
        self.sessions: dict[str, subprocess.Popen[bytes]] = {}
        self.jobs: dict[tuple[str, str], Any] = {}
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
            key = f"{run_prefix(self.name)}/sessions/{session}/session.json"
            if not self.store.exists(key):
                tail = (self.logs / f"{session}.log").read_text(errors="replace")[-800:]
                self.store.put_text(
                    key,
                    json.dumps(
                        {
                            "status": "failed",
                            "design": None,
                            "reason": f"session exited with status {process.returncode}: {tail}",
                        }
                    ),
                )
        for (design, rung), handle in list(self.jobs.items()):
            status = self.runner.status(handle)
            if status is not None and not status.is_terminal():
                continue
            del self.jobs[(design, rung)]
            self._ingest_job(design, rung, str(status.state.name) if status else "UNKNOWN")
        archive = load_archive(self.store, self.name)
        return Observed(
            archive=archive,
            running_sessions=frozenset(self.sessions),
            running_jobs=frozenset(self.jobs),
            failed_attempts=self._failed_attempts(),
            spend_usd=run_spent_usd(self.store, self.name),
        )

    def _ingest_job(self, design: str, rung: str, state: str) -> None:
        prefix = verification_prefix(self.name, design, rung)
        result_key = f"{prefix}/result.json"
        result: dict[str, Any] | None = None
        if self.store.exists(result_key):
            result = json.loads(self.store.get_text(result_key))
        if result is not None and result.get("status") in ("succeeded", "failed"):
            return  # a finished verification (a guard stop is a result too)
        attempts = len(list(self.store.list(f"{prefix}/attempts")))
        reason = (result or {}).get("reason") or f"job ended {state} without a result"
        self.store.put_text(
            f"{prefix}/attempts/{attempts}.json", json.dumps({"state": state, "reason": reason})
        )
        self.store.delete(result_key)  # so the planner retries

    def _failed_attempts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for key in self.store.list(f"{run_prefix(self.name)}/designs"):
            parts = key.split("/")
            if len(parts) == 8 and parts[4] == "verifications" and parts[6] == "attempts":
                counts[(parts[3], parts[5])] = counts.get((parts[3], parts[5]), 0) + 1
        return counts

    # ------------------------------------------------------------------------------ apply

    def apply(self, actions: list[Action]) -> None:
        """Execute the actions (Finish is the driver's business)."""
        for action in actions:
            if isinstance(action, InitSeeds):
                self.init_seeds()
            elif isinstance(action, StartSession):
                self.start_session(action)
            elif isinstance(action, StartVerification):
                self.start_verification(action)
            elif isinstance(action, RecordFailure):
                key = f"{verification_prefix(self.name, action.design_id, action.rung)}/result.json"
                self.store.put_text(
                    key,
                    json.dumps(
                        {
                            "design": action.design_id,
                            "rung": action.rung,
                            "status": "error",
                            "reason": action.reason,
                        }
                    ),
                )

    def init_seeds(self) -> None:
        """Write the seed designs into the archive as ``seed-<name>``."""
        from genesys_trainer.seeds import load_seed  # torch-free: reads JSON

        for seq, name in enumerate(SEED_NAMES):
            document = load_seed(name).to_json()
            document["metadata"] = {
                **document["metadata"],
                "seq": seq,
                "operator": "seed",
                "parents": [],
                "title": document["metadata"]["title"],
            }
            self.store.put_text(
                design_key(self.name, f"seed-{name}", "design.json"), json.dumps(document, indent=2)
            )

    def start_session(self, action: StartSession) -> None:
        """Run one design session (offline or LLM, as the spec says) in a child process."""
        spec = self.run.spec
        lowest = next(iter(self.rungs))
        command = [
            self.python,
            "-m",
            "genesys",
            "agent",
            "design",
            "--store",
            self.store_uri,
            "--run",
            self.name,
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
            "--timeout",
            str(spec.checks.sandbox_timeout_seconds),
        ]
        if spec.agents.offline:
            command += [
                "--mode",
                "offline",
                "--rung",
                lowest,
                "--vocab",
                str(spec.verification.data.vocab_size),
                "--settings",
                json.dumps(spec.checks.model_dump(by_alias=False)),
            ]
        else:
            command += ["--mode", spec.sessions.flow]
        log = (self.logs / f"{action.session}.log").open("wb")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=scrubbed_env(os.environ, {**_store_env(), **_agent_env(self.run)}),
            cwd=self.workdir,
        )
        log.close()
        self.sessions[action.session] = process
        self._remember(process.pid)

    def start_verification(self, action: StartVerification) -> None:
        """Launch the trainer component with TorchX's local_cwd scheduler."""
        from genesys_trainer.component import verify

        rung = self.rungs[action.rung]
        spec = self.run.spec
        design_uri = f"{self.store_uri}/{design_key(self.name, action.design_id, 'design.json')}"
        out = f"{self.store_uri}/{verification_prefix(self.name, action.design_id, action.rung)}"
        extra = ["--seed", str(spec.seed), "--checkpoint-every-minutes", "2"]
        if self.eval_limit:
            extra += ["--eval-limit", str(self.eval_limit)]
        app = verify(
            design=design_uri,
            rung=action.rung,
            data=self.data_uri,
            out=out,
            tokens=rung.tokens or 0,
            python=self.python,
            attempt=action.attempt,
            cpu=max(1, int(float(spec.verification.resources.cpu))),
            env=_store_env(),
            extra_args=extra,
            name=action.design_id,
        )
        handle = self.runner.run(
            app, scheduler="local_cwd", cfg={"log_dir": str(self.logs / "jobs")}
        )
        self.jobs[(action.design_id, action.rung)] = handle
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
        for handle in self.jobs.values():
            with contextlib.suppress(Exception):
                self.runner.cancel(handle)


def _agent_env(run: DiscoveryRun) -> dict[str, str]:
    """The LLM endpoint settings an LLM session needs: its API key variable and base URL."""
    agents = run.spec.agents
    if agents.offline:
        return {}
    names = (agents.api_key_env, "OPENAI_BASE_URL")
    return {name: os.environ[name] for name in names if name in os.environ}


def _store_env() -> dict[str, str]:
    """Store settings the children need (never LLM keys: see _agent_env)."""
    names = (
        "GENESYS_S3_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "GENESYS_CORPUS_DIR",
    )
    return {name: os.environ[name] for name in names if name in os.environ}


__all__ = ["LocalBackend"]
