"""A seccomp filter for the sandbox: system calls that design code never needs fail with EPERM.

bubblewrap loads the filter (``--seccomp FD``) right before it starts the sandboxed command, so
it holds for every process in the sandbox and cannot be removed. The program is classic BPF over
``struct seccomp_data`` (``nr`` at offset 0, ``arch`` at 4, ``args[0]`` at 16), built here so no
library is needed:

- a foreign architecture (e.g. 32-bit system calls on x86-64) kills the process;
- on x86-64, the x32 system-call range fails;
- debugging other processes (``ptrace``, ``process_vm_*``, ``kcmp``, ``pidfd_getfd``), new
  namespaces and mounts, kernel keyrings, BPF, perf, ``userfaultfd``, ``io_uring``, modules,
  reboot, swap, clocks and handle-based opens fail with EPERM;
- ``socket`` works for ``AF_UNIX`` only (the sandbox has no network device anyway); a sandbox
  that shares the host's network (``network=True``: a training job with a remote store) may
  also open ``AF_INET`` and ``AF_INET6`` sockets.

What must stay true: everything Python and torch need on the CPU stays allowed (``clone``,
``clone3``, ``mmap``, ``futex``, files in the sandbox); the program is a pure function of the
architecture.
"""

from __future__ import annotations

import errno
import platform
import struct

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10

# BPF opcodes
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
RET_K = 0x06

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

DENIED: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "pidfd_getfd": 438, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "mount_setattr": 442, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169,
        "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "syslog": 103,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "lookup_dcookie": 212,
        "vhangup": 153, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159,
        "clock_adjtime": 305, "iopl": 172, "ioperm": 173, "personality": 135,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "pidfd_getfd": 438, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "mount_setattr": 442, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142,
        "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "syslog": 116,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "lookup_dcookie": 18,
        "vhangup": 58, "settimeofday": 170, "clock_settime": 112, "adjtimex": 171,
        "clock_adjtime": 266, "personality": 92,
    },
}  # fmt: skip
SOCKET = {"x86_64": 41, "aarch64": 198}


class UnsupportedArchitectureError(RuntimeError):
    """No filter is known for this machine's architecture."""


def instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One ``struct sock_filter`` (u16 code, u8 jt, u8 jf, u32 k), native byte order."""
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None, *, network: bool = False) -> bytes:
    """The BPF program for ``machine`` (default: this one), ready for ``bwrap --seccomp``.

    ``network`` also allows IPv4 and IPv6 sockets (for a sandbox sharing the host's network).
    """
    arch = machine or platform.machine()
    if arch not in DENIED:
        raise UnsupportedArchitectureError(
            f"no seccomp filter for {arch!r} (known: {', '.join(sorted(DENIED))})"
        )
    denied = sorted(set(DENIED[arch].values()))
    deny = instruction(RET_K, RET_ERRNO | errno.EPERM)
    allow = instruction(RET_K, RET_ALLOW)
    families = (AF_UNIX, AF_INET, AF_INET6) if network else (AF_UNIX,)
    socket_checks = [instruction(LD_W_ABS, 16)]  # args[0] (low half): the address family
    for position, family in enumerate(families):  # a match jumps to allow, after the last one
        remaining = len(families) - position - 1
        socket_checks.append(instruction(JEQ_K, family, jt=remaining, jf=0 if remaining else 1))
    socket_checks += [allow, instruction(RET_K, RET_ERRNO | errno.EAFNOSUPPORT)]
    # After the n-th syscall comparison, the deny instruction is (len(denied) - n) further on
    # (the socket comparison sits between them), and the socket block one further than that.
    body: list[bytes] = []
    for position, number in enumerate(denied):
        remaining = len(denied) - position - 1
        body.append(instruction(JEQ_K, number, jt=remaining + 2, jf=0))
    body.append(instruction(JEQ_K, SOCKET[arch], jt=2, jf=0))
    body.append(allow)
    body.append(deny)
    head = [
        instruction(LD_W_ABS, 4),  # arch
        instruction(JEQ_K, AUDIT_ARCH[arch], jt=1, jf=0),
        instruction(RET_K, RET_KILL_PROCESS),
        instruction(LD_W_ABS, 0),  # nr
    ]
    if arch == "x86_64":
        head.append(instruction(JGE_K, X32_SYSCALL_BIT, jt=len(body) - 1, jf=0))
    return b"".join(head + body + socket_checks)


__all__ = ["DENIED", "UnsupportedArchitectureError", "filter_program"]
