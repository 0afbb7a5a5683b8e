"""The sandbox's supervisor: the one trusted process inside the boundary; it never runs design code.

Started by :mod:`genesys.sandbox.runner` as ``python -I -m genesys.sandbox.supervisor --request
FILE --report-fd N`` inside the sandbox (bubblewrap, a check container, or the unconfined
process mode). It:

1. reads the request and deletes it, so the nonce is gone from the file system;
2. makes itself non-dumpable, so no other process of the same user can read its memory or
   descriptors (``/proc/<pid>/mem``, ``/proc/<pid>/fd``, ptrace);
3. starts the worker (:mod:`genesys_trainer.checks.worker`) with rlimits and a pipe of its own,
   never the report pipe;
4. reads the worker's size-capped frames, validates them and hashes the probes' hidden states
   itself (:mod:`genesys.sandbox.wire`), passing each on to the parent as a message with the
   nonce (the probes as soon as they exist, so the parent can stop early);
5. kills every other process of the sandbox, and ends with a ``final`` message: the worker's,
   or a failing ``sandbox`` finding saying why there is none.

What must stay true: no torch and no design code in this process; whatever the worker does
(crash, hang, garbage, a forged report), the parent gets a well-formed report or none.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import queue
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.wire import (
    ProbeShape,
    ReportModel,
    SandboxReport,
    WireError,
    WorkerResult,
    hidden_digests,
    read_frame,
)

PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.25  # how often the supervisor looks at the sandbox's memory
WORKER_REQUEST = "worker-request.json"
WORKER_LOG = "worker.log"
SIGNAL_REASONS = {
    signal.SIGKILL: "was killed (memory exhausted, or the wall-clock timeout)",
    signal.SIGXCPU: "exceeded the CPU-time limit",
    signal.SIGXFSZ: "exceeded the file-size limit (too much output)",
    signal.SIGSEGV: "crashed with a segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "crashed with a bus error",
    signal.SIGSYS: "made a forbidden system call",
}


def set_dumpable(enabled: bool) -> bool:
    """``prctl(PR_SET_DUMPABLE)``; True when it took effect."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_DUMPABLE, int(enabled), 0, 0, 0) == 0)


def child_limits(limits: dict[str, Any]) -> dict[int, int]:
    """The rlimits of the worker."""
    wanted = {
        resource.RLIMIT_AS: limits.get("memory_bytes"),
        resource.RLIMIT_CPU: limits.get("cpu_seconds"),
        resource.RLIMIT_NPROC: limits.get("max_processes"),
        resource.RLIMIT_FSIZE: limits.get("max_file_bytes"),
        resource.RLIMIT_CORE: 0,
    }
    return {which: int(value) for which, value in wanted.items() if value is not None}


def apply_limits(limits: dict[int, int]) -> None:
    """Apply rlimits to this process, and die with the supervisor (between fork and exec)."""
    for which, value in limits.items():
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def resident_bytes() -> int:
    """Resident memory of every process in this pid namespace (``VmRSS``)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue
    return total


def failure_reason(returncode: int | None, timed_out: bool, timeout: float) -> str:
    """Why the worker gave no result."""
    if timed_out:
        return f"the check timed out after {timeout:.0f}s (infinite loop or far too slow)"
    if returncode is not None and returncode < 0:
        try:
            reason = SIGNAL_REASONS.get(signal.Signals(-returncode), f"got signal {-returncode}")
        except ValueError:
            reason = f"got signal {-returncode}"
        return f"the check process {reason}"
    return f"the check process exited with status {returncode} without a result"


def kill_others(worker: subprocess.Popen[bytes], own_namespace: bool) -> None:
    """Kill the worker and everything it started (in our own pid namespace: every process)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)
    if own_namespace:
        keep = {os.getpid(), os.getppid(), 1}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) not in keep:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        worker.wait(timeout=10)


def start_worker(request: dict[str, Any]) -> tuple[subprocess.Popen[bytes], int]:
    """Start the worker with rlimits; (the process, the read end of its result pipe).

    The worker's output goes to ``worker.log`` in the scratch directory, under the file-size
    limit, so a design that prints without end is stopped by the kernel.
    """
    Path(WORKER_REQUEST).write_text(json.dumps(request), encoding="utf-8")
    log = os.open(WORKER_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    read_end, write_end = os.pipe()
    rlimits = child_limits(request.get("limits", {}))
    command = [
        sys.executable,
        "-I",
        "-m",
        "genesys_trainer.checks.worker",
        "--request",
        WORKER_REQUEST,
        "--result-fd",
        str(write_end),
    ]
    try:
        worker = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
            preexec_fn=lambda: apply_limits(rlimits),
        )
    finally:
        os.close(write_end)
        os.close(log)
    return worker, read_end


def log_tail(size: int = 500) -> str:
    """The printable end of the worker's log (never following a link the worker made)."""
    try:
        descriptor = os.open(WORKER_LOG, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return ""
        handle.seek(max(0, status.st_size - 4 * size))
        text = handle.read(4 * size).decode("utf-8", "replace")
    clean = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
    return clean.strip()[-size:]


def read_frames(pipe: BinaryIO, frames: queue.Queue[tuple[str, Any]]) -> None:
    """Put every frame of the worker on ``frames``, then ``("end", reason)``."""
    try:
        while (frame := read_frame(pipe)) is not None:
            frames.put(("frame", frame))
            if frame[0].stage == "final":
                break
        frames.put(("end", ""))
    except (WireError, OSError, ValueError) as exc:
        frames.put(("end", str(exc)))


def probe_digests(
    result: WorkerResult, blob: bytes, wanted: list[dict[str, Any]]
) -> dict[str, list[list[str]]]:
    """Digests of every requested probe, checking each shape against the request."""
    shapes: dict[str, ProbeShape] = {shape.name: shape for shape in result.probes}
    digests = {}
    for probe in wanted:
        shape = shapes.get(probe["name"])
        if shape is None:
            raise WireError(f"the worker sent no output for probe {probe['name']}")
        if (shape.rows, shape.length) != (probe["rows"], probe["length"]):
            raise WireError(f"probe {shape.name} has the wrong shape")
        digests[shape.name] = hidden_digests(blob, shape)
    return digests


def non_finite(blob: bytes, shapes: list[ProbeShape]) -> str | None:
    """The first probe whose hidden states hold NaN or inf, checked here, not by the worker."""
    for shape in shapes:
        count = shape.rows * shape.length * shape.width
        values = np.frombuffer(blob, dtype="<f4", count=count, offset=shape.offset)
        if not np.isfinite(values).all():
            return shape.name
    return None


def failed_report(reason: str) -> ReportModel:
    """A report holding one failing ``sandbox`` finding."""
    report = Report()
    hint = "the design must finish within the sandbox's limits, and only compute"
    report.add(Finding("sandbox", Status.FAIL, reason, hint=hint))
    return ReportModel.model_validate(report.to_json())


class Supervision:
    """One worker, watched: its frames become messages to the parent."""

    def __init__(self, request: dict[str, Any], nonce: str, emit: Any, own_namespace: bool):
        self.request, self.nonce, self.emit = request, nonce, emit
        self.own_namespace = own_namespace
        self.probes_sent = False

    def message(self, stage: Literal["probes", "final"], report: ReportModel, **extra: Any) -> None:
        """Send one message to the parent."""
        self.emit(SandboxReport(nonce=self.nonce, stage=stage, report=report, **extra))

    def on_frame(self, result: WorkerResult, blob: bytes) -> bool:
        """Handle one frame; True when it was the final one."""
        if result.stage == "final":
            self.message("final", result.report, fit=result.fit)
            return True
        if self.probes_sent:
            raise WireError("the worker sent its probes twice")
        wanted = (self.request.get("probes") or {}).get("probes", [])
        digests = probe_digests(result, blob, wanted)
        bad = non_finite(blob, result.probes)
        if bad is not None:
            hint = "guard divisions, logs and exps; normalise"
            message = f"the block's output holds NaN or inf on finite input (probe {bad})"
            report = Report([Finding("forward", Status.FAIL, message, hint=hint)])
            self.message("final", ReportModel.model_validate(report.to_json()))
            return True
        self.message("probes", result.report, digests=digests, fit=result.fit)
        self.probes_sent = True
        return False

    def over_memory(self) -> str:
        """Why the sandbox's processes together use too much memory, or empty.

        ``RLIMIT_AS`` bounds each process; in our own pid namespace every process is ours, so
        their resident memory is summed here too (a bomb split over children is stopped).
        """
        limit = self.request.get("limits", {}).get("memory_bytes")
        if not self.own_namespace or not limit:
            return ""
        used = resident_bytes()
        if used <= int(limit):
            return ""
        return (
            f"the sandbox's processes together exceeded the memory limit "
            f"({used / 2**30:.1f} GiB resident, limit {int(limit) / 2**30:.1f} GiB)"
        )

    def run(self) -> None:
        """Run the worker to its final frame, a failure or the deadline."""
        limit = float(self.request.get("limits", {}).get("timeout_seconds", 900))
        timeout = max(5.0, limit * 0.95 - 3)
        deadline = time.monotonic() + timeout
        worker, read_end = start_worker(self.request)
        frames: queue.Queue[tuple[str, Any]] = queue.Queue()
        pipe = os.fdopen(read_end, "rb")
        threading.Thread(target=read_frames, args=(pipe, frames), daemon=True).start()
        problem, timed_out = "", False
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    kind, item = frames.get(timeout=max(0.0, min(WATCH_SECONDS, remaining)))
                except queue.Empty:
                    if remaining <= WATCH_SECONDS:
                        timed_out = True
                        break
                    problem = self.over_memory()
                    if problem:
                        break
                    continue
                if kind == "end":
                    problem = item
                    break
                if self.on_frame(*item):
                    return
        except WireError as exc:
            problem = str(exc)
        finally:
            kill_others(worker, self.own_namespace)
        crashed = worker.returncode not in (0, None) and "truncated" in problem
        if timed_out or not problem or crashed:
            problem = failure_reason(worker.returncode, timed_out, limit)
        tail = log_tail()
        self.message("final", failed_report(problem + (f"; output ends: {tail}" if tail else "")))


def main(argv: list[str] | None = None) -> int:
    """Supervise one check; the report goes to the report pipe."""
    parser = argparse.ArgumentParser(prog="genesys.sandbox.supervisor")
    parser.add_argument("--request", required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    args = parser.parse_args(argv)
    if args.request == "-":  # the parent's pipe: the nonce never touches a file
        request = json.loads(sys.stdin.buffer.read())
        sys.stdin.close()
    else:
        request_path = Path(args.request)
        request = json.loads(request_path.read_text(encoding="utf-8"))
        request_path.unlink()
    nonce = str(request.pop("nonce"))
    report_pipe = os.fdopen(args.report_fd, "w", encoding="utf-8")
    os.set_inheritable(args.report_fd, False)
    set_dumpable(False)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    own_namespace = os.environ.get("GENESYS_SANDBOX_BOUNDARY") == "bubblewrap"

    def emit(message: SandboxReport) -> None:
        report_pipe.write(message.model_dump_json() + "\n")
        report_pipe.flush()

    Supervision(request, nonce, emit, own_namespace).run()
    report_pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
