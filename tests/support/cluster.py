"""A test cluster for the operator: a Kubernetes API (kmock), S3 (moto), kubectl, the operator.

Everything is a real server or process on loopback: kmock's emulator serves the Kubernetes API
(``tests/support/kube.py``), moto serves S3, ``genesys operator`` runs as a child process with a
kubeconfig pointing at the emulator, ``kubectl`` (the pinned binary ``scripts/setup.sh``
installs) drives it like a user would, and :class:`~support.kubelet.FakeKubelet` plays the Job
controller and the pods.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.kube import KMockServer, api_client
from support.kubelet import FakeKubelet

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "genesys"


def kubectl_binary() -> str:
    """The pinned kubectl (the venv's), else one on the PATH; skip when there is none."""
    pinned = Path(sys.executable).parent / "kubectl"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (scripts/setup.sh installs it)")
    return found


@dataclass
class Cluster:
    """The test cluster: API, S3, kubectl, and the operator process."""

    kube: KMockServer
    s3_endpoint: str
    bucket: str
    kubeconfig: Path
    workdir: Path
    env: dict[str, str]
    operator: subprocess.Popen[bytes] | None = None
    operator_logs: list[Path] = field(default_factory=list)

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        """Run kubectl against the emulator; its stdout."""
        done = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input_text,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def get(self, kind: str, name: str | None = None, namespace: str = NAMESPACE) -> Any:
        """``kubectl get -o json`` as data."""
        args = ["get", kind, *([name] if name else []), "-n", namespace, "-o", "json"]
        return json.loads(self.kubectl(*args))

    def store(self) -> Any:
        """The store root (the test's bucket)."""
        from genesys.store import open_store

        return open_store(f"s3://{self.bucket}", endpoint_url=self.s3_endpoint)

    def run_store(self, name: str, namespace: str = NAMESPACE) -> Any:
        """A run's own store: ``runs/<namespace>/<name>`` in the bucket."""
        return self.store().child(f"runs/{namespace}/{name}")

    def run_object(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        """The DiscoveryRun object as the API holds it (None when gone)."""
        return self.kube.object("genesys.dev/v1alpha1/discoveryruns", namespace, name)

    def run_status(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        """The DiscoveryRun's status (empty when it has none yet)."""
        return dict((self.run_object(name, namespace) or {}).get("status") or {})

    def create_namespace(self, namespace: str) -> None:
        """Create a namespace with the Secrets a user creates first (S3 credentials)."""
        rendered = self.kubectl("create", "namespace", namespace, "--dry-run=client", "-o", "yaml")
        self.kubectl("apply", "--validate=false", "-f", "-", input_text=rendered)
        secret = self.kubectl(
            "create",
            "secret",
            "generic",
            "s3-credentials",
            "-n",
            namespace,
            "--from-literal=AWS_ACCESS_KEY_ID=test",
            "--from-literal=AWS_SECRET_ACCESS_KEY=test",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        self.kubectl("apply", "--validate=false", "-f", "-", input_text=secret)

    def prepare_builtin_data(self) -> str:
        """``genesys data prepare`` of the built-in corpus into the bucket (skip without it)."""
        from genesys_trainer.data.sources import SourceError, builtin_corpus_dir

        try:
            builtin_corpus_dir()
        except SourceError as exc:
            pytest.skip(f"built-in corpus not installed: {exc}")
        shards = f"s3://{self.bucket}/data/byte"
        prepared = subprocess.run(
            [
                sys.executable,
                "-m",
                "genesys",
                "data",
                "prepare",
                "--source",
                "builtin",
                "--tokenizer",
                "byte",
                "--out",
                shards,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert prepared.returncode == 0, prepared.stderr[-2000:]
        return shards

    def start_operator(self, liveness: str = "") -> None:
        """Start ``genesys operator`` (cluster-wide, standalone, fast ticks)."""
        log = self.workdir / f"operator-{len(self.operator_logs)}.log"
        self.operator_logs.append(log)
        with log.open("wb") as sink:
            self.operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "genesys",
                    "operator",
                    "--standalone",
                    "--liveness",
                    liveness,
                ],
                env=self.env,
                cwd=self.workdir,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_operator(self) -> None:
        """SIGKILL the operator (a crash)."""
        if self.operator is not None and self.operator.poll() is None:
            os.killpg(self.operator.pid, signal.SIGKILL)
            self.operator.wait()
        self.operator = None

    def stop_operator(self) -> None:
        """Stop the operator gracefully."""
        if self.operator is not None and self.operator.poll() is None:
            os.killpg(self.operator.pid, signal.SIGTERM)
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.operator.pid, signal.SIGKILL)
                self.operator.wait()
        self.operator = None

    def logs(self) -> str:
        """The operator's output so far (for assertion messages)."""
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.operator_logs)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll until ``predicate``; fail with the operator's log after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.operator is not None and self.operator.poll() is not None:
                raise AssertionError(
                    f"the operator exited while waiting for {what}:\n{self.logs()}"
                )
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.logs()}")

    def kubelet(self, namespace: str = NAMESPACE, **options: Any) -> FakeKubelet:
        """A fake kubelet for a namespace, with the store's endpoint and pod logs wired."""

        def sink(namespace: str, pod: str, text: str) -> None:
            self.kube.call(lambda: self.kube.pod_logs.__setitem__((namespace, pod), text))

        pods = self.workdir / "pods"
        pods.mkdir(exist_ok=True)
        return FakeKubelet(
            api_client(self.kube.url),
            namespace=namespace,
            workdir=pods,
            pod_log_sink=sink,
            **options,
        )


def run_document(
    cluster: Cluster, name: str, namespace: str = NAMESPACE, **overrides: Any
) -> dict[str, Any]:
    """A small cluster DiscoveryRun (offline agents, CPU rungs, S3 on moto)."""
    document: dict[str, Any] = {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "seed": 2,
            "ladder": {"rungs": [{"name": "nano", "preset": "nano", "budget": 1, "tokens": 12288}]},
            "sessions": {"parallel": 1, "maxDesigns": 1},
            "agents": {"offline": True},
            "checks": {
                "forwardLength": 128,
                "causalityLength": 24,
                "effectivenessSteps": 3,
                "timeRatioError": 1000.0,
                "timeRatioWarning": 500.0,
            },
            "verification": {
                "scheduler": "kubernetes",
                "image": "genesys-trainer:test",
                "maxRetries": 2,
                "evalTasks": ["genesys_cloze"],
                "data": {
                    "shards": f"s3://{cluster.bucket}/data/byte",
                    "tokenizer": "byte",
                    "vocabSize": 256,
                },
                "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi"},
            },
            "storage": {
                "s3": {
                    "bucket": cluster.bucket,
                    "prefix": "",
                    "endpointUrl": cluster.s3_endpoint,
                    "credentialsSecret": "s3-credentials",
                }
            },
        },
    }
    for path, value in overrides.items():
        target = document["spec"]
        keys = path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return document
