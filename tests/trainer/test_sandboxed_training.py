"""Training on one machine runs behind the bubblewrap boundary: binds, a real run, a hostile one."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.backends.common import RunHandle, open_run, write_seeds
from genesys.backends.local import LocalBackend
from genesys.backends.sandboxed import STORE_VARIABLES, confine, training_binds
from genesys.engine.actions import StartVerification
from genesys.sandbox.boundary import SANDBOX_DIR, bubblewrap_available
from genesys.sandbox.launch import completed_argv
from genesys.store.archive import design_key, verification_prefix
from genesys.store.base import LocalStore, open_store
from genesys.store.grant import GRANT_VARIABLE
from genesys_trainer.component import verify
from genesys_trainer.tree import load_block_file

NEEDS_BWRAP = pytest.mark.skipif(
    not bubblewrap_available(), reason="bubblewrap cannot create namespaces on this machine"
)
NANO = StartVerification("seed-gpt2", "nano", 0)


def spec(**verification: Any) -> DiscoveryRun:
    return DiscoveryRun.model_validate(
        {
            "metadata": {"name": "sbx"},
            "spec": {
                "seed": 3,
                "ladder": {
                    "rungs": [{"name": "nano", "preset": "nano", "budget": 1, "tokens": 24576}]
                },
                "agents": {"offline": True},
                "verification": {
                    "scheduler": "local",
                    "evalTasks": ["genesys_cloze"],
                    "evalLimit": 20,
                    "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
                    "resources": {"gpus": 0, "cpu": "1", "memory": "4Gi"},
                    **verification,
                },
            },
        }
    )


def open_local_run(tmp_path: Path, data: Path) -> RunHandle:
    handle, _ = open_run(
        spec(), RunIdentity(name="sbx"), LocalStore(tmp_path / "store"), data_uri=str(data)
    )
    write_seeds(handle.store)
    return handle


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    """(source, destination) of every ``option SRC DEST`` in a bwrap argv."""
    return [(argv[i + 1], argv[i + 2]) for i, arg in enumerate(argv) if arg == option]


def bwrap_argv(app: Any) -> tuple[list[str], list[str]]:
    """(the launcher's options, the bwrap argv) of a confined AppDef's only role."""
    (role,) = app.roles
    args = list(role.args)
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def test_a_local_verification_starts_bwrap_with_only_its_output_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-pass-me")
    data = tmp_path / "data"
    data.mkdir()
    handle = open_local_run(tmp_path, data)
    backend = LocalBackend(handle, workdir=tmp_path, boundary="bubblewrap")
    plain = backend.training_app(NANO)
    assert "AWS_SECRET_ACCESS_KEY" not in plain.roles[0].env  # a training job holds no key
    assert backend.store_grant(NANO) is None  # nothing remote: nothing to grant
    app = backend.launch_app(NANO)
    assert app.name == plain.name  # same job identity, same resources
    assert app.roles[0].resource == plain.roles[0].resource
    assert app.roles[0].entrypoint == sys.executable
    launcher, argv = bwrap_argv(app)
    assert launcher[:4] == ["-I", "-m", "genesys.sandbox.launch", "--seccomp"]
    assert "--pass-env=AWS_SECRET_ACCESS_KEY" not in launcher  # a local store: no credentials
    assert "--network" not in launcher  # the seccomp filter refuses IPv4/IPv6 sockets
    assert Path(argv[0]).name == "bwrap"
    assert {"--unshare-all", "--die-with-parent", "--clearenv"} <= set(argv)
    assert "--share-net" not in argv

    inner = argv[len(argv) - 1 - len(plain.roles[0].args) :]
    assert inner == [plain.roles[0].entrypoint, *plain.roles[0].args]  # the shared command
    run_dir = tmp_path / "store" / "runs" / "sbx"
    out = str(run_dir / verification_prefix("seed-gpt2", "nano"))
    assert pairs(argv, "--bind") == [(out, out), (str(backend.scratch_dir(NANO)), SANDBOX_DIR)]
    readonly = {source for source, dest in pairs(argv, "--ro-bind") if source == dest}
    design = str(run_dir / design_key("seed-gpt2", "design.json"))
    assert {design, handle.config_uri, str(data)} <= readonly
    assert str(run_dir) not in readonly  # only the pieces the trainer reads
    assert not any(path.startswith(str(tmp_path / ".genesys")) for path in readonly)
    env = dict(pairs(argv, "--setenv"))
    assert env["HOME"] == SANDBOX_DIR
    assert env["OMP_NUM_THREADS"] == plain.roles[0].env["OMP_NUM_THREADS"]
    assert "do-not-pass-me" not in " ".join(argv)
    assert argv.index("--tmpfs") < argv.index("--bind")  # binds under /tmp stay visible

    unconfined = LocalBackend(handle, workdir=tmp_path, boundary="unconfined").launch_app(NANO)
    assert unconfined.roles[0].args == plain.roles[0].args


def test_a_remote_store_shares_the_network_and_passes_only_the_grant_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "store-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "store-key-id")
    monkeypatch.setenv("OPENAI_API_KEY", "llm-secret")
    monkeypatch.setenv(GRANT_VARIABLE, '{"the": "store grant"}')  # as local_cwd's env holds it
    local = open_local_run(tmp_path, tmp_path)
    remote = replace(
        local,
        store=SimpleNamespace(uri="s3://bucket/runs/sbx"),  # type: ignore[arg-type]
        config_uri="s3://bucket/runs/sbx/config/c.json",
    )
    binds = training_binds(remote, NANO)
    assert binds.network
    assert binds.writable == ()
    plain = LocalBackend(local, workdir=tmp_path).training_app(NANO)
    launcher, argv = bwrap_argv(confine(plain, binds, scratch=tmp_path, python=sys.executable))
    assert "--share-net" in argv
    passed = {arg.split("=", 1)[1] for arg in launcher if arg.startswith("--pass-env=")}
    assert passed == {"CUDA_VISIBLE_DEVICES", *STORE_VARIABLES}
    assert GRANT_VARIABLE in passed
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & passed
    assert "store-secret" not in " ".join(argv)
    assert "OPENAI_API_KEY" not in " ".join(argv)

    two_ranks = verify("gpt2", "nano", out=str(tmp_path), nproc_per_node=2, gpus=2)
    ranks_launcher, ranks_argv = bwrap_argv(
        confine(two_ranks, replace(binds, network=False), scratch=tmp_path, python=sys.executable)
    )
    assert "--network" in ranks_launcher  # torchrun's rendezvous on the sandbox's own loopback
    assert "--share-net" not in ranks_argv

    final, descriptors = completed_argv(
        argv, seccomp=True, pass_env=sorted(passed), environ=os.environ
    )
    try:
        assert "store grant" not in " ".join(final)  # handed over in an anonymous file
        at = final.index("--args")
        assert final[at - 1] == "--clearenv"  # before every --setenv of the argv
        with os.fdopen(os.dup(int(final[at + 1])), "rb") as handle:
            handed = handle.read().split(b"\0")
        assert b'{"the": "store grant"}' in handed
        assert b"--seccomp" in handed
        assert b"store-secret" not in b"".join(handed)  # no credential reaches the sandbox
        assert b"store-key-id" not in b"".join(handed)
        assert b"llm-secret" not in b"".join(handed)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def run_verification(backend: LocalBackend, action: StartVerification, limit: float) -> None:
    """Start one verification and observe until it ends (or fail at ``limit`` seconds)."""
    backend.start_verification(action)
    deadline = time.monotonic() + limit
    while backend.jobs and time.monotonic() < deadline:
        time.sleep(0.5)
        backend.observe()
    if backend.jobs:
        backend.stop()
        pytest.fail(f"the verification did not end within {limit}s")


def job_logs(backend: LocalBackend) -> str:
    return "".join(p.read_text(errors="replace") for p in backend.logs.rglob("*.log"))


@NEEDS_BWRAP
@pytest.mark.slow
def test_the_gpt2_seed_trains_at_nano_through_the_sandbox(
    builtin_data: Path, tmp_path: Path
) -> None:
    handle = open_local_run(tmp_path, builtin_data)
    backend = LocalBackend(handle, workdir=tmp_path, boundary="bubblewrap")
    run_verification(backend, NANO, limit=240)
    prefix = verification_prefix("seed-gpt2", "nano")
    assert handle.store.exists(f"{prefix}/result.json"), job_logs(backend)[-3000:]
    result = json.loads(handle.store.get_text(f"{prefix}/result.json"))
    assert result["status"] == "succeeded", result
    assert result["steps"] > 0
    assert "genesys_cloze" in result["eval"]
    assert handle.store.exists(f"{prefix}/model.pt")
    assert not backend.scratch_dir(NANO).exists()  # removed when the job ended


@NEEDS_BWRAP
@pytest.mark.integration
@pytest.mark.slow
def test_a_run_on_s3_trains_through_a_sandbox_that_shares_the_network(
    builtin_data: Path, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"store-secret-{secrets.token_hex(8)}"  # moto takes any; unlike "test", unique
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    root = open_store(f"s3://genesys-test/sandboxed-{secrets.token_hex(4)}")
    handle, _ = open_run(spec(), RunIdentity(name="sbx"), root, data_uri=str(builtin_data))
    write_seeds(handle.store)
    backend = LocalBackend(handle, workdir=tmp_path, boundary="bubblewrap")
    grant = backend.store_grant(NANO)
    assert grant is not None
    assert grant.writable == handle.uri(verification_prefix("seed-gpt2", "nano"))
    app = backend.launch_app(NANO, grant=grant)
    assert secret not in app.roles[0].env[GRANT_VARIABLE]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(app.roles[0].env)
    launcher, argv = bwrap_argv(app)
    assert "--share-net" in argv
    assert "--network" in launcher  # the seccomp filter allows IPv4/IPv6 sockets
    assert f"--pass-env={GRANT_VARIABLE}" in launcher
    assert "--pass-env=AWS_SECRET_ACCESS_KEY" not in launcher
    assert not any(secret in arg or "X-Amz-Signature" in arg for arg in argv)
    run_verification(backend, NANO, limit=240)  # the trainer reaches S3 through its grant
    prefix = verification_prefix("seed-gpt2", "nano")
    assert handle.store.exists(f"{prefix}/result.json"), job_logs(backend)[-3000:]
    result = json.loads(handle.store.get_text(f"{prefix}/result.json"))
    assert result["status"] == "succeeded", result
    assert handle.store.exists(f"{prefix}/model.pt")


HOSTILE = '''
"""An MLP block that tries to leave its sandbox while it is composed."""

import json
import os
import socket

from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

OUT = {out!r}
TARGETS = {targets!r}
CANARY = {canary!r}
PORT = {port}


def attempt(action):
    try:
        return "done: " + str(action())
    except Exception as exc:
        return "refused: " + type(exc).__name__


def write(path):
    with open(path, "w") as handle:
        handle.write("escaped")
    return path


def read(path):
    with open(path) as handle:
        return handle.read()


def connect():
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as connection:
        connection.sendall(b"escaped")
    return PORT


PROBES = {{
    "writes": {{path: attempt(lambda path=path: write(path)) for path in TARGETS}},
    "canary": attempt(lambda: read(CANARY)),
    "connect": attempt(connect),
    "environ": dict(os.environ),
    "home": os.path.expanduser("~"),
}}
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "probes.json"), "w") as handle:
    json.dump(PROBES, handle)


class Escape(Unit):
    """A plain MLP (the probes above are the point)."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        return X + self.down(F.gelu(self.up(X)))
'''


@pytest.fixture
def listener() -> Any:
    """A loopback TCP listener that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, address = server.accept()
            except TimeoutError:
                continue
            accepted.append(address)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield SimpleNamespace(port=server.getsockname()[1], accepted=accepted)
    stop.set()
    thread.join()
    server.close()


@NEEDS_BWRAP
@pytest.mark.slow
def test_a_hostile_design_cannot_leave_its_output_prefix(
    builtin_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Any
) -> None:
    canary = "canary-" + secrets.token_hex(12)
    monkeypatch.setenv("GENESYS_TEST_CANARY", canary)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    secret_file = private / "canary.txt"
    secret_file.write_text(canary, encoding="utf-8")
    secret_file.chmod(0o600)

    handle = open_local_run(tmp_path, builtin_data)
    run_dir = tmp_path / "store" / "runs" / "sbx"
    out = run_dir / verification_prefix("d0001", "nano")
    targets = {
        "outside": str(tmp_path / "outside.txt"),
        "run store": str(run_dir / "escape.txt"),
        "other design": str(run_dir / design_key("seed-gpt2", "design.json")),
        "own design": str(run_dir / design_key("d0001", "design.json")),
        "data": str(builtin_data / "escape.txt"),
        "config": handle.config_uri,
        "logs": str(tmp_path / ".genesys" / "escape.txt"),
        "source": str(Path(__file__).with_name("escape.txt")),
    }
    source = HOSTILE.format(
        out=str(out), targets=sorted(targets.values()), canary=str(secret_file), port=listener.port
    )
    tree = load_block_file(source, name="escape")
    handle.store.put_text(design_key("d0001", "design.json"), json.dumps(tree.to_json()))
    before = {path: Path(path).read_bytes() for path in targets.values() if Path(path).exists()}

    backend = LocalBackend(handle, workdir=tmp_path, boundary="bubblewrap")
    run_verification(backend, StartVerification("d0001", "nano", 0), limit=240)

    assert (out / "probes.json").exists(), job_logs(backend)[-3000:]
    probes = json.loads((out / "probes.json").read_text(encoding="utf-8"))
    for path in targets.values():  # written inside a private tmpfs at most, never on the host
        if path in before:
            assert Path(path).read_bytes() == before[path], path
        else:
            assert not Path(path).exists(), (path, probes["writes"][path])
    assert probes["canary"].startswith("refused: "), probes["canary"]
    assert probes["connect"].startswith("refused: "), probes["connect"]
    assert listener.accepted == []
    assert "GENESYS_TEST_CANARY" not in probes["environ"]
    assert "AWS_SECRET_ACCESS_KEY" not in probes["environ"]
    assert probes["home"] == SANDBOX_DIR
    assert json.loads((out / "result.json").read_text())["status"] == "succeeded"

    written = [p for root in (out, backend.logs) for p in root.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert canary.encode() not in path.read_bytes(), path


SLEEPER = '''
"""A block whose composition never ends, with a grandchild in the background."""

import subprocess
import time

from torch import Tensor, nn
from genesys_trainer.units import Unit

subprocess.Popen(["sleep", {marker!r}])
time.sleep(float({marker!r}))


class Sleeper(Unit):
    """Never built."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, X: Tensor) -> Tensor:
        return X + self.mix(X)
'''


def processes_running(marker: str) -> list[int]:
    """Host process ids whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in command:
                found.append(int(entry.name))
    return found


@NEEDS_BWRAP
@pytest.mark.slow
def test_a_job_past_its_deadline_is_cancelled_with_every_sandboxed_process(
    builtin_data: Path, tmp_path: Path
) -> None:
    marker = f"3{secrets.randbelow(10**6):06d}.5"  # seconds of sleep: unique on this machine
    handle = open_local_run(tmp_path, builtin_data)
    tree = load_block_file(SLEEPER.format(marker=marker), name="sleeper")
    handle.store.put_text(design_key("d0002", "design.json"), json.dumps(tree.to_json()))
    backend = LocalBackend(handle, workdir=tmp_path, boundary="bubblewrap")
    action = StartVerification("d0002", "nano", 0)
    backend.start_verification(action)
    try:
        deadline = time.monotonic() + 60
        while not processes_running(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_running(marker), job_logs(backend)[-3000:]  # the design's grandchild
        backend.jobs[("d0002", "nano")].deadline = 0.0  # its rung's deadline has passed
        backend.observe()
    finally:
        backend.stop()
    assert not backend.jobs
    attempt = json.loads(
        handle.store.get_text(f"{verification_prefix('d0002', 'nano')}/attempts/0.json")
    )
    assert attempt["state"].startswith("DeadlineExceeded"), attempt
    deadline = time.monotonic() + 15
    while processes_running(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_running(marker) == []  # the grandchild died with the sandbox
    assert not backend.scratch_dir(action).exists()
