"""``genesys install --print``: the chart's defaults for clusters without Helm.

The packaged manifests must be what ``scripts/render-install.sh`` renders from the chart today
(byte for byte), valid Kubernetes, movable into another namespace, and accepted by
``kubectl apply`` against the API emulator, which then serves the CRDs and the Deployment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.cluster import kubectl_binary
from support.kube import running_kmock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "operator" / "genesys" / "deploy" / "install.yaml"


def genesys_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesys", "install", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_packaged_manifests_are_the_charts_defaults_today(tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "helm").exists():
        pytest.skip("the pinned helm is missing (scripts/setup.sh installs it)")
    fresh = tmp_path / "install.yaml"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "render-install.sh"), str(fresh)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert fresh.read_bytes() == PACKAGED.read_bytes(), (
        "operator/genesys/deploy/install.yaml is stale: run scripts/render-install.sh"
    )


def test_print_gives_valid_objects_in_the_asked_namespace() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes_validate is missing")
    default = genesys_install("--print")
    assert default.returncode == 0, default.stderr
    assert default.stdout == PACKAGED.read_text(encoding="utf-8")
    moved = genesys_install("--print", "--namespace", "team-x")
    assert moved.returncode == 0, moved.stderr
    found = objects(moved.stdout)
    assert [o["kind"] for o in found] == [
        "Namespace",
        "ServiceAccount",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    for obj in found:
        assert validate.validate(obj, desired_version="1.35.0", strict=True)
    assert found[0]["metadata"]["name"] == "team-x"
    assert found[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [o for o in found if "namespace" in o["metadata"]]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"team-x"}
    (binding,) = [o for o in found if o["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["namespace"] == "team-x"
    assert "genesys-system" not in moved.stdout


def test_install_without_print_or_with_a_bad_namespace_says_what_to_do() -> None:
    bare = genesys_install()
    assert bare.returncode == 2
    assert "genesys install --print | kubectl apply" in bare.stderr
    bad = genesys_install("--print", "--namespace", "Team_X")
    assert bad.returncode == 2
    assert "DNS-1123" in bad.stderr
    assert bad.stdout == ""


def test_kubectl_applies_what_install_prints(tmp_path: Path) -> None:
    kubectl = kubectl_binary()
    printed = genesys_install("--print")
    assert printed.returncode == 0, printed.stderr
    with running_kmock() as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "kmock",
                    "clusters": [{"name": "kmock", "cluster": {"server": kube.url}}],
                    "users": [{"name": "kmock", "user": {"token": "test"}}],
                    "contexts": [
                        {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}
                    ],
                }
            )
        )

        def kubectl_run(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                [kubectl, "--kubeconfig", str(kubeconfig), *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        # the emulator serves no OpenAPI document for kubectl's client-side validation
        kubectl_run("apply", "--validate=false", "-f", "-", stdin=printed.stdout)
        crds = kubectl_run("get", "customresourcedefinitions", "-o", "name")
        assert "discoveryruns.genesys.dev" in crds
        deployment = kubectl_run("get", "deployment", "-n", "genesys-system", "-o", "yaml")
        (container,) = yaml.safe_load(deployment)["items"][0]["spec"]["template"]["spec"][
            "containers"
        ]
        assert container["image"] == "genesys-operator:0.1.0"
