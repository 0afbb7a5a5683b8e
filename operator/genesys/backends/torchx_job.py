"""TorchX scheduler ``kubernetes_job``: a one-role AppDef as a plain ``batch/v1`` Job.

Registered through the ``torchx.schedulers`` entry point (pyproject), so
``torchx.runner.get_runner().run(app, "kubernetes_job", cfg)`` works, and used directly by the
operator (:func:`create_scheduler` with its own ``ApiClient``). Nothing beyond the core API is
needed: no Volcano, no operator of ours in the cluster. Kueue works through the standard
``kueue.x-k8s.io/queue-name`` label and ``spec.suspend`` (the ``queue`` run option).

- :func:`render_job` turns ``(AppDef, run options)`` into the Job manifest: a JSON-able dict,
  camelCase as the API wants it. :meth:`KubernetesJobScheduler._submit_dryrun` wraps it in an
  ``AppDryRunInfo`` that prints as YAML.
- The Job is named :func:`job_name_for` the app's name. Several replicas make an ``Indexed``
  Job whose pods are ``<name>-<index>``, with ``subdomain: <name>``: their DNS names
  ``<name>-<index>.<name>`` resolve once a headless Service named ``<name>`` exists, which the
  operator creates (this module does not). ``TORCHX_RANK0_HOST`` then names replica 0, and the
  ``${replica_id}`` macro becomes ``$(JOB_COMPLETION_INDEX)``, which the kubelet expands.
- App ids are ``<namespace>:<name>``. :meth:`~KubernetesJobScheduler.describe` maps the Job's
  status to an ``AppState`` (:func:`job_state`), :meth:`~KubernetesJobScheduler.log_iter` reads
  the newest pod of a replica (what is there now: ``should_tail`` does not follow),
  ``cancel`` deletes the Job in the foreground, :meth:`~KubernetesJobScheduler.list` finds the
  Jobs this scheduler made in its namespace.

What must stay true:

- :func:`render_job` is pure and deterministic: the same AppDef and options give the same
  manifest, and the Job's name depends only on the app's name (no random suffix), so the
  operator can find its Jobs again after a restart.
- Submitting is idempotent: a Job that already exists (HTTP 409) is the same app, not an error.
- The pod never gets a service-account token (``automountServiceAccountToken: false``), whatever
  ``service_account`` says, nor service links, and passes Pod Security "restricted": it runs as
  ``run_as_user`` (non-root), with the runtime's seccomp profile, no privilege escalation, every
  capability dropped and a read-only root file system; ``/tmp`` is its writable ``emptyDir``
  (``HOME`` and ``TMPDIR`` point there unless the role sets them).
- ``kubernetes`` is imported inside functions only; importing this module stays light.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from torchx import specs
from torchx.schedulers.api import (
    DescribeAppResponse,
    ListAppResponse,
    Scheduler,
    Stream,
    filter_regex,
    split_lines,
)

from genesys.backends.podsecurity import (
    NOBODY,
    SCRATCH_PATH,
    SCRATCH_VOLUME,
    restricted_container,
    restricted_pod_security,
)
from genesys.quantities import MIB, cpus, memory_bytes

SCHEDULER_NAME = "kubernetes_job"
DEFAULT_NAMESPACE = "default"
DEFAULT_GPU_SHM_SIZE = "2Gi"
GPU_RESOURCE = "nvidia.com/gpu"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APP_NAME = "torchx.pytorch.org/app-name"
LABEL_ROLE_NAME = "torchx.pytorch.org/role-name"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
LABEL_SCHEDULER = "genesys.dev/scheduler"
LABEL_JOB_NAME = "job-name"  # set on pods by the Job controller
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # pod label and annotation
NAME_VALUE = "genesys-trainer"
MANAGED_BY_VALUE = "torchx-kubernetes-job"
RESERVED_LABELS = frozenset(
    {
        LABEL_NAME,
        LABEL_MANAGED_BY,
        LABEL_APP_NAME,
        LABEL_ROLE_NAME,
        LABEL_KUEUE_QUEUE,
        LABEL_SCHEDULER,
    }
)
DEFAULT_RUN_AS_USER = NOBODY
"""The non-root uid (and gid) of the pods, unless ``run_as_user`` says otherwise."""

RANK0_ENV = "TORCHX_RANK0_HOST"
INDEX_REFERENCE = "$(JOB_COMPLETION_INDEX)"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"

# A DNS-1035 label (the headless Service shares the Job's name), short enough that an indexed
# pod's hostname ``<name>-<index>`` stays within 63 characters for indexes up to 999999.
IGNORE_DISRUPTIONS = {
    "action": "Ignore",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}
"""A pod failure rule: a pod that was disrupted is recreated and not counted as a failure."""

MAX_JOB_NAME = 63 - len("-999999")
NAME_HASH_LENGTH = 8
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

OPTION_HELP: dict[str, str] = {
    "namespace": "Kubernetes namespace of the Job",
    "queue": "Kueue LocalQueue: adds the queue-name label and creates the Job suspended",
    "node_selector": "node selector: a dict or 'key=value,key2=value2'",
    "tolerations": "pod tolerations: a list of dicts or its JSON",
    "affinity": "pod affinity: a dict or its JSON",
    "priority_class_name": "PriorityClass of the pod",
    "runtime_class_name": "RuntimeClass of the pod (a sandboxed runtime such as gvisor or kata)",
    "service_account": "service account of the pod (its token is never mounted)",
    "image_pull_secrets": "image pull secret names: a list or 'a,b'",
    "labels": "extra labels on the Job and its pods: a dict or 'key=value,...'",
    "annotations": "annotations of the pods: a dict or 'key=value,...'",
    "active_deadline_seconds": "spec.activeDeadlineSeconds of the Job",
    "ttl_seconds_after_finished": "spec.ttlSecondsAfterFinished of the Job",
    "shm_size": f"size of /dev/shm (memory emptyDir); {DEFAULT_GPU_SHM_SIZE} when GPUs are asked",
    "env_from_secrets": "env vars from secrets: {NAME: 'secret:key'} or 'NAME=secret:key,...'",
    "backoff_limit": "spec.backoffLimit of the Job (default: the role's max_retries)",
    "retry_disrupted": "recreate a pod that was disrupted (preempted, evicted, its node taken "
    "away) without counting it against backoff_limit (a podFailurePolicy on DisruptionTarget)",
    "termination_grace_period_seconds": "seconds a pod has between SIGTERM and SIGKILL",
    "owner_references": "metadata.ownerReferences of the Job: a list of dicts or its JSON",
    "managed_by": f"app.kubernetes.io/managed-by of the Job and pods (default {MANAGED_BY_VALUE})",
    "run_as_user": f"non-root uid and gid the pod runs as (default {DEFAULT_RUN_AS_USER})",
    "scratch_size": "size limit of the pod's writable /tmp (an emptyDir; default: none)",
}


# --------------------------------------------------------------------------- run options


@dataclass(frozen=True, slots=True)
class SecretRef:
    """One key of one Secret."""

    secret: str
    key: str


@dataclass(frozen=True, slots=True)
class JobOptions:
    """The run options, parsed and checked (see :func:`job_options`)."""

    namespace: str = DEFAULT_NAMESPACE
    queue: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    shm_size: str | None = None
    env_from_secrets: dict[str, SecretRef] = field(default_factory=dict)
    backoff_limit: int | None = None
    retry_disrupted: bool = False
    termination_grace_period_seconds: int | None = None
    owner_references: list[dict[str, Any]] = field(default_factory=list)
    managed_by: str = MANAGED_BY_VALUE
    run_as_user: int = DEFAULT_RUN_AS_USER
    scratch_size: str | None = None


def run_options() -> specs.runopts:
    """The scheduler's ``runopts``: structured options accept Python values or strings."""
    opts = specs.runopts()
    text_or_dict, text_or_list = str | dict, str | list
    types: dict[str, Any] = {
        "namespace": str,
        "queue": str,
        "node_selector": text_or_dict,
        "tolerations": text_or_list,
        "affinity": text_or_dict,
        "priority_class_name": str,
        "runtime_class_name": str,
        "service_account": str,
        "image_pull_secrets": text_or_list,
        "labels": text_or_dict,
        "annotations": text_or_dict,
        "active_deadline_seconds": int,
        "ttl_seconds_after_finished": int,
        "shm_size": str,
        "env_from_secrets": text_or_dict,
        "backoff_limit": int,
        "retry_disrupted": bool,
        "termination_grace_period_seconds": int,
        "owner_references": text_or_list,
        "managed_by": str,
        "run_as_user": int,
        "scratch_size": str,
    }
    for key, type_ in types.items():
        default = DEFAULT_NAMESPACE if key == "namespace" else None
        opts.add(key, type_=type_, help=OPTION_HELP[key], default=default)
    return opts


def job_options(cfg: Mapping[str, Any]) -> JobOptions:
    """Parse run options (resolved by TorchX or not); ``None`` means unset.

    Raises:
        ValueError: an unknown option, or a value of the wrong shape.

    """
    unknown = sorted(set(cfg) - set(OPTION_HELP))
    if unknown:
        known = sorted(OPTION_HELP)
        raise ValueError(f"unknown {SCHEDULER_NAME} run options {unknown}; known: {known}")
    given = {key: value for key, value in cfg.items() if value is not None}
    return JobOptions(
        namespace=_text(given, "namespace") or DEFAULT_NAMESPACE,
        queue=_text(given, "queue"),
        node_selector=parse_key_values(given.get("node_selector"), "node_selector"),
        tolerations=parse_json_list(given.get("tolerations"), "tolerations"),
        affinity=parse_json_object(given.get("affinity"), "affinity"),
        priority_class_name=_text(given, "priority_class_name"),
        runtime_class_name=_text(given, "runtime_class_name"),
        service_account=_text(given, "service_account"),
        image_pull_secrets=parse_names(given.get("image_pull_secrets"), "image_pull_secrets"),
        labels=parse_key_values(given.get("labels"), "labels"),
        annotations=parse_key_values(given.get("annotations"), "annotations"),
        active_deadline_seconds=_count(given, "active_deadline_seconds"),
        ttl_seconds_after_finished=_count(given, "ttl_seconds_after_finished"),
        shm_size=_text(given, "shm_size"),
        env_from_secrets=parse_secret_refs(given.get("env_from_secrets")),
        backoff_limit=_count(given, "backoff_limit"),
        retry_disrupted=bool(given.get("retry_disrupted", False)),
        termination_grace_period_seconds=_count(given, "termination_grace_period_seconds"),
        owner_references=parse_json_list(given.get("owner_references"), "owner_references"),
        managed_by=_text(given, "managed_by") or MANAGED_BY_VALUE,
        run_as_user=_non_root(_count(given, "run_as_user")),
        scratch_size=_text(given, "scratch_size"),
    )


def _non_root(uid: int | None) -> int:
    if uid is None:
        return DEFAULT_RUN_AS_USER
    if uid == 0:
        raise ValueError("run_as_user must not be 0: the pods run as a non-root user")
    return uid


def _text(given: Mapping[str, Any], key: str) -> str | None:
    value = given.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {value!r}")
    return value


def _count(given: Mapping[str, Any], key: str) -> int | None:
    value = given.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, not {value!r}")
    return value


def parse_key_values(value: object, option: str) -> dict[str, str]:
    """A ``dict[str, str]`` from a mapping or from ``"k=v,k2=v2"`` (``;`` also separates)."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return {str(key): str(item) for key, item in value.items()}
    if not isinstance(value, str):
        raise ValueError(f"{option} must be a mapping or 'key=value,...', not {value!r}")
    pairs: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in re.split(r"[,;]", value))):
        key, equals, item = entry.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{option}: {entry!r} is not key=value")
        pairs[key.strip()] = item.strip()
    return pairs


def parse_json_list(value: object, option: str) -> list[dict[str, Any]]:
    """A list of JSON objects, given as a list or as its JSON text."""
    parsed = json.loads(value) if isinstance(value, str) and value.strip() else value
    if parsed is None or parsed == "":
        return []
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        raise ValueError(f"{option} must be a list of objects, not {value!r}")
    return [dict(item) for item in parsed]


def parse_json_object(value: object, option: str) -> dict[str, Any]:
    """A JSON object, given as a mapping or as its JSON text."""
    parsed = json.loads(value) if isinstance(value, str) and value.strip() else value
    if parsed is None or parsed == "":
        return {}
    if not isinstance(parsed, Mapping):
        raise ValueError(f"{option} must be an object, not {value!r}")
    return dict(parsed)


def parse_names(value: object, option: str) -> list[str]:
    """Names from a list of strings or from ``"a,b"``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in re.split(r"[,;]", value) if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return list(value)
    raise ValueError(f"{option} must be a list of names or 'a,b', not {value!r}")


def parse_secret_refs(value: object) -> dict[str, SecretRef]:
    """``{ENV_NAME: "secret:key"}`` (or ``"ENV_NAME=secret:key,..."``) as secret references."""
    refs: dict[str, SecretRef] = {}
    for name, reference in parse_key_values(value, "env_from_secrets").items():
        secret, colon, key = reference.partition(":")
        if not colon or not secret or not key:
            raise ValueError(f"env_from_secrets: {name}={reference!r} is not 'secret:key'")
        refs[name] = SecretRef(secret, key)
    return refs


# ------------------------------------------------------------------------------ manifest


def job_name_for(app_name: str) -> str:
    """The Job's name for an app name: deterministic, a DNS-1035 label of <= 56 characters.

    A name that is already valid is kept as it is. Any other (uppercase, other characters, too
    long, not starting with a letter) is cleaned and shortened, and gets a short hash of the
    original name, so that two names that clean up alike still differ.
    """
    if len(app_name) <= MAX_JOB_NAME and JOB_NAME.match(app_name):
        return app_name
    digest = hashlib.sha256(app_name.encode("utf-8")).hexdigest()[:NAME_HASH_LENGTH]
    stem = re.sub(r"[^a-z0-9]+", "-", app_name.lower()).strip("-")
    if not stem[:1].isalpha():
        stem = f"job-{stem}".strip("-")
    stem = stem[: MAX_JOB_NAME - NAME_HASH_LENGTH - 1].rstrip("-")
    return f"{stem}-{digest}"


def only_role(app: specs.AppDef) -> specs.Role:
    """The app's one role.

    Raises:
        ValueError: no role or several roles, a role name that is not a DNS label, or mounts.

    """
    if len(app.roles) != 1:
        names = [role.name for role in app.roles]
        raise ValueError(f"{SCHEDULER_NAME} runs apps of exactly one role, {app.name} has {names}")
    role: specs.Role = app.roles[0]
    if not DNS_LABEL.match(role.name):
        raise ValueError(
            f"role name {role.name!r} is not a DNS-1123 label (it names the container)"
        )
    if role.mounts:
        raise ValueError(f"{SCHEDULER_NAME} does not support role mounts ({role.name})")
    return role


def substitute_macros(role: specs.Role, job_name: str) -> specs.Role:
    """A copy of ``role`` with TorchX macros in args and env replaced for this Job."""
    values = specs.macros.Values(
        img_root="",
        app_id=job_name,
        replica_id=INDEX_REFERENCE if role.num_replicas > 1 else "0",
        rank0_env=RANK0_ENV,
    )
    substituted: specs.Role = values.apply(role)
    return substituted


def cpu_quantity(cpu: float) -> str:
    """CPUs as a Kubernetes quantity: ``"2"``, or millicores (``"1500m"``) for fractions."""
    millicores = round(cpu * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def resource_quantities(resource: specs.Resource) -> dict[str, str]:
    """Requests (= limits) of one replica: cpu, memory in Mi, GPUs when asked."""
    quantities: dict[str, str] = {}
    if resource.cpu > 0:
        quantities["cpu"] = cpu_quantity(resource.cpu)
    if resource.memMB > 0:
        quantities["memory"] = f"{resource.memMB}Mi"
    if resource.gpu > 0:
        quantities[GPU_RESOURCE] = str(resource.gpu)
    return quantities


def shm_size_for(resource: specs.Resource, options: JobOptions) -> str | None:
    """The /dev/shm size: the option when set, the GPU default when GPUs are asked, else none."""
    if options.shm_size:
        return options.shm_size
    return DEFAULT_GPU_SHM_SIZE if resource.gpu > 0 else None


def container_env(env: Mapping[str, str], secrets: Mapping[str, SecretRef]) -> list[dict[str, Any]]:
    """Plain variables sorted by name, then secret references sorted by name."""
    clash = sorted(set(env) & set(secrets))
    if clash:
        raise ValueError(f"env_from_secrets names variables the role sets already: {clash}")
    plain = [{"name": name, "value": str(env[name])} for name in sorted(env)]
    from_secrets = [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secrets[name].secret, "key": secrets[name].key}},
        }
        for name in sorted(secrets)
    ]
    return plain + from_secrets


def standard_labels(
    job_name: str, role_name: str, managed_by: str = MANAGED_BY_VALUE
) -> dict[str, str]:
    """The labels every Job of this scheduler and its pods carry."""
    return {
        LABEL_NAME: NAME_VALUE,
        LABEL_MANAGED_BY: managed_by,
        LABEL_SCHEDULER: SCHEDULER_NAME,
        LABEL_APP_NAME: job_name,
        LABEL_ROLE_NAME: role_name,
    }


def pod_labels(
    job_name: str,
    role_name: str,
    extra: Mapping[str, str],
    managed_by: str = MANAGED_BY_VALUE,
) -> dict[str, str]:
    """Standard labels plus the extra ones (which may not replace a standard one)."""
    reserved = sorted(set(extra) & RESERVED_LABELS)
    if reserved:
        raise ValueError(f"labels may not set {reserved}: the scheduler owns them")
    return {**standard_labels(job_name, role_name, managed_by), **extra}


def render_container(role: specs.Role, options: JobOptions, shm: bool) -> dict[str, Any]:
    """The one container: the role's image, entrypoint, args, env and resources."""
    container: dict[str, Any] = {
        "name": role.name,
        "image": role.image,
        "command": [role.entrypoint],
    }
    if role.args:
        container["args"] = [str(arg) for arg in role.args]
    scratch = {
        key: SCRATCH_PATH
        for key in ("HOME", "TMPDIR")
        if key not in role.env and key not in options.env_from_secrets
    }
    variables = container_env({**role.env, **scratch}, options.env_from_secrets)
    if variables:
        container["env"] = variables
    quantities = resource_quantities(role.resource)
    if quantities:
        container["resources"] = {"requests": dict(quantities), "limits": dict(quantities)}
    if role.port_map:
        container["ports"] = [
            {"name": name, "containerPort": port} for name, port in sorted(role.port_map.items())
        ]
    container["securityContext"] = restricted_container()
    mounts = [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH}]
    if shm:
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
    container["volumeMounts"] = mounts
    return container


def pod_scheduling(options: JobOptions) -> dict[str, Any]:
    """The pod spec's optional fields the options set: account, priority, placement, pulls."""
    fields: dict[str, Any] = {
        "serviceAccountName": options.service_account,
        "priorityClassName": options.priority_class_name,
        "terminationGracePeriodSeconds": options.termination_grace_period_seconds,
        "runtimeClassName": options.runtime_class_name,
        "nodeSelector": dict(options.node_selector),
        "tolerations": [dict(toleration) for toleration in options.tolerations],
        "affinity": dict(options.affinity),
        "imagePullSecrets": [{"name": name} for name in options.image_pull_secrets],
    }
    return {key: value for key, value in fields.items() if value not in (None, "", [], {})}


def render_pod_spec(role: specs.Role, options: JobOptions, job_name: str) -> dict[str, Any]:
    """The pod template's spec: never restarted in place, no service-account token."""
    shm_size = shm_size_for(role.resource, options)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod_security(options.run_as_user),
        "containers": [render_container(role, options, shm=shm_size is not None)],
    }
    if role.num_replicas > 1:
        pod["subdomain"] = job_name
    pod.update(pod_scheduling(options))
    scratch: dict[str, Any] = {"sizeLimit": options.scratch_size} if options.scratch_size else {}
    pod["volumes"] = [{"name": SCRATCH_VOLUME, "emptyDir": scratch}]
    if shm_size is not None:
        pod["volumes"].append(
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}
        )
    return pod


def render_job(app: specs.AppDef, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``batch/v1`` Job manifest of a one-role app under the run options ``cfg``.

    Raises:
        ValueError: the app has several roles (or none), or an option is malformed.

    """
    role = only_role(app)
    options = job_options(cfg)
    name = job_name_for(app.name)
    replicas = role.num_replicas
    role = substitute_macros(role, name)
    if replicas > 1:
        role.env = {**role.env, RANK0_ENV: f"{name}-0.{name}"}
    labels = pod_labels(name, role.name, options.labels, options.managed_by)
    job_labels = dict(labels)
    if options.queue:
        job_labels[LABEL_KUEUE_QUEUE] = options.queue
    backoff_limit = role.max_retries if options.backoff_limit is None else options.backoff_limit
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "completions": replicas,
        "parallelism": replicas,
    }
    if replicas > 1:
        spec["completionMode"] = "Indexed"
    if options.queue:
        spec["suspend"] = True
    if options.retry_disrupted:
        spec["podFailurePolicy"] = {"rules": [IGNORE_DISRUPTIONS]}
    if options.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = options.active_deadline_seconds
    if options.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    spec["template"] = {
        "metadata": {
            "labels": labels,
            **({"annotations": dict(options.annotations)} if options.annotations else {}),
        },
        "spec": render_pod_spec(role, options, name),
    }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": options.namespace,
        "labels": job_labels,
    }
    if options.owner_references:
        metadata["ownerReferences"] = [dict(ref) for ref in options.owner_references]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML, keys in the order they were rendered."""
    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


# ------------------------------------------------------------------------- status, logs


def app_id_of(namespace: str, name: str) -> str:
    """The TorchX app id of a Job: ``<namespace>:<name>``."""
    return f"{namespace}:{name}"


def parse_app_id(app_id: str) -> tuple[str, str]:
    """``(namespace, name)`` of an app id ``<namespace>:<name>``."""
    namespace, colon, name = app_id.partition(":")
    if not colon or not namespace or not name:
        raise ValueError(f"app id {app_id!r} is not <namespace>:<name>")
    return namespace, name


def _condition_true(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def job_state(job: Mapping[str, Any]) -> specs.AppState:
    """The app state of a Job given as a camelCase dict (as the API serves it).

    Failed or Complete conditions (and all completions succeeded) are final; a suspended Job
    waits for admission (Kueue): PENDING; active pods: RUNNING; a Job being deleted: CANCELLED;
    failed pods being replaced: PENDING; nothing yet: SUBMITTED.
    """
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    completions = spec.get("completions") or 1
    if _condition_true(status, "Failed") or _condition_true(status, "FailureTarget"):
        return specs.AppState.FAILED
    if _condition_true(status, "Complete") or (status.get("succeeded") or 0) >= completions:
        return specs.AppState.SUCCEEDED
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return specs.AppState.CANCELLED
    if spec.get("suspend") or _condition_true(status, "Suspended"):
        return specs.AppState.PENDING
    if (status.get("active") or 0) > 0:
        return specs.AppState.RUNNING
    if status.get("failed") or status.get("succeeded"):
        return specs.AppState.PENDING
    return specs.AppState.SUBMITTED


def job_message(job: Mapping[str, Any]) -> str:
    """The reason and message of the Job's Failed condition, if any."""
    failed = _condition_true(job.get("status") or {}, "Failed")
    if failed is None:
        return ""
    return ": ".join(str(part) for part in (failed.get("reason"), failed.get("message")) if part)


def role_from_job(job: Mapping[str, Any]) -> specs.Role:
    """The role a Job runs, read back from its pod template (plain env values only)."""
    spec = job.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    container = (pod.get("containers") or [{}])[0]
    requests = (container.get("resources") or {}).get("requests") or {}
    command = list(container.get("command") or [""])
    return specs.Role(
        name=container.get("name", ""),
        image=container.get("image", ""),
        entrypoint=command[0],
        args=command[1:] + list(container.get("args") or []),
        env={item["name"]: item["value"] for item in container.get("env") or [] if "value" in item},
        num_replicas=int(spec.get("completions") or 1),
        max_retries=int(spec.get("backoffLimit") or 0),
        resource=specs.Resource(
            cpu=cpus(str(requests.get("cpu", "0"))),
            gpu=int(requests.get(GPU_RESOURCE, 0)),
            memMB=memory_bytes(str(requests.get("memory", "0"))) // MIB,
        ),
    )


def replica_index(pod: Mapping[str, Any]) -> int:
    """The completion index of a Job's pod (its label or annotation); 0 when not Indexed."""
    metadata = pod.get("metadata") or {}
    for where in ("labels", "annotations"):
        index = (metadata.get(where) or {}).get(COMPLETION_INDEX)
        if index is not None:
            return int(index)
    return 0


def pod_for_replica(pods: Iterable[Mapping[str, Any]], replica: int) -> str | None:
    """The name of the newest pod of one replica (retries make several), or None."""
    candidates = [pod for pod in pods if replica_index(pod) == replica]
    if not candidates:
        return None
    newest = max(candidates, key=lambda pod: str(pod["metadata"].get("creationTimestamp") or ""))
    return str(newest["metadata"]["name"])


def since_seconds(since: datetime, now: datetime | None = None) -> int:
    """Whole seconds (at least 1) from ``since`` to now, for ``sinceSeconds``."""
    current = now or datetime.now(tz=since.tzinfo)
    return max(1, int((current - since).total_seconds()))


# ---------------------------------------------------------------------------- scheduler


def default_api_client() -> Any:
    """An ``ApiClient`` from the in-cluster config (in a pod) or the kubeconfig."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _is_status(exc: Exception, status: int) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and exc.status == status


class KubernetesJobScheduler(Scheduler):  # type: ignore[misc]  # torchx has no type hints
    """TorchX scheduler for one-role apps as ``batch/v1`` Jobs (see the module docstring)."""

    def __init__(
        self, session_name: str, client: Any | None = None, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        super().__init__(SCHEDULER_NAME, session_name)
        self._client = client
        self.namespace = namespace

    # -------------------------------------------------------------------- clients

    def api_client(self) -> Any:
        """The injected ``ApiClient``, or one from the environment (created on first use)."""
        if self._client is None:
            self._client = default_api_client()
        return self._client

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client())

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def _as_dict(self, model: Any) -> dict[str, Any]:
        serialized: dict[str, Any] = self.api_client().sanitize_for_serialization(model)
        return serialized

    # --------------------------------------------------------------------- submit

    def _run_opts(self) -> specs.runopts:
        return run_options()

    def _validate(self, app: specs.AppDef, scheduler: str) -> None:
        only_role(app)
        super()._validate(app, scheduler)

    def _submit_dryrun(self, app: specs.AppDef, cfg: Mapping[str, Any]) -> specs.AppDryRunInfo:
        return specs.AppDryRunInfo(render_job(app, cfg), manifest_yaml)

    def schedule(self, dryrun_info: specs.AppDryRunInfo) -> str:
        """Create the Job; one that exists already (HTTP 409) is this app: same id."""
        manifest: dict[str, Any] = dryrun_info.request
        namespace = manifest["metadata"]["namespace"]
        try:
            self._batch().create_namespaced_job(namespace, manifest)
        except Exception as exc:
            if not _is_status(exc, 409):
                raise
        return app_id_of(namespace, manifest["metadata"]["name"])

    # ---------------------------------------------------------------- observation

    def describe(self, app_id: str) -> DescribeAppResponse | None:
        """The Job's state and role; None when there is no such Job."""
        namespace, name = parse_app_id(app_id)
        try:
            job = self._as_dict(self._batch().read_namespaced_job_status(name, namespace))
        except Exception as exc:
            if _is_status(exc, 404):
                return None
            raise
        return DescribeAppResponse(
            app_id=app_id,
            state=job_state(job),
            num_restarts=int((job.get("status") or {}).get("failed") or 0),
            msg=job_message(job),
            roles=[role_from_job(job)],
        )

    def list(self) -> builtins.list[ListAppResponse]:
        """The Jobs this scheduler made in its namespace (whoever manages them)."""
        selector = f"{LABEL_SCHEDULER}={SCHEDULER_NAME}"
        listed = self._batch().list_namespaced_job(self.namespace, label_selector=selector)
        jobs = [self._as_dict(item) for item in listed.items]
        mine = [job for job in jobs if _labels(job).get(LABEL_SCHEDULER) == SCHEDULER_NAME]
        return [
            ListAppResponse(app_id_of(self.namespace, job["metadata"]["name"]), job_state(job))
            for job in mine
        ]

    def log_iter(
        self,
        app_id: str,
        role_name: str,
        k: int = 0,
        regex: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        should_tail: bool = False,
        streams: Stream | None = None,
    ) -> Iterable[str]:
        """Lines of replica ``k``'s newest pod, as logged so far.

        ``should_tail`` does not follow the log: the lines there are now are returned either
        way. ``until`` is not supported (the API has no such cursor); only combined streams.
        No pod yet gives no lines.
        """
        if until is not None:
            raise ValueError(f"{SCHEDULER_NAME} cannot read logs until a time")
        if streams not in (None, Stream.COMBINED):
            raise ValueError(f"{SCHEDULER_NAME} only reads the combined stream")
        namespace, name = parse_app_id(app_id)
        core = self._core()
        listed = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_JOB_NAME}={name}")
        pod = pod_for_replica([self._as_dict(item) for item in listed.items], k)
        if pod is None:
            return []
        arguments: dict[str, Any] = {"container": role_name, "_preload_content": False}
        if since is not None:
            arguments["since_seconds"] = since_seconds(since)
        # raw bytes: the client would otherwise parse a log that happens to be JSON
        response = core.read_namespaced_pod_log(pod, namespace, **arguments)
        lines: Sequence[str] = split_lines(response.data.decode("utf-8", errors="replace"))
        return list(filter_regex(regex, lines)) if regex else list(lines)

    # -------------------------------------------------------------------- cancel

    def _cancel_existing(self, app_id: str) -> None:
        namespace, name = parse_app_id(app_id)
        try:
            self._batch().delete_namespaced_job(name, namespace, propagation_policy="Foreground")
        except Exception as exc:
            if not _is_status(exc, 404):
                raise


def create_scheduler(
    session_name: str,
    client: Any | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    **kwargs: Any,
) -> KubernetesJobScheduler:
    """The ``kubernetes_job`` scheduler (the TorchX entry point).

    Args:
        session_name: the TorchX session name
        client: a ``kubernetes.client.ApiClient``; default: in-cluster config or kubeconfig
        namespace: the namespace :meth:`KubernetesJobScheduler.list` looks in
        kwargs: other scheduler parameters TorchX passes on; ignored

    """
    return KubernetesJobScheduler(session_name, client=client, namespace=namespace)


__all__ = [
    "DEFAULT_GPU_SHM_SIZE",
    "SCHEDULER_NAME",
    "JobOptions",
    "KubernetesJobScheduler",
    "SecretRef",
    "create_scheduler",
    "job_name_for",
    "job_options",
    "job_state",
    "render_job",
]
