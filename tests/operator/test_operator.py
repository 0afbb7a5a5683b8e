"""The operator end to end against kmock: kubectl apply a DiscoveryRun and watch it finish.

Agent Jobs run real offline-proposer sessions (with the real sandboxed checks); training Jobs
are faked by the kubelet (a plausible result.json) unless the test says otherwise.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest
import yaml

from genesys.evolution.ranking import fitness
from genesys.report import headline
from genesys.store.archive import load_archive
from support.cluster import NAMESPACE, Cluster, run_document
from support.kube import KUBERNETES_CLIENT_WARNINGS

pytestmark = [pytest.mark.integration, pytest.mark.slow, KUBERNETES_CLIENT_WARNINGS]


def apply(cluster: Cluster, document: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--validate=false", "-f", "-", input_text=yaml.safe_dump(document))


def phase_is(cluster: Cluster, name: str, phase: str) -> bool:
    return cluster.run_status(name).get("phase") == phase


def jobs(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.get("jobs")["items"])


def checks_ended(cluster: Cluster) -> bool:
    """True once every check Job has a Complete or Failed condition."""
    checks = [j for j in jobs(cluster) if j["metadata"]["labels"]["genesys.dev/role"] == "check"]
    return all((j.get("status") or {}).get("conditions") for j in checks)


TWO_RUNGS = {
    "rungs": [
        {"name": "nano", "preset": "nano", "budget": 2, "tokens": 12288},
        {"name": "micro", "preset": "micro", "budget": 1, "tokens": 12288},
    ]
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def health(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


def test_a_run_reaches_succeeded_with_designs_jobs_and_a_matching_status(cluster: Cluster) -> None:
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    cluster.start_operator(liveness=liveness)
    document = run_document(cluster, "tiny", ladder=TWO_RUNGS, **{"sessions.maxDesigns": None})
    # a Design an earlier run named "tiny" left behind, in the way of this run's seed
    stale = {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "Design",
        "metadata": {
            "name": "tiny-seed-gpt2",
            "namespace": NAMESPACE,
            "labels": {"genesys.dev/run": "tiny", "genesys.dev/run-uid": "old"},
        },
        "spec": {
            "runName": "tiny",
            "title": "stale",
            "operator": "seed",
            "parents": [],
            "flow": "seed",
            "session": "",
        },
    }
    apply(cluster, stale)
    with cluster.kubelet(fake_training=True) as kubelet:
        apply(cluster, document)
        cluster.wait_for(lambda: phase_is(cluster, "tiny", "Succeeded"), 400, "Succeeded")
        cluster.wait_for(lambda: checks_ended(cluster), 60, "every check Job ended")
        check_logs = {
            name: kubelet.started_logs(name)
            for name in kubelet.runs
            if name.startswith("check-tiny-")
        }
    probe = health(liveness)  # the liveness endpoint answers, with the probe's details
    assert probe is not None
    assert probe["genesys-health"]["reconciles"] > 0
    status = cluster.run_status("tiny")
    store = cluster.run_store("tiny")
    archive = load_archive(store)
    # the final ranks and the report are written on the operator's report thread, in order
    cluster.wait_for(lambda: store.exists("report.html"), 120, "the run's report.html")
    designs = {d["metadata"]["name"]: d for d in cluster.get("designs")["items"]}
    assert len(designs) == len(archive.designs) == 7  # five seeds and two new designs
    assert status["finishReason"] == "BudgetsSpent"
    assert status["rungs"] == [
        {"name": "nano", "budget": 2, "used": 2, "running": 0},
        {"name": "micro", "budget": 1, "used": 1, "running": 0},
    ]
    assert status["designs"]["total"] == 2
    assert status["designs"]["verified"] == 2
    promoted = [d for d in archive.designs.values() if "micro" in d.verifications]
    assert len(promoted) == 1
    assert not promoted[0].is_seed
    best = designs[f"tiny-{status['bestDesign']}"]
    assert best["status"]["rank"] == 1
    ladder = [rung["name"] for rung in TWO_RUNGS["rungs"]]
    expected = headline(archive, fitness(archive), ladder).text()
    assert status["headline"] == expected
    assert "noise floor not measured" in status["headline"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "SpecValid": "True",
        "Progressing": "False",
        "Ready": "True",
        "BudgetExhausted": "True",
        "Failed": "False",
        "WaitingForCapacity": "False",
    }
    for record in archive.designs.values():  # every Design mirrors the archive
        design = designs[f"tiny-{record.id}"]
        assert design["spec"]["operator"] == record.operator
        ladder_order = [r for r in ("nano", "micro") if r in record.verifications]
        assert [r["rung"] for r in design["status"]["rungs"]] == ladder_order
        assert design["metadata"]["ownerReferences"][0]["name"] == "tiny"
    assert designs["tiny-seed-gpt2"]["spec"]["title"] != "stale"  # the stale one was replaced
    all_jobs = jobs(cluster)
    uid = cluster.run_object("tiny")["metadata"]["uid"]  # type: ignore[index]
    for job in all_jobs:  # every Job is owned by the run, bounded in time and cleaned up
        metadata, spec = job["metadata"], job["spec"]
        assert metadata["ownerReferences"][0]["uid"] == uid, metadata["name"]
        assert metadata["ownerReferences"][0]["controller"] is True
        assert metadata["labels"]["genesys.dev/run-uid"] == uid
        assert spec["activeDeadlineSeconds"] > 0
        assert spec["ttlSecondsAfterFinished"] > 0
    training = [
        j for j in all_jobs if j["metadata"]["labels"]["genesys.dev/role"] == "verification"
    ]
    assert {j["spec"]["activeDeadlineSeconds"] for j in training} == {3600}  # nano's deadline
    for job in training:  # design code is trained with a grant to its own prefix, no credential
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        assert "GENESYS_STORE_GRANT" in env
        assert not [name for name, item in env.items() if "valueFrom" in item]
        assert "AWS_SECRET_ACCESS_KEY" not in env
    names = [j["metadata"]["name"] for j in all_jobs]
    roles = Counter(j["metadata"]["labels"]["genesys.dev/role"] for j in all_jobs)
    sessions = len(archive.sessions)
    verifications = sum(len(d.verifications) for d in archive.designs.values())
    assert roles == {"session": sessions, "check": sessions, "verification": verifications}
    assert len(names) == len(set(names))
    # each session checked its designs in its own check pod, which its agent stopped at its end
    assert len(check_logs) == sessions
    for log in check_logs.values():
        assert "boundary container" in log
        assert re.search(r"stopped after [1-9]\d* sandbox", log), log
    checks = [j for j in all_jobs if j["metadata"]["labels"]["genesys.dev/role"] == "check"]
    ended = [c["type"] for j in checks for c in j["status"].get("conditions") or []]
    assert ended == ["Complete"] * sessions  # stopped by their agents, none deleted or failed
    # the run's check pods share one headless Service and one NetworkPolicy, the run's own
    (service,) = cluster.get("services")["items"]
    (policy,) = cluster.get("networkpolicies")["items"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["name"] == policy["metadata"]["name"]
    assert service["metadata"]["ownerReferences"][0]["uid"] == uid
    printed = cluster.kubectl("get", "discoveryruns,designs", "-n", NAMESPACE)
    assert "Succeeded" in printed
    assert f"tiny-{promoted[0].id}" in printed
    events = cluster.get("events")["items"]
    reasons = Counter(e["reason"] for e in events)
    assert reasons["SessionStarted"] == sessions
    assert reasons["Succeeded"] == 1
    sessions_log = cluster.kubectl("logs", "-n", NAMESPACE, "-l", "genesys.dev/role=session")
    assert '"status": "implemented"' in sessions_log  # what the agent pods printed
    run_uri = f"s3://{cluster.bucket}/runs/{NAMESPACE}/tiny"
    shown = subprocess.run(
        [sys.executable, "-m", "genesys", "status", run_uri],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "rung micro: 1/1 verified" in shown.stdout
    report = cluster.workdir / "report.html"
    made = subprocess.run(
        [sys.executable, "-m", "genesys", "report", run_uri, "-o", str(report)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "data:image/png;base64," in report.read_text()


def condition(cluster: Cluster, name: str, kind: str) -> dict[str, Any]:
    return next(c for c in cluster.run_status(name)["conditions"] if c["type"] == kind)


def test_an_invalid_spec_is_reported_by_field_and_a_fixed_spec_starts(cluster: Cluster) -> None:
    cluster.start_operator()
    document = run_document(cluster, "bad")
    document["spec"]["ladder"]["rungs"][0]["budget"] = 0
    document["spec"]["sessions"]["parallel"] = "many"
    apply(cluster, document)
    cluster.wait_for(lambda: phase_is(cluster, "bad", "SpecInvalid"), 60, "SpecInvalid")
    spec_valid = condition(cluster, "bad", "SpecValid")
    assert spec_valid["status"] == "False"
    assert "spec.ladder.rungs[0].budget" in spec_valid["message"]
    assert "spec.sessions.parallel" in spec_valid["message"]
    time.sleep(3)  # no retry loop: nothing is started, the status stays as it is
    assert jobs(cluster) == []
    assert condition(cluster, "bad", "SpecValid") == spec_valid
    events = [e for e in cluster.get("events")["items"] if e["reason"] == "SpecInvalid"]
    assert len(events) == 1
    with cluster.kubelet(fake_training=True):
        apply(cluster, run_document(cluster, "bad"))  # the fix
        cluster.wait_for(lambda: phase_is(cluster, "bad", "Succeeded"), 300, "Succeeded")
    assert condition(cluster, "bad", "SpecValid")["status"] == "True"


def test_a_restarted_operator_duplicates_nothing_and_finishes(cluster: Cluster) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True):
        apply(cluster, run_document(cluster, "crash"))
        cluster.wait_for(
            lambda: any(
                j["metadata"]["labels"]["genesys.dev/role"] == "session" for j in jobs(cluster)
            ),
            120,
            "a session Job",
        )
        cluster.kill_operator()
        time.sleep(2)
        cluster.start_operator()
        cluster.wait_for(lambda: phase_is(cluster, "crash", "Succeeded"), 300, "Succeeded")
    archive = load_archive(cluster.run_store("crash"))
    names = [j["metadata"]["name"] for j in jobs(cluster)]
    verifications = sum(len(d.verifications) for d in archive.designs.values())
    # each session's agent and check Jobs, and each training, once
    assert len(names) == len(set(names)) == 2 * len(archive.sessions) + verifications
    designs = cluster.get("designs")["items"]
    assert len(designs) == len(archive.designs) == 6
    assert len(archive.sessions) == 1


def test_training_retries_are_bounded_and_recorded(cluster: Cluster) -> None:
    cluster.start_operator()
    failing = {"seed-gpt2-nano": 2, "seed-mamba2-nano": 10}
    with cluster.kubelet(fake_training=True, fail_first=failing):
        apply(cluster, run_document(cluster, "retry", **{"verification.maxRetries": 2}))
        cluster.wait_for(lambda: phase_is(cluster, "retry", "Succeeded"), 300, "Succeeded")
    designs = {d["metadata"]["name"]: d for d in cluster.get("designs")["items"]}
    gpt2 = designs["retry-seed-gpt2"]["status"]
    assert gpt2["phase"] == "Verified"
    assert gpt2["rungs"][0]["attempts"] == 3
    mamba2 = designs["retry-seed-mamba2"]["status"]
    assert mamba2["phase"] == "Failed"
    assert mamba2["rungs"][0]["phase"] == "Failed"
    assert "3 attempts" in mamba2["reason"]
    store = cluster.run_store("retry")
    attempts = list(store.list("designs/seed-gpt2/verifications/nano/attempts"))
    assert len(attempts) == 2
    names = sorted(
        j["metadata"]["name"] for j in jobs(cluster) if "mamba2" in j["metadata"]["name"]
    )
    assert [n.rsplit("-", 1)[1] for n in names] == ["a0", "a1", "a2"]  # 1 try + 2 retries


def test_suspend_stops_new_work_and_resume_finishes(cluster: Cluster) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True) as kubelet:
        apply(cluster, run_document(cluster, "pause"))
        cluster.wait_for(lambda: bool(kubelet.started), 120, "a running Job")
        cluster.kubectl(
            "patch",
            "discoveryrun",
            "pause",
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"suspend": True}}),
        )
        cluster.wait_for(lambda: phase_is(cluster, "pause", "Suspended"), 60, "Suspended")
        time.sleep(3)
        frozen = sorted(j["metadata"]["name"] for j in jobs(cluster))
        running = [j for j in jobs(cluster) if not (j.get("status") or {}).get("conditions")]
        assert running
        assert all(j["spec"].get("suspend") for j in running)
        assert condition(cluster, "pause", "Progressing")["reason"] == "Suspended"
        time.sleep(3)
        assert sorted(j["metadata"]["name"] for j in jobs(cluster)) == frozen  # nothing new
        cluster.kubectl(
            "patch",
            "discoveryrun",
            "pause",
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"suspend": False}}),
        )
        cluster.wait_for(lambda: phase_is(cluster, "pause", "Succeeded"), 300, "Succeeded")


@pytest.mark.parametrize("retention", ["keep", "delete"])
def test_delete_removes_children_and_applies_the_retention(
    cluster: Cluster, retention: str
) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True):
        apply(cluster, run_document(cluster, "gone", **{"storage.retention": retention}))
        cluster.wait_for(lambda: phase_is(cluster, "gone", "Succeeded"), 300, "Succeeded")
    assert jobs(cluster)
    assert cluster.get("designs")["items"]
    cluster.kubectl("delete", "discoveryrun", "gone", "-n", NAMESPACE, "--timeout=60s")
    assert cluster.kube.object("genesys.dev/v1alpha1/discoveryruns", NAMESPACE, "gone") is None
    assert jobs(cluster) == []
    assert cluster.get("designs")["items"] == []
    left = list(cluster.run_store("gone").list())
    assert (len(left) > 0) == (retention == "keep")


def test_a_failed_check_pod_ends_its_session_and_repeated_failures_fail_the_run(
    cluster: Cluster,
) -> None:
    cluster.start_operator()
    with cluster.kubelet(fake_training=True, fail_first={"check-refused": 100}):
        apply(cluster, run_document(cluster, "refused", **{"sessions.maxConsecutiveFailures": 2}))
        cluster.wait_for(lambda: phase_is(cluster, "refused", "Failed"), 180, "Failed")
    assert condition(cluster, "refused", "Ready")["reason"] == "SessionsFailed"
    sessions = load_archive(cluster.run_store("refused")).sessions
    assert len(sessions) == 2
    for outcome in sessions.values():
        assert outcome.status == "failed"
        assert "the check pod (Job check-refused-" in outcome.reason
        assert "its design checks cannot run" in outcome.reason
    agents = [j for j in jobs(cluster) if j["metadata"]["labels"]["genesys.dev/role"] == "session"]
    assert agents == []  # deleted at once, not left waiting for a check server that is gone
    warned = [e for e in cluster.get("events")["items"] if e["reason"] == "CheckPodFailed"]
    assert len(warned) == 2
