"""The kubernetes_job TorchX scheduler, offline: the rendered Job manifest, run options, names,
status mapping, registration and dry-run through the TorchX runner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from torchx import specs

from genesys.backends import torchx_job
from genesys.backends.torchx_job import (
    KubernetesJobScheduler,
    create_scheduler,
    job_name_for,
    job_options,
    job_state,
    pod_for_replica,
    render_job,
    role_from_job,
)
from genesys_trainer.component import verify

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "kubernetes_job" / "verify-14M.yaml"
KUBERNETES_VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]
GPU_CFG: dict[str, Any] = {
    "namespace": "genesys",
    "queue": "gpu-queue",
    "node_selector": {"nvidia.com/gpu.product": "H100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priority_class_name": "research",
    "env_from_secrets": {"AWS_ACCESS_KEY_ID": "s3-creds:AWS_ACCESS_KEY_ID"},
}


def gpu_app() -> specs.AppDef:
    return verify(
        design="s3://b/runs/r/designs/d0001/design.json",
        rung="14M",
        out="s3://b/runs/r/designs/d0001/verifications/14M",
        config="s3://b/runs/r/config/0123456789abcdef.json",
        gpus=1,
        cpu=8,
        memMB=32768,
        env={"GENESYS_S3_ENDPOINT": "http://minio:9000"},
        name="d0001",
        attempt=1,
    )


def cpu_app(**kwargs: Any) -> specs.AppDef:
    return verify(design="seed-gpt2", rung="nano", data="/data", out="/out", **kwargs)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(manifest)["containers"]
    return dict(only)


# ------------------------------------------------------------------------------ manifest


def test_gpu_verification_renders_the_fixture_manifest() -> None:
    expected = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    assert render_job(gpu_app(), GPU_CFG) == expected


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_validate_strictly(version: str) -> None:
    two_nodes = cpu_app(nnodes=2, nproc_per_node=2, max_retries=3)
    full_cfg = {
        **GPU_CFG,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "service_account": "trainer",
        "runtime_class_name": "gvisor",
        "image_pull_secrets": "regcred,other",
        "labels": "team=research,genesys.dev/run=r1",
        "active_deadline_seconds": 3600,
        "ttl_seconds_after_finished": 600,
        "shm_size": "8Gi",
    }
    for app, cfg in [(gpu_app(), GPU_CFG), (two_nodes, full_cfg), (cpu_app(), {})]:
        manifest = render_job(app, cfg)
        assert kubernetes_validate.validate(manifest, desired_version=version, strict=True)


def test_dryrun_info_prints_the_manifest_as_yaml() -> None:
    info = create_scheduler("test").submit_dryrun(gpu_app(), GPU_CFG)
    assert yaml.safe_load(repr(info)) == info.request == render_job(gpu_app(), GPU_CFG)


def test_two_replicas_render_an_indexed_job_with_index_macros() -> None:
    manifest = render_job(cpu_app(nnodes=2, nproc_per_node=2), {})
    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    assert (spec["completions"], spec["parallelism"], spec["completionMode"]) == (2, 2, "Indexed")
    assert pod_spec(manifest)["subdomain"] == name
    args = container(manifest)["args"]
    assert "$(TORCHX_RANK0_HOST):29500" in args  # the kubelet expands it to replica 0's host
    env = {item["name"]: item.get("value") for item in container(manifest)["env"]}
    assert env["TORCHX_RANK0_HOST"] == f"{name}-0.{name}"


def test_replica_id_macro_becomes_the_completion_index() -> None:
    role = specs.Role(
        name="worker",
        image="img",
        entrypoint="run",
        args=["--rank", specs.macros.replica_id, "--app", specs.macros.app_id],
        num_replicas=3,
        resource=specs.Resource(cpu=1, gpu=0, memMB=512),
    )
    args = container(render_job(specs.AppDef(name="my-app", roles=[role]), {}))["args"]
    assert args == ["--rank", "$(JOB_COMPLETION_INDEX)", "--app", "my-app"]
    role.num_replicas = 1
    args = container(render_job(specs.AppDef(name="my-app", roles=[role]), {}))["args"]
    assert args == ["--rank", "0", "--app", "my-app"]


def test_single_replica_job_is_not_indexed() -> None:
    manifest = render_job(cpu_app(), {})
    assert "completionMode" not in manifest["spec"]
    assert "subdomain" not in pod_spec(manifest)


def test_no_queue_means_no_suspend_and_no_kueue_label() -> None:
    manifest = render_job(gpu_app(), {**GPU_CFG, "queue": None})
    assert "suspend" not in manifest["spec"]
    assert torchx_job.LABEL_KUEUE_QUEUE not in manifest["metadata"]["labels"]


def test_queue_label_is_on_the_job_only() -> None:
    manifest = render_job(gpu_app(), GPU_CFG)
    assert manifest["metadata"]["labels"][torchx_job.LABEL_KUEUE_QUEUE] == "gpu-queue"
    assert torchx_job.LABEL_KUEUE_QUEUE not in manifest["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("cfg", [{}, {"service_account": "trainer"}])
def test_pod_never_gets_a_service_account_token(cfg: dict[str, Any]) -> None:
    pod = pod_spec(render_job(cpu_app(), cfg))
    assert pod["automountServiceAccountToken"] is False
    assert pod.get("serviceAccountName") == cfg.get("service_account")


@pytest.mark.parametrize("cfg", [{}, {"runtime_class_name": None}, {"runtime_class_name": ""}])
def test_no_runtime_class_means_the_cluster_default(cfg: dict[str, Any]) -> None:
    assert "runtimeClassName" not in pod_spec(render_job(cpu_app(), cfg))
    assert "runtimeClassName" not in pod_spec(render_job(gpu_app(), GPU_CFG))


def test_runtime_class_reaches_the_pod_only() -> None:
    resolved = create_scheduler("s").run_opts().resolve({"runtime_class_name": "gvisor"})
    assert job_options(resolved).runtime_class_name == "gvisor"
    manifest = render_job(cpu_app(), {"runtime_class_name": "gvisor"})
    assert pod_spec(manifest)["runtimeClassName"] == "gvisor"
    assert "runtimeClassName" not in manifest["spec"]


def test_cpu_job_has_no_gpu_and_no_shm_unless_asked() -> None:
    manifest = render_job(cpu_app(cpu=2, memMB=4096), {})
    assert container(manifest)["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi"}
    scratch_only = [{"name": "scratch", "emptyDir": {}}]
    assert pod_spec(manifest)["volumes"] == scratch_only
    assert container(manifest)["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    sized = render_job(cpu_app(), {"shm_size": "1Gi", "scratch_size": "5Gi"})
    assert pod_spec(sized)["volumes"] == [
        {"name": "scratch", "emptyDir": {"sizeLimit": "5Gi"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    assert container(sized)["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]


def test_pods_are_restricted_with_a_writable_tmp_only() -> None:
    manifest = render_job(cpu_app(), {})
    assert pod_spec(manifest)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod_spec(manifest)["enableServiceLinks"] is False
    assert container(manifest)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {item["name"]: item.get("value") for item in container(manifest)["env"]}
    assert (env["HOME"], env["TMPDIR"]) == ("/tmp", "/tmp")
    own_home = render_job(cpu_app(env={"HOME": "/home/me"}), {"run_as_user": 1000})
    assert {"name": "HOME", "value": "/home/me"} in container(own_home)["env"]
    assert pod_spec(own_home)["securityContext"]["runAsUser"] == 1000
    with pytest.raises(ValueError, match="non-root"):
        render_job(cpu_app(), {"run_as_user": 0})


def test_managed_by_is_an_option_and_listing_does_not_depend_on_it() -> None:
    manifest = render_job(cpu_app(), {"managed_by": "genesys-operator"})
    for labels in (
        manifest["metadata"]["labels"],
        manifest["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels["app.kubernetes.io/managed-by"] == "genesys-operator"
        assert labels["genesys.dev/scheduler"] == "kubernetes_job"


def test_string_forms_of_structured_options_parse_like_their_values() -> None:
    as_text = job_options(
        {
            "node_selector": "pool=gpu, zone=a",
            "tolerations": '[{"key": "k", "operator": "Exists"}]',
            "affinity": '{"nodeAffinity": {}}',
            "labels": "team=x;tier=y",
            "image_pull_secrets": "a,b",
            "env_from_secrets": "TOKEN=creds:token",
        }
    )
    as_values = job_options(
        {
            "node_selector": {"pool": "gpu", "zone": "a"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
            "labels": {"team": "x", "tier": "y"},
            "image_pull_secrets": ["a", "b"],
            "env_from_secrets": {"TOKEN": "creds:token"},
        }
    )
    assert as_text == as_values


def test_options_and_backoff_limit_reach_the_job() -> None:
    cfg = {"active_deadline_seconds": 60, "ttl_seconds_after_finished": 30, "labels": {"a": "b"}}
    manifest = render_job(cpu_app(max_retries=2), cfg)
    assert manifest["spec"]["backoffLimit"] == 2
    assert manifest["spec"]["activeDeadlineSeconds"] == 60
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 30
    assert manifest["metadata"]["labels"]["a"] == "b"
    assert manifest["spec"]["template"]["metadata"]["labels"]["a"] == "b"
    assert render_job(cpu_app(max_retries=2), {"backoff_limit": 0})["spec"]["backoffLimit"] == 0


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"tolerration": []}, "unknown"),
        ({"node_selector": "novalue"}, "key=value"),
        ({"tolerations": '{"key": "k"}'}, "list of objects"),
        ({"env_from_secrets": {"X": "no-key"}}, "secret:key"),
        ({"env_from_secrets": {"PYTHONUNBUFFERED": "s:k"}}, "sets already"),
        ({"labels": {torchx_job.LABEL_MANAGED_BY: "me"}}, "owns them"),
        ({"backoff_limit": -1}, "non-negative"),
    ],
)
def test_malformed_options_are_refused(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_job(cpu_app(), cfg)


def test_several_roles_are_refused() -> None:
    role = cpu_app().roles[0]
    app = specs.AppDef(name="two", roles=[role, specs.Role(**{**vars(role), "name": "other"})])
    with pytest.raises(ValueError, match="exactly one role"):
        render_job(app, {})
    with pytest.raises(ValueError, match="exactly one role"):
        create_scheduler("test").submit_dryrun(app, {})


# --------------------------------------------------------------------------------- names

NAME_SHAPE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_valid_names_are_kept() -> None:
    assert job_name_for("verify-d0001-14m-a1") == "verify-d0001-14m-a1"
    assert render_job(gpu_app(), {})["metadata"]["name"] == "verify-d0001-14m-a1"


@pytest.mark.parametrize(
    "app_name",
    [
        "Verify-D0001-14M-A1",
        "x" * 80,
        "Verify_" + "Design.With.Dots-" * 6,
        "0-starts-with-digit",
        "---",
        "UPPER",
    ],
)
def test_other_names_become_deterministic_dns_labels(app_name: str) -> None:
    name = job_name_for(app_name)
    assert name == job_name_for(app_name)
    assert len(name) <= torchx_job.MAX_JOB_NAME <= 63
    assert NAME_SHAPE.match(name), name


def test_names_that_clean_up_alike_still_differ() -> None:
    assert job_name_for("Verify-A") != job_name_for("verify_a")
    assert job_name_for("a" * 70 + "1") != job_name_for("a" * 70 + "2")


# -------------------------------------------------------------------------------- status


def job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "spec": {"completions": 1, **spec}, "status": status}


@pytest.mark.parametrize(
    ("body", "state"),
    [
        (job({}), specs.AppState.SUBMITTED),
        (job({}, suspend=True), specs.AppState.PENDING),
        (job({"active": 1}), specs.AppState.RUNNING),
        (job({"succeeded": 1}), specs.AppState.SUCCEEDED),
        (job({"succeeded": 1, "active": 1}, completions=2), specs.AppState.RUNNING),
        (job({"failed": 1}), specs.AppState.PENDING),
        (job({"conditions": [{"type": "Failed", "status": "True"}]}), specs.AppState.FAILED),
        (job({"conditions": [{"type": "Complete", "status": "True"}]}), specs.AppState.SUCCEEDED),
        (
            job({"conditions": [{"type": "Failed", "status": "False"}], "active": 1}),
            specs.AppState.RUNNING,
        ),
        (
            {**job({"active": 1}), "metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}},
            specs.AppState.CANCELLED,
        ),
    ],
)
def test_job_status_maps_to_app_state(body: dict[str, Any], state: specs.AppState) -> None:
    assert job_state(body) == state


def test_role_reads_back_from_the_manifest() -> None:
    role = role_from_job(render_job(gpu_app(), GPU_CFG))
    original = gpu_app().roles[0]
    assert (role.name, role.image, role.entrypoint, role.args) == (
        original.name,
        original.image,
        original.entrypoint,
        original.args,
    )
    assert (role.resource.cpu, role.resource.gpu, role.resource.memMB) == (8, 1, 32768)
    assert role.env == {**original.env, "HOME": "/tmp", "TMPDIR": "/tmp"}


def test_newest_pod_of_a_replica_is_picked() -> None:
    def pod(name: str, created: str, index: str | None = None) -> dict[str, Any]:
        labels = {} if index is None else {"batch.kubernetes.io/job-completion-index": index}
        return {"metadata": {"name": name, "creationTimestamp": created, "labels": labels}}

    pods = [
        pod("a", "2025-01-01T00:00:01Z", "0"),
        pod("b", "2025-01-01T00:00:02Z", "1"),
        pod("c", "2025-01-01T00:00:03Z", "0"),
    ]
    assert pod_for_replica(pods, 0) == "c"
    assert pod_for_replica(pods, 1) == "b"
    assert pod_for_replica(pods, 2) is None
    assert pod_for_replica([pod("solo", "2025-01-01T00:00:01Z")], 0) == "solo"


# --------------------------------------------------------------------------- registration


def test_scheduler_is_registered_with_torchx() -> None:
    from torchx.schedulers import get_scheduler_factories

    factories = get_scheduler_factories()
    assert "kubernetes_job" in factories
    assert "local_cwd" in factories  # the entry point group replaces TorchX's built-ins
    assert isinstance(factories["kubernetes_job"]("s"), KubernetesJobScheduler)
    scheduler = create_scheduler("s")
    assert isinstance(scheduler, KubernetesJobScheduler)
    assert scheduler.backend == "kubernetes_job"


def test_runner_dryrun_renders_the_job() -> None:
    from torchx.runner import get_runner

    runner = get_runner()
    try:
        info = runner.dryrun(gpu_app(), "kubernetes_job", cfg=GPU_CFG)
    finally:
        runner.close()
    manifest = info.request
    assert manifest["metadata"]["name"] == "verify-d0001-14m-a1"
    env = {item["name"]: item.get("value") for item in container(manifest)["env"]}
    assert env["TORCHX_JOB_ID"] == "kubernetes_job://torchx/verify-d0001-14m-a1"


def test_run_options_accept_python_values_and_defaults() -> None:
    resolved = create_scheduler("s").run_opts().resolve(GPU_CFG)
    assert resolved["namespace"] == "genesys"
    assert create_scheduler("s").run_opts().resolve({})["namespace"] == "default"
    assert job_options(resolved).tolerations == GPU_CFG["tolerations"]
