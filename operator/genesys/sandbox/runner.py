"""The parent side of the sandbox: check a design in two isolated sandboxes, decide here.

:func:`check_design` runs the static checks here (they never execute code). When they pass it
draws the causality probes (:mod:`genesys.sandbox.probes`) and starts two sandboxes at once, each
behind the operating-system boundary (:mod:`genesys.sandbox.boundary`) in a fresh scratch
directory, each a supervisor that never runs design code plus one worker that does:

- the *reference* sandbox runs every check and the probes on the original tokens;
- the *perturbed* sandbox only composes, fits and runs the probes on the perturbed tokens.

The parent reads one size-capped report per sandbox over a pipe opened for it, checks its schema
and nonce (:mod:`genesys.sandbox.wire`), and decides batch independence and causality itself by
comparing the two sandboxes' digests. Whatever a sandbox does (crash, OOM, infinite loop, fork
bomb, gigabytes of output, a forged report), the result is a report: a failing ``sandbox``
finding with the reason when no believable report came back.

What must stay true: this module imports no torch and executes no design code; each sandbox is
killed as a whole at its wall-clock limit; its scratch directory is always removed; the only
bytes read from a sandbox are its report and a capped, sanitised tail of its output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genesys.api.discoveryrun import Checks
from genesys.api.ladder import RungConfig
from genesys.sandbox.boundary import (
    SANDBOX_DIR,
    Boundary,
    bwrap_command,
    requested_boundary,
    resolve_boundary,
    seccomp_file,
)
from genesys.sandbox.env import scrubbed_env
from genesys.sandbox.probes import LONGEST_SHORT_PROBE, ProbePlan, plan_probes, verdicts
from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.static import check_design_document
from genesys.sandbox.wire import MAX_REPORT_BYTES, SandboxReport, WireError, parse_sandbox_report

log = logging.getLogger(__name__)

GIB = 1024**3
MAX_LOG_BYTES = 64 * 1024
LOG_TAIL = 500


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Limits of one sandboxed check run."""

    timeout_seconds: float = 900.0
    memory_bytes: int = 8 * GIB
    cpu_seconds: int | None = None  # default: threads x timeout
    max_processes: int = 256  # counts threads; enforced once root is dropped
    max_file_bytes: int = 64 * 1024 * 1024
    threads: int = 2
    audit_guard: bool = True  # the worker's Python audit hook (defence in depth)
    scratch_bytes: int = GIB  # bubblewrap: size of the private working directory (a tmpfs)

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


@dataclass(slots=True)
class _Tail:
    """The last ``limit`` bytes of a sandbox's output, read by a thread."""

    limit: int
    data: bytearray = field(default_factory=bytearray)

    def run(self, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := stream.read(65536):
                self.data.extend(chunk)
                if len(self.data) > self.limit:
                    del self.data[: len(self.data) - self.limit]


def sanitised_tail(data: bytes, size: int = LOG_TAIL) -> str:
    """The last ``size`` printable characters of a sandbox's output (untrusted text)."""
    text = bytes(data[-4 * size :]).decode("utf-8", "replace")
    clean = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
    return clean.strip()[-size:]


def sandbox_environment(
    source: Mapping[str, str], boundary: Boundary, directory: Path, threads: int
) -> dict[str, str]:
    """The environment inside a sandbox: the allow-list, nothing secret."""
    inside = SANDBOX_DIR if boundary is Boundary.BUBBLEWRAP else str(directory)
    env = scrubbed_env(
        source,
        {
            "HOME": inside,
            "TMPDIR": "/tmp" if boundary is Boundary.BUBBLEWRAP else inside,
            "OMP_NUM_THREADS": str(threads),
            "GENESYS_SANDBOX_BOUNDARY": boundary.value,
        },
    )
    if boundary is Boundary.BUBBLEWRAP:
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def start_sandbox(
    directory: Path,
    boundary: Boundary,
    env: Mapping[str, str],
    report_fd: int,
    limits: SandboxLimits,
) -> subprocess.Popen[bytes]:
    """Start the supervisor behind ``boundary``; its output goes to a pipe.

    Its request comes on stdin. Under bubblewrap its working directory is a private tmpfs with
    ``directory/in`` bound read-only at ``in/``; otherwise it works in ``directory`` itself.
    """
    inner = [
        sys.executable,
        "-I",
        "-m",
        "genesys.sandbox.supervisor",
        "--request",
        "-",
        "--report-fd",
        str(report_fd),
    ]
    seccomp: int | None = None
    if boundary is Boundary.BUBBLEWRAP:
        seccomp = seccomp_file()
        command = bwrap_command(
            inner,
            scratch=directory / "in",
            env=env,
            seccomp_fd=seccomp,
            scratch_bytes=limits.scratch_bytes,
        )
        environment: Mapping[str, str] = {}
    else:
        command, environment = inner, env
    try:
        return subprocess.Popen(
            command,
            cwd=directory,
            env=dict(environment),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(report_fd,) if seccomp is None else (report_fd, seccomp),
            start_new_session=True,
        )
    finally:
        if seccomp is not None:
            os.close(seccomp)


class BaseSandbox:
    """A started sandbox, here or in a check pod: the messages it sent that were believed.

    A reader thread feeds :meth:`read_messages` the sandbox's report lines; subclasses start
    the sandbox and say how it ended (:meth:`reason`, :meth:`tail`) and how it is killed
    (:meth:`close`).
    """

    def __init__(self, limits: SandboxLimits, nonce: str | None = None) -> None:
        self.limits = limits
        self.started = time.perf_counter()
        self.nonce = nonce or secrets.token_hex(16)
        self.messages: dict[str, SandboxReport] = {}
        self.lines: dict[str, bytes] = {}  # each believed message as it came
        self.problem = ""
        self.closed = False
        self.changed = threading.Condition()

    def read_messages(self, stream: Any) -> None:
        """Believe each JSON line that passes :func:`parse_sandbox_report`, then stop."""
        problem = ""
        try:
            while line := stream.readline(MAX_REPORT_BYTES + 1):
                message = parse_sandbox_report(line, self.nonce)
                with self.changed:
                    if message.stage in self.messages:
                        raise WireError(f"the sandbox sent its {message.stage} message twice")
                    self.messages[message.stage] = message
                    self.lines[message.stage] = bytes(line)
                    self.changed.notify_all()
                if message.stage == "final":
                    break
        except WireError as exc:
            problem = str(exc)
        except (OSError, ValueError) as exc:
            problem = f"the report stream failed: {exc}"
        self.end(problem)

    def end(self, problem: str = "") -> None:
        """No more messages will come (``problem``: why, when it was not the final one)."""
        with self.changed:
            self.problem = self.problem or problem
            self.closed = True
            self.changed.notify_all()

    def wait(self, stages: set[str], deadline: float) -> SandboxReport | None:
        """The first message of one of ``stages``; None when the sandbox ended or time ran out."""
        with self.changed:
            while True:
                for stage in ("probes", "final"):
                    if stage in stages and stage in self.messages:
                        return self.messages[stage]
                if self.closed or "final" in self.messages:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.problem = (
                        f"the check timed out after {self.limits.timeout_seconds:.0f}s "
                        "(infinite loop or far too slow)"
                    )
                    return None
                self.changed.wait(timeout=remaining)

    def reason(self) -> str:
        """Why no believable message came."""
        raise NotImplementedError

    def tail(self) -> str:
        """The sanitised end of the sandbox's output."""
        raise NotImplementedError

    def close(self) -> float:
        """Kill the whole sandbox and remove what it left; the seconds it lived."""
        raise NotImplementedError


class Sandbox(BaseSandbox):
    """One running sandbox on this machine: its supervisor's messages, and its cleanup.

    ``nonce`` is the one the messages must carry (default: a fresh one); a check server passes
    its client's, so that the client can check the messages it relays.
    """

    def __init__(
        self,
        request: Mapping[str, Any],
        limits: SandboxLimits,
        boundary: Boundary,
        *,
        environ: Mapping[str, str] | None = None,
        prepare: Callable[[Path], Mapping[str, Any]] | None = None,
        nonce: str | None = None,
    ) -> None:
        super().__init__(limits, nonce)
        self.directory = Path(tempfile.mkdtemp(prefix="genesys-sandbox-"))
        self.output = _Tail(MAX_LOG_BYTES)
        os.chmod(self.directory, 0o700)
        inputs = self.directory / "in"
        inputs.mkdir()
        extra = dict(prepare(inputs)) if prepare is not None else {}
        payload = {**request, **extra, "limits": limits.for_child(), "nonce": self.nonce}
        env = sandbox_environment(
            os.environ if environ is None else environ, boundary, self.directory, limits.threads
        )
        read_end, write_end = os.pipe()
        try:
            self.process = start_sandbox(self.directory, boundary, env, write_end, limits)
        except BaseException:
            os.close(read_end)
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        finally:
            os.close(write_end)
        self._send_request(json.dumps(payload).encode("utf-8"))
        self.pipe = os.fdopen(read_end, "rb")
        self.readers = [
            threading.Thread(target=self.read_messages, args=(self.pipe,), daemon=True),
            threading.Thread(target=self.output.run, args=(self.process.stdout,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _send_request(self, data: bytes) -> None:
        """The request goes over the supervisor's stdin, never to a file it could leave behind."""
        stdin = self.process.stdin
        assert stdin is not None

        def send() -> None:
            with contextlib.suppress(OSError):
                stdin.write(data)
            with contextlib.suppress(OSError):
                stdin.close()

        threading.Thread(target=send, daemon=True).start()

    def reason(self) -> str:
        """Why no believable message came."""
        if self.problem:
            return self.problem
        code = self.process.poll()
        if code is not None and code < 0:
            return f"the sandbox was killed by signal {-code}"
        return f"the sandbox exited with status {code} without a report"

    def tail(self) -> str:
        """The sanitised end of the sandbox's output."""
        return sanitised_tail(bytes(self.output.data))

    def close(self) -> float:
        """Kill the whole sandbox, remove its scratch directory; the seconds it lived."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # bwrap: the whole pid namespace
        self.process.wait()
        for reader in self.readers:
            reader.join(timeout=5)
        for stream in (self.pipe, self.process.stdout, self.process.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        return time.perf_counter() - self.started


def open_sandbox(
    request: Mapping[str, Any],
    limits: SandboxLimits,
    boundary: Boundary,
    *,
    environ: Mapping[str, str] | None = None,
    prepare: Callable[[Path], Mapping[str, Any]] | None = None,
) -> BaseSandbox:
    """A sandbox on this machine, or in the session's check pod for the ``remote`` boundary."""
    if boundary is Boundary.REMOTE:
        from genesys.sandbox.remote import RemoteSandbox

        return RemoteSandbox(request, limits, environ=environ, prepare=prepare)
    return Sandbox(request, limits, boundary, environ=environ, prepare=prepare)


PROBED_AFTER = ("compose", "param_fit", "forward", "unit_tests")
EXPECTED_CHECKS = (
    "compose",
    "param_fit",
    "forward",
    "unit_tests",
    "batch_independence",
    "causality",
    "differentiability",
    "complexity",
    "effectiveness",
)


def unprobed(report: Report) -> Report:
    """A report that ended before the probes: it must say why, or it is not believed."""
    if report.passed:
        return sandbox_failure("the check ended without running the causality probes")
    return report


def complete(report: Report) -> Report:
    """A passing report must hold every check; one that skipped some is not believed."""
    missing = [name for name in EXPECTED_CHECKS if name not in {f.name for f in report.checks}]
    if report.passed and missing:
        return sandbox_failure(f"the report lacks checks: {', '.join(missing)}")
    return report


def sandbox_failure(reason: str, tail: str = "") -> Report:
    """A report holding one failing ``sandbox`` finding."""
    report = Report()
    report.add(
        Finding(
            "sandbox",
            Status.FAIL,
            reason + (f"; output ends: {tail}" if tail else ""),
            hint="the design must finish within the sandbox's limits, and only compute",
        )
    )
    return report


def believed(message: SandboxReport) -> Report:
    """A message's report, or a sandbox failure when it contradicts itself."""
    try:
        return message.report.to_report()
    except WireError as exc:
        return sandbox_failure(str(exc))


def probe_verdicts(
    plan: ProbePlan, reference: SandboxReport, perturbed: BaseSandbox, deadline: float
) -> list[Finding]:
    """Batch independence and causality from the two sandboxes' digests."""
    final = perturbed.wait({"final"}, deadline)
    if final is None:
        reason = f"the perturbed-probe sandbox gave no report: {perturbed.reason()}"
        return [Finding("sandbox", Status.FAIL, reason)]
    other = believed(final)
    probes = perturbed.messages.get("probes")
    if not other.passed or probes is None:
        first = other.failed()[0] if not other.passed else Finding("probes", Status.FAIL, "none")
        message = f"the design behaves differently in a second fresh process: {first.message}"
        hint = "a design must be deterministic and keep no state between runs"
        return [Finding("causality", Status.FAIL, message, first.unit, first.line, hint)]
    if probes.fit != reference.fit:
        message = (
            f"two fresh processes fitted the design to different shapes "
            f"({reference.fit} and {probes.fit})"
        )
        return [Finding("causality", Status.FAIL, message, hint="a design must be deterministic")]
    return verdicts(plan, reference.digests, probes.digests)


def with_verdicts(report: Report, decided: list[Finding]) -> Report:
    """``report`` with the verdicts after the checks they follow (nothing after a failure).

    A failure before the verdicts' place is the report's first failure, and the verdicts are
    left out; a failure after it (effectiveness, say) does not hide them.
    """
    position = 0
    for index, finding in enumerate(report.checks):
        if finding.name in PROBED_AFTER:
            position = index + 1
    if any(finding.status == Status.FAIL for finding in report.checks[:position]):
        return report
    if any(finding.status == Status.FAIL for finding in decided):
        report.checks[position:] = decided
    else:
        report.checks[position:position] = decided
    return report


def leaks(decided: list[Finding]) -> bool:
    """True when a verdict found a leak, so the other checks need not finish.

    A block whose output ignores its input is not stopped early: the reference sandbox's own
    checks (a NaN forward, say) usually say better what is wrong.
    """
    return any(f.status == Status.FAIL and "does not depend" not in f.message for f in decided)


def with_probe_facts(report: Report, plan: ProbePlan, timings: Mapping[str, float]) -> Report:
    """``report`` with the probes' timings and sizes (``info["probes"]``) added."""
    report.timings.update(timings)
    short = next(p for p in plan.probes if p.name == "short-eval")
    report.info["probes"] = {"count": len(plan.probes), "short_length": short.reference.shape[1]}
    return report


def run_probed_check(
    request: Mapping[str, Any],
    limits: SandboxLimits,
    boundary: Boundary,
    environ: Mapping[str, str] | None,
    rung: RungConfig,
) -> Report:
    """The reference and perturbed sandboxes side by side; stop as soon as the verdict fails."""
    longest = int(request["settings"].get("causality_length", LONGEST_SHORT_PROBE))
    plan = plan_probes(
        rung.context_length,
        rung.vocab_size,
        batch_tokens=rung.batch_tokens,
        longest_short=longest,
    )
    deadline = time.monotonic() + limits.timeout_seconds

    def sandbox(role: str, side: str) -> BaseSandbox:
        return open_sandbox(
            {**request, "role": role},
            limits,
            boundary,
            environ=environ,
            prepare=lambda d: {"probes": plan.write(d, side)},
        )

    reference = sandbox("checks", "reference")
    try:
        perturbed = sandbox("probe", "perturbed")
    except BaseException:
        reference.close()
        raise
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        first = reference.wait({"probes", "final"}, deadline)
        if first is None:
            return sandbox_failure(reference.reason(), reference.tail())
        if first.stage == "final":  # failed before the probes, or a forged early end
            return unprobed(believed(first))
        decided = [
            replace(finding, unit=finding.unit or request["design"].get("root"))
            for finding in probe_verdicts(plan, first, perturbed, deadline)
        ]
        timings["sandbox_perturbed"] = perturbed.close()
        timings["causality"] = time.perf_counter() - started
        if leaks(decided):
            return with_probe_facts(with_verdicts(believed(first), decided), plan, timings)
        final = reference.wait({"final"}, deadline)
        if final is None:
            return sandbox_failure(reference.reason(), reference.tail())
        return with_probe_facts(complete(with_verdicts(believed(final), decided)), plan, timings)
    finally:
        perturbed.close()
        reference.close()


def check_design(
    document: Mapping[str, Any],
    *,
    rung: RungConfig,
    settings: Mapping[str, Any] | None = None,
    limits: SandboxLimits | None = None,
    skip_static: bool = False,
    environ: Mapping[str, str] | None = None,
    boundary: Boundary | str | None = None,
) -> Report:
    """Static checks here, then (when they pass) the dynamic checks in two sandboxes.

    ``boundary`` (default: ``GENESYS_SANDBOX``, else bubblewrap) is resolved before anything
    runs: :class:`~genesys.sandbox.boundary.SandboxUnavailableError` when it cannot be set up.
    """
    static = [] if skip_static else check_design_document(document)
    if static:
        report = Report(checks=static)
        report.info["sandbox"] = {"executed": False}
        return report
    mode = resolve_boundary(requested_boundary(boundary, environ), environ)
    request = {
        "design": dict(document),
        "rung": rung_request(rung),
        "settings": dict(settings or {}),
    }
    start = time.perf_counter()
    report = run_probed_check(request, limits or SandboxLimits(), mode, environ, rung)
    report.timings["sandbox_total"] = time.perf_counter() - start
    report.info["sandbox"] = {"executed": True, "boundary": mode.value}
    if mode is Boundary.UNCONFINED:
        log.warning("design code ran without an operating-system boundary (unconfined mode)")
        report.checks.insert(
            0,
            Finding(
                "sandbox",
                Status.WARN,
                "unconfined: no operating-system boundary (explicitly allowed); design code ran "
                "as a plain child process with a scrubbed environment and rlimits",
                hint="install bubblewrap, or check in a pod without secrets",
            ),
        )
    if not skip_static:
        passed = [
            Finding(name, Status.PASS, "clean") for name in ("format", "imports", "forbidden")
        ]
        report.checks[:0] = passed
    return report


__all__ = [
    "BaseSandbox",
    "Sandbox",
    "SandboxLimits",
    "check_design",
    "check_settings",
    "limits_from_checks",
    "open_sandbox",
]
