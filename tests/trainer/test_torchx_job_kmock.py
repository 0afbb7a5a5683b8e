"""The kubernetes_job scheduler against a Kubernetes API on loopback (kmock's emulator): submit,
resubmit, describe, list, logs and cancel through the official client; and the emulator's own
fixes (tests/support/kube.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from torchx import specs

from genesys.backends.torchx_job import KubernetesJobScheduler, create_scheduler
from genesys_trainer.component import verify
from support.kube import (
    KUBERNETES_CLIENT_WARNINGS,
    KMockServer,
    api_client,
    kmock_server,
    label_selector_matches,
    running_kmock,
)

pytestmark = [pytest.mark.integration, KUBERNETES_CLIENT_WARNINGS]

NAMESPACE = "genesys"
JOBS = "batch/v1/jobs"
CFG: dict[str, Any] = {"namespace": NAMESPACE, "queue": "gpu-queue", "labels": {"team": "r"}}


def app(design: str = "d0001", **kwargs: Any) -> specs.AppDef:
    return verify(
        design=f"s3://b/designs/{design}/design.json",
        rung="nano",
        data="s3://b/data",
        out=f"s3://b/designs/{design}/out",
        name=design,
        attempt=1,
        **kwargs,
    )


@pytest.fixture
def kube() -> Iterator[KMockServer]:
    with running_kmock() as server:
        yield server


@pytest.fixture
def scheduler(kube: KMockServer) -> Iterator[KubernetesJobScheduler]:
    client = api_client(kube.url)
    yield create_scheduler("test", client=client, namespace=NAMESPACE)
    client.close()


def submit(
    scheduler: KubernetesJobScheduler,
    application: specs.AppDef,
    options: dict[str, Any] | None = None,
) -> str:
    cfg = {**CFG, **(options or {})}
    app_id: str = scheduler.schedule(scheduler.submit_dryrun(application, cfg))
    return app_id


def patch_status(scheduler: KubernetesJobScheduler, name: str, status: dict[str, Any]) -> None:
    from kubernetes import client

    body = {"status": status}
    client.BatchV1Api(scheduler.api_client()).patch_namespaced_job_status(name, NAMESPACE, body)


def test_schedule_creates_the_job(scheduler: KubernetesJobScheduler, kube: KMockServer) -> None:
    app_id = submit(scheduler, app())
    assert app_id == f"{NAMESPACE}:verify-d0001-nano-a1"
    stored = kube.object(JOBS, NAMESPACE, "verify-d0001-nano-a1")
    assert stored is not None
    assert stored["spec"]["suspend"] is True
    assert stored["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert stored["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert stored["metadata"]["uid"]


def test_scheduling_again_is_idempotent(
    scheduler: KubernetesJobScheduler, kube: KMockServer
) -> None:
    first = submit(scheduler, app())
    before = kube.object(JOBS, NAMESPACE, "verify-d0001-nano-a1")
    assert submit(scheduler, app()) == first
    assert kube.object(JOBS, NAMESPACE, "verify-d0001-nano-a1") == before
    posts = [r for r in kube.requests() if r.method == "POST"]
    assert len(posts) == 2  # the second one was answered 409 and left the Job alone


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ({"active": 1}, specs.AppState.RUNNING),
        ({"succeeded": 1}, specs.AppState.SUCCEEDED),
        (
            {
                "failed": 1,
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
                ],
            },
            specs.AppState.FAILED,
        ),
    ],
)
def test_describe_maps_the_job_status(
    scheduler: KubernetesJobScheduler, status: dict[str, Any], state: specs.AppState
) -> None:
    app_id = submit(scheduler, app())
    described = scheduler.describe(app_id)
    assert described is not None
    assert described.state == specs.AppState.PENDING  # suspended: waiting for Kueue
    patch_status(scheduler, "verify-d0001-nano-a1", status)
    patch = {"spec": {"suspend": False}}
    from kubernetes import client

    client.BatchV1Api(scheduler.api_client()).patch_namespaced_job(
        "verify-d0001-nano-a1", NAMESPACE, patch
    )
    described = scheduler.describe(app_id)
    assert described is not None
    assert described.state == state
    assert described.roles[0].name == "verify"
    assert described.roles[0].args == app().roles[0].args
    if state == specs.AppState.FAILED:
        assert described.msg == "BackoffLimitExceeded"
        assert described.num_restarts == 1


def test_describe_of_a_missing_job_is_none(scheduler: KubernetesJobScheduler) -> None:
    assert scheduler.describe(f"{NAMESPACE}:nothing-here") is None
    assert not scheduler.exists(f"{NAMESPACE}:nothing-here")


def test_list_finds_only_this_schedulers_jobs(scheduler: KubernetesJobScheduler) -> None:
    from kubernetes import client

    managed = {"managed_by": "genesys-operator"}  # whoever manages it, it is this scheduler's
    ids = {submit(scheduler, app("d0001")), submit(scheduler, app("d0002"), managed)}
    other = {
        "metadata": {"name": "someone-else"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
            }
        },
    }
    client.BatchV1Api(scheduler.api_client()).create_namespaced_job(NAMESPACE, other)
    listed = scheduler.list()
    assert {item.app_id for item in listed} == ids
    assert {item.state for item in listed} == {specs.AppState.PENDING}


def test_cancel_deletes_the_job(scheduler: KubernetesJobScheduler, kube: KMockServer) -> None:
    app_id = submit(scheduler, app())
    scheduler.cancel(app_id)
    assert kube.object(JOBS, NAMESPACE, "verify-d0001-nano-a1") is None
    assert scheduler.describe(app_id) is None
    (delete,) = [r for r in kube.requests() if r.method == "DELETE"]
    assert delete.params["propagationPolicy"] == "Foreground"
    scheduler.cancel(app_id)  # gone already: nothing to do


def test_logs_come_from_the_replicas_newest_pod(
    scheduler: KubernetesJobScheduler, kube: KMockServer
) -> None:
    from kubernetes import client

    app_id = submit(scheduler, app())
    assert list(scheduler.log_iter(app_id, "verify")) == []  # no pod yet
    core = client.CoreV1Api(scheduler.api_client())
    for name, created in [("old", "2025-01-01T00:00:00Z"), ("new", "2025-01-01T00:01:00Z")]:
        pod = {
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "labels": {"job-name": "verify-d0001-nano-a1"},
            },
            "spec": {"containers": [{"name": "verify", "image": "i"}]},
        }
        core.create_namespaced_pod(NAMESPACE, pod)
    kube.pod_logs[NAMESPACE, "old"] = "first attempt\n"
    kube.pod_logs[NAMESPACE, "new"] = '{"step": 1, "loss": 5.0}\nstep 2\n'
    assert list(scheduler.log_iter(app_id, "verify")) == ['{"step": 1, "loss": 5.0}\n', "step 2\n"]
    assert list(scheduler.log_iter(app_id, "verify", regex="step 2")) == ["step 2\n"]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert len(list(scheduler.log_iter(app_id, "verify", since=since))) == 2
    (read,) = [
        r for r in kube.requests() if r.url.path.endswith("/log") and "sinceSeconds" in r.params
    ]
    assert int(read.params["sinceSeconds"]) >= 300
    assert read.params["container"] == "verify"


# ------------------------------------------------------------------- the emulator itself


def test_kmock_server_answers_like_an_api_server_until_exit() -> None:
    from kubernetes import client

    with kmock_server() as url:
        assert url.startswith("http://127.0.0.1:")
        api = api_client(url)
        batch = client.BatchV1Api(api)
        body = {
            "metadata": {"name": "j", "labels": {"a": "1"}},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
                }
            },
        }
        created, status, _ = batch.create_namespaced_job_with_http_info("ns", body)
        assert status == 201
        assert (created.metadata.namespace, created.metadata.resource_version) == ("ns", "1")
        assert created.metadata.uid
        patched = batch.patch_namespaced_job_status("j", "ns", {"status": {"active": 1}})
        assert patched.metadata.resource_version == "2"
        listed = batch.list_namespaced_job("ns", label_selector="a=1")
        assert (listed.kind, listed.api_version, len(listed.items)) == ("JobList", "batch/v1", 1)
        assert batch.list_namespaced_job("ns", label_selector="a!=1").items == []
        api.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/version", timeout=2)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("a=1", True),
        ("a==1,b=2", True),
        ("a=2", False),
        ("a!=2", True),
        ("c!=2", True),
        ("a", True),
        ("!a", False),
        ("!c", True),
        ("a in (1, 3)", True),
        ("a notin (1,3),b=2", False),
        ("b in (3),a=1", False),
    ],
)
def test_label_selectors_filter_like_the_api_server(selector: str, matches: bool) -> None:
    assert label_selector_matches(selector, {"a": "1", "b": "2"}) is matches


def test_created_objects_named_by_generate_name_get_distinct_names(kube: KMockServer) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client(kube.url))
    event = {
        "metadata": {"generateName": "genesys-operator-"},
        "involvedObject": {"kind": "DiscoveryRun", "name": "r", "namespace": NAMESPACE},
        "reason": "Started",
        "message": "m",
    }
    first = core.create_namespaced_event(NAMESPACE, event)
    second = core.create_namespaced_event(NAMESPACE, event)
    names = {first.metadata.name, second.metadata.name}
    assert len(names) == 2
    assert all(name.startswith("genesys-operator-") and len(name) == 22 for name in names)
