"""Kubernetes manifests of what the operator creates: agent and check Jobs, Design resources.

Every builder is a pure function of the run (its :class:`~genesys.backends.common.RunHandle`)
and an engine action or archive record, so the same inputs give the same manifest and the same
deterministic name (the way KubeRay builds its objects). Applying a manifest twice therefore
creates nothing twice: a second create answers 409 and is ignored.

What must stay true: every object carries ``genesys.dev/run`` and ``genesys.dev/run-uid`` and a
controller owner reference to its run; every Job has ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished``; Job names include the run's uid (a re-created run of the same name
never meets the Jobs of the one before); agent pods get no service-account token, no service
links, and only the credentials the spec names (the LLM key and the store's), from Secret
references, never as plain values; check pods, which run design code, get no credential at all,
and a NetworkPolicy that lets in only their run's agents and lets nothing out. Every pod
passes Pod Security "restricted" (:func:`restricted_pod_security`, :func:`restricted_container`)
with a read-only root file system and one writable ``emptyDir`` at ``/tmp``; every object
carries the standard ``app.kubernetes.io`` labels (:func:`standard_labels`) with the one
``managed-by`` value :data:`MANAGED_BY`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from genesys.api.base import API_GROUP_VERSION
from genesys.api.discoveryrun import AgentPod, DiscoveryRun
from genesys.api.labels import LABEL_DESIGN, LABEL_OPERATOR, LABEL_ROLE, LABEL_RUN, LABEL_RUN_UID
from genesys.api.runconfig import RunIdentity
from genesys.backends.common import RunHandle, agent_image, session_arguments
from genesys.backends.podsecurity import (
    NOBODY,
    SCRATCH_PATH,
    SCRATCH_VOLUME,
    restricted_container,
    restricted_pod_security,
)
from genesys.backends.torchx_job import GPU_RESOURCE
from genesys.engine.actions import StartSession
from genesys.quantities import memory_bytes

MANAGED_BY = "genesys-operator"
"""``app.kubernetes.io/managed-by`` of every object the operator creates."""
PART_OF = "genesys"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT_AGENT = "agent"
COMPONENT_CHECK = "check"
COMPONENT_TRAINER = "trainer"
COMPONENT_DESIGN = "design"
AGENT_SCRATCH = "2Gi"
"""Size of an agent pod's writable /tmp (its session's working files)."""
LABEL_SESSION = "genesys.dev/session"
LABEL_PARENTS = "genesys.dev/parents"
ROLE_SESSION = "session"
ROLE_CHECK = "check"
ROLE_VERIFICATION = "verification"
CHECK_PORT = 8470
CHECK_SCRATCH = "2Gi"
"""Size of a check pod's writable /tmp (the sandboxes' scratch directories)."""
CHECK_IDLE_SECONDS = 1800
"""A check server with no request this long stops (its session ended without telling it)."""
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


def standard_labels(identity: RunIdentity, component: str) -> dict[str, str]:
    """The ``app.kubernetes.io`` labels of one object of a run: ``component`` of its instance.

    ``name`` is ``genesys-<component>``, ``instance`` the run's name, ``part-of`` genesys and
    ``managed-by`` always :data:`MANAGED_BY`.
    """
    return {
        LABEL_NAME: f"genesys-{component}",
        LABEL_INSTANCE: label_value(identity.name),
        LABEL_COMPONENT: component,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def scratch_env() -> list[dict[str, str]]:
    """``HOME`` and ``TMPDIR`` on the writable scratch volume (the root file system is not)."""
    return [{"name": "HOME", "value": SCRATCH_PATH}, {"name": "TMPDIR", "value": SCRATCH_PATH}]


def scratch_volume(size: str) -> dict[str, Any]:
    """The pod's one writable place, mounted at ``/tmp`` (:func:`scratch_mount`)."""
    return {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": size}}


def scratch_mount() -> dict[str, str]:
    """Where the scratch volume is mounted."""
    return {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH}


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


FORWARDED_OTEL_PREFIXES = ("OTEL_EXPORTER_OTLP_", "OTEL_TRACES_", "OTEL_RESOURCE_ATTRIBUTES")
"""The operator's ``OTEL_*`` variables an agent pod gets (collector endpoint, protocol,
headers, sampler, resource): not the service name (each process names itself) and not the
metrics exporter (the operator records the agents' metrics from the store)."""


HEADERS_SECRET_VAR = "GENESYS_OTLP_HEADERS_SECRET"
"""``<secret>/<key>``: agent pods take the OTLP headers from this Secret of their own namespace
(optional: a namespace without it exports without headers), and the operator's own headers
value is not copied into their Jobs."""


def telemetry_env(
    trace_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """An agent pod's telemetry settings: the operator's OTLP settings and the trace context."""
    variables = os.environ if environ is None else environ
    secret = variables.get(HEADERS_SECRET_VAR, "")
    forwarded = {
        name: value
        for name, value in variables.items()
        if (name.startswith(FORWARDED_OTEL_PREFIXES) or name == "OTEL_SDK_DISABLED")
        and not (secret and name.endswith("_HEADERS"))
    }
    merged = {**forwarded, **trace_env}
    env: list[dict[str, Any]] = [{"name": name, "value": merged[name]} for name in sorted(merged)]
    if secret:
        name, _, key = secret.partition("/")
        ref = {"name": name, "key": key or "headers", "optional": True}
        env.append({"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": ref}})
    return env


def session_job_name(identity: RunIdentity, session: str) -> str:
    """The deterministic name of a session's agent Job (run, uid, session)."""
    return dns_name(identity.name, identity.short_uid, session)


def session_labels(identity: RunIdentity, session: str, role: str) -> dict[str, str]:
    """The labels that find one pod of a session: run uid, session and role (a selector)."""
    return {
        LABEL_RUN_UID: label_value(identity.uid or ""),
        LABEL_SESSION: session,
        LABEL_ROLE: role,
    }


def check_name(identity: RunIdentity, session: str) -> str:
    """The name of a session's check Job and its pod's host name (a DNS-1035 label)."""
    return dns_name("check", identity.name, identity.short_uid, session)


def check_network_name(identity: RunIdentity) -> str:
    """The name of a run's check Service and NetworkPolicy, one each for all its check pods."""
    return dns_name("checks", identity.name, identity.short_uid)


def check_server_url(identity: RunIdentity, session: str, namespace: str) -> str:
    """Where a session's agent reaches its check pod: the pod's own name in the cluster's DNS.

    A check pod sets ``hostname`` (its session's check name) and ``subdomain`` (the run's
    headless check Service), so the DNS gives it ``HOST.SERVICE.NAMESPACE.svc``.
    """
    host, service = check_name(identity, session), check_network_name(identity)
    return f"http://{host}.{service}.{namespace}.svc:{CHECK_PORT}"


def session_pod_job(
    name: str,
    labels: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    pod: AgentPod,
    *,
    owner: Mapping[str, Any],
    namespace: str,
) -> dict[str, Any]:
    """A session's ``batch/v1`` Job around ``pod_spec``: owned, bounded in time, cleaned up."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": pod.backoff_limit,
            "activeDeadlineSeconds": pod.deadline_seconds,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {"metadata": {"labels": dict(labels)}, "spec": dict(pod_spec)},
        },
    }


GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
"""Tolerated by every pod that asks for GPUs: GPU node groups carry this taint."""
TRAINING_POD_ANNOTATIONS = {
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "karpenter.sh/do-not-disrupt": "true",
}
"""On every training pod: neither autoscaler removes a node under a running training."""


def training_tolerations(given: Sequence[Mapping[str, Any]], gpus: int) -> list[dict[str, Any]]:
    """The tolerations of a training pod: ``given``, plus the GPU taint's when it asks for GPUs."""
    tolerations = [dict(toleration) for toleration in given]
    if gpus > 0 and GPU_TOLERATION not in tolerations:
        tolerations.append(dict(GPU_TOLERATION))
    return tolerations


def session_pod_spec(
    container: dict[str, Any], scratch_size: str, runtime_class_name: str | None
) -> dict[str, Any]:
    """The pod spec of a session's agent or check pod: one container, never restarted in place.

    No service-account token, no service links, Pod Security "restricted", the scratch volume,
    and the RuntimeClass when one is named.
    """
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod_security(),
        "containers": [container],
        "volumes": [scratch_volume(scratch_size)],
    }
    if runtime_class_name:
        pod_spec["runtimeClassName"] = runtime_class_name
    return pod_spec


def agent_job(
    handle: RunHandle,
    action: StartSession,
    *,
    owner: Mapping[str, Any],
    namespace: str,
    trace_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``batch/v1`` Job of one design session; its checks go to the session's check pod.

    ``trace_env`` (``TRACEPARENT``) makes the session's spans part of its design's trace.
    """
    run, identity = handle.run, handle.identity
    pod = run.spec.agents.pod
    labels = {
        **standard_labels(identity, COMPONENT_AGENT),
        **run_labels(identity),
        LABEL_ROLE: ROLE_SESSION,
        LABEL_SESSION: action.session,
        LABEL_DESIGN: action.design_id,
    }
    checks = [
        {"name": "GENESYS_SANDBOX", "value": "remote"},
        {
            "name": "GENESYS_CHECK_SERVER",
            "value": check_server_url(identity, action.session, namespace),
        },
    ]
    env = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *scratch_env(),
        *checks,
        *store_env(run),
        *agent_env(run),
        *telemetry_env(trace_env or {}),
    ]
    container = {
        "name": "agent",
        "image": agent_image(run),
        "command": ["genesys"],
        "args": session_arguments(handle, action),
        "env": env,
        "resources": {
            "requests": {"cpu": pod.cpu, "memory": pod.memory},
            "limits": {"memory": pod.memory},
        },
        "securityContext": restricted_container(),
        "volumeMounts": [scratch_mount()],
    }
    pod_spec = session_pod_spec(container, AGENT_SCRATCH, pod.runtime_class_name)
    name = session_job_name(identity, action.session)
    return session_pod_job(name, labels, pod_spec, pod, owner=owner, namespace=namespace)


def check_job(
    handle: RunHandle, action: StartSession, *, owner: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """The ``batch/v1`` Job of a session's check pod: the only place its design code runs.

    The pod holds nothing worth stealing: no Secret, no service-account token, no service
    links, no writable root file system, non-root with every capability dropped and the
    runtime's seccomp profile (Pod Security "restricted"), on ``spec.checks.runtimeClassName``
    when set. Its NetworkPolicy (:func:`check_network_policy`) lets in only its agent.
    """
    run, identity = handle.run, handle.identity
    pod, checks = run.spec.agents.pod, run.spec.checks
    labels = {
        **standard_labels(identity, COMPONENT_CHECK),
        **run_labels(identity),
        **session_labels(identity, action.session, ROLE_CHECK),
    }
    sandbox_mib = memory_bytes(checks.sandbox_memory) // 2**20
    args = [
        "check-server",
        "--listen",
        f"0.0.0.0:{CHECK_PORT}",
        "--idle-seconds",
        str(CHECK_IDLE_SECONDS),
        "--max-memory",
        f"{sandbox_mib}Mi",
        "--max-seconds",
        f"{checks.sandbox_timeout_seconds:g}",
    ]
    container = {
        "name": "check",
        "image": agent_image(run),
        "command": ["genesys"],
        "args": args,
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "GENESYS_SANDBOX", "value": "container"},
            *scratch_env(),
        ],
        "ports": [{"name": "check", "containerPort": CHECK_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": pod.cpu, "memory": pod.memory},
            # two sandboxes at once (reference and perturbed), and the server
            "limits": {"memory": f"{2 * sandbox_mib + 1024}Mi"},
        },
        "securityContext": restricted_container(),
        "volumeMounts": [scratch_mount()],
    }
    pod_spec = session_pod_spec(container, CHECK_SCRATCH, checks.runtime_class_name)
    name = check_name(identity, action.session)
    pod_spec["hostname"], pod_spec["subdomain"] = name, check_network_name(identity)
    return session_pod_job(name, labels, pod_spec, pod, owner=owner, namespace=namespace)


def run_role_labels(identity: RunIdentity, role: str) -> dict[str, str]:
    """The labels that find every pod of one role of a run (its uid and the role)."""
    return {LABEL_RUN_UID: label_value(identity.uid or ""), LABEL_ROLE: role}


def check_metadata(
    identity: RunIdentity, *, owner: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """Name, labels and owner of a run's check Service and NetworkPolicy."""
    labels = {
        **standard_labels(identity, COMPONENT_CHECK),
        **run_labels(identity),
        LABEL_ROLE: ROLE_CHECK,
    }
    return {
        "name": check_network_name(identity),
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }


def check_service(
    identity: RunIdentity, *, owner: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """The headless Service that gives each check pod of a run its own name in the DNS.

    It has no cluster IP and balances nothing: a check pod is reached by its host name under
    it (:func:`check_server_url`), once the pod is ready. One per run, created with the first
    session and removed with the run.
    """
    port = {"name": "check", "port": CHECK_PORT, "targetPort": CHECK_PORT, "protocol": "TCP"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": check_metadata(identity, owner=owner, namespace=namespace),
        "spec": {
            "clusterIP": "None",
            "selector": run_role_labels(identity, ROLE_CHECK),
            "ports": [port],
        },
    }


def check_network_policy(
    identity: RunIdentity, *, owner: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """Deny-all for a run's check pods, but the run's own agents on the check port.

    No egress at all: design code reaches neither the store, nor the LLM, nor the API server,
    nor DNS. Replies on the agents' connections are allowed, as NetworkPolicies are stateful.
    Agents of other runs are not let in; agents of the same run hold the same credentials and
    run no design code, so one policy serves all of the run's sessions.
    """
    agents = {"podSelector": {"matchLabels": run_role_labels(identity, ROLE_SESSION)}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": check_metadata(identity, owner=owner, namespace=namespace),
        "spec": {
            "podSelector": {"matchLabels": run_role_labels(identity, ROLE_CHECK)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [agents], "ports": [{"protocol": "TCP", "port": CHECK_PORT}]}],
            "egress": [],
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
        **standard_labels(identity, COMPONENT_DESIGN),
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
    "CHECK_PORT",
    "COMPONENT_AGENT",
    "COMPONENT_CHECK",
    "COMPONENT_DESIGN",
    "COMPONENT_TRAINER",
    "GPU_TOLERATION",
    "JOB_TTL_SECONDS",
    "LABEL_PARENTS",
    "LABEL_SESSION",
    "MANAGED_BY",
    "NOBODY",
    "ROLE_CHECK",
    "ROLE_SESSION",
    "ROLE_VERIFICATION",
    "TRAINING_POD_ANNOTATIONS",
    "agent_env",
    "agent_job",
    "check_job",
    "check_name",
    "check_network_name",
    "check_network_policy",
    "check_server_url",
    "check_service",
    "design_name",
    "design_object",
    "dns_name",
    "label_value",
    "owner_reference",
    "restricted_container",
    "restricted_pod_security",
    "run_labels",
    "run_role_labels",
    "run_selector",
    "scratch_env",
    "scratch_mount",
    "scratch_volume",
    "session_job_name",
    "session_labels",
    "standard_labels",
    "store_env",
    "store_uri",
    "training_tolerations",
]
