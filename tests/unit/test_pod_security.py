"""Every pod the operator makes passes Pod Security "restricted", and every object is labelled.

The agent, check and training Jobs of a run (the training Job as the ``kubernetes_job``
scheduler renders it from the backend's AppDef and run options) are read by
:mod:`support.pod_security` as the admission controller of a namespace that enforces
"restricted" reads them. The checker itself is shown to refuse what that controller refuses.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from genesys.api.runconfig import RunIdentity
from genesys.api.validation import parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import RunHandle, open_run
from genesys.backends.kubernetes import KubernetesBackend
from genesys.backends.torchx_job import render_job
from genesys.engine.actions import StartSession, StartVerification
from genesys.store.base import LocalStore
from support.pod_security import read_only_root_violations, restricted_violations

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
OWNER = {"metadata": {"name": "paper-ladder", "uid": "1234-abcd"}}
IDENTITY = RunIdentity(namespace="genesys", name="paper-ladder", uid="1234-abcd")
SESSION = StartSession("s0003", "d0003", 3, "mutation", ("seed-gpt2",), 11)
VERIFICATION = StartVerification("d0003", "14M", 0)
STANDARD = ("name", "instance", "component", "part-of", "managed-by")


def handle_for(tmp_path: Path, *, trainer_image: bool = True) -> RunHandle:
    document = yaml.safe_load((REPO / "examples" / "paper-ladder.yaml").read_text())
    if not trainer_image:
        del document["spec"]["verification"]["image"]
    run = parse_discovery_run(document)
    handle, _ = open_run(run, IDENTITY, LocalStore(tmp_path), data_uri="s3://b/d")
    return handle


def run_jobs(tmp_path: Path, *, trainer_image: bool = True) -> dict[str, dict[str, Any]]:
    """The three kinds of Job of one run, as the operator creates them."""
    handle = handle_for(tmp_path, trainer_image=trainer_image)
    where = {"owner": OWNER, "namespace": "genesys"}
    backend = KubernetesBackend(handle, OWNER, namespace="genesys", api_client=ApiClient())
    training = render_job(
        backend.training_app(VERIFICATION), backend.scheduler_config(VERIFICATION)
    )
    return {
        "agent": manifests.agent_job(handle, SESSION, **where),
        "check": manifests.check_job(handle, SESSION, **where),
        "trainer": training,
    }


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("component", ["agent", "check", "trainer"])
def test_every_job_pod_is_restricted_with_a_read_only_root(tmp_path: Path, component: str) -> None:
    pod = pod_of(run_jobs(tmp_path)[component])
    assert restricted_violations(pod) == []
    assert read_only_root_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert (env["HOME"], env["TMPDIR"]) == ("/tmp", "/tmp")  # the one writable place
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("component", ["agent", "check", "trainer"])
def test_every_job_and_its_pods_carry_the_standard_labels(tmp_path: Path, component: str) -> None:
    job = run_jobs(tmp_path)[component]
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert all(f"app.kubernetes.io/{key}" in labels for key in STANDARD), labels
        assert labels["app.kubernetes.io/managed-by"] == manifests.MANAGED_BY
        assert labels["app.kubernetes.io/component"] == component
        assert labels["app.kubernetes.io/instance"] == "paper-ladder"
        assert labels["app.kubernetes.io/part-of"] == "genesys"


def test_services_network_policies_and_designs_carry_the_same_managed_by() -> None:
    where = {"owner": OWNER, "namespace": "genesys"}
    service = manifests.check_service(IDENTITY, **where)
    policy = manifests.check_network_policy(IDENTITY, **where)
    record = type(
        "Record",
        (),
        {
            "id": "d0003",
            "operator": "mutation",
            "parents": ("seed-gpt2",),
            "title": "t",
            "is_seed": False,
            "session": "s0003",
        },
    )()
    design = manifests.design_object(IDENTITY, record, flow="mutation", **where)
    for obj in (service, policy, design):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == manifests.MANAGED_BY
        assert all(f"app.kubernetes.io/{key}" in labels for key in STANDARD), labels


BREAKAGES = [
    (lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
    (lambda pod: pod["securityContext"].pop("runAsNonRoot"), "non-root"),
    (
        lambda pod: pod["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "Unconfined",
    ),
    (lambda pod: pod["containers"][0]["securityContext"].update(privileged=True), "privileged"),
    (
        lambda pod: pod["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    (
        lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(
            add=["SYS_ADMIN"]
        ),
        "SYS_ADMIN",
    ),
    (lambda pod: pod["containers"][0]["securityContext"].update(capabilities={}), "drop ALL"),
    (lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    (
        lambda pod: pod["containers"][0].update(ports=[{"containerPort": 1, "hostPort": 1}]),
        "hostPort",
    ),
    (lambda pod: pod["securityContext"].update(runAsUser=0), "runAsUser=0"),
]


@pytest.mark.parametrize(("breakage", "reason"), BREAKAGES)
def test_the_checker_refuses_what_admission_refuses(
    tmp_path: Path, breakage: Any, reason: str
) -> None:
    pod = copy.deepcopy(pod_of(run_jobs(tmp_path)["agent"]))
    breakage(pod)
    assert any(reason in violation for violation in restricted_violations(pod))


def test_a_writable_root_is_found() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {"readOnlyRootFilesystem": False}}]}
    assert read_only_root_violations(pod) == ["container c has a writable root file system"]


def images(tmp_path: Path, *, trainer_image: bool = False) -> tuple[str, str, str]:
    jobs = run_jobs(tmp_path, trainer_image=trainer_image)
    return tuple(
        pod_of(jobs[kind])["containers"][0]["image"] for kind in ("agent", "check", "trainer")
    )  # type: ignore[return-value]


def test_pods_take_the_operators_default_images_unless_the_spec_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENESYS_AGENT_IMAGE", raising=False)
    monkeypatch.delenv("GENESYS_TRAINER_IMAGE", raising=False)
    assert images(tmp_path / "a") == (
        "genesys-agent:0.1.0",
        "genesys-agent:0.1.0",
        "genesys-trainer:0.1.0",
    )
    monkeypatch.setenv("GENESYS_AGENT_IMAGE", "registry.example/agent:7")
    monkeypatch.setenv("GENESYS_TRAINER_IMAGE", "registry.example/trainer:7")
    assert images(tmp_path / "b") == (
        "registry.example/agent:7",
        "registry.example/agent:7",
        "registry.example/trainer:7",
    )
    # examples/paper-ladder.yaml names its trainer image: the spec wins over the default
    assert images(tmp_path / "c", trainer_image=True)[2] == "genesys-trainer:0.1.0"
