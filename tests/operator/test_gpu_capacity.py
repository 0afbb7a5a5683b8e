"""Training that waits for GPUs: the pending cap, WaitingForCapacity, the timeout, the scale-up.

The fake kubelet plays a cluster with ``gpu_capacity`` GPUs: a training pod that asks for more
than are free stays Pending and unschedulable, with the scheduler's message, until the test
raises the capacity (a node group scaling up).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from genesys.store.archive import load_archive
from support.cluster import NAMESPACE, Cluster, run_document
from support.kube import KUBERNETES_CLIENT_WARNINGS

pytestmark = [pytest.mark.integration, pytest.mark.slow, KUBERNETES_CLIENT_WARNINGS]

RUN = "scarce"


def apply(cluster: Cluster, document: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--validate=false", "-f", "-", input_text=yaml.safe_dump(document))


def condition(cluster: Cluster, kind: str) -> dict[str, Any]:
    conditions = cluster.run_status(RUN).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.get("events", namespace=NAMESPACE)["items"] if e["reason"] == reason]


def unfinished_training_jobs(cluster: Cluster) -> list[str]:
    return [
        job["metadata"]["name"]
        for job in cluster.get("jobs")["items"]
        if job["metadata"]["labels"].get("genesys.dev/role") == "verification"
        and not any(
            c.get("type") in ("Complete", "Failed")
            for c in (job.get("status") or {}).get("conditions") or []
        )
    ]


def rung_phases(cluster: Cluster) -> set[str]:
    return {
        rung["phase"]
        for design in cluster.get("designs")["items"]
        for rung in (design.get("status") or {}).get("rungs") or []
    }


def test_training_waits_for_gpus_within_the_cap_then_times_out_or_runs(cluster: Cluster) -> None:
    cluster.start_operator()
    overrides = {
        "verification.resources": {"gpus": 1, "cpu": "1", "memory": "2Gi"},
        "verification.maxPendingJobs": 2,
        "verification.capacityTimeoutSeconds": 15,
    }
    with cluster.kubelet(fake_training=True, gpu_capacity=0) as kubelet:
        apply(cluster, run_document(cluster, RUN, **overrides))
        cluster.wait_for(
            lambda: condition(cluster, "WaitingForCapacity").get("status") == "True",
            120,
            "WaitingForCapacity",
        )
        waiting = condition(cluster, "WaitingForCapacity")
        assert waiting["reason"] == "Unschedulable"
        assert "Insufficient nvidia.com/gpu" in waiting["message"]
        cluster.wait_for(lambda: "WaitingForCapacity" in rung_phases(cluster), 60, "a rung")
        for _ in range(8):  # several reconciles: demand grows no faster than the cap
            assert len(unfinished_training_jobs(cluster)) <= 2
            time.sleep(1)
        cluster.wait_for(lambda: bool(events(cluster, "TrainingCancelled")), 120, "a timeout")
        kubelet.gpu_capacity = 8  # the node group scales up
        cluster.wait_for(lambda: cluster.run_status(RUN).get("phase") == "Succeeded", 300, "end")
    assert condition(cluster, "WaitingForCapacity")["status"] == "False"
    cancelled = events(cluster, "TrainingCancelled")[0]["message"]
    assert "for capacity (capacityTimeoutSeconds=15)" in cancelled
    archive = load_archive(cluster.run_store(RUN))
    errors = [
        v.reason
        for design in archive.designs.values()
        for v in design.verifications.values()
        if v.status == "error"
    ]
    assert errors
    assert all("for capacity" in reason for reason in errors)
    succeeded = [
        design.id
        for design in archive.designs.values()
        if any(v.status == "succeeded" for v in design.verifications.values())
    ]
    assert succeeded  # the jobs that found GPUs after the scale-up trained
