"""``genesys install --print``: the operator's install manifests, for clusters without Helm.

The manifests are the Helm chart rendered with its default values into the namespace
``genesys-system`` (``scripts/render-install.sh`` writes the packaged copy, and a test fails when
it is stale): the Namespace (Pod Security "restricted" enforced), the ServiceAccount, the CRDs,
the ClusterRole and its binding, the Deployment and the Service of its Prometheus metrics.
:func:`install_manifests` moves them into another namespace; every other value of the chart is
its default (use the chart to change one).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

DEFAULT_NAMESPACE = "genesys-system"
PACKAGED = "deploy/install.yaml"
DNS_LABEL_MAX = 63


def packaged_manifests() -> str:
    """The packaged install manifests, as rendered (comments included)."""
    return resources.files("genesys").joinpath(PACKAGED).read_text(encoding="utf-8")


def _moved(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """One object moved from the default namespace into ``namespace``."""
    metadata = document.setdefault("metadata", {})
    if document.get("kind") == "Namespace" and metadata.get("name") == DEFAULT_NAMESPACE:
        metadata["name"] = namespace
    if metadata.get("namespace") == DEFAULT_NAMESPACE:
        metadata["namespace"] = namespace
    for subject in document.get("subjects") or []:
        if subject.get("namespace") == DEFAULT_NAMESPACE:
            subject["namespace"] = namespace
    return document


def check_namespace(namespace: str) -> None:
    """Raise ValueError unless ``namespace`` is a valid namespace name (a DNS-1123 label)."""
    valid_chars = all(c.islower() or c.isdigit() or c == "-" for c in namespace)
    if (
        not namespace
        or len(namespace) > DNS_LABEL_MAX
        or not valid_chars
        or namespace[0] == "-"
        or namespace[-1] == "-"
    ):
        raise ValueError(
            f"--namespace {namespace!r}: a namespace is a DNS-1123 label (lower-case letters, "
            "digits and '-', at most 63, starting and ending with a letter or digit)"
        )


def install_manifests(namespace: str = DEFAULT_NAMESPACE) -> str:
    """The install manifests in ``namespace`` (the packaged text itself for the default)."""
    check_namespace(namespace)
    text = packaged_manifests()
    if namespace == DEFAULT_NAMESPACE:
        return text
    documents = [_moved(doc, namespace) for doc in yaml.safe_load_all(text) if doc]
    header = f"# The genesys-operator install in namespace {namespace} (genesys install --print).\n"
    return header + yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


__all__ = ["DEFAULT_NAMESPACE", "check_namespace", "install_manifests", "packaged_manifests"]
