"""The operating-system boundary around design code: bubblewrap, or an explicit weaker mode.

Four boundaries, named by ``GENESYS_SANDBOX`` or a ``--sandbox`` flag:

- ``bubblewrap`` (the default): every process that runs design code starts under ``bwrap`` in
  its own user, pid, network, IPC, UTS and mount namespaces, as ``nobody`` with every
  capability dropped and ``no_new_privs``, in a new session, with a cleared environment. Its
  file system is a read-only root with read-only binds of the system libraries, the Python
  installation and this project's packages, a private ``/tmp`` and ``/dev``, its own ``/proc``
  (no other process is visible) and one writable scratch directory, ``/sandbox``. A seccomp filter
  (:mod:`genesys.sandbox.seccomp`) refuses debugging, namespace, mount and kernel-admin system
  calls. Killing ``bwrap`` kills the whole pid namespace.
- ``container``: the surrounding container is the boundary (a check pod with no secret, no
  service-account token and a deny-all NetworkPolicy); the processes run without bwrap, which
  unprivileged pods usually cannot start.
- ``remote``: design code runs in another pod, the session's check pod, whose check server
  (:mod:`genesys.sandbox.remote`, at ``GENESYS_CHECK_SERVER``) starts the sandboxes there; the
  agent pod, which holds the LLM key and the store's credentials, never runs design code.
- ``unconfined``: a weaker mode for machines without bubblewrap, taken only when asked for:
  a child process with a scrubbed environment, rlimits and the in-process audit guard. The
  report says so with a ``sandbox`` warning.

What must stay true: ``bubblewrap`` is never silently downgraded; a machine where it cannot run
gets :class:`SandboxUnavailableError` with what to do.
"""

from __future__ import annotations

import enum
import functools
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ENV_VAR = "GENESYS_SANDBOX"
CHECK_SERVER_VAR = "GENESYS_CHECK_SERVER"
"""The check server's URL (``http://host:port``) for the ``remote`` boundary."""
SANDBOX_DIR = "/sandbox"
NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
CPU_INFO = "/sys/devices/system/cpu"
TMPFS_BYTES = 256 * 1024 * 1024  # each of the sandbox's private /tmp and /dev/shm
#: What a process that shares the host's network needs to resolve names and verify TLS.
NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/pki")
#: Every bwrap process: its own namespaces, killed with its parent, a new session, no capability.
_CONFINEMENT = ("--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL")
#: Every bwrap process runs as ``nobody``.
_AS_NOBODY = ("--uid", str(NOBODY), "--gid", str(NOBODY))


class Boundary(enum.StrEnum):
    """What separates design code from the rest of the machine."""

    BUBBLEWRAP = "bubblewrap"
    CONTAINER = "container"
    REMOTE = "remote"
    UNCONFINED = "unconfined"


class SandboxUnavailableError(RuntimeError):
    """The requested boundary cannot be set up on this machine."""


def requested_boundary(
    value: str | None = None, environ: Mapping[str, str] | None = None
) -> Boundary:
    """The boundary asked for: ``value`` (a flag), else ``GENESYS_SANDBOX``, else bubblewrap."""
    source = os.environ if environ is None else environ
    text = (value or source.get(ENV_VAR) or Boundary.BUBBLEWRAP.value).strip().lower()
    try:
        return Boundary(text)
    except ValueError:
        known = ", ".join(b.value for b in Boundary)
        raise SandboxUnavailableError(f"{ENV_VAR}={text!r} is not one of: {known}") from None


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot confine a process here, or None when it can (probed once)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = [binary, *_CONFINEMENT, *_AS_NOBODY, *system_binds()]
    probe += ["--proc", "/proc", "--dev", "/dev", "--", "/bin/true"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if result.returncode != 0:
        return f"bwrap cannot create namespaces here: {result.stderr.strip()[:300]}"
    return None


def bubblewrap_available() -> bool:
    """True when bubblewrap can confine a process on this machine."""
    return bubblewrap_problem() is None


def resolve_boundary(requested: Boundary, environ: Mapping[str, str] | None = None) -> Boundary:
    """``requested``, once it is known to work here; raise with what to do when it cannot."""
    source = os.environ if environ is None else environ
    if requested is Boundary.REMOTE and not source.get(CHECK_SERVER_VAR):
        raise SandboxUnavailableError(
            f"{ENV_VAR}=remote needs {CHECK_SERVER_VAR}, the URL of a check server "
            f"(genesys check-server), e.g. http://127.0.0.1:8470"
        )
    if requested is Boundary.BUBBLEWRAP:
        problem = bubblewrap_problem()
        if problem is not None:
            raise SandboxUnavailableError(
                f"design code runs only inside bubblewrap, and {problem}. Install bubblewrap, "
                f"or run the checks in a pod without secrets ({ENV_VAR}=container), or accept "
                f"a weaker process sandbox explicitly (--sandbox unconfined or "
                f"{ENV_VAR}=unconfined)"
            )
    return requested


def local_boundary(requested: Boundary, environ: Mapping[str, str] | None = None) -> Boundary:
    """The boundary for design code that must run on this machine (training, ``designs``).

    ``remote`` sends design *checks* to a check server; it cannot carry other work, so asking
    for it here is an error that says so.
    """
    if requested is Boundary.REMOTE:
        raise SandboxUnavailableError(
            f"{ENV_VAR}=remote sends design checks to a check server; training and the "
            "`genesys designs` commands run design code on this machine and need bubblewrap, "
            "container or unconfined"
        )
    return resolve_boundary(requested, environ)


def system_binds() -> list[str]:
    """Read-only binds (or symlinks) of the system libraries and the loader's cache."""
    args: list[str] = []
    for directory in SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", directory, directory]
    for file in SYSTEM_FILES:
        if Path(file).exists():
            args += ["--ro-bind", file, file]
    return args


def package_roots() -> list[str]:
    """Directories holding this project's packages (source checkouts or site-packages)."""
    import genesys

    roots = {str(Path(genesys.__file__).resolve().parents[1])}
    try:
        import genesys_trainer
    except ImportError:  # pragma: no cover - the control-plane image has no trainer
        pass
    else:
        roots.add(str(Path(genesys_trainer.__file__).resolve().parents[1]))
    return sorted(roots)


def python_roots() -> list[str]:
    """The Python installation: interpreter prefixes and site-packages."""
    roots = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}
    roots.update(site.getsitepackages())
    roots.add(str(Path(sys.executable).resolve().parents[1]))
    return sorted(str(Path(root).resolve()) for root in roots if root)


def outermost(paths: Sequence[str]) -> list[str]:
    """``paths`` without those inside another one of them (a bind covers its subtree)."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in kept):
            kept.append(path)
    return sorted(kept)


def readonly_roots(extra: Sequence[str] = ()) -> list[str]:
    """Everything design code may read besides the system: Python, packages, ``extra``."""
    system = tuple(d.rstrip("/") + "/" for d in SYSTEM_DIRS)
    wanted = [*python_roots(), *package_roots(), *extra]
    return [p for p in outermost(wanted) if not p.startswith(system) and Path(p).exists()]


def bwrap_command(
    command: Sequence[str],
    *,
    scratch: Path,
    env: Mapping[str, str],
    seccomp_fd: int | None,
    readonly: Sequence[str] = (),
    writable: Sequence[str] = (),
    devices: Sequence[str] = (),
    share_network: bool = False,
    scratch_bytes: int | None = None,
) -> list[str]:
    """``command`` under bubblewrap, with ``scratch`` as the writable working directory.

    With ``scratch_bytes``, the working directory ``/sandbox`` is instead a private tmpfs of at
    most that size, and ``scratch`` is bound read-only at ``/sandbox/in`` (the inputs): nothing
    the sandbox writes reaches the host's disk, and what it writes is bounded. ``/tmp`` and
    ``/dev/shm`` are always private tmpfs of :data:`TMPFS_BYTES`.

    ``readonly`` adds read-only binds (data, a design file); ``writable`` adds read-write binds
    at the same paths (an output directory); ``devices`` adds device binds (``--dev-bind``, e.g.
    ``/dev/nvidia0``) into the private ``/dev``. The private ``/proc``, ``/dev`` and ``/tmp`` are
    mounted before these binds, so a path under ``/tmp`` or ``/dev`` stays visible.

    ``share_network`` keeps the host's network namespace (``--share-net`` after
    ``--unshare-all``) and binds the resolver's files (:data:`NETWORK_FILES`): a weaker sandbox,
    only for a process that must reach a remote store; everything else stays confined.
    """
    binary = shutil.which("bwrap") or "bwrap"
    args = [binary, *_CONFINEMENT, *_AS_NOBODY, "--clearenv", "--hostname", "sandbox"]
    if share_network:
        args.append("--share-net")
    args += system_binds()
    if share_network:
        args += _existing_ro_binds(NETWORK_FILES)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += [*_tmpfs("/tmp", TMPFS_BYTES), *_tmpfs("/dev/shm", TMPFS_BYTES)]
    args += _binds("--dev-bind", devices)
    args += _binds("--ro-bind", readonly_roots(readonly))
    if Path(CPU_INFO).is_dir():
        args += ["--ro-bind", CPU_INFO, CPU_INFO]
    args += _binds("--bind", writable)
    args += _scratch_mount(scratch, scratch_bytes)
    args += [
        "--chdir",
        SANDBOX_DIR,
        "--remount-ro",
        "/",
    ]  # the root itself: only the binds above are writable
    args += [arg for name, value in sorted(env.items()) for arg in ("--setenv", name, value)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return [*args, "--", *command]


def _binds(option: str, paths: Iterable[str]) -> list[str]:
    """``option path path`` for each path: bound at the same place inside."""
    return [arg for path in paths for arg in (option, path, path)]


def _existing_ro_binds(files: Iterable[str]) -> list[str]:
    """Read-only binds of those ``files`` that exist here."""
    return _binds("--ro-bind", [file for file in files if Path(file).exists()])


def _tmpfs(path: str, size: int) -> list[str]:
    """A private tmpfs of at most ``size`` bytes at ``path``."""
    return ["--size", str(size), "--tmpfs", path]


def _scratch_mount(scratch: Path, scratch_bytes: int | None) -> list[str]:
    """``/sandbox``: ``scratch`` itself, or a bounded tmpfs with ``scratch`` read-only in ``in``."""
    if scratch_bytes is None:
        return ["--bind", str(scratch), SANDBOX_DIR]
    return [*_tmpfs(SANDBOX_DIR, scratch_bytes), "--ro-bind", str(scratch), f"{SANDBOX_DIR}/in"]


def seccomp_file(*, network: bool = False) -> int:
    """A read-only file descriptor of the seccomp program, for ``bwrap --seccomp``.

    ``network`` allows IPv4/IPv6 sockets too: only with ``bwrap_command(share_network=True)``.
    """
    import tempfile

    from genesys.sandbox.seccomp import filter_program

    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the descriptor outlives this function
    handle.write(filter_program(network=network))
    handle.flush()
    handle.seek(0)
    descriptor = os.dup(handle.fileno())
    handle.close()
    os.lseek(descriptor, 0, os.SEEK_SET)
    return descriptor


__all__ = [
    "CHECK_SERVER_VAR",
    "ENV_VAR",
    "NETWORK_FILES",
    "SANDBOX_DIR",
    "Boundary",
    "SandboxUnavailableError",
    "bubblewrap_available",
    "bubblewrap_problem",
    "bwrap_command",
    "local_boundary",
    "readonly_roots",
    "requested_boundary",
    "resolve_boundary",
    "seccomp_file",
]
