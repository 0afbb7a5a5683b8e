"""The GPU-cluster recipes under ``examples/cluster``, offline.

Every YAML file parses and lints; every object validates: the core kinds against the
Kubernetes 1.35 schemas (``kubernetes_validate``, strict), Kueue's and Karpenter's kinds against
the JSON Schemas in ``tests/data/cluster-schemas`` (written for these examples: the fields they
use, with the API's types, bounds and enums; unknown fields refused), the DiscoveryRun with the
project's own validator. Then what the files share must agree: the Kueue objects name each
other, and the training pod the operator renders from the example run fits the nodes that the
ResourceFlavor, the Karpenter NodePool and the cluster-autoscaler node group describe (taint
tolerated, node labels selected, GPUs, priority above the expendable cut-off, quotas and limits
of the same size). Last, the documentation's links resolve.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.api.validation import parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import open_run
from genesys.backends.torchx_job import GPU_RESOURCE, LABEL_KUEUE_QUEUE, render_job
from genesys.cli import main
from genesys.controller.reconcile import validate as validate_cluster_run
from genesys.engine.actions import StartSession, StartVerification
from genesys.quantities import cpus, memory_bytes
from genesys.store.base import LocalStore

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "examples" / "cluster"
SCHEMAS = REPO / "tests" / "data" / "cluster-schemas"
KUBERNETES_VERSION = "1.35.0"
YAML_FILES = sorted([*CLUSTER.rglob("*.yaml"), *CLUSTER.rglob("*.yml")])
HELM_VALUES = CLUSTER / "cluster-autoscaler" / "helm-values.yaml"
NOT_OBJECTS = {HELM_VALUES}  # a Helm chart's values, not a Kubernetes object
NODE_GROUPS = CLUSTER / "cluster-autoscaler" / "node-groups.md"
CUSTOM_KINDS = {
    ("kueue.x-k8s.io/v1beta1", "ResourceFlavor"): "resourceflavor.json",
    ("kueue.x-k8s.io/v1beta1", "ProvisioningRequestConfig"): "provisioningrequestconfig.json",
    ("kueue.x-k8s.io/v1beta1", "AdmissionCheck"): "admissioncheck.json",
    ("kueue.x-k8s.io/v1beta1", "ClusterQueue"): "clusterqueue.json",
    ("kueue.x-k8s.io/v1beta1", "LocalQueue"): "localqueue.json",
    ("karpenter.sh/v1", "NodePool"): "nodepool.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "ec2nodeclass.json",
}
GENESYS_KINDS = {("genesys.dev/v1alpha1", "DiscoveryRun")}
CORE_KINDS = {("scheduling.k8s.io/v1", "PriorityClass")}
SCALE_UP_CLASS = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
PROVISIONING_CONTROLLER = "kueue.x-k8s.io/provisioning-request"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_FAMILY = "karpenter.k8s.aws/instance-family"
# labels Karpenter sets on its nodes from what it launches, without a NodePool label
KARPENTER_WELL_KNOWN = {
    INSTANCE_TYPE,
    INSTANCE_FAMILY,
    "karpenter.sh/capacity-type",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "topology.kubernetes.io/zone",
}
TEMPLATE_TAG = "k8s.io/cluster-autoscaler/node-template/"
NAMESPACE = "genesys"
IDENTITY = RunIdentity(namespace=NAMESPACE, name="gpu-ladder", uid="1234-abcd")
OWNER = {"metadata": {"name": "gpu-ladder", "uid": "1234-abcd"}}
LINT = YamlLintConfig("{extends: relaxed, rules: {line-length: {max: 100}}}")

Object = dict[str, Any]


# ------------------------------------------------------------------------------- loading


def documents(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def all_objects() -> list[tuple[Path, Object]]:
    return [
        (path, document)
        for path in YAML_FILES
        if path not in NOT_OBJECTS
        for document in documents(path)
        if document is not None
    ]


def type_of(obj: Object) -> tuple[str, str]:
    return str(obj.get("apiVersion")), str(obj.get("kind"))


def objects_of(kind: str) -> list[Object]:
    return [obj for _, obj in all_objects() if obj.get("kind") == kind]


def one(kind: str) -> Object:
    (only,) = objects_of(kind)
    return only


def object_id(item: tuple[Path, Object]) -> str:
    path, obj = item
    return f"{path.relative_to(CLUSTER)}:{obj.get('kind')}/{obj['metadata']['name']}"


def schema_for(kind: str) -> Object:
    (name,) = [file for (_, known), file in CUSTOM_KINDS.items() if known == kind]
    schema: Object = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


def helm_values() -> Object:
    (values,) = documents(HELM_VALUES)
    return dict(values)


def node_group_table() -> dict[str, str]:
    """The first two cells of every table row of node-groups.md whose value is code."""
    row = re.compile(r"^\|\s*(?P<name>[^|]+?)\s*\|\s*`(?P<value>[^`]*)`", re.MULTILINE)
    text = NODE_GROUPS.read_text(encoding="utf-8")
    return {m["name"].strip("`"): m["value"] for m in row.finditer(text)}


def template_entries(kind: str) -> dict[str, str]:
    """The node-template tags of one kind (label, taint, resources) by their suffix."""
    prefix = f"{TEMPLATE_TAG}{kind}/"
    return {
        name.removeprefix(prefix): value
        for name, value in node_group_table().items()
        if name.startswith(prefix)
    }


def autoscaler_taints() -> list[Object]:
    taints = []
    for key, value in template_entries("taint").items():
        taint_value, _, effect = value.rpartition(":")
        taints.append({"key": key, "value": taint_value, "effect": effect})
    return taints


def example_run() -> DiscoveryRun:
    (document,) = documents(CLUSTER / "discoveryrun.yaml")
    return parse_discovery_run(document)


# --------------------------------------------------------------- Kubernetes semantics


def tolerates(toleration: Object, taint: Object) -> bool:
    """Whether a toleration tolerates a taint, as the scheduler decides it."""
    effect = toleration.get("effect")
    if effect and effect != taint["effect"]:
        return False
    key = toleration.get("key")
    operator = str(toleration.get("operator", "Equal"))
    if not key:
        return operator == "Exists"
    if key != taint["key"]:
        return False
    return operator == "Exists" or bool(toleration.get("value", "") == taint.get("value", ""))


def tolerates_all(pod: Object, taints: list[Object]) -> bool:
    tolerations = pod.get("tolerations") or []
    return all(any(tolerates(t, taint) for t in tolerations) for taint in taints)


def allows(requirement: Object, value: str) -> bool:
    """Whether a node selector requirement (In, NotIn, Exists, DoesNotExist) allows a value."""
    operator = str(requirement["operator"])
    values = list(requirement.get("values") or [])
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    return operator == "Exists"


def quantity(value: object) -> float:
    return float(cpus(str(value)))


# ------------------------------------------------------------------- rendered pods


@pytest.fixture(scope="module")
def run() -> DiscoveryRun:
    return example_run()


@pytest.fixture(scope="module")
def handle(run: DiscoveryRun, tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = LocalStore(tmp_path_factory.mktemp("store"))
    opened, _ = open_run(run, IDENTITY, store, data_uri="s3://b/data")
    return opened


def training_job(handle: Any, rung: str) -> Object:
    """The training Job the operator submits for one verification at ``rung``."""
    from kubernetes import client

    from genesys.backends.kubernetes import KubernetesBackend

    backend = KubernetesBackend(handle, OWNER, namespace=NAMESPACE, api_client=client.ApiClient())
    action = StartVerification("d0001", rung, 1)
    return render_job(backend.training_app(action), backend.scheduler_config(action))


@pytest.fixture(scope="module")
def training_jobs(run: DiscoveryRun, handle: Any) -> dict[str, Object]:
    """A training Job of the first rung (14M, the many short ones) and of the last (350M)."""
    rungs = [run.spec.ladder.rungs[0].name, run.spec.ladder.rungs[-1].name]
    return {rung: training_job(handle, rung) for rung in rungs}


def training_pods(jobs: dict[str, Object]) -> Iterator[tuple[str, Object]]:
    for rung, job in jobs.items():
        yield rung, job["spec"]["template"]["spec"]


# ------------------------------------------------------------------ files and objects


def test_the_recipes_are_there() -> None:
    assert {path.relative_to(CLUSTER).parts[0] for path in YAML_FILES} >= {
        "kueue-provisioning",
        "karpenter",
        "cluster-autoscaler",
        "discoveryrun.yaml",
    }
    assert NODE_GROUPS.is_file()
    assert (CLUSTER / "README.md").is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_every_yaml_file_parses_and_lints(path: Path) -> None:
    parsed = [document for document in documents(path) if document is not None]
    assert parsed, "an empty file"
    assert all(isinstance(document, dict) for document in parsed)
    if path in NOT_OBJECTS:
        assert all("kind" not in document for document in parsed)
    else:
        assert all({"apiVersion", "kind", "metadata"} <= set(document) for document in parsed)
    problems = list(linter.run(path.read_text(encoding="utf-8"), LINT, str(path)))
    assert not problems, [str(problem) for problem in problems]


def test_every_kind_is_validated_somewhere() -> None:
    # a new core kind goes into CORE_KINDS, a new custom kind gets a schema and CUSTOM_KINDS
    found = {type_of(obj) for _, obj in all_objects()}
    known = set(CUSTOM_KINDS) | GENESYS_KINDS | CORE_KINDS
    assert not found - known, f"no validation for {sorted(found - known)}"
    assert not known - found, f"not in the examples: {sorted(known - found)}"


@pytest.mark.parametrize(
    "item",
    [item for item in all_objects() if type_of(item[1]) in CORE_KINDS],
    ids=object_id,
)
def test_core_objects_validate_for_kubernetes_1_35(item: tuple[Path, Object]) -> None:
    _, obj = item
    assert kubernetes_validate.validate(obj, desired_version=KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "item",
    [item for item in all_objects() if type_of(item[1]) in CUSTOM_KINDS],
    ids=object_id,
)
def test_custom_objects_match_their_schema(item: tuple[Path, Object]) -> None:
    _, obj = item
    jsonschema.validate(obj, schema_for(obj["kind"]), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("name", sorted(set(CUSTOM_KINDS.values())))
def test_schemas_are_valid_json_schema(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


def _parent(obj: Object, path: str) -> tuple[Any, str]:
    """The mapping that holds the dotted ``path``'s last part (list indexes are numbers)."""
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, last


def _set(path: str, value: Any) -> Callable[[Object], None]:
    def mutate(obj: Object) -> None:
        node, last = _parent(obj, path)
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Object], None]:
    def mutate(obj: Object) -> None:
        node, last = _parent(obj, path)
        del node[last]

    return mutate


def _rename_quota(obj: Object) -> None:
    quota = obj["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]
    quota["nominalquota"] = quota.pop("nominalQuota")


MISTAKES: list[tuple[str, str, Callable[[Object], None]]] = [
    ("ClusterQueue", "a misspelt field", _rename_quota),
    ("ClusterQueue", "an unknown queueing strategy", _set("spec.queueingStrategy", "FIFO")),
    ("ClusterQueue", "a namespace on a cluster-scoped kind", _set("metadata.namespace", "x")),
    ("ClusterQueue", "checks in both forms", _set("spec.admissionChecksStrategy", {})),
    ("LocalQueue", "no namespace", _delete("metadata.namespace")),
    ("LocalQueue", "no cluster queue", _delete("spec.clusterQueue")),
    ("ResourceFlavor", "an unknown taint effect", _set("spec.nodeTaints.0.effect", "NoRun")),
    ("AdmissionCheck", "parameters without a kind", _delete("spec.parameters.kind")),
    ("AdmissionCheck", "an empty controller", _set("spec.controllerName", "")),
    ("ProvisioningRequestConfig", "no class", _delete("spec.provisioningClassName")),
    (
        "ProvisioningRequestConfig",
        "a resource twice",
        _set("spec.managedResources", [GPU_RESOURCE, GPU_RESOURCE]),
    ),
    ("NodePool", "the old API version", _set("apiVersion", "karpenter.sh/v1beta1")),
    (
        "NodePool",
        "the old consolidation policy",
        _set("spec.disruption.consolidationPolicy", "WhenUnderutilized"),
    ),
    ("NodePool", "a node class without a group", _delete("spec.template.spec.nodeClassRef.group")),
    (
        "NodePool",
        "a budget reason that does not exist",
        _set("spec.disruption.budgets.0.reasons", ["Expired"]),
    ),
    ("NodePool", "expireAfter in days", _set("spec.template.spec.expireAfter", "30d")),
    ("EC2NodeClass", "role and instance profile", _set("spec.instanceProfile", "profile")),
    (
        "EC2NodeClass",
        "an unknown AMI family",
        _set("spec.amiSelectorTerms.0.alias", "ubuntu@latest"),
    ),
    ("EC2NodeClass", "no subnets", _delete("spec.subnetSelectorTerms")),
]


@pytest.mark.parametrize(
    ("kind", "mistake", "mutate"), MISTAKES, ids=[f"{k}: {m}" for k, m, _ in MISTAKES]
)
def test_schemas_refuse_mistakes(kind: str, mistake: str, mutate: Callable[[Object], None]) -> None:
    broken = copy.deepcopy(one(kind))
    mutate(broken)
    validator = jsonschema.Draft202012Validator(schema_for(kind))
    assert not validator.is_valid(broken), mistake


# ----------------------------------------------------------------------- the run


def test_the_example_run_validates_as_a_cluster_run() -> None:
    (document,) = documents(CLUSTER / "discoveryrun.yaml")
    run, errors = validate_cluster_run(document)
    assert errors == []
    assert run is not None
    assert main(["validate", "--quiet", str(CLUSTER / "discoveryrun.yaml")]) == 0


def test_training_pods_ask_for_whole_gpus_with_requests_equal_to_limits(
    run: DiscoveryRun, training_jobs: dict[str, Object]
) -> None:
    gpus = run.spec.verification.resources.gpus
    assert gpus > 0
    for rung, pod in training_pods(training_jobs):
        (container,) = pod["containers"]
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], rung
        assert resources["limits"][GPU_RESOURCE] == str(gpus), rung
        assert {"cpu", "memory"} <= set(resources["limits"]), rung


# ------------------------------------------------------------------------- Kueue


def test_the_localqueue_names_the_clusterqueue_in_the_runs_namespace(run: DiscoveryRun) -> None:
    local, cluster = one("LocalQueue"), one("ClusterQueue")
    assert local["spec"]["clusterQueue"] == cluster["metadata"]["name"]
    namespace = local["metadata"]["namespace"]
    assert namespace == run.metadata.namespace
    selector = cluster["spec"]["namespaceSelector"]
    assert selector["matchLabels"] == {"kubernetes.io/metadata.name": namespace}
    assert run.spec.verification.queue_name == local["metadata"]["name"]


def test_the_clusterqueue_runs_the_provisioning_admission_check() -> None:
    cluster, check = one("ClusterQueue"), one("AdmissionCheck")
    config = one("ProvisioningRequestConfig")
    assert cluster["spec"]["admissionChecks"] == [check["metadata"]["name"]]
    assert check["spec"]["controllerName"] == PROVISIONING_CONTROLLER
    assert check["spec"]["parameters"] == {
        "apiGroup": "kueue.x-k8s.io",
        "kind": "ProvisioningRequestConfig",
        "name": config["metadata"]["name"],
    }


def test_the_provisioning_class_scales_up_for_gpu_pods() -> None:
    # check-capacity.autoscaling.x-k8s.io never adds a node: a group at zero would stay there
    spec = one("ProvisioningRequestConfig")["spec"]
    assert spec["provisioningClassName"] == SCALE_UP_CLASS
    assert spec["managedResources"] == [GPU_RESOURCE]


def test_the_clusterqueue_quotas_cover_cpu_memory_and_gpus_on_the_flavor() -> None:
    flavors = {flavor["metadata"]["name"] for flavor in objects_of("ResourceFlavor")}
    (group,) = one("ClusterQueue")["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", GPU_RESOURCE]
    for flavor in group["flavors"]:
        assert flavor["name"] in flavors
        # each flavor lists the covered resources, in their order
        assert [quota["name"] for quota in flavor["resources"]] == group["coveredResources"]


def test_training_jobs_go_through_the_queue_suspended(training_jobs: dict[str, Object]) -> None:
    queue = one("LocalQueue")["metadata"]["name"]
    for rung, job in training_jobs.items():
        assert job["metadata"]["labels"][LABEL_KUEUE_QUEUE] == queue, rung
        assert job["spec"]["suspend"] is True, rung
        assert job["metadata"]["namespace"] == one("LocalQueue")["metadata"]["namespace"]


# ----------------------------------------------------- the nodes and the training pod


def test_every_set_up_declares_the_same_gpu_taint() -> None:
    (pool_taint,) = one("NodePool")["spec"]["template"]["spec"]["taints"]
    (flavor_taint,) = one("ResourceFlavor")["spec"]["nodeTaints"]
    (autoscaler_taint,) = autoscaler_taints()
    assert pool_taint == flavor_taint == autoscaler_taint
    assert pool_taint["key"] == GPU_RESOURCE
    assert pool_taint["effect"] == "NoSchedule"


def test_training_pods_tolerate_the_gpu_nodes(training_jobs: dict[str, Object]) -> None:
    taints = [
        *one("NodePool")["spec"]["template"]["spec"]["taints"],
        *one("ResourceFlavor")["spec"]["nodeTaints"],
        *autoscaler_taints(),
    ]
    for rung, pod in training_pods(training_jobs):
        assert tolerates_all(pod, taints), rung


def test_agent_pods_stay_off_the_gpu_nodes(handle: Any) -> None:
    session = StartSession("s0001", "d0001", 1, "mutation", ("seed-gpt2",), 11)
    job = manifests.agent_job(handle, session, owner=OWNER, namespace=NAMESPACE)
    pod = job["spec"]["template"]["spec"]
    assert not tolerates_all(pod, autoscaler_taints())


def test_the_toleration_check_follows_kubernetes() -> None:
    taint = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
    assert tolerates({"key": GPU_RESOURCE, "operator": "Exists"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert tolerates({"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": GPU_RESOURCE, "effect": "NoSchedule"}, taint)  # Equal to ""
    assert not tolerates({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoExecute"}, taint)
    assert not tolerates({"key": "other", "operator": "Exists"}, taint)


def test_training_pods_select_labels_every_set_up_gives_the_nodes(
    training_jobs: dict[str, Object],
) -> None:
    flavor_labels = one("ResourceFlavor")["spec"]["nodeLabels"]
    autoscaler_labels = template_entries("label")
    pool = one("NodePool")["spec"]["template"]
    pool_labels = (pool.get("metadata") or {}).get("labels") or {}
    requirements = pool["spec"]["requirements"]
    for rung, pod in training_pods(training_jobs):
        selector = pod["nodeSelector"]
        assert selector, rung
        # Kueue adds the flavor's labels on admission: they must not contradict the run's
        assert all(selector.get(key, value) == value for key, value in flavor_labels.items())
        # a group at zero is judged from its tags: every selected label is one
        assert {**autoscaler_labels, **selector} == autoscaler_labels, rung
        assert {**autoscaler_labels, **flavor_labels} == autoscaler_labels
        for key, value in selector.items():
            assert key in KARPENTER_WELL_KNOWN or key in pool_labels, key
            assert all(allows(r, value) for r in requirements if r["key"] == key), key
            if key == INSTANCE_TYPE:  # p5.48xlarge is of the family p5
                family = value.split(".")[0]
                assert all(allows(r, family) for r in requirements if r["key"] == INSTANCE_FAMILY)


def test_the_priority_class_is_above_the_expendable_cut_off(
    training_jobs: dict[str, Object],
) -> None:
    priority = one("PriorityClass")
    cut_off = int(helm_values()["extraArgs"]["expendable-pods-priority-cutoff"])
    assert priority["value"] > cut_off
    assert priority["value"] > 0  # ahead of pods without a class
    assert priority["globalDefault"] is False
    assert priority["preemptionPolicy"] == "Never"
    for rung, pod in training_pods(training_jobs):
        assert pod["priorityClassName"] == priority["metadata"]["name"], rung


def test_gpu_bounds_agree_and_a_node_holds_one_training_pod(
    training_jobs: dict[str, Object],
) -> None:
    settings = node_group_table()
    max_nodes = int(settings["max size"])
    assert int(settings["min size"]) == 0
    gpus_per_node = int(template_entries("resources")[GPU_RESOURCE])
    assert settings["instance type"] == template_entries("label")[INSTANCE_TYPE]
    (flavor,) = one("ClusterQueue")["spec"]["resourceGroups"][0]["flavors"]
    quota = {item["name"]: str(item["nominalQuota"]) for item in flavor["resources"]}
    pool_limit = int(one("NodePool")["spec"]["limits"][GPU_RESOURCE])
    assert int(quota[GPU_RESOURCE]) == pool_limit == max_nodes * gpus_per_node
    for rung, pod in training_pods(training_jobs):
        (container,) = pod["containers"]
        requests = container["resources"]["requests"]
        assert int(requests[GPU_RESOURCE]) == gpus_per_node, rung  # one pod per node
        # the quota of one node covers one pod: the quota admits as many pods as nodes
        assert cpus(requests["cpu"]) * max_nodes <= quantity(quota["cpu"]), rung
        memory = memory_bytes(requests["memory"])
        assert memory * max_nodes <= memory_bytes(quota["memory"]), rung


# ----------------------------------------------------------------------- Karpenter


def test_the_nodepool_uses_its_node_class() -> None:
    reference = one("NodePool")["spec"]["template"]["spec"]["nodeClassRef"]
    node_class = one("EC2NodeClass")
    assert reference == {
        "group": node_class["apiVersion"].split("/")[0],
        "kind": node_class["kind"],
        "name": node_class["metadata"]["name"],
    }


def test_the_nodepool_leaves_busy_nodes_alone() -> None:
    spec = one("NodePool")["spec"]
    disruption = spec["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    assert {"nodes": "0", "reasons": ["Drifted"]} in disruption["budgets"]
    template = spec["template"]["spec"]
    assert template["expireAfter"] == "Never"
    assert "terminationGracePeriod" not in template
    capacity_type = "karpenter.sh/capacity-type"
    capacity = [r for r in template["requirements"] if r["key"] == capacity_type]
    assert capacity == [{"key": capacity_type, "operator": "In", "values": ["on-demand"]}]


# -------------------------------------------------------------- cluster-autoscaler


def test_the_autoscaler_flags_suit_training_jobs(training_jobs: dict[str, Object]) -> None:
    flags = helm_values()["extraArgs"]
    assert flags["balance-similar-node-groups"] is True
    assert flags["enable-provisioning-requests"] is True
    unneeded = re.fullmatch(r"(\d+)m", flags["scale-down-unneeded-time"])
    assert unneeded is not None
    assert int(unneeded[1]) >= 10
    # nodes whose pods use emptyDir are never removed: every training pod has one
    assert flags["skip-nodes-with-local-storage"] is True
    for rung, pod in training_pods(training_jobs):
        assert any("emptyDir" in volume for volume in pod["volumes"]), rung


def test_the_autoscaler_discovers_the_tagged_groups() -> None:
    settings = node_group_table()
    cluster = helm_values()["autoDiscovery"]["clusterName"]
    assert settings["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert settings[f"k8s.io/cluster-autoscaler/{cluster}"] == "owned"


# --------------------------------------------------------------------- documentation


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _links(markdown: Path) -> Iterator[tuple[Path, str]]:
    for target in re.findall(r"\]\(([^)\s]+)\)", markdown.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        yield (markdown.parent / path).resolve() if path else markdown, anchor


DOCS = [
    REPO / "docs" / "gpu-clusters.md",
    CLUSTER / "README.md",
    NODE_GROUPS,
]


@pytest.mark.parametrize("markdown", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documentation_links_resolve(markdown: Path) -> None:
    for target, anchor in _links(markdown):
        assert target.exists(), f"{markdown.name}: {target} is missing"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{markdown.name}: #{anchor}"


def test_the_documentation_index_lists_the_page() -> None:
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    assert "[gpu-clusters.md](gpu-clusters.md)" in index


def test_the_page_names_what_the_recipes_hold() -> None:
    page = (REPO / "docs" / "gpu-clusters.md").read_text(encoding="utf-8")
    for name in (
        SCALE_UP_CLASS,
        PROVISIONING_CONTROLLER,
        "--expendable-pods-priority-cutoff",
        "--scale-down-unneeded-time",
        "--balance-similar-node-groups",
        "enqueue",
        one("LocalQueue")["metadata"]["name"],
        one("PriorityClass")["metadata"]["name"],
    ):
        assert name in page, name
