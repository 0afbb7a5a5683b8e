"""Fixtures of the image tests: podman, the three images built by ``scripts/images.sh``, S3.

- ``podman``: the podman command with this project's config (``scripts/images.sh setup`` writes
  it: runc, capped nproc). Skips with the reason where podman is missing or cannot run.
- ``built_images``: ``scripts/images.sh build`` once per session. The build always runs, and
  podman's layer cache makes it seconds when nothing changed: every input reaches the images
  through a content-hashed COPY (or a build argument), so an image of an older checkout is
  rebuilt, never reused. Its wall time is reported at the end of the session.
- ``s3``: moto's S3 server on loopback with a fresh bucket, reachable from containers on the
  host's network.

What must stay true: no test is faked; a test that cannot run skips and says why.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "images.sh"
CONTAINERS_CONF = REPO / ".cache" / "containers" / "containers.conf"
IMAGES = ("operator", "agent", "trainer")
VERSION: str = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]
BUILD_TIMEOUT = 3600  # cold: about six minutes on two cores (base image included); warm: seconds
SETUP_TIMEOUT = 600  # apt-get install and the Debian base image: about a minute
NOBODY = "65534:65534"
INSTALL_HINT = (
    "as root: apt-get install -y podman buildah mmdebstrap runc (or scripts/images.sh setup)"
)

TIMINGS: dict[str, float] = {}
"""Wall seconds of each build (``build``, ``build <image>``), for the terminal summary."""


def image_tag(name: str) -> str:
    """The tag scripts/images.sh gives the image ``name``."""
    return f"genesys-{name}:{VERSION}"


@dataclass(frozen=True)
class Podman:
    """The podman command line with this project's configuration."""

    binary: str
    env: dict[str, str] = field(repr=False)

    def __call__(
        self, *args: str, timeout: float, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS``; a run past ``timeout`` fails the test that asked for it."""
        try:
            done = subprocess.run(
                [self.binary, *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"podman {' '.join(args[:3])} ... ran past {timeout:.0f} s: {exc.stderr!r}")
        if check and done.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        options: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` of ``command`` in ``image`` as a restricted pod would run it.

        Read-only root file system, a tmpfs at /tmp, uid/gid 65534, no capability, no new
        privileges; ``options`` add to these (network, environment). The container is stopped
        after ``timeout`` seconds (podman's ``--timeout``), and the client a little later.
        """
        name = f"genesys-test-{uuid.uuid4().hex[:10]}"
        restricted = [
            "--rm",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=2g",
            "--user",
            NOBODY,
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--timeout",
            str(int(timeout)),
        ]
        try:
            return self("run", *restricted, *options, image, *command, timeout=timeout + 30)
        finally:
            subprocess.run(
                [self.binary, "rm", "--force", "--ignore", name],
                env=self.env,
                capture_output=True,
                check=False,
                timeout=60,
            )


@pytest.fixture(scope="session")
def podman() -> Podman:
    """podman, once scripts/images.sh has configured it; skips where it cannot run here."""
    binary = shutil.which("podman")
    if binary is None:
        pytest.skip(f"podman is not installed ({INSTALL_HINT})")
    # setup writes CONTAINERS_CONF (runc, capped nproc) where none is set; every call uses it.
    inherited = {key: value for key, value in os.environ.items() if key != "CONTAINERS_CONF"}
    setup = subprocess.run(
        [str(SCRIPT), "setup"],
        env=inherited,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
        check=False,
    )
    env = {**inherited, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    info = subprocess.run(
        [binary, "info"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if info.returncode != 0:
        pytest.skip(f"podman does not work here (podman info: {info.stderr.strip()[-500:]})")
    if setup.returncode != 0:
        pytest.fail(f"scripts/images.sh setup failed:\n{setup.stderr[-4000:]}")
    return Podman(binary, env)


@pytest.fixture(scope="session")
def built_images(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Image name -> tag, built by ``scripts/images.sh build`` (the trainer: its CPU variant)."""
    log_path = tmp_path_factory.mktemp("images") / "build.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            done = subprocess.run(
                [str(SCRIPT), "build", *IMAGES],
                env=podman.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/images.sh build ran past {BUILD_TIMEOUT} s; log: {log_path}")
    TIMINGS["build"] = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    for name, seconds in re.findall(r"built genesys-(\w+):\S+ in (\d+) s", output):
        TIMINGS[f"build {name}"] = float(seconds)
    if done.returncode != 0:
        pytest.fail(
            f"scripts/images.sh build exited {done.returncode}; log {log_path}:\n{output[-6000:]}"
        )
    return {name: image_tag(name) for name in IMAGES}


@dataclass(frozen=True)
class S3:
    """An S3 endpoint on loopback, its credentials and a fresh bucket."""

    endpoint: str
    bucket: str
    access_key: str = "test"
    secret_key: str = "test"
    region: str = "us-east-1"

    def environment(self) -> dict[str, str]:
        """The variables with which the store (and boto3) reach this endpoint."""
        return {
            "GENESYS_S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's threaded S3 server on 127.0.0.1 with a new bucket."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = S3(f"http://{host}:{port}", f"images-{uuid.uuid4().hex[:12]}")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
    )
    client.create_bucket(Bucket=endpoint.bucket)
    yield endpoint
    server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The build times of this test run, when it built the images."""
    if TIMINGS:
        terminalreporter.section("image builds (wall seconds)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<20} {seconds:7.1f}")
