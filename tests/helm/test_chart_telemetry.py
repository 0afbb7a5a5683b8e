"""The Helm chart's OpenTelemetry and Prometheus values: ``telemetry`` and ``metrics``.

Rendered with the pinned ``helm`` (``helm template``), as in ``test_chart.py``: the operator's
``OTEL_*`` and ``GENESYS_METRICS_PORT`` variables, its ``metrics`` port, the metrics Service,
the optional ServiceMonitor, the collector's egress (agent pods and the operator, never training
pods), and the values the schema or the templates refuse.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from test_chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    Objects,
    kinds,
    one,
    render,
    render_error,
    run_helm,
)
from test_chart import helm as helm  # the fixture

pytestmark = pytest.mark.integration

KUBERNETES_VERSION = "1.35.0"

ENDPOINT = "http://otel-collector.observability:4318"
COLLECTOR_RULE = {
    "to": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    ],
    "ports": [{"port": 4318, "protocol": "TCP"}],
}
# Both NetworkPolicies on, the API server's address given (the run policies need it).
POLICIES: dict[str, Any] = {
    "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32"]}},
    "runPolicies": {"enabled": True, "namespaces": ["runs"]},
}


def container(objects: Objects) -> dict[str, Any]:
    (found,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def env(objects: Objects) -> dict[str, dict[str, Any]]:
    """The operator container's variables by name (each name once)."""
    variables = container(objects)["env"]
    names = [v["name"] for v in variables]
    assert len(names) == len(set(names)), names
    return {v["name"]: v for v in variables}


def values_of(objects: Objects) -> dict[str, str]:
    """The operator container's literal variables: name -> value."""
    return {name: v["value"] for name, v in env(objects).items() if "value" in v}


def policies(objects: Objects) -> dict[str, dict[str, Any]]:
    """The NetworkPolicies' specs: the operator's as ``operator``, run pods' by component."""
    found = {}
    for policy in kinds(objects, "NetworkPolicy"):
        labels = policy["spec"]["podSelector"]["matchLabels"]
        if labels.get("app.kubernetes.io/managed-by") == "genesys-operator":
            found[labels["app.kubernetes.io/component"]] = policy["spec"]
        else:
            found["operator"] = policy["spec"]
    return found


# ---------------------------------------------------------------------------- the defaults


def test_defaults_serve_metrics_with_a_service_and_export_nothing(helm: str) -> None:
    objects = render(helm, {})
    operator = container(objects)
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in operator["ports"]
    variables = values_of(objects)
    assert variables["GENESYS_METRICS_PORT"] == "9464"
    # no collector: nothing exported, nothing handed to agent pods; only the service name
    assert not [name for name in env(objects) if name.startswith("OTEL_EXPORTER_")]
    assert "OTEL_SDK_DISABLED" not in variables
    assert "OTEL_RESOURCE_ATTRIBUTES" not in variables
    assert variables["OTEL_SERVICE_NAME"] == "genesys-operator"
    assert not kinds(objects, "ServiceMonitor")

    service = one(objects, "Service")
    assert service["metadata"]["name"] == "genesys-genesys-operator-metrics"
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    ]
    # it selects the operator pod, and only by the labels that never change
    deployment = one(objects, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_the_rendered_objects_are_valid_kubernetes(helm: str) -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes_validate is missing")
    values = {
        **POLICIES,
        "telemetry": {
            "otlp": {"endpoint": ENDPOINT, "headersSecret": {"name": "otlp", "key": "headers"}},
            "collectorEgress": [COLLECTOR_RULE],
        },
        "metrics": {"serviceMonitor": {"enabled": True}},
    }
    objects = render(helm, values)
    checked = {"Service", "Deployment", "NetworkPolicy"}
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):  # a CRD's kind
            continue
        assert validate.validate(obj, desired_version=KUBERNETES_VERSION, strict=True)
        checked.discard(obj["kind"])
    assert checked == set()


@pytest.mark.parametrize("telemetry_on", [False, True])
def test_helm_lint_strict(helm: str, telemetry_on: bool) -> None:
    values: dict[str, Any] = {}
    if telemetry_on:
        values = {
            **POLICIES,
            "telemetry": {
                "otlp": {"endpoint": ENDPOINT, "protocol": "grpc", "headers": "a=b"},
                "resourceAttributes": "deployment.environment=test",
                "disabled": True,
                "collectorEgress": [COLLECTOR_RULE],
            },
            "metrics": {"port": 9100, "serviceMonitor": {"enabled": True, "labels": {"a": "b"}}},
        }
    done = run_helm(helm, "lint", "--strict", str(CHART), values=values)
    assert done.returncode == 0, done.stdout + done.stderr


# -------------------------------------------------------------------------------- OTLP


def test_otlp_values_set_the_operators_variables(helm: str) -> None:
    objects = render(
        helm,
        {
            "telemetry": {
                "otlp": {
                    "endpoint": ENDPOINT,
                    "protocol": "grpc",
                    "headers": "authorization=Bearer t0k3n,x-tenant=a",
                },
                "serviceName": "genesys-operator-prod",
                "resourceAttributes": "deployment.environment=prod,k8s.cluster.name=a",
                "disabled": True,
            }
        },
    )
    variables = values_of(objects)
    assert {name: v for name, v in variables.items() if name.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer t0k3n,x-tenant=a",
        "OTEL_SERVICE_NAME": "genesys-operator-prod",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,k8s.cluster.name=a",
        "OTEL_SDK_DISABLED": "true",
    }
    # the chart's variables come before extraEnv, which may still override one
    names = [v["name"] for v in container(objects)["env"]]
    assert names[:2] == ["GENESYS_AGENT_IMAGE", "GENESYS_TRAINER_IMAGE"]


def test_the_default_protocol_goes_with_an_endpoint_only(helm: str) -> None:
    with_endpoint = values_of(render(helm, {"telemetry": {"otlp": {"endpoint": ENDPOINT}}}))
    assert with_endpoint["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT
    assert with_endpoint["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in with_endpoint
    without = values_of(render(helm, {"telemetry": {"otlp": {"protocol": "grpc"}}}))
    assert not [name for name in without if name.startswith("OTEL_EXPORTER_")]


def test_empty_service_name_leaves_the_operators_own(helm: str) -> None:
    variables = values_of(render(helm, {"telemetry": {"serviceName": ""}}))
    assert not [name for name in variables if name.startswith("OTEL_")]


def test_headers_secret_makes_a_secret_key_ref(helm: str) -> None:
    secret = {"name": "otlp-auth", "key": "headers"}
    objects = render(helm, {"telemetry": {"otlp": {"endpoint": ENDPOINT, "headersSecret": secret}}})
    assert env(objects)["OTEL_EXPORTER_OTLP_HEADERS"] == {
        "name": "OTEL_EXPORTER_OTLP_HEADERS",
        "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "headers"}},
    }
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in values_of(objects)  # never a plain value
    # the agents take the same Secret by reference in their own namespace
    assert values_of(objects)["GENESYS_OTLP_HEADERS_SECRET"] == "otlp-auth/headers"


def test_headers_and_headers_secret_are_exclusive_and_the_secret_needs_a_key(
    helm: str,
) -> None:
    both = {"headers": "a=b", "headersSecret": {"name": "otlp-auth", "key": "headers"}}
    message = render_error(helm, {"telemetry": {"otlp": both}})
    assert "telemetry.otlp.headers" in message
    assert "headersSecret" in message
    keyless = {"headersSecret": {"name": "otlp-auth"}}
    assert "telemetry.otlp.headersSecret.key" in render_error(
        helm, {"telemetry": {"otlp": keyless}}
    )


# ------------------------------------------------------------------------------ Prometheus


def test_service_monitor_scrapes_the_metrics_service(helm: str) -> None:
    labels = {"release": "kube-prometheus-stack", "app.kubernetes.io/name": "not-the-chart"}
    objects = render(
        helm, {"metrics": {"serviceMonitor": {"enabled": True, "interval": "1m", "labels": labels}}}
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == "genesys-genesys-operator"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    found = monitor["metadata"]["labels"]
    assert found["release"] == "kube-prometheus-stack"
    assert found["app.kubernetes.io/name"] == "genesys-operator"  # never replaced
    assert found["app.kubernetes.io/instance"] == RELEASE
    assert found["helm.sh/chart"] == "genesys-operator-0.1.0"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "1m"}
    ]
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert "metrics" in [p["name"] for p in service["spec"]["ports"]]


def test_service_monitor_default_interval(helm: str) -> None:
    objects = render(helm, {"metrics": {"serviceMonitor": {"enabled": True}}})
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["interval"] == "30s"


def test_metrics_port_moves_the_pod_the_service_and_the_policy(helm: str) -> None:
    objects = render(helm, {**POLICIES, "metrics": {"port": 9100}})
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container(objects)[
        "ports"
    ]
    assert values_of(objects)["GENESYS_METRICS_PORT"] == "9100"
    (port,) = one(objects, "Service")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (9100, "metrics")
    assert policies(objects)["operator"]["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
        {"ports": [{"port": 9100, "protocol": "TCP"}]},
    ]


def test_metrics_disabled_renders_no_service_port_or_variable(helm: str) -> None:
    objects = render(
        helm, {**POLICIES, "metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}
    )
    assert not kinds(objects, "Service")
    assert not kinds(objects, "ServiceMonitor")
    operator = container(objects)
    assert [p["name"] for p in operator["ports"]] == ["health"]
    assert "GENESYS_METRICS_PORT" not in env(objects)
    assert policies(objects)["operator"]["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]}
    ]


# ---------------------------------------------------------------- the collector's egress


def test_collector_egress_opens_for_agent_pods_and_the_operator_only(helm: str) -> None:
    closed = policies(render(helm, POLICIES))
    values = {
        **POLICIES,
        "telemetry": {"otlp": {"endpoint": ENDPOINT}, "collectorEgress": [COLLECTOR_RULE]},
    }
    opened = policies(render(helm, values))
    assert set(opened) == {"operator", "agent", "trainer"}
    assert opened["agent"]["egress"] == [*closed["agent"]["egress"], COLLECTOR_RULE]
    assert opened["operator"]["egress"][-1] == COLLECTOR_RULE
    assert len(opened["operator"]["egress"]) == len(closed["operator"]["egress"]) + 1
    # training pods send no spans to the collector: their policy does not change
    assert opened["trainer"] == closed["trainer"]
    assert COLLECTOR_RULE not in opened["trainer"]["egress"]


def test_collector_egress_without_an_endpoint_opens_nothing(helm: str) -> None:
    closed = policies(render(helm, POLICIES))
    unused = policies(
        render(helm, {**POLICIES, "telemetry": {"collectorEgress": [COLLECTOR_RULE]}})
    )
    assert unused == closed


# ------------------------------------------------------------------------------ bad values

BAD_VALUES = [
    ({"telemetry": {"otlp": {"protocol": "http/json"}}}, "/telemetry/otlp/protocol"),
    ({"telemetry": {"otlp": {"endpoint": "otel-collector:4317"}}}, "/telemetry/otlp/endpoint"),
    (
        {"telemetry": {"otlp": {"headersSecret": {"name": "Not_A_Name"}}}},
        "/telemetry/otlp/headersSecret/name",
    ),
    ({"telemetry": {"disabled": "yes"}}, "/telemetry/disabled"),
    ({"telemetry": {"collectorEgress": [{}]}}, "/telemetry/collectorEgress/0"),
    ({"telemetry": {"collectorEgress": [{"ports": [{"port": 4318}]}]}}, "'to'"),
    ({"telemetry": {"exporter": "otlp"}}, "'exporter' not allowed"),
    ({"metrics": {"port": 0}}, "/metrics/port"),
    ({"metrics": {"port": "9464"}}, "/metrics/port"),
    ({"metrics": {"port": 8080}}, "metrics.port: 8080"),
    ({"metrics": {"serviceMonitor": {"interval": "30"}}}, "/metrics/serviceMonitor/interval"),
    ({"metrics": {"serviceMonitor": {"labels": {"a": 1}}}}, "/metrics/serviceMonitor/labels/a"),
]


@pytest.mark.parametrize(
    ("values", "named"), BAD_VALUES, ids=[json.dumps(v) for v, _ in BAD_VALUES]
)
def test_bad_values_fail_naming_the_value(helm: str, values: dict[str, Any], named: str) -> None:
    assert named in render_error(helm, values)


def test_schema_describes_the_new_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    telemetry = schema["properties"]["telemetry"]
    otlp = telemetry["properties"]["otlp"]
    assert otlp["properties"]["protocol"]["enum"] == ["http/protobuf", "grpc"]
    assert telemetry["additionalProperties"] is False
    assert otlp["additionalProperties"] is False
    assert otlp["properties"]["headersSecret"]["additionalProperties"] is False
    metrics = schema["properties"]["metrics"]
    assert metrics["additionalProperties"] is False
    assert metrics["properties"]["serviceMonitor"]["additionalProperties"] is False
    assert metrics["properties"]["port"]["type"] == "integer"
    assert {"telemetry", "metrics"} <= set(schema["required"])
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert defaults["telemetry"] == {
        "otlp": {
            "endpoint": "",
            "protocol": "http/protobuf",
            "headers": "",
            "headersSecret": {"name": "", "key": ""},
        },
        "serviceName": "genesys-operator",
        "resourceAttributes": "",
        "disabled": False,
        "collectorEgress": [],
    }
    assert defaults["metrics"] == {
        "enabled": True,
        "port": 9464,
        "serviceMonitor": {"enabled": False, "interval": "30s", "labels": {}},
    }
