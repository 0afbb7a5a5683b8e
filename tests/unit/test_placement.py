"""Per-rung placement: each rung's training pods take its own resources and scheduling.

A rung's ``resources`` (field by field), ``nodeSelector``, ``tolerations``, ``affinity``,
``priorityClassName`` and ``queueName`` replace ``verification``'s; what it leaves unset is
``verification``'s. The rendered training Jobs of a two-rung GPU ladder are pinned in
``tests/fixtures/placement_jobs.yaml`` and validated against the Kubernetes 1.35 schemas. After a
deliberate change of the rendering, regenerate the pin and review its diff::

    GENESYS_REGENERATE=1 python -m pytest tests/unit/test_placement.py
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from genesys.api.discoveryrun import DiscoveryRunSpec
from genesys.api.placement import rung_placement
from genesys.api.runconfig import RunIdentity
from genesys.api.validation import SpecValidationError, parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import open_run
from genesys.backends.kubernetes import KubernetesBackend
from genesys.backends.torchx_job import render_job
from genesys.engine.actions import StartVerification
from genesys.store.base import LocalStore
from support.kube import KUBERNETES_CLIENT_WARNINGS

pytestmark = KUBERNETES_CLIENT_WARNINGS

PIN = Path(__file__).resolve().parents[1] / "fixtures" / "placement_jobs.yaml"
UID = "0f0e0d0c-aaaa-bbbb-cccc-000000000002"
H100_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}
            ]
        }
    }
}
SPEC: dict[str, Any] = {
    "seed": 1,
    "ladder": {
        "rungs": [
            {"name": "14M", "preset": "14M", "budget": 8},
            {
                "name": "350M",
                "preset": "350M",
                "budget": 1,
                "resources": {"gpus": 8, "memory": "512Gi"},
                "nodeSelector": {"pool": "h100-8x"},
                "tolerations": [{"key": "reserved", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": H100_AFFINITY,
                "priorityClassName": "genesys-large",
                "queueName": "large-gpus",
            },
        ]
    },
    "agents": {"apiKeySecret": {"name": "llm", "key": "api-key"}},
    "verification": {
        "scheduler": "kubernetes",
        "image": "registry.example/genesys-trainer:pinned",
        "evalTasks": ["genesys_cloze"],
        "data": {"shards": "s3://bucket/data/llama", "tokenizer": "byte", "vocabSize": 256},
        "resources": {"gpus": 1, "cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
        "nodeSelector": {"pool": "gpu"},
        "priorityClassName": "genesys-training",
        "queueName": "gpus",
    },
    "storage": {"s3": {"bucket": "bucket", "credentialsSecret": "s3-creds"}},
}


def body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": "ladder", "namespace": "lab", "uid": UID, "generation": 1},
        "spec": spec,
    }


def training_jobs(tmp_path: Path, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rendered training Job of one design at every rung, by rung name."""
    from kubernetes import client

    document = body(spec)
    run = parse_discovery_run(document)
    identity = RunIdentity(namespace="lab", name="ladder", uid=UID)
    store = LocalStore(tmp_path / "store")
    handle, _ = open_run(run, identity, store, data_uri=run.spec.verification.data.shards or "")
    backend = KubernetesBackend(handle, document, namespace="lab", api_client=client.ApiClient())
    jobs = {}
    for rung in run.spec.ladder.rungs:
        action = StartVerification("d0003", rung.name, 0)
        jobs[rung.name] = render_job(backend.training_app(action), backend.scheduler_config(action))
    return jobs


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def test_placement_of_an_unlisted_rung_is_verification_s() -> None:
    spec = DiscoveryRunSpec.model_validate(SPEC)
    placement = rung_placement(spec, "not-a-rung")
    assert placement.resources == spec.verification.resources
    assert placement.node_selector == {"pool": "gpu"}
    assert placement.queue_name == "gpus"
    assert placement.affinity == {}


def test_placement_takes_rung_resources_field_by_field() -> None:
    spec = DiscoveryRunSpec.model_validate(SPEC)
    large = rung_placement(spec, "350M").resources
    assert (large.gpus, large.memory) == (8, "512Gi")  # the rung's
    assert (large.cpu, large.shm_size) == ("8", "8Gi")  # verification's
    assert rung_placement(spec, "14M").resources == spec.verification.resources


def test_each_rung_s_pods_are_placed_by_their_rung(tmp_path: Path) -> None:
    jobs = training_jobs(tmp_path, SPEC)
    small, large = pod_spec(jobs["14M"]), pod_spec(jobs["350M"])
    assert small["nodeSelector"] == {"pool": "gpu"}
    assert large["nodeSelector"] == {"pool": "h100-8x"}
    assert small["priorityClassName"] == "genesys-training"
    assert large["priorityClassName"] == "genesys-large"
    assert "affinity" not in small
    assert large["affinity"] == H100_AFFINITY
    queue = "kueue.x-k8s.io/queue-name"
    assert jobs["14M"]["metadata"]["labels"][queue] == "gpus"
    assert jobs["350M"]["metadata"]["labels"][queue] == "large-gpus"
    shm = {v["name"]: v for v in large["volumes"]}["dshm"]["emptyDir"]["sizeLimit"]
    assert shm == "8Gi"


@pytest.mark.parametrize("rung", ["14M", "350M"])
def test_gpu_pods_ask_exactly_and_tolerate_the_gpu_taint(tmp_path: Path, rung: str) -> None:
    pod = pod_spec(training_jobs(tmp_path, SPEC)[rung])
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"][manifests.GPU_RESOURCE] == ("1" if rung == "14M" else "8")
    assert manifests.GPU_TOLERATION in pod["tolerations"]


def test_a_rung_s_tolerations_replace_verification_s(tmp_path: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["verification"]["tolerations"] = [{"key": "spot", "operator": "Exists"}]
    jobs = training_jobs(tmp_path, spec)
    assert pod_spec(jobs["14M"])["tolerations"] == [
        {"key": "spot", "operator": "Exists"},
        manifests.GPU_TOLERATION,
    ]
    assert pod_spec(jobs["350M"])["tolerations"] == [
        {"key": "reserved", "operator": "Exists", "effect": "NoSchedule"},
        manifests.GPU_TOLERATION,
    ]


def test_cpu_pods_get_no_gpu_toleration(tmp_path: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["ladder"]["rungs"][0]["resources"] = {"gpus": 0}
    pod = pod_spec(training_jobs(tmp_path, spec)["14M"])
    assert "tolerations" not in pod
    assert manifests.GPU_RESOURCE not in pod["containers"][0]["resources"]["limits"]


def test_training_pods_are_not_evicted_by_autoscalers(tmp_path: Path) -> None:
    for job in training_jobs(tmp_path, SPEC).values():
        annotations = job["spec"]["template"]["metadata"]["annotations"]
        assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        assert annotations["karpenter.sh/do-not-disrupt"] == "true"


def test_rendered_jobs_validate_for_kubernetes_1_35(tmp_path: Path) -> None:
    for job in training_jobs(tmp_path, SPEC).values():
        assert kubernetes_validate.validate(job, desired_version="1.35.0", strict=True)


def test_rendered_jobs_match_the_pin(tmp_path: Path) -> None:
    text = yaml.safe_dump(training_jobs(tmp_path, SPEC), sort_keys=True)
    rendered = yaml.safe_load(text.replace(str(tmp_path), "/store-root"))
    if os.environ.get("GENESYS_REGENERATE"):
        PIN.write_text(yaml.safe_dump(rendered, sort_keys=True), encoding="utf-8")
    assert rendered == yaml.safe_load(PIN.read_text(encoding="utf-8")), (
        "the rendered training Jobs changed; if on purpose, regenerate the pin (module docstring)"
    )


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"affinity": {"nodeAfinity": {}}}, "spec.ladder.rungs[1].affinity.nodeAfinity"),
        ({"tolerations": [{"operator": "Exists", "value": "x"}]}, "tolerations[0].value"),
        ({"resources": {"gpus": -1}}, "spec.ladder.rungs[1].resources.gpus"),
        ({"resources": {"memory": "lots"}}, "spec.ladder.rungs[1].resources.memory"),
    ],
    ids=["affinity-key", "toleration", "negative-gpus", "memory-quantity"],
)
def test_a_bad_rung_placement_names_its_field(patch: dict[str, Any], field: str) -> None:
    spec = copy.deepcopy(SPEC)
    spec["ladder"]["rungs"][1].update(patch)
    with pytest.raises(SpecValidationError) as raised:
        parse_discovery_run(body(spec))
    assert field in str(raised.value)


def test_disrupted_pods_are_recreated_without_counting_as_failures(tmp_path: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["verification"]["terminationGracePeriodSeconds"] = 600
    for job in training_jobs(tmp_path, spec).values():
        assert job["spec"]["backoffLimit"] == 0  # retries are the planner's, as new Jobs
        assert job["spec"]["podFailurePolicy"] == {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        }
        assert pod_spec(job)["terminationGracePeriodSeconds"] == 600
