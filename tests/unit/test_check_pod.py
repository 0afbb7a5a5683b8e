"""A session's check pod: where design code runs on a cluster, holding nothing to steal.

The manifests the operator creates for a session (check Job, agent Job) and for the run's check
pods (one headless Service, one NetworkPolicy) are checked as manifests: validated against the Kubernetes schemas, and read for what the pod
can reach. That the agent really sends its checks there is shown end to end in the operator
tests (a real check server behind the fake kubelet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from genesys.api.runconfig import RunIdentity
from genesys.api.validation import parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import RunHandle, open_run
from genesys.engine.actions import StartSession
from genesys.store.base import LocalStore

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
OWNER = {"metadata": {"name": "paper-ladder", "uid": "1234-abcd"}}
IDENTITY = RunIdentity(namespace="genesys", name="paper-ladder", uid="1234-abcd")
ACTION = StartSession("s0003", "d0003", 3, "mutation", ("seed-gpt2",), 11)


def paper_run(**checks: Any) -> Any:
    document = yaml.safe_load((REPO / "examples" / "paper-ladder.yaml").read_text())
    document["spec"].setdefault("checks", {}).update(checks)
    return parse_discovery_run(document)


def handle_for(tmp_path: Path, **checks: Any) -> RunHandle:
    handle, _ = open_run(paper_run(**checks), IDENTITY, LocalStore(tmp_path), data_uri="s3://b/d")
    return handle


def valid(manifest: dict[str, Any]) -> bool:
    version = kubernetes_validate.latest_version()
    return bool(kubernetes_validate.validate(manifest, desired_version=version, strict=True))


def secret_references(value: Any) -> list[str]:
    """Every Secret a manifest refers to, anywhere (env, envFrom, volumes, projected)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("secretKeyRef", "secretRef", "secret") and isinstance(item, dict):
                found.append(str(item.get("name") or item.get("secretName")))
            found += secret_references(item)
    elif isinstance(value, list):
        for item in value:
            found += secret_references(item)
    return found


def test_the_check_pod_holds_no_credential_and_is_restricted(tmp_path: Path) -> None:
    job = manifests.check_job(handle_for(tmp_path), ACTION, owner=OWNER, namespace="genesys")
    assert valid(job)
    assert job["metadata"]["name"] == "check-paper-ladder-1234ab-s0003"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["ttlSecondsAfterFinished"] == manifests.JOB_TTL_SECONDS
    pod = job["spec"]["template"]["spec"]
    assert secret_references(job) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert "serviceAccountName" not in pod
    assert "runtimeClassName" not in pod
    (container,) = pod["containers"]
    names = {item["name"] for item in container["env"]}
    assert not [n for n in names if any(m in n for m in ("KEY", "SECRET", "TOKEN", "AWS"))]
    assert {"name": "GENESYS_SANDBOX", "value": "container"} in container["env"]
    assert "envFrom" not in container
    # Pod Security "restricted"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert [v["emptyDir"] for v in pod["volumes"]] == [{"sizeLimit": manifests.CHECK_SCRATCH}]
    args = container["args"]
    assert args[:3] == ["check-server", "--listen", f"0.0.0.0:{manifests.CHECK_PORT}"]
    # the sandbox limits of the spec are the server's ceiling, and the pod fits two sandboxes
    assert args[args.index("--max-memory") + 1] == "8192Mi"
    assert container["resources"]["limits"]["memory"] == f"{2 * 8192 + 1024}Mi"


def test_the_check_pod_takes_the_checks_runtime_class(tmp_path: Path) -> None:
    handle = handle_for(tmp_path, runtimeClassName="gvisor", sandboxMemory="2Gi")
    job = manifests.check_job(handle, ACTION, owner=OWNER, namespace="genesys")
    pod = job["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    args = pod["containers"][0]["args"]
    assert args[args.index("--max-memory") + 1] == "2048Mi"
    agent = manifests.agent_job(handle, ACTION, owner=OWNER, namespace="genesys")
    assert "runtimeClassName" not in agent["spec"]["template"]["spec"]


def test_the_network_policy_lets_in_only_the_runs_agents_and_nothing_out() -> None:
    policy = manifests.check_network_policy(IDENTITY, owner=OWNER, namespace="genesys")
    assert valid(policy)
    assert policy["metadata"]["name"] == "checks-paper-ladder-1234ab"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    spec = policy["spec"]
    check_labels = {"genesys.dev/run-uid": "1234-abcd", "genesys.dev/role": "check"}
    assert spec["podSelector"] == {"matchLabels": check_labels}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"] == []
    (rule,) = spec["ingress"]
    agent_labels = {**check_labels, "genesys.dev/role": "session"}
    assert rule["from"] == [{"podSelector": {"matchLabels": agent_labels}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": manifests.CHECK_PORT}]


def test_the_check_service_is_headless_and_names_each_check_pod(tmp_path: Path) -> None:
    service = manifests.check_service(IDENTITY, owner=OWNER, namespace="genesys")
    assert valid(service)
    assert service["spec"]["clusterIP"] == "None"  # no load balancing: one name per pod
    check = manifests.check_job(handle_for(tmp_path), ACTION, owner=OWNER, namespace="genesys")
    pod = check["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert pod["hostname"] == check["metadata"]["name"]
    assert len(pod["hostname"]) <= 63


def test_the_selectors_match_the_pods_they_are_for(tmp_path: Path) -> None:
    handle = handle_for(tmp_path)
    check = manifests.check_job(handle, ACTION, owner=OWNER, namespace="genesys")
    agent = manifests.agent_job(handle, ACTION, owner=OWNER, namespace="genesys")
    other_run = RunIdentity(namespace="genesys", name="paper-ladder", uid="5678-ef00")
    other_handle, _ = open_run(
        paper_run(), other_run, LocalStore(tmp_path / "o"), data_uri="s3://b/d"
    )
    stranger = manifests.agent_job(other_handle, ACTION, owner=OWNER, namespace="genesys")
    service = manifests.check_service(IDENTITY, owner=OWNER, namespace="genesys")
    policy = manifests.check_network_policy(IDENTITY, owner=OWNER, namespace="genesys")

    def selects(selector: dict[str, str], job: dict[str, Any]) -> bool:
        labels = job["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(key) == value for key, value in selector.items())

    assert selects(service["spec"]["selector"], check)
    assert not selects(service["spec"]["selector"], agent)
    assert selects(policy["spec"]["podSelector"]["matchLabels"], check)
    assert not selects(policy["spec"]["podSelector"]["matchLabels"], agent)
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert selects(allowed, agent)
    assert not selects(allowed, stranger)  # an agent of another run (same name) is not let in
    assert not selects(allowed, check)  # nor a check pod: design code reaches no other one


def test_the_agent_sends_its_checks_to_its_own_check_pod(tmp_path: Path) -> None:
    handle = handle_for(tmp_path)
    agent = manifests.agent_job(handle, ACTION, owner=OWNER, namespace="genesys")
    env = {
        item["name"]: item.get("value")
        for item in agent["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["GENESYS_SANDBOX"] == "remote"
    check = manifests.check_job(handle, ACTION, owner=OWNER, namespace="genesys")
    pod = check["spec"]["template"]["spec"]
    host = f"{pod['hostname']}.{pod['subdomain']}.genesys.svc"
    assert env["GENESYS_CHECK_SERVER"] == f"http://{host}:{manifests.CHECK_PORT}"


def test_check_names_are_dns_1035_labels_even_for_runs_named_with_a_digit_first() -> None:
    identity = RunIdentity(namespace="n", name="7-" + "x" * 80, uid="9f00-aa")
    name = manifests.check_name(identity, "s0001")
    assert len(name) <= 63
    assert name[0].isalpha()


def job(role: str, session: str, *, finished: str = "", ended: str = "", created: str = "") -> Any:
    """A JobView of one session's agent or check Job."""
    from genesys.backends.jobcache import job_view_of

    condition = {"type": finished, "status": "True", "lastTransitionTime": ended}
    return job_view_of(
        {
            "metadata": {
                "name": f"{role}-{session}",
                "labels": {"genesys.dev/role": role, "genesys.dev/session": session},
                "creationTimestamp": created or None,
            },
            "status": {"conditions": [condition]} if finished else {},
        }
    )


def test_a_check_job_outliving_its_session_is_deleted_after_a_grace() -> None:
    from datetime import UTC, datetime

    from genesys.backends.kubernetes import CHECK_GRACE_SECONDS, lingering_checks

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    recent, old = "2026-01-01T11:59:50Z", "2026-01-01T11:58:00Z"
    assert CHECK_GRACE_SECONDS < 120
    jobs = [
        job("session", "running"),  # its check serves on
        job("check", "running"),
        job("session", "just-ended", finished="Complete", ended=recent),
        job("check", "just-ended"),  # its agent stopped it a moment ago: not yet
        job("session", "ended", finished="Complete", ended=old),
        job("check", "ended"),  # missed the stop
        job("session", "stopped", finished="Complete", ended=old),
        job("check", "stopped", finished="Complete", ended=old),  # ended by itself
        job("session", "crashed", finished="Failed", ended=recent),
        job("check", "crashed"),  # a failed agent may not have stopped it: at once
        job("check", "orphan", created=old),  # its agent Job is gone
        job("check", "new", created=recent),  # created just before its agent
    ]
    assert lingering_checks(jobs, now) == ["check-ended", "check-crashed", "check-orphan"]
