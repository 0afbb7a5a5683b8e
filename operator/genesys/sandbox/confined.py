"""Run one short command that executes design code behind the boundary (``genesys designs``).

:func:`run_confined` copies the input files it is given into a fresh scratch directory, rewrites
their arguments to the copies, and runs the command there: under bubblewrap (no network, no
secrets, read-only system, nothing of the caller's directories but the copies) or, when the
boundary is ``container`` or ``unconfined``, as a plain child with a scrubbed environment. Its
output comes back capped.

What must stay true: the caller's files are never bound into the sandbox, only copied; the
scratch directory is always removed; a timeout kills the whole sandbox.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genesys.sandbox.boundary import (
    SANDBOX_DIR,
    Boundary,
    bwrap_command,
    local_boundary,
    requested_boundary,
    seccomp_file,
)
from genesys.sandbox.env import scrubbed_env

MAX_OUTPUT = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConfinedResult:
    """What a confined command printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def copy_inputs(arguments: Sequence[str], scratch: Path, inside: str) -> list[str]:
    """Arguments with every existing file replaced by a copy in ``scratch`` (seen at ``inside``)."""
    rewritten = []
    for index, argument in enumerate(arguments):
        path = Path(argument)
        if not argument.startswith("-") and path.is_file():
            folder = scratch / f"input-{index}"
            folder.mkdir()
            shutil.copyfile(path, folder / path.name)
            rewritten.append(f"{inside}/input-{index}/{path.name}")
        else:
            rewritten.append(argument)
    return rewritten


def run_confined(
    command: Sequence[str],
    arguments: Sequence[str],
    *,
    boundary: Boundary | str | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> ConfinedResult:
    """Run ``command + arguments`` behind the boundary; file arguments travel as copies."""
    mode = local_boundary(requested_boundary(boundary, environ), environ)
    scratch = Path(tempfile.mkdtemp(prefix="genesys-confined-"))
    try:
        os.chmod(scratch, 0o700)
        confined = mode is Boundary.BUBBLEWRAP
        inside = SANDBOX_DIR if confined else str(scratch)
        argv = [*command, *copy_inputs(arguments, scratch, inside)]
        env = scrubbed_env(os.environ if environ is None else environ, {"HOME": inside})
        seccomp: int | None = None
        if confined:
            seccomp = seccomp_file()
            env["TMPDIR"] = "/tmp"
            argv = bwrap_command(argv, scratch=scratch, env=env, seccomp_fd=seccomp)
            env = {}
        try:
            process = subprocess.Popen(
                argv,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=() if seccomp is None else (seccomp,),
                start_new_session=True,
            )
        finally:
            if seccomp is not None:
                os.close(seccomp)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            stderr += f"\nerror: timed out after {timeout:.0f}s\n".encode()
        return ConfinedResult(
            process.returncode,
            stdout[:MAX_OUTPUT].decode("utf-8", "replace"),
            stderr[-MAX_OUTPUT:].decode("utf-8", "replace"),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["ConfinedResult", "run_confined"]
