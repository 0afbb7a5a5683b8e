"""The sandbox child: confine this process, then check untrusted design code inside it.

Started by :mod:`genesys.sandbox.runner` as ``python -I -m genesys_trainer.checks.child
--request FILE --report-fd N`` in a private temporary directory, with a scrubbed environment.
Before any design code runs, this trusted bootstrap:

1. sets rlimits: address space, CPU seconds, processes, file size, no core files;
2. moves into a new network namespace where the kernel allows it (so no network at all);
3. imports everything it needs, then drops root to ``nobody`` when started as root;
4. installs a ``sys.addaudithook`` guard refusing sockets, subprocesses, exec/spawn/fork,
   ctypes, signals to other processes, writes outside the sandbox directory and reads outside
   the Python installation and the sandbox directory.

It then runs the static checks again (unless told the parent ran them) and the dynamic checks,
and writes the JSON report to the report pipe. What must stay true: the guard is installed before
design code is compiled, and nothing here trusts anything the design returns.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any

import torch

import genesys
import genesys_trainer
from genesys.api.ladder import RungConfig
from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.static import check_design_document
from genesys_trainer.checks.dynamic import CheckSettings, run_dynamic_checks
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import tree_from_json

CLONE_NEWNET = 0x40000000
NOBODY = 65534
BLOCKED_EVENT_PREFIXES = (
    "socket.",
    "subprocess.",
    "ctypes.",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.kill",
    "os.killpg",
    "pty.",
    "webbrowser.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "imaplib.",
    "poplib.",
    "nntplib.",
    "telnetlib.",
    "os.chmod",
    "os.chown",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.link",
    "os.symlink",
    "os.truncate",
    "shutil.",
    "code.__new__",
    "sys.setprofile",
    "sys.settrace",
    "sys.addaudithook",
    "cpython.PyInterpreterState_Clear",
    "pickle.find_class",
    "os.startfile",
    "msvcrt.",
)


def set_limits(limits: dict[str, int]) -> None:
    """Apply rlimits to this process and its would-be children."""
    pairs = {
        resource.RLIMIT_AS: limits.get("memory_bytes"),
        resource.RLIMIT_CPU: limits.get("cpu_seconds"),
        resource.RLIMIT_NPROC: limits.get("max_processes"),
        resource.RLIMIT_FSIZE: limits.get("max_file_bytes"),
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        if value is not None:
            resource.setrlimit(which, (int(value), int(value)))


def enter_network_namespace() -> bool:
    """Unshare the network namespace; True when this process now has no network at all."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.unshare(CLONE_NEWNET) == 0)


def world_readable(path: str) -> bool:
    """True when ``nobody`` could reach and read ``path`` (every ancestor searchable)."""
    current = Path(path).resolve()
    for directory in [current, *current.parents]:
        try:
            mode = directory.stat().st_mode
        except OSError:
            return False
        if not mode & 0o001:  # others may not traverse it
            return False
    return True


def drop_privileges(directory: Path) -> bool:
    """Become ``nobody`` when running as root and the Python installation stays readable.

    Lazy imports after the drop need the interpreter, site-packages and this project readable
    by ``nobody``; where they are not (e.g. Python under /root), the process stays root and the
    audit guard, rlimits and network namespace confine it.
    """
    if os.geteuid() != 0:
        return False
    needed = [sys.base_prefix, sys.prefix, *site.getsitepackages(), str(Path(__file__).parents[2])]
    if not all(world_readable(path) for path in needed):
        return False
    os.chown(directory, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def readable_roots(sandbox: Path) -> list[str]:
    """Directories design code may read from: the sandbox and the Python installation."""
    roots = {str(sandbox), sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    roots.update(path for path in sysconfig.get_paths().values())
    roots.update(str(Path(p).resolve()) for p in sys.path if p)
    roots.update({"/dev/null", "/dev/urandom", "/proc/self", "/sys/devices/system/cpu"})
    roots.update(
        str(Path(module.__file__ or "").parents[1]) for module in (genesys, genesys_trainer)
    )
    return sorted(str(Path(root).resolve()) for root in roots if root)


def install_guard(sandbox: Path) -> None:
    """Refuse dangerous operations for the rest of this process's life."""
    writable = str(sandbox.resolve())
    readable = tuple(readable_roots(sandbox))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def guard(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(BLOCKED_EVENT_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args and isinstance(args[0], str | bytes):
            raw = args[0].decode() if isinstance(args[0], bytes) else args[0]
            path = os.path.realpath(raw)
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or bool(flags & write_flags)
            if writing and not inside(path, (writable,)):
                raise PermissionError(f"sandbox: writing {raw!r} is not allowed")
            if not writing and not inside(path, (*readable, writable)):
                raise PermissionError(f"sandbox: reading {raw!r} is not allowed")

    sys.addaudithook(guard)


def rung_target(document: dict[str, Any]) -> RungConfig:
    """The rung of the request (a resolved rung from the run config)."""
    return RungConfig.model_validate(document)


def main(argv: list[str] | None = None) -> int:
    """Run one sandboxed check; the report goes to the report pipe."""
    parser = argparse.ArgumentParser(prog="genesys_trainer.checks.child")
    parser.add_argument("--request", required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    args = parser.parse_args(argv)
    sandbox = Path.cwd()
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    report_pipe = os.fdopen(args.report_fd, "w", encoding="utf-8")
    report = Report()
    limits = request.get("limits", {})
    facts: dict[str, Any] = {}
    reference = load_seed("gpt2")  # the effectiveness reference, read before the guard
    set_limits(limits)
    facts["network_namespace"] = (
        enter_network_namespace() if limits.get("network_namespace", True) else False
    )
    torch.set_num_threads(int(limits.get("threads", 1)))
    facts["dropped_privileges"] = (
        drop_privileges(sandbox) if limits.get("drop_privileges", True) else False
    )
    install_guard(sandbox)
    facts["audit_guard"] = True
    report.info["sandbox"] = facts
    document = request["design"]
    if not request.get("skip_static", False):
        for finding in check_design_document(document):
            report.add(finding)
    if report.passed:
        try:
            tree = tree_from_json(document)
        except Exception as exc:  # malformed tree: report, never crash
            report.add(Finding("compose", Status.FAIL, str(exc)))
        else:
            run_dynamic_checks(
                tree,
                rung_target(request["rung"]),
                CheckSettings.from_json(request.get("settings", {})),
                report,
                reference=reference,
            )
    report_pipe.write(json.dumps(report.to_json()))
    report_pipe.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
