"""A trusted launcher that becomes ``bwrap``: hands it the seccomp filter and secret variables.

    python -I -m genesys.sandbox.launch [--seccomp [--network]] [--pass-env NAME]... -- ARGV...

Some process starters cannot pass a file descriptor to their child (TorchX's ``local_cwd``
scheduler starts its replicas with ``subprocess.Popen`` and closes every descriptor but the
standard three), yet ``bwrap --seccomp FD`` reads its filter from one. So the starter runs this
module instead; it

- builds the seccomp program (:func:`genesys.sandbox.boundary.seccomp_file`) in an anonymous
  file (``--network``: the variant that allows IPv4/IPv6 sockets, for a ``--share-net`` argv or
  a distributed job that rendezvouses on the sandbox's own loopback),
- copies each ``--pass-env`` variable present in its own environment into the sandbox as
  ``--setenv NAME VALUE``, written with the seccomp option into a second anonymous file that
  bwrap reads with ``--args FD`` (so values such as store credentials never appear in a command
  line, where ``ps`` or a log would show them),
- and execs ``BWRAP ARGV`` with ``--args FD`` inserted right after ``--clearenv`` (bwrap
  applies ``--clearenv`` and ``--setenv`` in order), keeping its process id: whoever started
  this module holds ``bwrap`` itself, and killing it kills the whole sandbox
  (``--die-with-parent`` and the pid namespace).

What must stay true: this module imports no torch and runs no design code; it only ever execs
the given argv, which must start a bwrap command line with ``--clearenv``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from genesys.sandbox.boundary import seccomp_file


class LaunchError(RuntimeError):
    """The argv is not a bwrap command line this launcher can complete."""


def anonymous_file(data: bytes) -> int:
    """An inheritable, read-only-positioned descriptor of an unnamed in-memory file."""
    descriptor = os.memfd_create("genesys-bwrap-args", 0)  # no MFD_CLOEXEC: bwrap inherits it
    os.write(descriptor, data)
    os.lseek(descriptor, 0, os.SEEK_SET)
    return descriptor


def completed_argv(
    argv: Sequence[str],
    *,
    seccomp: bool,
    pass_env: Sequence[str],
    environ: Mapping[str, str],
    network: bool = False,
) -> tuple[list[str], list[int]]:
    """``argv`` with ``--args FD`` after ``--clearenv``, and the descriptors it needs open."""
    argv = list(argv)
    if "--clearenv" not in argv:
        raise LaunchError("the command is not a bwrap command line with --clearenv")
    extra: list[str] = []
    descriptors: list[int] = []
    for name in pass_env:
        if name in environ:
            extra += ["--setenv", name, environ[name]]
    if seccomp:
        filter_fd = seccomp_file(network=network)
        os.set_inheritable(filter_fd, True)
        descriptors.append(filter_fd)
        extra += ["--seccomp", str(filter_fd)]
    if not extra:
        return argv, descriptors
    args_fd = anonymous_file(b"".join(item.encode("utf-8") + b"\0" for item in extra))
    descriptors.append(args_fd)
    position = argv.index("--clearenv") + 1
    return [*argv[:position], "--args", str(args_fd), *argv[position:]], descriptors


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Exec the bwrap command after ``--``; exit 2 on a usage error."""
    parser = argparse.ArgumentParser(prog="python -m genesys.sandbox.launch", description=__doc__)
    parser.add_argument("--seccomp", action="store_true", help="load the seccomp filter")
    parser.add_argument("--network", action="store_true", help="allow IPv4/IPv6 sockets too")
    parser.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this variable, when set, into the sandbox",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- BWRAP ARGV...")
    args = parser.parse_args(argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("no bwrap command after --")
    try:
        final, _ = completed_argv(
            command,
            seccomp=args.seccomp,
            pass_env=args.pass_env,
            environ=os.environ,
            network=args.network,
        )
    except LaunchError as exc:
        parser.error(str(exc))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(final[0], final)


__all__ = ["LaunchError", "anonymous_file", "completed_argv", "main"]

if __name__ == "__main__":
    main()
