"""Fixtures of the store conformance suite: every store implementation, each test a fresh store.

Implementations (the ids of ``store_case``): ``local`` (a new directory), ``moto`` (a new bucket
on moto's threaded server), ``s3rver`` (a new bucket on a real s3rver process), and ``-child``
of each: a ``child("nested/child")`` view whose parent also holds decoy objects just outside the
child (``nested/child-2/...``, ``nested/childish.txt``), which the child must never see or touch.

s3rver runs from ``.venv/node`` (``bash scripts/setup.sh`` installs ``s3rver@3.7.1`` there);
where node or the package is missing its cases skip with that reason. It accepts only the
credentials ``S3RVER``/``S3RVER``, needs path-style addressing and no default checksums (the
S3Store configures both), and on Node 17+ needs ``--openssl-legacy-provider``: its list
continuation tokens use DES, which OpenSSL 3 only offers from the legacy provider.

What must stay true: no case is faked; a case that cannot run skips with the reason.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from genesys.store import Store, open_store

REPO = Path(__file__).resolve().parents[2]
CHILD_PREFIX = "nested/child"
DECOYS = {"nested/child-2/decoy.txt": "sibling folder", "nested/childish.txt": "sibling key"}
S3RVER_PIN = "3.7.1"
S3RVER_INSTALL = "bash scripts/setup.sh (npm install s3rver@3.7.1 into .venv/node)"


@dataclass(frozen=True)
class Server:
    """An S3 endpoint on loopback with the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class StoreCase:
    """A fresh store of one implementation, and what that implementation is known to do."""

    name: str
    store: Store
    honours_conditional_writes: bool  # refuses a second If-None-Match PUT (local: os.link)
    multipart_etag: bool  # a multipart upload's ETag ends in "-<parts>"
    endpoint: str | None  # S3 endpoint URL; None for the local store


def _s3rver_script() -> Path | None:
    """s3rver's entry point in the venv's node folder, when the pinned version is installed."""
    for node_dir in (Path(sys.prefix) / "node", REPO / ".venv" / "node"):
        package = node_dir / "node_modules" / "s3rver"
        manifest = package / "package.json"
        if manifest.is_file() and f'"version": "{S3RVER_PIN}"' in manifest.read_text():
            return package / "bin" / "s3rver.js"
    return None


def _node_major(node: str) -> int:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    """moto's S3 server on loopback."""
    moto_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = moto_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield Server(f"http://{host}:{port}", "test", "test")
    server.stop()


@pytest.fixture(scope="session")
def s3rver_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real s3rver process on loopback (port chosen by the OS, read from its log)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"node is not installed (apt-get install nodejs npm), then {S3RVER_INSTALL}")
    script = _s3rver_script()
    if script is None:
        pytest.skip(f"s3rver {S3RVER_PIN} is not installed: run {S3RVER_INSTALL}")
    flags = ["--openssl-legacy-provider"] if _node_major(node) >= 17 else []
    work = tmp_path_factory.mktemp("s3rver")
    (work / "data").mkdir()
    log_path = work / "s3rver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                node,
                *flags,
                str(script),
                "--silent",
                "-a",
                "127.0.0.1",
                "-p",
                "0",
                "-d",
                str(work / "data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"s3rver did not start (exit {process.poll()}):\n{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{found.group(1)}", "S3RVER", "S3RVER")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _s3_store(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    """A store on a new bucket; the environment lets ``open_store`` reach the same server."""
    import boto3

    env = {
        "GENESYS_S3_ENDPOINT": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    bucket = f"store-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    client.create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}")


@pytest.fixture
def fresh_s3_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[Server], Store]:
    """A factory of stores on new buckets of a server (for tests of one S3 implementation)."""
    return lambda server: _s3_store(server, monkeypatch, tmp_path)


IMPLEMENTATIONS = [
    pytest.param("local", id="local"),
    pytest.param("local-child", id="local-child"),
    pytest.param("moto", id="moto", marks=pytest.mark.integration),
    pytest.param("moto-child", id="moto-child", marks=pytest.mark.integration),
    pytest.param("s3rver", id="s3rver", marks=pytest.mark.integration),
    pytest.param("s3rver-child", id="s3rver-child", marks=pytest.mark.integration),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def store_case(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreCase]:
    """A fresh, empty store of one implementation (a child view for the ``-child`` ids)."""
    name: str = request.param
    kind = name.removesuffix("-child")
    endpoint: str | None = None
    if kind == "local":
        root: Store = open_store(tmp_path / "store")
    else:
        server: Server = request.getfixturevalue(f"{kind}_server")
        root, endpoint = _s3_store(server, monkeypatch, tmp_path), server.endpoint
    honours = kind != "s3rver"  # s3rver 3.7.1 ignores If-None-Match
    if not name.endswith("-child"):
        yield StoreCase(name, root, honours, kind == "moto", endpoint)
        return
    for key, text in DECOYS.items():
        root.put_text(key, text)
    yield StoreCase(name, root.child(CHILD_PREFIX), honours, kind == "moto", endpoint)
    assert {key: root.get_text(key) for key in DECOYS} == DECOYS, "the child touched its parent"
