"""Run identity against kmock and moto: nothing of one run is reachable from another.

- two runs of one name in two namespaces share no artifact, Job or Design, and deleting one
  with ``retention: delete`` leaves the other complete;
- a run re-created under the name of a deleted one never adopts the kept archive silently: it
  is held back with a condition saying how to resume on purpose (``spec.storage.resumeFrom``);
- an edit of a finished run is reported, and its result is kept;
- deleting a run whose spec became invalid still removes its Jobs and Designs;
- a permanent failure (a bucket that does not exist) is recorded once, then retried later.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
import yaml

from genesys.store.archive import load_archive
from genesys.store.documents import RunRecord, read_document
from support.cluster import NAMESPACE, Cluster, run_document
from support.kube import KUBERNETES_CLIENT_WARNINGS

pytestmark = [pytest.mark.integration, pytest.mark.slow, KUBERNETES_CLIENT_WARNINGS]


def apply(cluster: Cluster, document: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--validate=false", "-f", "-", input_text=yaml.safe_dump(document))


def phase_is(cluster: Cluster, name: str, phase: str, namespace: str = NAMESPACE) -> bool:
    return cluster.run_status(name, namespace).get("phase") == phase


def condition(cluster: Cluster, name: str, kind: str) -> dict[str, Any]:
    conditions = cluster.run_status(name).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def uid_of(cluster: Cluster, name: str, namespace: str = NAMESPACE) -> str:
    obj = cluster.run_object(name, namespace)
    assert obj is not None
    return str(obj["metadata"]["uid"])


def events(cluster: Cluster, reason: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return [e for e in cluster.get("events", namespace=namespace)["items"] if e["reason"] == reason]


def items(cluster: Cluster, kind: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return list(cluster.get(kind, namespace=namespace)["items"])


def test_runs_of_one_name_in_two_namespaces_share_nothing(cluster: Cluster) -> None:
    for namespace in ("team-a", "team-b"):
        cluster.create_namespace(namespace)
    cluster.start_operator()
    with (
        cluster.kubelet("team-a", fake_training=True),
        cluster.kubelet("team-b", fake_training=True),
    ):
        apply(cluster, run_document(cluster, "alpha", "team-a", **{"storage.retention": "delete"}))
        apply(cluster, run_document(cluster, "alpha", "team-b"))
        for namespace in ("team-a", "team-b"):
            cluster.wait_for(
                lambda ns=namespace: phase_is(cluster, "alpha", "Succeeded", ns),
                400,
                f"{namespace}/alpha Succeeded",
            )
    stores = {ns: cluster.run_store("alpha", ns) for ns in ("team-a", "team-b")}
    for namespace, store in stores.items():
        record = read_document(store, "spec.json", RunRecord)
        assert record is not None
        assert record.identity.uid == uid_of(cluster, "alpha", namespace)
        assert record.identity.namespace == namespace
        archive = load_archive(store)
        assert len(archive.designs) == 6  # five seeds and this run's own design
        assert list(archive.sessions) == ["s0000"]
        assert archive.sessions["s0000"].status == "implemented"
        uid = uid_of(cluster, "alpha", namespace)
        for job in items(cluster, "jobs", namespace):
            assert job["metadata"]["labels"]["genesys.dev/run-uid"] == uid
        assert len(items(cluster, "designs", namespace)) == 6
    for store in stores.values():  # the final ranks and report come on the report thread
        cluster.wait_for(lambda store=store: store.exists("report.html"), 120, "report.html")
    kept = stores["team-b"].list_versions()
    cluster.kubectl("delete", "discoveryrun", "alpha", "-n", "team-a", "--timeout=60s")
    assert cluster.run_object("alpha", "team-a") is None
    assert list(stores["team-a"].list()) == []
    assert items(cluster, "jobs", "team-a") == []
    assert items(cluster, "designs", "team-a") == []
    assert stores["team-b"].list_versions() == kept  # not one object of team-b touched
    assert phase_is(cluster, "alpha", "Succeeded", "team-b")
    assert len(items(cluster, "designs", "team-b")) == 6
    assert len(load_archive(stores["team-b"]).designs) == 6


def test_a_recreated_run_is_held_back_until_it_resumes_the_kept_archive_on_purpose(
    cluster: Cluster,
) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True):
        apply(cluster, run_document(cluster, "again"))
        cluster.wait_for(lambda: phase_is(cluster, "again", "Succeeded"), 300, "Succeeded")
        first = uid_of(cluster, "again")
        finished = cluster.run_status("again")
        # an edit of a finished run is reported, not applied: the result stays
        cluster.kubectl(
            "patch",
            "discoveryrun",
            "again",
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"sessions": {"parallel": "many"}}}),
        )
        cluster.wait_for(lambda: bool(events(cluster, "SpecChangeIgnored")), 60, "the report")
        edited = cluster.run_status("again")
        assert edited["phase"] == "Succeeded"
        assert edited["finishReason"] == finished["finishReason"]
        assert edited["bestDesign"] == finished["bestDesign"]
        assert condition(cluster, "again", "SpecValid")["status"] == "False"
        assert "spec.sessions.parallel" in condition(cluster, "again", "SpecValid")["message"]
        assert condition(cluster, "again", "Ready")["status"] == "True"
        cluster.kubectl("delete", "discoveryrun", "again", "-n", NAMESPACE, "--timeout=60s")
        store = cluster.run_store("again")
        designs = len(load_archive(store).designs)
        assert designs == 6  # retention keep: the archive stays
        apply(cluster, run_document(cluster, "again"))
        cluster.wait_for(
            lambda: condition(cluster, "again", "Progressing").get("reason") == "ArchiveConflict",
            60,
            "ArchiveConflict",
        )
        second = uid_of(cluster, "again")
        assert second != first
        held = cluster.run_status("again")
        assert held["phase"] == "Pending"
        message = condition(cluster, "again", "Progressing")["message"]
        assert first in message
        assert f"spec.storage.resumeFrom: {first}" in message
        time.sleep(3)  # several ticks: nothing of the new run is started on the old archive
        assert all(
            j["metadata"]["labels"]["genesys.dev/run-uid"] != second for j in items(cluster, "jobs")
        )
        record = read_document(store, "spec.json", RunRecord)
        assert record is not None
        assert record.identity.uid == first
        assert len(events(cluster, "ArchiveConflict")) == 1
        cluster.kubectl(
            "patch",
            "discoveryrun",
            "again",
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"storage": {"resumeFrom": first}}}),
        )
        cluster.wait_for(lambda: phase_is(cluster, "again", "Succeeded"), 300, "Succeeded")
    record = read_document(store, "spec.json", RunRecord)
    assert record is not None
    assert (record.identity.uid, record.adopted_from) == (second, [first])
    assert events(cluster, "ArchiveAdopted")
    assert len(load_archive(store).designs) == designs  # continued, not duplicated


def test_deleting_a_run_whose_spec_became_invalid_removes_its_children(
    cluster: Cluster,
) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True) as kubelet:
        apply(cluster, run_document(cluster, "broken"))
        cluster.wait_for(
            lambda: bool(kubelet.started) and bool(items(cluster, "designs")),
            120,
            "Jobs and Designs",
        )
        cluster.kubectl(
            "patch",
            "discoveryrun",
            "broken",
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"sessions": {"parallel": "many"}}}),
        )
        cluster.wait_for(lambda: phase_is(cluster, "broken", "SpecInvalid"), 60, "SpecInvalid")
        assert items(cluster, "jobs")
        cluster.kubectl("delete", "discoveryrun", "broken", "-n", NAMESPACE, "--timeout=60s")
    assert cluster.run_object("broken") is None
    assert items(cluster, "jobs") == []
    assert items(cluster, "designs") == []


def test_a_permanent_error_is_recorded_once_and_retried_later(cluster: Cluster) -> None:
    cluster.env["GENESYS_PERMANENT_RETRY_SECONDS"] = "3"
    cluster.start_operator()
    bucket = f"late-{uuid.uuid4().hex[:10]}"
    document = run_document(cluster, "late")
    document["spec"]["storage"]["s3"]["bucket"] = bucket  # not created yet
    apply(cluster, document)
    cluster.wait_for(
        lambda: condition(cluster, "late", "Progressing").get("reason") == "ReconcileError",
        60,
        "ReconcileError",
    )
    assert "NoSuchBucket" in condition(cluster, "late", "Progressing")["message"]
    time.sleep(8)  # many ticks and two retries: still one record
    assert len(events(cluster, "ReconcileError")) == 1
    boto3.client("s3", endpoint_url=cluster.s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    with cluster.kubelet(fake_training=True):
        cluster.wait_for(lambda: phase_is(cluster, "late", "Succeeded"), 300, "Succeeded")
    assert condition(cluster, "late", "Progressing")["reason"] == "Finished"
