"""What the operator really asks of the Kubernetes API, against what the Helm chart grants.

The operator identifies itself: kopf sends ``User-Agent: kopf/<version>`` and the operator's
own client ``genesys-operator/<version>``. :func:`operator_calls` turns the requests the API
emulator served with those agents into RBAC terms, ``(apiGroup, resource[/subresource], verb)``,
the way the API server's authorizer reads a request path:

- ``GET`` of a named object is ``get``; of a collection ``list``, or ``watch`` with
  ``?watch=true``; ``POST`` is ``create``; ``PATCH`` ``patch``; ``PUT`` ``update``; ``DELETE``
  of a named object ``delete``, of a collection ``deletecollection``;
- discovery and other non-resource paths (``/api``, ``/apis/...`` without a resource,
  ``/version``, ``/openapi``) are left out: every authenticated client may read them.

:func:`chart_rules` renders the chart (``helm template``) and returns its ClusterRole's rules;
:func:`ungranted` lists the calls no rule allows.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "genesys-operator"
OPERATOR_AGENTS = ("kopf/", "genesys-operator/")

Call = tuple[str, str, str]  # (apiGroup, resource or resource/subresource, verb)

SEEN_CALLS = pytest.StashKey[set[Call]]()
"""In the test session's stash: every call the operator sent in any operator test."""
OUTCOMES = pytest.StashKey[dict[str, str]]()
"""In the test session's stash: each operator test's outcome by node id."""


def parse_call(method: str, path: str, params: Mapping[str, str]) -> Call | None:
    """The RBAC terms of one request, or None for a non-resource path."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]  # a namespaced path; /namespaces[/<name>] alone is the Namespace itself
    if not rest:
        return None
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:3]
    verb = {
        "GET": "get" if name else ("watch" if params.get("watch") in ("true", "1") else "list"),
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method.upper())
    if verb is None:
        return None
    return group, "/".join([resource, *sub]), verb


def operator_calls(requests: Iterable[Any]) -> set[Call]:
    """The RBAC terms of every request the operator (kopf or its own client) sent."""
    calls: set[Call] = set()
    for request in requests:
        agent = str(dict(request.headers).get("User-Agent", ""))
        if not agent.startswith(OPERATOR_AGENTS):
            continue
        method = getattr(request.method, "value", request.method)
        call = parse_call(str(method), request.url.path, dict(request.params))
        if call is not None:
            calls.add(call)
    return calls


def operator_creations(requests: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(resource, body)`` of every object the operator (kopf or its own client) created."""
    created = []
    for request in requests:
        agent = str(dict(request.headers).get("User-Agent", ""))
        method = str(getattr(request.method, "value", request.method)).upper()
        if not agent.startswith(OPERATOR_AGENTS) or method != "POST":
            continue
        call = parse_call(method, request.url.path, dict(request.params))
        if call is not None and isinstance(request.data, dict):
            created.append((call[1], dict(request.data)))
    return created


def helm_binary() -> str | None:
    """The pinned helm in the venv, when installed."""
    pinned = Path(sys.executable).parent / "helm"
    return str(pinned) if pinned.exists() else None


def chart_rules(values: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rules of the chart's ClusterRoles, rendered with ``--set`` ``values``."""
    helm = helm_binary()
    if helm is None:
        raise FileNotFoundError("helm is not installed (scripts/setup.sh installs it)")
    args = [helm, "template", "genesys", str(CHART)]
    for value in values:
        args += ["--set", value]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    rules: list[dict[str, Any]] = []
    for document in yaml.safe_load_all(rendered.stdout):
        if document and document.get("kind") == "ClusterRole":
            rules += document.get("rules") or []
    return rules


def granted(call: Call, rules: Iterable[Mapping[str, Any]]) -> bool:
    """True when a rule allows ``call`` (no wildcards are honoured: the chart has none)."""
    group, resource, verb = call
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in rules
    )


def ungranted(calls: Iterable[Call], rules: Sequence[Mapping[str, Any]]) -> list[Call]:
    """The calls no rule allows, sorted."""
    return sorted(call for call in calls if not granted(call, rules))


def rule_terms(rules: Iterable[Mapping[str, Any]]) -> set[Call]:
    """Every ``(apiGroup, resource, verb)`` the rules grant, one by one."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


__all__ = [
    "OUTCOMES",
    "SEEN_CALLS",
    "Call",
    "chart_rules",
    "granted",
    "operator_calls",
    "operator_creations",
    "parse_call",
    "rule_terms",
    "ungranted",
]
