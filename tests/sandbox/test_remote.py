"""Checks through a check server (the ``remote`` boundary), as an agent pod runs them.

A real ``genesys check-server`` process listens on loopback; the checks here are the real ones,
with ``GENESYS_SANDBOX=remote`` pointing at it. The server's own sandboxes use bubblewrap where
it works (these tests skip where it does not: a server in ``container`` mode must not run on a
machine that holds credentials).

What is shown: a seed passes with the same checks as a local sandbox; a leak is named; forged,
malformed and early-exit reports relayed by the server are failures, not passes (the nonce and
the schema are checked by the client as for a local sandbox); a client that hangs up ends its
sandbox on the server; bad requests and an absent server are clear errors; a server in
``container`` mode refuses to start where it can see a credential; a design session waits for
its check server and stops it when it ends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from genesys.api.ladder import preset_rung
from genesys.sandbox.boundary import (
    CHECK_SERVER_VAR,
    ENV_VAR,
    SandboxUnavailableError,
    bubblewrap_available,
)
from genesys.sandbox.remote import safe_name, sandbox_limits, visible_credentials
from genesys.sandbox.report import Report
from genesys.sandbox.runner import GIB, SandboxLimits, check_design
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import load_tree

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ATTACKS = REPO / "tests" / "data" / "attacks"
NANO = preset_rung("nano", vocab_size=256)
LIMITS = SandboxLimits(timeout_seconds=120, memory_bytes=4 * GIB, max_file_bytes=8 << 20)


@dataclass
class Server:
    """A check-server process and its URL."""

    process: subprocess.Popen[str]
    url: str

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/status", timeout=10) as response:
            answer: dict[str, object] = json.loads(response.read())
        return answer

    def environ(self) -> dict[str, str]:
        return {**os.environ, ENV_VAR: "remote", CHECK_SERVER_VAR: self.url}


def server_env(**extra: str) -> dict[str, str]:
    """A server's environment: no credential of this machine, plus ``extra``."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def start_server(*args: str, env: dict[str, str]) -> Server:
    """``genesys check-server`` on a free loopback port, once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "genesys", "check-server", "--listen", "127.0.0.1:0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on ([\d.]+):(\d+)", line)
    if match is None:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"the check server did not start: {line!r} {err[-2000:]}")
    return Server(process, f"http://{match.group(1)}:{match.group(2)}")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not bubblewrap_available():
        pytest.skip("bubblewrap cannot run here: the check server's sandboxes need it")
    started = start_server("--idle-seconds", "600", env=server_env(GENESYS_SANDBOX="bubblewrap"))
    yield started
    started.process.kill()
    started.process.communicate(timeout=10)


def wait_idle(server: Server, timeout: float = 30) -> dict[str, object]:
    """The server's status once no sandbox runs there."""
    deadline = time.monotonic() + timeout
    status = server.status()
    while status["running"] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = server.status()
    return status


def attack(name: str, *, audit_guard: bool = False, server: Server) -> Report:
    return check_design(
        load_tree(ATTACKS / name).to_json(),
        rung=NANO,
        skip_static=True,
        environ=server.environ(),
        boundary="remote",
        limits=SandboxLimits(
            timeout_seconds=60,
            memory_bytes=4 * GIB,
            max_file_bytes=8 << 20,
            audit_guard=audit_guard,
        ),
    )


def test_a_seed_passes_through_the_check_server(server: Server) -> None:
    served = int(str(server.status()["served"]))
    report = check_design(
        load_seed("gpt2").to_json(), rung=NANO, limits=LIMITS, environ=server.environ()
    )
    assert report.passed, report.render()
    names = [finding.name for finding in report.checks]
    for name in ("forward", "batch_independence", "causality", "differentiability"):
        assert name in names
    assert report.info["sandbox"] == {"executed": True, "boundary": "remote"}
    status = wait_idle(server)
    assert status["served"] == served + 2  # the reference and the perturbed sandbox
    assert status["boundary"] == "bubblewrap"


def test_a_leak_is_named_and_the_hung_up_sandbox_ends(server: Server) -> None:
    report = attack("causal-next-square.py", server=server)
    assert not report.passed, report.render()
    assert report.failed()[0].name == "causality", report.render()
    # the client stopped early: its reference sandbox on the server must not run on
    assert wait_idle(server, timeout=20)["running"] == 0


@pytest.mark.parametrize(
    "name",
    [
        "forge-malformed-report.py",
        "forge-patched-report.py",
        "forge-system-exit.py",
        "forge-fd-spray.py",
        "forge-kill-supervisor.py",
    ],
)
def test_a_forged_report_through_the_server_is_a_failure(server: Server, name: str) -> None:
    report = attack(name, server=server)
    assert not report.passed, report.render()
    assert report.failed()[0].name in ("sandbox", "causality", "forward"), report.render()
    # the server's answer ends the check; it does not wait for the client's timeout
    assert "timed out" not in report.failed()[0].message, report.render()


def test_bad_input_file_names_are_refused() -> None:
    for name in ("../x", "/etc/passwd", "", "a/../../b"):
        with pytest.raises(ValueError, match="bad input file name"):
            safe_name(name)
    assert str(safe_name("in/probes/reference.npy")) == "in/probes/reference.npy"


def test_a_client_cannot_ask_for_more_than_the_ceiling() -> None:
    ceiling = SandboxLimits(timeout_seconds=100, memory_bytes=2 * GIB)
    limits = sandbox_limits({"timeout_seconds": 9e9, "memory_bytes": 1 << 50, "bogus": 1}, ceiling)
    assert limits.timeout_seconds == 100
    assert limits.memory_bytes == 2 * GIB


def test_an_absent_server_is_a_clear_error(unused_tcp_port: int) -> None:
    environ = {
        **os.environ,
        ENV_VAR: "remote",
        CHECK_SERVER_VAR: f"http://127.0.0.1:{unused_tcp_port}",
        "GENESYS_CHECK_SERVER_WAIT": "2",
    }
    with pytest.raises(SandboxUnavailableError, match="did not answer within 2s"):
        check_design(load_seed("gpt2").to_json(), rung=NANO, limits=LIMITS, environ=environ)


def test_remote_without_a_server_url_is_refused() -> None:
    environ = {k: v for k, v in os.environ.items() if k != CHECK_SERVER_VAR}
    with pytest.raises(SandboxUnavailableError, match=CHECK_SERVER_VAR):
        check_design(load_seed("gpt2").to_json(), rung=NANO, environ={**environ, ENV_VAR: "remote"})


def test_visible_credentials_are_found(tmp_path: Path) -> None:
    token = tmp_path / "token"
    assert visible_credentials({"PATH": "/bin"}, str(token)) == []
    token.write_text("x")
    found = visible_credentials({"OPENAI_API_KEY": "sk", "EMPTY_TOKEN": ""}, str(token))
    assert found == ["OPENAI_API_KEY", str(token)]


def test_a_container_server_with_a_credential_refuses_to_start() -> None:
    env = server_env(GENESYS_SANDBOX="container", AWS_SECRET_ACCESS_KEY="canary")
    done = subprocess.run(
        [sys.executable, "-m", "genesys", "check-server", "--listen", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "AWS_SECRET_ACCESS_KEY" in done.stderr
    assert "canary" not in done.stderr + done.stdout


def test_a_server_asked_to_be_remote_refuses() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "genesys", "check-server", "--listen", "127.0.0.1:0"],
        env=server_env(GENESYS_SANDBOX="remote", GENESYS_CHECK_SERVER="http://127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "circular" in done.stderr


def test_a_server_stops_when_idle() -> None:
    if not bubblewrap_available():
        pytest.skip("bubblewrap cannot run here: the check server's sandboxes need it")
    started = start_server("--idle-seconds", "1", env=server_env(GENESYS_SANDBOX="bubblewrap"))
    _, err = started.process.communicate(timeout=30)
    assert started.process.returncode == 0
    assert "no request for 1s" in err


def test_remote_cannot_carry_training_or_designs_commands() -> None:
    from genesys.sandbox.boundary import Boundary, local_boundary

    with pytest.raises(SandboxUnavailableError, match="sends design checks to a check server"):
        local_boundary(Boundary.REMOTE)
    done = subprocess.run(
        [sys.executable, "-m", "genesys", "run", "examples/quickstart.yaml", "--sandbox", "remote"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2  # argparse: not a choice for `genesys run`


def test_a_design_session_checks_in_the_check_server_and_then_stops_it(tmp_path: Path) -> None:
    if not bubblewrap_available():
        pytest.skip("bubblewrap cannot run here: the check server's sandboxes need it")
    from genesys.api.discoveryrun import DiscoveryRun
    from genesys.api.runconfig import RunIdentity, resolve_run_config
    from genesys.store import open_store
    from genesys.store.archive import design_key, session_key
    from genesys.store.configs import write_run_config

    store = open_store(tmp_path / "store")
    store.put_text(design_key("seed-gpt2", "design.json"), load_seed("gpt2").dumps())
    run = DiscoveryRun.model_validate(
        {
            "metadata": {"name": "r"},
            "spec": {
                "ladder": {"rungs": [{"name": "nano", "preset": "nano", "budget": 1}]},
                "agents": {"offline": True},
                "checks": {
                    "effectivenessSteps": 3,
                    "causalityLength": 24,
                    "forwardLength": 128,
                    "sandboxTimeoutSeconds": 120,
                    "sandboxMemory": "4Gi",
                },
                "verification": {"data": {"tokenizer": "byte", "vocabSize": 256}},
            },
        }
    )
    config = write_run_config(
        store, resolve_run_config(run, identity=RunIdentity(name="r"), data_uri="/data")
    )
    started = start_server("--idle-seconds", "600", env=server_env(GENESYS_SANDBOX="bubblewrap"))
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "genesys",
                "agent",
                "design",
                "--store",
                str(store.uri),
                "--config",
                config,
                "--session",
                "s1",
                "--design-id",
                "d0001",
                "--seq",
                "1",
                "--operator",
                "mutation",
                "--parents",
                "seed-gpt2",
                "--seed",
                "1",
                "--quiet",
            ],
            env=started.environ(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outcome = json.loads(store.get_text(session_key("s1")))
        assert outcome["candidates"] >= 1
        # the session told its check server to stop once its outcome was recorded
        _, err = started.process.communicate(timeout=60)
        assert started.process.returncode == 0
        assert re.search(r"stopped after [1-9]\d* sandbox", err), err
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.communicate(timeout=10)
