"""Fixtures of the operator tests: a fresh cluster (API, S3, CRDs, namespace, Secret) per test.

After a test in which the operator ran, every request it sent (known by its User-Agent) must be
allowed by the Helm chart's ClusterRole (:mod:`support.rbac`): the chart's RBAC is checked
against what the operator really does, not against a list written by hand. Every object it
created must carry the standard ``app.kubernetes.io`` labels with its one ``managed-by``, and
every Job's pod must pass Pod Security "restricted" with a read-only root file system
(:mod:`support.pod_security`), as a namespace that enforces "restricted" would demand.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from genesys.sandbox.remote import TOKEN_PATH
from support.cluster import NAMESPACE, REPO, Cluster
from support.kube import running_kmock
from support.pod_security import read_only_root_violations, restricted_violations
from support.rbac import (
    OUTCOMES,
    SEEN_CALLS,
    Call,
    chart_rules,
    operator_calls,
    operator_creations,
    ungranted,
)

STANDARD_LABELS = ("name", "instance", "component", "part-of", "managed-by")
OPERATOR_OBJECTS = ("jobs", "services", "networkpolicies", "designs")


def creation_problems(created: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What is wrong with the objects the operator created (labels, pod security)."""
    problems = []
    for resource, body in created:
        if resource not in OPERATOR_OBJECTS:
            continue  # events (kopf's), the run's own status
        name = f"{resource}/{body.get('metadata', {}).get('name')}"
        labels = body.get("metadata", {}).get("labels") or {}
        missing = [k for k in STANDARD_LABELS if f"app.kubernetes.io/{k}" not in labels]
        if missing:
            problems.append(f"{name} lacks app.kubernetes.io/{missing}")
        if labels.get("app.kubernetes.io/managed-by") != "genesys-operator":
            problems.append(f"{name} managed-by {labels.get('app.kubernetes.io/managed-by')}")
        if resource == "jobs":
            pod = body["spec"]["template"]["spec"]
            broken = restricted_violations(pod) + read_only_root_violations(pod)
            problems += [f"{name}: {violation}" for violation in broken]
    return problems


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback, with the bucket."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield endpoint
    server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record each operator test's outcome (the RBAC "nothing more" test needs all passed)."""
    report = yield
    if report.when == "call" or report.outcome != "passed":
        outcomes = item.session.stash.setdefault(OUTCOMES, {})
        outcomes[item.nodeid] = (
            report.outcome if report.when == "call" or report.skipped else "failed"
        )
    return report


@pytest.fixture(scope="session")
def seen_operator_calls(request: pytest.FixtureRequest) -> set[Call]:
    """Every (apiGroup, resource, verb) the operator sent in this test session."""
    return request.session.stash.setdefault(SEEN_CALLS, set())


@pytest.fixture
def cluster(
    s3_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seen_operator_calls: set[Call],
) -> Iterator[Cluster]:
    """A fresh API server with the CRDs, namespace and Secret a user creates first."""
    if Path(TOKEN_PATH).exists():
        pytest.skip(
            f"this machine holds a service-account token ({TOKEN_PATH}): the fake kubelet runs "
            "pods as local processes, which would see it, and check pods rightly refuse to run "
            "design code where a credential is visible"
        )
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():  # this process reads S3 too
        monkeypatch.setenv(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    with running_kmock(fail_on_server_errors=False) as kube:
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
                        {
                            "name": "kmock",
                            "context": {
                                "cluster": "kmock",
                                "user": "kmock",
                                "namespace": NAMESPACE,
                            },
                        }
                    ],
                }
            )
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))},
            "KUBECONFIG": str(kubeconfig),
            "GENESYS_S3_ENDPOINT": s3_server,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "GENESYS_TICK_SECONDS": "1",
            # reconciles list only the store folders the ended Jobs name: with no whole
            # listing in a test's time, a write that no Job names would stall the test
            "GENESYS_STORE_RESYNC_SECONDS": "3600",
        }
        bucket = f"run-{uuid.uuid4().hex[:12]}"  # every test its own store
        boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        cluster = Cluster(kube, s3_server, bucket, kubeconfig, tmp_path, env)
        cluster.kubectl("apply", "--validate=false", "-f", str(REPO / "crds"))
        # `kubectl create` sends protobuf, which the emulator cannot read: render, then apply
        cluster.create_namespace(NAMESPACE)
        llm = cluster.kubectl(
            "create",
            "secret",
            "generic",
            "llm-credentials",
            "-n",
            NAMESPACE,
            "--from-literal=api-key=unused-offline",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        cluster.kubectl("apply", "--validate=false", "-f", "-", input_text=llm)
        try:
            yield cluster
        finally:
            cluster.stop_operator()
        if cluster.operator_logs:  # the operator ran: the chart's RBAC must allow all it did
            calls = operator_calls(kube.requests())
            assert calls, "no request of the operator was recognised by its User-Agent"
            seen_operator_calls.update(calls)
            missing = ungranted(calls, chart_rules())
            assert not missing, f"the Helm chart's ClusterRole does not grant {missing}"
            created = operator_creations(kube.requests())
            problems = creation_problems(created)
            assert not problems, f"objects the operator created are not as they must be: {problems}"
