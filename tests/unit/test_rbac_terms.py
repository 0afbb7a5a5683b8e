"""How a request path reads in RBAC terms (the helper that checks the chart's rules)."""

from __future__ import annotations

import pytest

from support.rbac import granted, parse_call

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "path", "params", "call"),
    [
        ("GET", "/apis/batch/v1/namespaces/ns/jobs", {}, ("batch", "jobs", "list")),
        ("GET", "/apis/batch/v1/namespaces/ns/jobs", {"watch": "true"}, ("batch", "jobs", "watch")),
        ("GET", "/apis/batch/v1/jobs", {"watch": "1"}, ("batch", "jobs", "watch")),
        ("POST", "/apis/batch/v1/namespaces/ns/jobs", {}, ("batch", "jobs", "create")),
        ("GET", "/apis/batch/v1/namespaces/ns/jobs/j", {}, ("batch", "jobs", "get")),
        ("DELETE", "/api/v1/namespaces/ns/services/s", {}, ("", "services", "delete")),
        ("DELETE", "/api/v1/namespaces/ns/services", {}, ("", "services", "deletecollection")),
        ("PATCH", "/apis/genesys.dev/v1alpha1/namespaces/ns/designs/d/status", {},
         ("genesys.dev", "designs/status", "patch")),
        ("GET", "/api/v1/namespaces", {}, ("", "namespaces", "list")),
        ("GET", "/api/v1/namespaces/ns", {}, ("", "namespaces", "get")),
        ("PUT", "/api/v1/namespaces/ns/configmaps/c", {}, ("", "configmaps", "update")),
    ],
)  # fmt: skip
def test_paths_read_as_the_authorizer_reads_them(
    method: str, path: str, params: dict[str, str], call: tuple[str, str, str]
) -> None:
    assert parse_call(method, path, params) == call


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/apis/batch/v1", "/version"])
def test_discovery_paths_need_no_rule(path: str) -> None:
    assert parse_call("GET", path, {}) is None


def test_a_rule_grants_only_its_groups_resources_and_verbs() -> None:
    rules = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "create"]}]
    assert granted(("batch", "jobs", "create"), rules)
    assert not granted(("batch", "jobs", "delete"), rules)
    assert not granted(("", "jobs", "list"), rules)
    assert not granted(("batch", "jobs/status", "list"), rules)
