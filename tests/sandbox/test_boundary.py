"""The operating-system boundary itself: what a process under bubblewrap can and cannot reach.

Each test runs a small Python program through :func:`genesys.sandbox.confined.run_confined`
(the same bwrap command line and seccomp filter the checks use) while this process holds a
canary secret in its environment and in a 0600 file, and listens on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from genesys.api.ladder import preset_rung
from genesys.sandbox.boundary import bubblewrap_available
from genesys.sandbox.confined import run_confined
from genesys.sandbox.runner import GIB, SandboxLimits, check_design
from genesys_trainer.seeds import load_seed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bubblewrap_available(), reason="bubblewrap cannot run here"),
]
CANARY = "canary-7f1e0c9b2d5a4e6f"


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """A secret in the environment and in a 0600 file, and a loopback listener."""
    monkeypatch.setenv("GENESYS_TEST_API_KEY", CANARY)
    secret = tmp_path / "secret.txt"
    secret.write_text(CANARY)
    secret.chmod(0o600)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    connections: list[object] = []

    def accept() -> None:
        while True:
            try:
                connections.append(listener.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield {"secret": secret, "port": listener.getsockname()[1], "connections": connections}
    listener.close()


def confined_python(code: str) -> dict[str, object]:
    """Run ``code`` (which prints one JSON object) under bubblewrap; the object."""
    result = run_confined([sys.executable, "-I", "-c", code], [], boundary="bubblewrap")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_sandbox_sees_no_secret_no_other_process_and_no_network(
    canaries: dict[str, object],
) -> None:
    code = f"""
import ctypes, json, os, socket
facts = {{"uid": os.getuid(), "env": dict(os.environ), "pids": sorted(
    int(p) for p in os.listdir("/proc") if p.isdigit())}}
try:
    facts["secret"] = open({str(canaries["secret"])!r}).read()
except OSError as exc:
    facts["secret"] = type(exc).__name__
try:
    socket.create_connection(("127.0.0.1", {canaries["port"]}), timeout=2)
    facts["tcp"] = "connected"
except OSError as exc:
    facts["tcp"] = type(exc).__name__
try:
    open("/work-escape", "w")
    facts["write_root"] = "written"
except OSError as exc:
    facts["write_root"] = type(exc).__name__
libc = ctypes.CDLL(None, use_errno=True)
facts["ptrace"] = libc.ptrace(16, 1, 0, 0)
facts["ptrace_errno"] = ctypes.get_errno()
facts["unshare"] = libc.unshare(0x10000000)
print(json.dumps(facts))
"""
    facts = confined_python(code)
    assert facts["uid"] == 65534
    assert CANARY not in json.dumps(facts)
    assert facts["secret"] in ("FileNotFoundError", "PermissionError")
    assert facts["tcp"] != "connected"
    assert not canaries["connections"]
    assert facts["write_root"] != "written"
    assert not Path("/work-escape").exists()
    assert facts["ptrace"] == -1
    assert facts["ptrace_errno"] == 1  # EPERM from the seccomp filter
    assert facts["unshare"] == -1
    assert len(facts["pids"]) <= 4  # bwrap's init, the interpreter: nothing of the host


def test_the_parents_proc_entry_is_not_reachable(canaries: dict[str, object]) -> None:
    code = f"""
import json, os
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            found.append(open(f"/proc/{{pid}}/environ", "rb").read().decode("latin-1"))
        except OSError:
            pass
print(json.dumps({{"hit": any({CANARY!r} in text for text in found), "ppid": os.getppid()}}))
"""
    facts = confined_python(code)
    assert facts["hit"] is False


def test_no_process_outlives_a_confined_command(tmp_path: Path) -> None:
    marker = "genesys-daemon-marker-31337"
    code = f"""
import json, os, subprocess, time
subprocess.Popen(["/bin/sh", "-c", "exec -a {marker} sleep 300"], start_new_session=True)
print(json.dumps({{"started": True}}))
"""
    assert confined_python(code)["started"] is True
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    survivors.append(entry.name)
            except OSError:
                continue
    assert not survivors


def test_an_unconfined_check_says_so_in_its_report() -> None:
    report = check_design(
        load_seed("gpt2").to_json(),
        rung=preset_rung("nano", vocab_size=256),
        limits=SandboxLimits(timeout_seconds=300, memory_bytes=4 * GIB),
        boundary="unconfined",
    )
    assert report.passed, report.render()
    assert report.info["sandbox"]["boundary"] == "unconfined"
    warning = report.checks[3]
    assert warning.name == "sandbox"
    assert warning.status.value == "warn"
    confined = check_design(
        load_seed("gpt2").to_json(),
        rung=preset_rung("nano", vocab_size=256),
        limits=SandboxLimits(timeout_seconds=300, memory_bytes=4 * GIB),
    )
    assert confined.info["sandbox"]["boundary"] == "bubblewrap"
    assert not [f for f in confined.checks if f.name == "sandbox"]


def test_the_environment_canary_does_not_reach_a_checked_design(
    canaries: dict[str, object],
) -> None:
    assert os.environ["GENESYS_TEST_API_KEY"] == CANARY
    result = run_confined([sys.executable, "-I", "-c", "import os; print(dict(os.environ))"], [])
    assert result.returncode == 0
    assert CANARY not in result.stdout
    assert "GENESYS_TEST_API_KEY" not in result.stdout
