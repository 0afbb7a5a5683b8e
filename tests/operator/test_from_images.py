"""End to end from the images: the operator, agent, check and training pods as podman containers.

The README's install runs first: its namespace and Secret are applied with its ``kubectl``
commands, and its ``helm install`` values are rendered with ``helm template`` (the emulator
serves no OpenAPI document, which ``helm install`` validates against). The operator then runs
from ``genesys-operator:<version>`` exactly as the rendered Deployment describes it (command, arguments, environment, security context, read-only root file system and
its ``/tmp`` emptyDir), on the host's network against the API emulator, authenticated as the
chart's ServiceAccount (a kubeconfig in a read-only file, as a projected token would be). The
fake kubelet runs every Job's pod template as a podman container from the image the Job names
(:mod:`support.podman`): agent and check pods from ``genesys-agent``, training pods from the CPU
``genesys-trainer``, which really trains and evaluates each design against S3 (moto) through its
store grant. A small offline run reaches Succeeded; the operator tests' fixture then checks
every request against the chart's RBAC and every created object's labels and pod security.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from genesys import __version__
from genesys.store.archive import load_archive
from support.cluster import Cluster, run_document
from support.images import IMAGES, ensure_images
from support.kube import KUBERNETES_CLIENT_WARNINGS
from support.podman import PodmanRuntime, podman_binary
from support.rbac import CHART, helm_binary

pytestmark = [pytest.mark.images, pytest.mark.slow, KUBERNETES_CLIENT_WARNINGS]

RELEASE, RELEASE_NAMESPACE = "genesys", "genesys-system"
KUBECONFIG_IN_POD = "/var/run/genesys/kubeconfig"


def chart_objects(cluster: Cluster) -> list[dict[str, Any]]:
    """The README's install: its namespace and Secret applied, its ``helm install`` rendered."""
    helm = helm_binary()
    if helm is None:
        pytest.skip("the pinned helm is missing (scripts/setup.sh installs it)")
    for create in (
        ["namespace", RELEASE_NAMESPACE],
        [
            "secret",
            "generic",
            "operator-s3",
            "-n",
            RELEASE_NAMESPACE,
            "--from-literal=AWS_ACCESS_KEY_ID=test",
            "--from-literal=AWS_SECRET_ACCESS_KEY=test",
        ],
    ):
        rendered = cluster.kubectl("create", *create, "--dry-run=client", "-o", "yaml")
        cluster.kubectl("apply", "--validate=false", "-f", "-", input_text=rendered)
    extra_env = [
        {"name": "GENESYS_S3_ENDPOINT", "value": cluster.s3_endpoint},
        {"name": "GENESYS_TICK_SECONDS", "value": "1"},
    ]
    chart = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "-n",
            RELEASE_NAMESPACE,
            "--set",
            "image.repository=genesys-operator",
            "--set",
            f"images.agent={IMAGES['agent']}",
            "--set",
            f"images.trainer={IMAGES['trainer']}",
            "--set-json",
            'envFrom=[{"secretRef":{"name":"operator-s3"}}]',
            "--set-json",
            f"extraEnv={json.dumps(extra_env)}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(chart.stdout) if doc]


def secret_env(cluster: Cluster, container: dict[str, Any]) -> dict[str, str]:
    """The variables ``envFrom`` Secrets give the container (as the kubelet reads them)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["secretRef"]["name"]
        secret = cluster.get("secret", name, namespace=RELEASE_NAMESPACE)
        env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    return env


def service_account_kubeconfig(cluster: Cluster, account: str, path: Path) -> Path:
    """A kubeconfig that names the chart's ServiceAccount as its user (readable by the pod)."""
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "in-cluster",
                "clusters": [{"name": "cluster", "cluster": {"server": cluster.kube.url}}],
                "users": [{"name": user, "user": {"token": f"token-of-{account}"}}],
                "contexts": [
                    {"name": "in-cluster", "context": {"cluster": "cluster", "user": user}}
                ],
            }
        )
    )
    path.chmod(0o644)
    return path


def start_operator_container(cluster: Cluster, runtime: PodmanRuntime, health_port: int) -> None:
    """Run the chart's Deployment's container from the operator image (the cluster's operator)."""
    objects = chart_objects(cluster)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    (container,) = pod["containers"]
    kubeconfig = service_account_kubeconfig(
        cluster, account["metadata"]["name"], cluster.workdir / "operator-kubeconfig"
    )
    env = {
        **secret_env(cluster, container),
        **{item["name"]: item["value"] for item in container.get("env") or []},
        "KUBECONFIG": KUBECONFIG_IN_POD,
    }
    # the liveness endpoint on a free port of the host's network, not the pod's 8080
    args = [
        f"http://127.0.0.1:{health_port}/healthz" if arg.endswith(":8080/healthz") else arg
        for arg in container["args"]
    ]
    log = cluster.workdir / f"operator-{len(cluster.operator_logs)}.log"
    cluster.operator_logs.append(log)
    cluster.operator = runtime.start(
        "genesys-operator-under-test",
        pod,
        container,
        env,
        args,
        log,
        read_only_files={KUBECONFIG_IN_POD: kubeconfig},
    )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_run_succeeds_with_every_pod_in_its_image(cluster: Cluster) -> None:
    podman = podman_binary()
    if podman is None:
        pytest.skip("podman is not installed (scripts/images.sh installs it)")
    cluster.prepare_builtin_data()
    ensure_images()
    runtime = PodmanRuntime(podman)
    try:
        start_operator_container(cluster, runtime, free_port())
        document = run_document(cluster, "imaged")
        spec = document["spec"]
        spec["agents"].pop("pod", None)  # the operator's default images: the chart's
        spec["verification"].pop("image", None)
        with cluster.kubelet(fake_training=False, runtime=runtime) as kubelet:
            cluster.kubectl(
                "apply", "--validate=false", "-f", "-", input_text=yaml.safe_dump(document)
            )
            cluster.wait_for(
                lambda: cluster.run_status("imaged").get("phase") == "Succeeded", 900, "Succeeded"
            )
            logs = {name: kubelet.started_logs(name) for name in kubelet.runs}
    finally:
        cluster.stop_operator()
        runtime.remove_all()
    jobs = cluster.get("jobs")["items"]
    images = {j["spec"]["template"]["spec"]["containers"][0]["image"] for j in jobs}
    assert images == {IMAGES["agent"], IMAGES["trainer"]}
    assert IMAGES["agent"] == f"genesys-agent:{__version__}"
    archive = load_archive(cluster.run_store("imaged"))
    results = [d.verifications["nano"] for d in archive.designs.values()]
    assert len(results) == 6
    assert all(r.status == "succeeded" for r in results), [r.reason for r in results]
    assert all(r.val_loss is not None and r.val_loss < 6.0 for r in results)
    checks = [text for name, text in logs.items() if name.startswith("check-imaged-")]
    assert checks, logs
    assert all("boundary container" in text for text in checks), logs
    assert cluster.run_status("imaged")["designs"]["verified"] >= 1
