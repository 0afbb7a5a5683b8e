"""Builders of the objects the operator creates: agent Jobs, Design resources, Job options.

Every builder is a pure function of the run (its :class:`~genesys.backends.common.RunHandle`)
and an engine action or archive record, so the same inputs give the same manifest and the same
deterministic name (house style: KubeRay's builders). Applying a manifest twice therefore
creates nothing twice: a second create answers 409 and is ignored.

What must stay true: every object carries ``genesys.dev/run`` and ``genesys.dev/run-uid`` and a
controller owner reference to its run; every Job has ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished``; Job names include the run's uid (a re-created run of the same name
never meets the Jobs of the one before); agent pods get no service-account token, no service
links, and only the credentials the spec names (the LLM key and the store's), from Secret
references, never as plain values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from genesys.api.base import API_GROUP_VERSION
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.labels import LABEL_DESIGN, LABEL_OPERATOR, LABEL_ROLE, LABEL_RUN, LABEL_RUN_UID
from genesys.api.runconfig import RunIdentity
from genesys.backends.common import RunHandle, session_arguments
from genesys.engine.actions import StartSession

MANAGED_BY = "genesys-operator"
LABEL_SESSION = "genesys.dev/session"
LABEL_PARENTS = "genesys.dev/parents"
ROLE_SESSION = "session"
ROLE_VERIFICATION = "verification"
MAX_NAME = 63
JOB_TTL_SECONDS = 86_400
"""Finished Jobs are removed a day later; their results are in the store by then."""


def dns_name(*parts: str, limit: int = MAX_NAME) -> str:
    """A deterministic DNS-1123 label from ``parts`` (lower case, ``-`` joined).

    A name over ``limit`` is cut and ends with a hash of the whole, so two long names differ.
    """
    text = re.sub(r"[^a-z0-9]+", "-", "-".join(p for p in parts if p).lower()).strip("-")
    if len(text) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        text = f"{text[: limit - 9].rstrip('-')}-{digest}"
    return text or "x"


def label_value(text: str) -> str:
    """``text`` made a valid label value (63 characters of [A-Za-z0-9._-])."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:MAX_NAME]
    return value.strip("-._")


def owner_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    """The controller owner reference to a DiscoveryRun object (its body as a dict)."""
    metadata = run["metadata"]
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "DiscoveryRun",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def run_labels(identity: RunIdentity) -> dict[str, str]:
    """The labels that find a run's children: its name and its uid."""
    return {LABEL_RUN: identity.name, LABEL_RUN_UID: label_value(identity.uid or "")}


def run_selector(identity: RunIdentity) -> str:
    """The label selector of a run's children."""
    return ",".join(f"{key}={value}" for key, value in run_labels(identity).items())


def store_uri(run: DiscoveryRun) -> str:
    """The run's S3 store URI (the operator's runs need S3: pods share it)."""
    s3 = run.spec.storage.s3
    if s3 is None:
        raise ValueError("spec.storage.s3: a cluster run needs an S3 store")
    return f"s3://{s3.bucket}/{s3.prefix}".rstrip("/")


def store_env(run: DiscoveryRun) -> list[dict[str, Any]]:
    """Store settings of a pod: endpoint and region as values, credentials from the Secret."""
    s3 = run.spec.storage.s3
    if s3 is None:
        return []
    env: list[dict[str, Any]] = [{"name": "AWS_DEFAULT_REGION", "value": s3.region}]
    if s3.endpoint_url:
        env.append({"name": "GENESYS_S3_ENDPOINT", "value": s3.endpoint_url})
    if s3.credentials_secret:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = {"name": s3.credentials_secret, "key": key}
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def agent_env(run: DiscoveryRun) -> list[dict[str, Any]]:
    """The LLM settings of an agent pod: the key from its Secret, the base URL as a value."""
    agents = run.spec.agents
    if agents.offline:
        return []
    env: list[dict[str, Any]] = []
    if agents.api_key_secret is not None:
        ref = {"name": agents.api_key_secret.name, "key": agents.api_key_secret.key}
        env.append({"name": agents.api_key_env, "valueFrom": {"secretKeyRef": ref}})
    if agents.base_url:
        env.append({"name": "OPENAI_BASE_URL", "value": agents.base_url})
    return env


def session_job_name(identity: RunIdentity, session: str) -> str:
    """The deterministic name of a session's agent Job (run, uid, session)."""
    return dns_name(identity.name, identity.short_uid, session)


def agent_job(
    handle: RunHandle, action: StartSession, *, owner: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """The ``batch/v1`` Job of one design session."""
    run, identity = handle.run, handle.identity
    pod = run.spec.agents.pod
    labels = {
        "app.kubernetes.io/name": "genesys-agent",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **run_labels(identity),
        LABEL_ROLE: ROLE_SESSION,
        LABEL_SESSION: action.session,
        LABEL_DESIGN: action.design_id,
    }
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}, *store_env(run), *agent_env(run)]
    container = {
        "name": "agent",
        "image": pod.image,
        "command": ["genesys"],
        "args": session_arguments(handle, action),
        "env": env,
        "resources": {
            "requests": {"cpu": pod.cpu, "memory": pod.memory},
            "limits": {"memory": pod.memory},
        },
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    if pod.runtime_class_name:
        pod_spec["runtimeClassName"] = pod.runtime_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": session_job_name(identity, action.session),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": pod.backoff_limit,
            "activeDeadlineSeconds": pod.deadline_seconds,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec,
            },
        },
    }


def design_name(run_name: str, design_id: str) -> str:
    """The deterministic name of a Design resource."""
    return dns_name(run_name, design_id)


def design_object(
    identity: RunIdentity,
    record: Any,
    *,
    owner: Mapping[str, Any],
    namespace: str,
    flow: str,
) -> dict[str, Any]:
    """A Design resource (without status) for an archive record."""
    run_name = identity.name
    labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **run_labels(identity),
        LABEL_DESIGN: label_value(record.id),
        LABEL_OPERATOR: record.operator,
    }
    if record.parents:
        labels[LABEL_PARENTS] = label_value(".".join(record.parents))
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "Design",
        "metadata": {
            "name": design_name(run_name, record.id),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "runName": run_name,
            "title": record.title[:256],
            "operator": record.operator,
            "parents": [design_name(run_name, parent) for parent in record.parents],
            "flow": "seed" if record.is_seed else flow,
            "session": record.session,
        },
    }


__all__ = [
    "JOB_TTL_SECONDS",
    "LABEL_PARENTS",
    "LABEL_SESSION",
    "MANAGED_BY",
    "ROLE_SESSION",
    "ROLE_VERIFICATION",
    "agent_env",
    "agent_job",
    "design_name",
    "design_object",
    "dns_name",
    "label_value",
    "owner_reference",
    "run_labels",
    "run_selector",
    "session_job_name",
    "store_env",
    "store_uri",
]
