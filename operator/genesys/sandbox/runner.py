"""The parent side of the sandbox: run design checks in a confined child process.

:func:`check_design` runs the static checks here (they never execute code); only when they pass
does it start ``python -I -m genesys_trainer.checks.child`` in a fresh temporary directory, with
a scrubbed environment, rlimits (applied by the child's trusted bootstrap), a wall-clock timeout
and a report pipe. Whatever the child does (crash, OOM, infinite loop, fork bomb, gigabytes of
output), the parent gets a :class:`~genesys.sandbox.report.Report`: a failing ``sandbox`` finding
with the reason when no report came back.

What must stay true: this module imports no torch and executes no design code; the child's
process group is killed on timeout; the temporary directory is always removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genesys.api.discoveryrun import Checks
from genesys.api.ladder import RungConfig
from genesys.sandbox.env import scrubbed_env
from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.static import check_design_document

GIB = 1024**3
MAX_REPORT_BYTES = 16 * 1024 * 1024
SIGNAL_REASONS = {
    signal.SIGKILL: "killed (memory exhausted, or the wall-clock timeout)",
    signal.SIGXCPU: "exceeded the CPU-time limit",
    signal.SIGXFSZ: "exceeded the file-size limit (too much output)",
    signal.SIGSEGV: "crashed with a segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "crashed with a bus error",
}


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Limits of one sandboxed check run."""

    timeout_seconds: float = 900.0
    memory_bytes: int = 8 * GIB
    cpu_seconds: int | None = None  # default: threads x timeout
    max_processes: int = 256  # counts threads; enforced once root is dropped
    max_file_bytes: int = 64 * 1024 * 1024
    threads: int = 2
    network_namespace: bool = True
    drop_privileges: bool = True

    def for_child(self) -> dict[str, Any]:
        """The limits the child's bootstrap applies to itself."""
        limits = asdict(self)
        limits["cpu_seconds"] = self.cpu_seconds or int(self.threads * self.timeout_seconds) + 30
        return limits


def limits_from_checks(checks: Checks, **overrides: Any) -> SandboxLimits:
    """The sandbox limits a run's check settings ask for (``overrides`` win)."""
    from genesys.quantities import memory_bytes

    values: dict[str, Any] = {
        "timeout_seconds": checks.sandbox_timeout_seconds,
        "memory_bytes": memory_bytes(checks.sandbox_memory),
    }
    return SandboxLimits(**{**values, **overrides})


def check_settings(checks: Checks) -> dict[str, Any]:
    """The check settings the sandbox child reads (snake_case field names)."""
    return checks.model_dump(by_alias=False)


def rung_request(rung: RungConfig) -> dict[str, Any]:
    """The rung part of a child request: the resolved rung, as the run config holds it."""
    return rung.model_dump(mode="json")


def _read_capped(stream: Any, sink: bytearray, limit: int) -> None:
    while chunk := stream.read(65536):
        if len(sink) < limit:
            sink.extend(chunk[: limit - len(sink)])


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _failure_reason(returncode: int | None, timed_out: bool, timeout: float) -> str:
    if timed_out:
        return f"timed out after {timeout:.0f}s (infinite loop or far too slow)"
    if returncode is not None and returncode < 0:
        signal_number = -returncode
        reason = SIGNAL_REASONS.get(
            signal.Signals(signal_number), f"killed by signal {signal_number}"
        )
        return f"the check process {reason}"
    return f"the check process exited with status {returncode} without a report"


def run_child(
    request: Mapping[str, Any], limits: SandboxLimits, *, environ: Mapping[str, str] | None = None
) -> Report:
    """Run one request in the sandbox child; always return a report."""
    directory = Path(tempfile.mkdtemp(prefix="genesys-sandbox-"))
    start = time.perf_counter()
    try:
        (directory / "request.json").write_text(
            json.dumps({**request, "limits": limits.for_child()}), encoding="utf-8"
        )
        read_end, write_end = os.pipe()
        env = scrubbed_env(
            os.environ if environ is None else environ,
            {
                "HOME": str(directory),
                "TMPDIR": str(directory),
                "OMP_NUM_THREADS": str(limits.threads),
            },
        )
        command = [
            sys.executable,
            "-I",
            "-m",
            "genesys_trainer.checks.child",
            "--request",
            "request.json",
            "--report-fd",
            str(write_end),
        ]
        with (directory / "output.log").open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                start_new_session=True,
            )
        os.close(write_end)
        received = bytearray()
        with os.fdopen(read_end, "rb") as pipe:
            reader = threading.Thread(target=_read_capped, args=(pipe, received, MAX_REPORT_BYTES))
            reader.start()
            timed_out = False
            try:
                process.wait(timeout=limits.timeout_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the whole group, forks included
                process.wait()
            reader.join(timeout=10)
        report = _parse_report(bytes(received))
        if report is None:
            reason = _failure_reason(process.returncode, timed_out, limits.timeout_seconds)
            tail = _tail(directory / "output.log")
            report = Report()
            report.add(
                Finding(
                    "sandbox",
                    Status.FAIL,
                    reason + (f"; output ends: {tail[-500:]}" if tail else ""),
                    hint="the design must finish within the sandbox's limits",
                )
            )
        report.timings["sandbox_total"] = time.perf_counter() - start
        return report
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _parse_report(data: bytes) -> Report | None:
    if not data:
        return None
    try:
        document = json.loads(data.decode("utf-8"))
        return Report.from_json(document)
    except (ValueError, KeyError, TypeError):
        return None


def check_design(
    document: Mapping[str, Any],
    *,
    rung: RungConfig,
    settings: Mapping[str, Any] | None = None,
    limits: SandboxLimits | None = None,
    skip_static: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Static checks here, then (when they pass) dynamic checks in the sandbox child."""
    static = [] if skip_static else check_design_document(document)
    if static:
        report = Report(checks=static)
        report.info["sandbox"] = {"executed": False}
        return report
    request = {
        "design": dict(document),
        "rung": rung_request(rung),
        "settings": dict(settings or {}),
        "skip_static": True,  # the parent ran them
    }
    report = run_child(request, limits or SandboxLimits(), environ=environ)
    if not skip_static:
        passed = [
            Finding(name, Status.PASS, "clean") for name in ("format", "imports", "forbidden")
        ]
        report.checks[:0] = passed
    return report


__all__ = [
    "SandboxLimits",
    "check_design",
    "check_settings",
    "limits_from_checks",
    "run_child",
]
