"""The Helm chart ``helm/genesys-operator``: lint, render, and check what it renders.

Each case of values is rendered with the pinned ``helm`` (``helm template``) and every object is
validated against the Kubernetes schemas (``kubernetes_validate``, strict). Then: the pod is
Pod Security "restricted", the RBAC is exactly the rules the operator's code needs (no wildcard,
no Secret), the chart's CRDs are the repository's, bad values fail with the value's name, and
every value in values.yaml changes what is rendered.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "genesys-operator"
RELEASE, NAMESPACE = "genesys", "genesys-system"

Objects = list[dict[str, Any]]
KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")  # the release the chart targets, and the newest known


def helm_binary() -> str:
    """The pinned helm that ``scripts/setup.sh`` installs next to the venv's python; else skip.

    Only the pinned one: the error messages the tests expect are its schema validator's.
    """
    pinned = Path(sys.executable).parent / "helm"
    if not pinned.exists():
        pytest.skip(f"{pinned} is missing (scripts/setup.sh installs the pinned helm)")
    return str(pinned)


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_binary()


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="kubernetes_validate is not installed")


def run_helm(
    helm: str, *args: str, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [helm, *args]
    if values is not None:
        command += ["--values", "-"]
    return subprocess.run(
        command,
        input=json.dumps(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def render(helm: str, values: dict[str, Any], *extra: str, chart: Path = CHART) -> Objects:
    """``helm template`` with these values (JSON is YAML); the objects, in order."""
    done = run_helm(
        helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *extra, values=values
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(helm: str, values: dict[str, Any]) -> str:
    done = run_helm(helm, "template", RELEASE, str(CHART), values=values)
    assert done.returncode != 0, f"helm template accepted {values}"
    return done.stderr


def kinds(objects: Objects, kind: str) -> Objects:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Objects, kind: str) -> dict[str, Any]:
    (found,) = kinds(objects, kind)
    return found


# --------------------------------------------------------------------------------- the cases

ALL_OPT_INS: dict[str, Any] = {
    "peering": {"enabled": True},
    "networkPolicy": {
        "enabled": True,
        "apiServer": {"cidrs": ["10.96.0.1/32", "172.18.0.2/32"]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 9000}]}],
    },
    "verbose": True,
    "image": {"repository": "registry.example/genesys-operator", "digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccount": {
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/genesys"}
    },
    "extraEnv": [
        {"name": "GENESYS_S3_ENDPOINT", "value": "http://minio.storage:9000"},
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}},
        },
    ],
    "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
    "podAnnotations": {"example.com/note": "operator"},
    "podLabels": {"team": "research"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/arch",
                                "operator": "In",
                                "values": ["amd64", "arm64"],
                            }
                        ]
                    }
                ]
            }
        }
    },
    "priorityClassName": "system-cluster-critical",
    "images": {"agent": "registry.example/genesys-agent:1", "trainer": "registry.example/t:1"},
    "runPolicies": {
        "enabled": True,
        "namespaces": ["runs"],
        "denyCidrs": ["169.254.169.254/32", "10.0.0.0/24"],
        "llm": {"to": [], "ports": [443, 8000]},  # any address but the denied ones
        "s3": {
            "to": [{"namespaceSelector": {"matchLabels": {"name": "storage"}}}],
            "ports": [9000],
        },
    },
    "telemetry": {
        "otlp": {
            "endpoint": "http://otel-collector.observability:4317",
            "protocol": "grpc",
            "headersSecret": {"name": "otlp-auth", "key": "headers"},
        },
        "serviceName": "genesys-operator-prod",
        "resourceAttributes": "deployment.environment=prod",
        "disabled": True,
        "collectorEgress": [
            {
                "to": [{"namespaceSelector": {"matchLabels": {"name": "observability"}}}],
                "ports": [{"port": 4317, "protocol": "TCP"}],
            }
        ],
    },
    "metrics": {
        "port": 9100,
        "serviceMonitor": {"enabled": True, "interval": "1m", "labels": {"release": "prom"}},
    },
}

CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "all-opt-ins": ALL_OPT_INS,
    "namespaced-all-opt-ins": {**ALL_OPT_INS, "watchNamespaces": ["team-a", "team-b"]},
    "subchart-values": {"global": {"foo": 1}, "enabled": True},
}


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, Objects]:
    return {name: render(helm, values, "--include-crds") for name, values in CASES.items()}


# -------------------------------------------------------------------------------- lint, schema


@pytest.mark.parametrize("case", ["defaults", "namespaced-all-opt-ins"])
def test_helm_lint_strict(helm: str, case: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), values=CASES[case])
    assert done.returncode == 0, done.stdout + done.stderr


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == "0.1.0"
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"]


def walk_schema(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk_schema(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk_schema(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], f"{path}{{}}")
    for option in node.get("anyOf", []):
        yield from walk_schema(option, f"{path}|")


def test_schema_is_strict_and_described() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    problems = []
    for path, node in walk_schema(schema):
        if "properties" in node and node.get("additionalProperties") is not False:
            problems.append(f"{path or '<root>'}: properties without additionalProperties: false")
        if path and "|" not in path and not path.endswith("{}") and not node.get("description"):
            problems.append(f"{path}: no description")
    assert problems == []
    # a parent chart's globals and its condition switch are accepted at the top level
    assert {"global", "enabled"} <= schema["properties"].keys()


# ------------------------------------------------------------------ every object is valid


@pytest.mark.parametrize("case", list(CASES))
def test_every_object_is_valid_kubernetes(
    rendered: dict[str, Objects], kubernetes_validate: Any, case: str
) -> None:
    checked = 0
    for obj in rendered[case]:
        if obj["apiVersion"].split("/")[0] in ("kopf.dev", "monitoring.coreos.com"):  # CRD-typed
            continue
        for version in KUBERNETES_VERSIONS:
            assert kubernetes_validate.validate(obj, desired_version=version, strict=True)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("case", list(CASES))
def test_every_object_has_the_standard_labels(rendered: dict[str, Objects], case: str) -> None:
    standard = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    }
    for obj in rendered[case]:
        if obj["metadata"]["name"].endswith(".kopf.dev"):  # kopf's CRDs (the chart's crds/)
            continue
        labels = obj["metadata"].get("labels") or {}
        assert standard <= labels.keys(), f"{obj['kind']}/{obj['metadata']['name']}"


# ------------------------------------------------------------------------ the operator pod


@pytest.mark.parametrize("case", list(CASES))
def test_operator_pod_is_restricted(rendered: dict[str, Objects], case: str) -> None:
    deployment = one(rendered[case], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int)
    assert context["runAsUser"] > 0
    assert isinstance(context["runAsGroup"], int)
    assert context["runAsGroup"] > 0
    assert isinstance(context["fsGroup"], int)
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True  # the operator needs the API
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert "emptyDir" in tmp
    assert not any("hostPath" in v for v in pod["volumes"])
    assert container["command"] == ["genesys", "operator"]
    assert container["args"][:2] == ["--liveness", "http://0.0.0.0:8080/healthz"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert probe["port"] in (8080, "health")
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    service_account = one(rendered[case], "ServiceAccount")
    assert service_account["automountServiceAccountToken"] is False


def test_defaults_run_one_standalone_replica(rendered: dict[str, Objects]) -> None:
    deployment = one(rendered["defaults"], "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["args"] == ["--liveness", "http://0.0.0.0:8080/healthz", "--standalone"]
    assert container["image"] == "genesys-operator:0.1.0"
    assert not kinds(rendered["defaults"], "NetworkPolicy")
    assert not [o for o in rendered["defaults"] if o["apiVersion"].startswith("kopf.dev/")]


def test_peering_joins_a_peering_object(rendered: dict[str, Objects]) -> None:
    objects = rendered["all-opt-ins"]
    deployment = one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--standalone" not in args
    peering = one(objects, "ClusterKopfPeering")
    assert args[args.index("--peering") + 1] == peering["metadata"]["name"]
    assert "--verbose" in args
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    # kopf's peering CRDs come with the chart (its crds/ folder, installed when absent)
    crds = {c["metadata"]["name"] for c in kinds(objects, "CustomResourceDefinition")}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds


def test_pod_values_reach_the_pod(rendered: dict[str, Objects]) -> None:
    pod = one(rendered["all-opt-ins"], "Deployment")["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/genesys-operator@sha256:" + "ab" * 32
    assert container["env"] == [
        {"name": "GENESYS_AGENT_IMAGE", "value": "registry.example/genesys-agent:1"},
        {"name": "GENESYS_TRAINER_IMAGE", "value": "registry.example/t:1"},
        {"name": "GENESYS_METRICS_PORT", "value": "9100"},
        {
            "name": "OTEL_EXPORTER_OTLP_ENDPOINT",
            "value": "http://otel-collector.observability:4317",
        },
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},
        {
            "name": "OTEL_EXPORTER_OTLP_HEADERS",
            "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "headers"}},
        },
        {"name": "GENESYS_OTLP_HEADERS_SECRET", "value": "otlp-auth/headers"},
        {"name": "OTEL_SERVICE_NAME", "value": "genesys-operator-prod"},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "deployment.environment=prod"},
        {"name": "OTEL_SDK_DISABLED", "value": "true"},
        *ALL_OPT_INS["extraEnv"],
    ]
    assert container["envFrom"] == ALL_OPT_INS["envFrom"]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["nodeSelector"] == ALL_OPT_INS["nodeSelector"]
    assert spec["tolerations"] == ALL_OPT_INS["tolerations"]
    assert spec["affinity"] == ALL_OPT_INS["affinity"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"] == {"example.com/note": "operator"}
    assert pod["metadata"]["labels"]["team"] == "research"
    service_account = one(rendered["all-opt-ins"], "ServiceAccount")
    assert (
        service_account["metadata"]["annotations"] == ALL_OPT_INS["serviceAccount"]["annotations"]
    )


def test_pod_labels_never_replace_the_selector(helm: str) -> None:
    objects = render(helm, {"podLabels": {"app.kubernetes.io/name": "other"}})
    deployment = one(objects, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_runs_default_images_are_the_charts_version(rendered: dict[str, Objects]) -> None:
    (container,) = one(rendered["defaults"], "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "GENESYS_AGENT_IMAGE", "value": "genesys-agent:0.1.0"},
        {"name": "GENESYS_TRAINER_IMAGE", "value": "genesys-trainer:0.1.0"},
        {"name": "GENESYS_METRICS_PORT", "value": "9464"},
        {"name": "OTEL_SERVICE_NAME", "value": "genesys-operator"},
    ]


def operator_policy(objects: Objects) -> dict[str, Any]:
    (policy,) = [
        p for p in kinds(objects, "NetworkPolicy") if p["metadata"]["namespace"] == NAMESPACE
    ]
    return policy


def run_policies(objects: Objects) -> dict[str, dict[str, Any]]:
    """The run pods' NetworkPolicies by ``namespace/component``."""
    found = {}
    for policy in kinds(objects, "NetworkPolicy"):
        labels = policy["spec"]["podSelector"]["matchLabels"]
        if labels.get("app.kubernetes.io/managed-by") == "genesys-operator":
            key = f"{policy['metadata']['namespace']}/{labels['app.kubernetes.io/component']}"
            found[key] = policy["spec"]
    return found


def test_run_pods_reach_only_dns_the_store_the_llm_and_their_check_pod(
    rendered: dict[str, Objects],
) -> None:
    policies = run_policies(rendered["all-opt-ins"])
    assert set(policies) == {"runs/agent", "runs/trainer"}
    assert run_policies(rendered["namespaced-all-opt-ins"]).keys() == policies.keys()
    assert run_policies(rendered["defaults"]) == {}
    agent, trainer = policies["runs/agent"], policies["runs/trainer"]
    for policy in (agent, trainer):
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["ingress"] == []  # nothing connects to them
        assert {p["port"] for p in policy["egress"][0]["ports"]} == {53}
        store = policy["egress"][1]
        assert store["to"] == ALL_OPT_INS["runPolicies"]["s3"]["to"]
        assert [p["port"] for p in store["ports"]] == [9000]
    assert len(trainer["egress"]) == 2  # DNS and the store, nothing else
    llm, check, collector = agent["egress"][2:]
    # any address, but the API server's and the denied blocks: nothing reaches the API
    (anywhere,) = llm["to"]
    assert anywhere["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert anywhere["ipBlock"]["except"] == [
        "169.254.169.254/32",
        "10.0.0.0/24",
        "10.96.0.1/32",
        "172.18.0.2/32",
    ]
    assert [p["port"] for p in llm["ports"]] == [443, 8000]
    assert check["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "check"
    assert check["ports"] == [{"port": 8470, "protocol": "TCP"}]
    assert collector == ALL_OPT_INS["telemetry"]["collectorEgress"][0]


def test_run_policies_need_their_namespaces_and_the_api_servers_address(helm: str) -> None:
    on = {"runPolicies": {"enabled": True}}
    assert "runPolicies.namespaces" in render_error(helm, on)
    anywhere = merged(on, {"runPolicies": {"namespaces": ["runs"]}})
    assert "networkPolicy.apiServer.cidrs" in render_error(helm, anywhere)
    fenced = merged(
        anywhere,
        {
            "runPolicies": {
                "llm": {"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}]},
                "s3": {"to": [{"ipBlock": {"cidr": "203.0.113.8/32"}}]},
            }
        },
    )
    assert set(run_policies(render(helm, fenced))) == {"runs/agent", "runs/trainer"}


def test_network_policy_allows_only_api_server_dns_and_health(rendered: dict[str, Objects]) -> None:
    policy = operator_policy(rendered["all-opt-ins"])["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
        {"ports": [{"port": 9100, "protocol": "TCP"}]},  # the metrics port
    ]
    api, dns, collector, extra = policy["egress"]
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert api["to"] == [
        {"ipBlock": {"cidr": "10.96.0.1/32"}},
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
    ]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert collector == ALL_OPT_INS["telemetry"]["collectorEgress"][0]
    assert extra == ALL_OPT_INS["networkPolicy"]["extraEgress"][0]


# ------------------------------------------------------------------------------------- RBAC

# What the operator's code calls (docs/install.md explains each), per scope.
NAMESPACE_RULES = {
    ("genesys.dev", "discoveryruns"): {"get", "list", "watch", "patch"},
    ("genesys.dev", "discoveryruns/status"): {"patch"},
    ("genesys.dev", "designs"): {"get", "list", "create", "delete"},
    ("genesys.dev", "designs/status"): {"patch"},
    ("batch", "jobs"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list"},
    ("", "services"): {"list", "create", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"list", "create", "delete"},
    ("", "events"): {"create"},
}
CRDS_RULE = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no names, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


@pytest.mark.parametrize("case", list(CASES))
def test_rbac_has_no_wildcard_and_no_secret(rendered: dict[str, Objects], case: str) -> None:
    roles = kinds(rendered[case], "ClusterRole") + kinds(rendered[case], "Role")
    assert roles
    for role in roles:
        for (group, resource), verbs in granted(role).items():
            assert "*" not in {group, resource, *verbs}, role["metadata"]["name"]
            assert resource not in ("secrets", "pods/exec", "serviceaccounts/token")
            assert not verbs & {"escalate", "bind", "impersonate"}


def test_cluster_wide_rbac_is_exactly_what_the_code_calls(rendered: dict[str, Objects]) -> None:
    objects = rendered["defaults"]
    assert granted(one(objects, "ClusterRole")) == {**CRDS_RULE, **NAMESPACE_RULES}
    assert not kinds(objects, "Role")
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    peering = granted(one(rendered["all-opt-ins"], "ClusterRole"))
    assert peering == {
        **CRDS_RULE,
        **NAMESPACE_RULES,
        ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch"},
    }


@pytest.mark.parametrize("case", ["namespaced", "namespaced-all-opt-ins"])
def test_watch_namespaces_make_n_args_and_a_role_per_namespace(
    rendered: dict[str, Objects], case: str
) -> None:
    objects = rendered[case]
    peering = bool(CASES[case].get("peering"))
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "-n"] == ["team-a", "team-b"]
    roles = {role["metadata"]["namespace"]: role for role in kinds(objects, "Role")}
    assert sorted(roles) == ["team-a", "team-b"]
    expected = dict(NAMESPACE_RULES)
    if peering:
        expected[("kopf.dev", "kopfpeerings")] = {"list", "watch", "patch"}
    for role in roles.values():
        assert granted(role) == expected
    bindings = {b["metadata"]["namespace"]: b for b in kinds(objects, "RoleBinding")}
    assert sorted(bindings) == ["team-a", "team-b"]
    for namespace, binding in bindings.items():
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[namespace]["metadata"]["name"],
        }
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # cluster-wide: only the reads kopf needs (CRDs, and namespaces to serve named ones)
    cluster = granted(one(objects, "ClusterRole"))
    assert cluster == {**CRDS_RULE, ("", "namespaces"): {"list", "watch"}}
    if peering:
        assert "--peering" in args
        peerings = kinds(objects, "KopfPeering")
        assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
        assert not kinds(objects, "ClusterKopfPeering")


def test_rbac_create_false_renders_no_rbac(helm: str) -> None:
    objects = render(helm, {"rbac": {"create": False}, "watchNamespaces": ["team-a"]})
    assert not {o["kind"] for o in objects} & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }


# ------------------------------------------------------------------------------------- CRDs


def test_chart_crds_are_the_repository_crds_byte_for_byte() -> None:
    ours = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    repository = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    assert ours == repository


def test_rendered_crds_are_the_repository_crds(rendered: dict[str, Objects]) -> None:
    objects = {
        c["metadata"]["name"]: c for c in kinds(rendered["defaults"], "CustomResourceDefinition")
    }
    files = sorted((REPO / "crds").glob("*.yaml"))
    assert files
    for path in files:
        expected = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = expected["metadata"]["name"]
        found = copy.deepcopy(objects[name])
        assert found["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert expected["metadata"]["labels"].items() <= found["metadata"]["labels"].items()
        for key in ("labels", "annotations"):
            found["metadata"].pop(key)
            expected["metadata"].pop(key, None)
        assert found == expected, name


def test_crd_values(helm: str) -> None:
    def genesys_crds(values: dict[str, Any]) -> Objects:
        return [
            c
            for c in kinds(render(helm, values), "CustomResourceDefinition")
            if c["spec"]["group"] == "genesys.dev"
        ]

    assert not genesys_crds({"crds": {"install": False}})
    unkept = genesys_crds({"crds": {"keep": False}})
    assert len(unkept) == 2
    assert all("annotations" not in c["metadata"] for c in unkept)


# ------------------------------------------------------------------------------- bad values

BAD_VALUES = [
    ({"replicas": "two"}, "replicas"),
    ({"replicsa": 1}, "replicsa"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"image": {"tagg": "1"}}, "tagg"),
    ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ({"watchNamespaces": ["a", "a"]}, "watchNamespaces"),
    ({"networkPolicy": {"apiServer": {"ports": ["https"]}}}, "ports"),
    ({"extraEnv": [{"value": "no name"}]}, "extraEnv"),
    ({"podSecurityContext": {"runAsUser": 0}}, "runAsUser"),
    ({"replicas": 2}, "replicas"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_bad_values_fail_naming_the_value(helm: str, values: dict[str, Any], named: str) -> None:
    assert named in render_error(helm, values)


# ----------------------------------------------------------------------------------- subchart


def test_installs_as_a_subchart(helm: str, tmp_path: Path) -> None:
    parent = tmp_path / "platform"
    shutil.copytree(CHART, parent / "charts" / "genesys-operator")
    chart = {
        "apiVersion": "v2",
        "name": "platform",
        "version": "1.0.0",
        "dependencies": [
            {
                "name": "genesys-operator",
                "version": "0.1.0",
                "condition": "genesys-operator.enabled",
            }
        ],
    }
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart), encoding="utf-8")
    values = {"global": {"foo": 1}, "genesys-operator": {"enabled": True}}
    objects = render(helm, values, chart=parent)
    assert one(objects, "Deployment")["metadata"]["name"] == "genesys-genesys-operator"
    off = render(helm, {"global": {"foo": 1}, "genesys-operator": {"enabled": False}}, chart=parent)
    assert not kinds(off, "Deployment")


# ------------------------------------------------------------------ every value does something

# For each value in values.yaml, a change (on top of ALL_OPT_INS, where every value is in use)
# that must change the rendered objects. A value added to values.yaml needs a line here.
CHANGES: dict[str, dict[str, Any]] = {
    "nameOverride": {"nameOverride": "genesys-ops"},
    "fullnameOverride": {"fullnameOverride": "ops"},
    "image.repository": {"image": {"repository": "other/genesys-operator"}},
    "image.tag": {"image": {"digest": "", "tag": "0.1.1"}},
    "image.digest": {"image": {"digest": "sha256:" + "cd" * 32}},
    "image.pullPolicy": {"image": {"pullPolicy": "Always"}},
    "imagePullSecrets": {"imagePullSecrets": [{"name": "other"}]},
    "replicas": {"replicas": 0},
    "watchNamespaces": {"watchNamespaces": ["team-a"]},
    "crds.install": {"crds": {"install": False}},
    "crds.keep": {"crds": {"keep": False}},
    "serviceAccount.create": {"serviceAccount": {"create": False, "name": "genesys"}},
    "serviceAccount.name": {"serviceAccount": {"name": "operator"}},
    "serviceAccount.annotations": {"serviceAccount": {"annotations": {"a": "b"}}},
    "rbac.create": {"rbac": {"create": False}},
    "peering.enabled": {"peering": {"enabled": False}},
    "peering.name": {"peering": {"name": "genesys-peers"}},
    "verbose": {"verbose": False},
    "extraEnv": {"extraEnv": [{"name": "GENESYS_WORKERS", "value": "4"}]},
    "envFrom": {"envFrom": []},
    "resources.requests.cpu": {"resources": {"requests": {"cpu": "200m"}}},
    "resources.requests.memory": {"resources": {"requests": {"memory": "512Mi"}}},
    "resources.limits.memory": {"resources": {"limits": {"memory": "2Gi"}}},
    "livenessProbe.initialDelaySeconds": {"livenessProbe": {"initialDelaySeconds": 30}},
    "livenessProbe.periodSeconds": {"livenessProbe": {"periodSeconds": 30}},
    "livenessProbe.timeoutSeconds": {"livenessProbe": {"timeoutSeconds": 9}},
    "livenessProbe.failureThreshold": {"livenessProbe": {"failureThreshold": 5}},
    "podSecurityContext.runAsUser": {"podSecurityContext": {"runAsUser": 1000}},
    "podSecurityContext.runAsGroup": {"podSecurityContext": {"runAsGroup": 1000}},
    "podSecurityContext.fsGroup": {"podSecurityContext": {"fsGroup": 1000}},
    "tmpSizeLimit": {"tmpSizeLimit": "128Mi"},
    "podAnnotations": {"podAnnotations": {}},
    "podLabels": {"podLabels": {}},
    "nodeSelector": {"nodeSelector": {}},
    "tolerations": {"tolerations": []},
    "affinity": {"affinity": {}},
    "priorityClassName": {"priorityClassName": ""},
    "networkPolicy.enabled": {"networkPolicy": {"enabled": False}},
    "networkPolicy.apiServer.cidrs": {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1/32"]}}},
    "networkPolicy.apiServer.ports": {"networkPolicy": {"apiServer": {"ports": [443]}}},
    "networkPolicy.dns.namespaceLabels.kubernetes.io/metadata.name": {
        "networkPolicy": {"dns": {"namespaceLabels": {"kubernetes.io/metadata.name": "dns"}}}
    },
    "networkPolicy.dns.podLabels.k8s-app": {
        "networkPolicy": {"dns": {"podLabels": {"k8s-app": "coredns"}}}
    },
    "networkPolicy.extraEgress": {"networkPolicy": {"extraEgress": []}},
    "images.agent": {"images": {"agent": ""}},
    "images.trainer": {"images": {"trainer": ""}},
    "runPolicies.enabled": {"runPolicies": {"enabled": False}},
    "runPolicies.namespaces": {"runPolicies": {"namespaces": ["other"]}},
    "runPolicies.denyCidrs": {"runPolicies": {"denyCidrs": ["10.1.0.0/16"]}},
    "runPolicies.llm.to": {"runPolicies": {"llm": {"to": [{"ipBlock": {"cidr": "1.2.3.4/32"}}]}}},
    "runPolicies.llm.ports": {"runPolicies": {"llm": {"ports": [443]}}},
    "runPolicies.s3.to": {"runPolicies": {"s3": {"to": []}}},
    "runPolicies.s3.ports": {"runPolicies": {"s3": {"ports": [443]}}},
    "telemetry.otlp.endpoint": {"telemetry": {"otlp": {"endpoint": "https://otlp.example"}}},
    "telemetry.otlp.protocol": {"telemetry": {"otlp": {"protocol": "http/protobuf"}}},
    "telemetry.otlp.headers": {
        "telemetry": {"otlp": {"headers": "x-token=1", "headersSecret": {"name": ""}}}
    },
    "telemetry.otlp.headersSecret.name": {
        "telemetry": {"otlp": {"headersSecret": {"name": "other"}}}
    },
    "telemetry.otlp.headersSecret.key": {
        "telemetry": {"otlp": {"headersSecret": {"key": "other"}}}
    },
    "telemetry.serviceName": {"telemetry": {"serviceName": ""}},
    "telemetry.resourceAttributes": {"telemetry": {"resourceAttributes": ""}},
    "telemetry.disabled": {"telemetry": {"disabled": False}},
    "telemetry.collectorEgress": {"telemetry": {"collectorEgress": []}},
    "metrics.enabled": {"metrics": {"enabled": False}},
    "metrics.port": {"metrics": {"port": 9465}},
    "metrics.serviceMonitor.enabled": {"metrics": {"serviceMonitor": {"enabled": False}}},
    "metrics.serviceMonitor.interval": {"metrics": {"serviceMonitor": {"interval": "15s"}}},
    "metrics.serviceMonitor.labels": {"metrics": {"serviceMonitor": {"labels": {}}}},
}


def leaves(node: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of the values: scalars, lists and empty maps (maps with keys recurse)."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from leaves(child, f"{path}.{key}" if path else key)
    else:
        yield path


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and value and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def test_every_value_has_a_comment_and_a_change() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert set(leaves(yaml.safe_load(text))) == set(CHANGES)
    # every value's line, or that of a map it is in, follows a comment line
    lines = text.splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#") or stripped.startswith("-"):
            continue
        indent = len(line) - len(stripped)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        previous = lines[number - 1].strip() if number else ""
        documented = previous.startswith("#") or any(doc for _, doc in stack)
        value = stripped.split(":", 1)[1].strip() if ":" in stripped else ""
        if value:  # a leaf (a scalar, [] or {} on the same line)
            assert documented, f"values.yaml line {number + 1} has no comment: {line}"
        stack.append((indent, documented))


@pytest.fixture(scope="module")
def all_opt_ins(helm: str) -> Objects:
    return render(helm, ALL_OPT_INS)


@pytest.mark.parametrize("value", list(CHANGES))
def test_every_value_changes_the_rendering(helm: str, all_opt_ins: Objects, value: str) -> None:
    after = render(helm, merged(ALL_OPT_INS, CHANGES[value]))
    assert after != all_opt_ins, f"{value} changed nothing"
