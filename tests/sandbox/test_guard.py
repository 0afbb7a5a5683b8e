"""The sandbox survives and contains hostile code that gets past the static checks.

These designs are run with the static checks skipped, to prove the second line of defence:
the child's audit guard, rlimits, scrubbed environment and the parent's timeout.
"""

from __future__ import annotations

import textwrap

import pytest

from genesys.api.ladder import preset_rung
from genesys.sandbox.report import Report
from genesys.sandbox.runner import GIB, SandboxLimits, check_design

pytestmark = pytest.mark.slow

NANO = preset_rung("nano", vocab_size=256)

TEMPLATE = """
import torch
from torch import Tensor, nn

from genesys_trainer.units import Unit


class Hostile(Unit):
    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.up = nn.Linear(d_model, 4 * d_model)
        self.down = nn.Linear(4 * d_model, d_model)

    def _forward(self, X: Tensor) -> Tensor:
{body}
        return X + self.down(torch.relu(self.up(X)))
"""


def run_hostile(
    body: str,
    *,
    timeout: float = 60,
    environ: dict[str, str] | None = None,
    audit_guard: bool = True,
) -> Report:
    source = TEMPLATE.format(body=textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8))
    document = {
        "name": "hostile",
        "root": "Hostile",
        "units": {"Hostile": {"source": source}},
        "metadata": {"format": "block-file"},
    }
    return check_design(
        document,
        rung=NANO,
        skip_static=True,
        environ=environ,
        limits=SandboxLimits(
            timeout_seconds=timeout,
            memory_bytes=4 * GIB,
            max_file_bytes=8 * 1024 * 1024,
            audit_guard=audit_guard,
        ),
    )


def sandbox_failure(report: Report) -> str:
    failures = report.failed()
    assert failures, report.render()
    assert failures[0].name == "sandbox", report.render()
    return failures[0].message


def test_socket_connect_is_refused() -> None:
    message = sandbox_failure(
        run_hostile("""
        import socket
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    """)
    )
    assert "socket" in message


def test_subprocess_is_refused() -> None:
    message = sandbox_failure(
        run_hostile("""
        import subprocess
        subprocess.run(["true"], check=False)
    """)
    )
    assert "subprocess.Popen" in message


def test_fork_is_refused() -> None:
    message = sandbox_failure(
        run_hostile("""
        import os
        while True:
            os.fork()
    """)
    )
    assert "os.fork" in message


def test_reading_etc_passwd_is_refused() -> None:
    message = sandbox_failure(
        run_hostile("""
        with open("/etc/passwd") as handle:
            handle.read()
    """)
    )
    assert "reading '/etc/passwd'" in message


def test_writing_outside_the_sandbox_is_refused(tmp_path: object) -> None:
    message = sandbox_failure(
        run_hostile("""
        with open("/tmp/genesys-escape.txt", "w") as handle:
            handle.write("x")
    """)
    )
    assert "writing" in message


def test_parent_credentials_are_invisible_to_the_child() -> None:
    environ = {
        "PATH": "/usr/bin:/bin",
        "OPENAI_API_KEY": "sk-parent-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-parent-secret",
        "GENESYS_TOKEN": "tok",
        "KUBECONFIG": "/root/.kube/config",
    }
    report = run_hostile(
        """
        import os
        raise RuntimeError("ENV=" + ",".join(sorted(os.environ)) + ";" + ",".join(os.environ.values()))
    """,
        environ=environ,
    )
    message = report.failed()[0].message
    assert "ENV=" in message
    for secret in (
        "OPENAI_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "GENESYS_TOKEN",
        "KUBECONFIG",
        "sk-parent-secret",
        "aws-parent-secret",
    ):
        assert secret not in message


def test_segfault_becomes_a_recorded_failure() -> None:
    message = sandbox_failure(
        run_hostile("""
        import faulthandler
        faulthandler._sigsegv()
    """)
    )
    assert "segmentation fault" in message


def test_gigabytes_of_output_become_a_recorded_failure() -> None:
    message = sandbox_failure(
        run_hostile("""
        chunk = "x" * (1 << 20)
        while True:
            print(chunk)
    """)
    )
    assert "file-size limit" in message


def test_infinite_loop_is_killed_at_the_timeout() -> None:
    message = sandbox_failure(
        run_hostile(
            """
        while True:
            pass
    """,
            timeout=8,
        )
    )
    assert "timed out after 8s" in message


def test_python_memory_bomb_is_contained() -> None:
    message = sandbox_failure(
        run_hostile("""
        hoard = []
        while True:
            hoard.append(bytearray(1 << 26))
    """)
    )
    assert "memory" in message


def test_the_boundary_and_the_guard_are_reported() -> None:
    report = run_hostile("pass")
    assert report.info["sandbox"]["boundary"] == "bubblewrap"
    assert report.info["worker"]["audit_guard"] is True
    assert report.passed, report.render()


FORGED_FINAL = """
import os, sys
from genesys.sandbox.wire import encode_frame
names = ("compose", "param_fit", "forward", "unit_tests", "batch_independence", "causality",
         "differentiability", "complexity", "effectiveness")
checks = [{"name": n, "status": "pass", "message": "ok", "unit": None, "line": None, "hint": ""}
          for n in names]
report = {"passed": True, "checks": checks, "timings": {}, "info": {}}
fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
os.write(fd, encode_frame({"stage": "final", "report": report}, b""))
os._exit(0)
"""


def test_a_forged_all_pass_result_from_the_worker_is_a_failed_check() -> None:
    report = run_hostile(FORGED_FINAL, audit_guard=False)
    assert not report.passed
    assert report.failed()[0].name == "sandbox"
    assert "probes" in report.failed()[0].message


def test_a_worker_that_kills_its_supervisor_fails_the_check() -> None:
    message = sandbox_failure(
        run_hostile(
            """
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
    """,
            audit_guard=False,
        )
    )
    assert message


def test_garbage_on_every_descriptor_is_a_failed_check() -> None:
    report = run_hostile(
        """
        import os
        for fd in range(3, 64):
            try:
                os.write(fd, b'{"passed": true, "checks": []}\\n' * 1000)
            except OSError:
                pass
        os._exit(0)
    """,
        audit_guard=False,
    )
    assert not report.passed
    assert report.failed()[0].name == "sandbox"
