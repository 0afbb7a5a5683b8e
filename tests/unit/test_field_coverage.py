"""Every field of the DiscoveryRun spec does something.

For every leaf field of ``spec``, changing it from a base value changes at least one of what
the run produces from its spec:

- the validation result (locally, and for a cluster run);
- a rendered Job: the agent Job of a session, the training Job of a verification (the
  ``kubernetes_job`` manifest), or the AppDef ``genesys run`` launches;
- a session's or a Job's inputs: the resolved run config they read, the local store and data
  they are pointed at, the source the local data is prepared from;
- the plan's output (actions, phase, fitness) on a set of recorded archives.

The table :data:`CASES` gives each field a change (and, where the field only acts in some
context, the base it acts from); :data:`EXCEPTIONS` lists the fields that act elsewhere, each with
where its effect is tested. A field missing from both fails the test: a new field must come
with its effect.
"""

from __future__ import annotations

import copy
import types
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from genesys.api.discoveryrun import DiscoveryRun, DiscoveryRunSpec
from genesys.api.runconfig import RunIdentity, config_json
from genesys.api.validation import SpecValidationError, parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import open_run, session_arguments, verification_app
from genesys.backends.driver import data_source, resolve_paths
from genesys.backends.kubernetes import KubernetesBackend
from genesys.backends.torchx_job import render_job
from genesys.controller.reconcile import validate
from genesys.engine.actions import StartSession, StartVerification
from genesys.engine.plan import Observed, plan
from genesys.engine.state import Waiting
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.base import LocalStore
from genesys.store.documents import SessionOutcome
from genesys.store.noise import NoiseFloor
from support.kube import KUBERNETES_CLIENT_WARNINGS

pytestmark = KUBERNETES_CLIENT_WARNINGS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
UID = "0f0e0d0c-aaaa-bbbb-cccc-000000000001"
BASE: dict[str, Any] = {
    "seed": 3,
    "ladder": {
        "nTarget": 4,
        "rungs": [
            {"name": "nano", "preset": "nano"},
            {"name": "micro", "preset": "micro"},
            {"name": "mini", "preset": "mini"},
        ],
    },
    "sessions": {"parallel": 2},
    "agents": {"apiKeySecret": {"name": "llm", "key": "api-key"}},
    "verification": {
        "scheduler": "kubernetes",
        "evalTasks": ["genesys_cloze"],
        "data": {"shards": "s3://bucket/data/byte", "tokenizer": "byte", "vocabSize": 256},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "storage": {
        "s3": {"bucket": "bucket", "endpointUrl": "http://s3:9000", "credentialsSecret": "s3-creds"}
    },
}
LOCAL: dict[str, Any] = {"storage": {"s3": None, "local": {"path": ".genesys"}}}
BUILTIN_DATA: dict[str, Any] = {
    **LOCAL,
    "verification": {"scheduler": "local", "data": {"shards": None, "dataset": "builtin"}},
}
HF_DATA: dict[str, Any] = {
    "verification": {"data": {"shards": None, "dataset": "org/mix", "subsets": [{"name": "a"}]}}
}


def rung_tolerations(*tolerations: dict[str, Any]) -> dict[str, Any]:
    """A base patch: the first rung of :data:`BASE` with its own tolerations."""
    rungs = copy.deepcopy(BASE["ladder"]["rungs"])
    rungs[0]["tolerations"] = list(tolerations)
    return {"ladder": {"rungs": rungs}}


NODE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}
            ]
        }
    }
}

# path -> (change, base patch): rungs[] means the first rung, tolerations[] the first toleration
CASES: dict[str, tuple[Any, dict[str, Any] | None]] = {
    "ladder.nTarget": (2, None),
    "ladder.selectionRatio": (0.5, None),
    "ladder.rungs[].name": ("tiny", None),
    "ladder.rungs[].preset": ("micro", None),
    "ladder.rungs[].model.nEmbd": (
        48,
        {
            "ladder": {
                "rungs": [{"name": "nano", "preset": "nano", "model": {"nEmbd": 64, "nLayer": 2}}]
            }
        },
    ),
    "ladder.rungs[].model.nLayer": (
        1,
        {
            "ladder": {
                "rungs": [{"name": "nano", "preset": "nano", "model": {"nEmbd": 64, "nLayer": 2}}]
            }
        },
    ),
    "ladder.rungs[].model.nHead": (
        8,
        {
            "ladder": {
                "rungs": [{"name": "nano", "preset": "nano", "model": {"nEmbd": 64, "nLayer": 2}}]
            }
        },
    ),
    "ladder.rungs[].budget": (30, None),
    "ladder.rungs[].tokensPerParam": (10.0, None),
    "ladder.rungs[].tokens": (50_000, None),
    "ladder.rungs[].lr": (5e-4, None),
    "ladder.rungs[].contextLength": (128, None),
    "ladder.rungs[].batchTokens": (4096, None),
    "ladder.rungs[].confidencePoints": (4, None),
    "ladder.rungs[].slowdownTolerance": (9.0, None),
    "ladder.rungs[].deadlineSeconds": (900, None),
    "ladder.rungs[].resources.gpus": (2, None),
    "ladder.rungs[].resources.cpu": ("500m", None),
    "ladder.rungs[].resources.memory": ("8Gi", None),
    "ladder.rungs[].resources.shmSize": ("1Gi", None),
    "ladder.rungs[].nodeSelector": ({"pool": "big"}, None),
    "ladder.rungs[].tolerations[].key": ("spot", None),
    "ladder.rungs[].tolerations[].operator": ("Exists", rung_tolerations({"key": "k"})),
    "ladder.rungs[].tolerations[].value": (
        "yes",
        rung_tolerations({"key": "k", "operator": "Equal", "value": "no"}),
    ),
    "ladder.rungs[].tolerations[].effect": ("NoSchedule", rung_tolerations({"key": "k"})),
    "ladder.rungs[].tolerations[].tolerationSeconds": (
        60,
        rung_tolerations({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
    ),
    "ladder.rungs[].affinity": (NODE_AFFINITY, None),
    "ladder.rungs[].priorityClassName": ("urgent", None),
    "ladder.rungs[].queueName": ("big-gpus", None),
    "sessions.flow": ("direct", None),
    "sessions.parallel": (5, None),
    "sessions.maxDesigns": (3, None),
    "sessions.operators.mutation": (0.1, None),
    "sessions.operators.crossover": (0.6, None),
    "sessions.operators.scratch": (0.5, None),
    "sessions.operators.crossoverWarmup": (40, None),
    "sessions.operators.scratchWarmup": (0, None),
    "sessions.operators.adaptive": (
        True,
        {"sessions": {"operators": {"crossoverWarmup": 0, "scratchWarmup": 0}}},
    ),
    "sessions.searchRounds": (1, None),
    "sessions.proposalPassRating": (3.0, None),
    "sessions.observerPassRating": (4.0, None),
    "sessions.maxProposalAttempts": (2, None),
    "sessions.maxUnitAttempts": (2, None),
    "sessions.maxFailedRounds": (1, None),
    "sessions.maxImplementationSessions": (1, None),
    "sessions.maxConsecutiveFailures": (1, None),
    "agents.offline": (True, None),
    "agents.baseUrl": ("http://vllm:8000/v1", None),
    "agents.apiKeySecret.name": ("other-llm", None),
    "agents.apiKeySecret.key": ("token", None),
    "agents.apiKeyEnv": ("MY_KEY", None),
    "agents.prices": ({"gpt-4o": {"inputPerMTokens": 1.0, "outputPerMTokens": 2.0}}, None),
    "agents.maxUsdPerSession": (5.0, None),
    "agents.maxUsdPerRun": (1.0, None),
    "agents.timeoutSeconds": (30.0, None),
    "agents.maxRetries": (1, None),
    "agents.maxTokens": (1024, None),
    "agents.modelOptions": ({"gpt-4o": {"tokenLimit": "none"}}, None),
    "agents.pod.image": ("agent:2", None),
    "agents.pod.cpu": ("500m", None),
    "agents.pod.memory": ("2Gi", None),
    "agents.pod.deadlineSeconds": (600, None),
    "agents.pod.backoffLimit": (0, None),
    "agents.pod.runtimeClassName": ("gvisor", None),
    "agents.embeddingModel": ("text-embedding-3-small", None),
    "agents.paperSearch": ("arxiv", None),
    "agents.paperSearchUrl": ("http://papers:8080", None),
    "selection.designQuantile": (0.9, None),
    "selection.confidenceQuantile": (0.9, None),
    "selection.exploreProbability": (0.9, None),
    "selection.noise": (0.9, None),
    "selection.restartProbability": (0.9, None),
    "selection.seedWarmup": (50, None),
    "selection.baselineMargin": (0.3, None),
    "selection.proposalRatingWeight": (5.0, None),
    "selection.ties": ("exact", None),
    "selection.tieSigmas": (0.5, None),
    "checks.forwardBatchSize": (1, None),
    "checks.forwardLength": (512, None),
    "checks.causalityLength": (64, None),
    "checks.effectivenessSteps": (4, None),
    "checks.maxLoss": (100.0, None),
    "checks.maxGradNorm": (100.0, None),
    "checks.timeRatioError": (5.0, None),
    "checks.memoryRatioError": (5.0, None),
    "checks.flopsRatioError": (5.0, None),
    "checks.lossRatioError": (5.0, None),
    "checks.timeRatioWarning": (2.0, None),
    "checks.memoryRatioWarning": (3.0, None),
    "checks.flopsRatioWarning": (2.0, None),
    "checks.lossRatioWarning": (2.0, None),
    "checks.paramTolerance": (0.1, None),
    "checks.sandboxTimeoutSeconds": (60.0, None),
    "checks.sandboxMemory": ("2Gi", None),
    "checks.runtimeClassName": ("gvisor", None),
    "verification.data.dataset": ("org/other", HF_DATA),
    "verification.data.subsets[].name": ("b", HF_DATA),
    "verification.data.subsets[].weight": (2.0, HF_DATA),
    "verification.data.shards": ("s3://bucket/data/other", None),
    "verification.data.tokenizer": ("bpe:512", None),
    "verification.data.vocabSize": (512, None),
    "verification.data.syntheticFraction": (0.2, BUILTIN_DATA),
    "verification.evalTasks": (["genesys_mqar"], None),
    "verification.evalLimit": (50, None),
    "verification.scheduler": ("local", None),
    "verification.image": ("trainer:2", None),
    "verification.resources.gpus": (2, None),
    "verification.resources.cpu": ("500m", None),
    "verification.resources.memory": ("8Gi", None),
    "verification.resources.shmSize": ("1Gi", None),
    "verification.nodeSelector": ({"pool": "gpu"}, None),
    "verification.affinity": (NODE_AFFINITY, None),
    "verification.terminationGracePeriodSeconds": (60, None),
    "verification.maxPendingJobs": (1, None),
    "verification.capacityTimeoutSeconds": (3600, None),
    "verification.tolerations[].key": ("other", None),
    "verification.tolerations[].operator": ("Equal", None),
    "verification.tolerations[].value": (
        "yes",
        {"verification": {"tolerations": [{"key": "k", "operator": "Equal", "value": "no"}]}},
    ),
    "verification.tolerations[].effect": ("PreferNoSchedule", None),
    "verification.tolerations[].tolerationSeconds": (
        60,
        {
            "verification": {
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}]
            }
        },
    ),
    "verification.priorityClassName": ("research", None),
    "verification.runtimeClassName": ("gvisor", None),
    "verification.queueName": ("gpu-queue", None),
    "verification.maxParallelJobsPerRung": (1, None),
    "verification.maxRetries": (1, None),
    "verification.training.minLrRatio": (0.5, None),
    "verification.training.warmupFraction": (0.1, None),
    "verification.training.weightDecay": (0.0, None),
    "verification.training.gradClip": (0.5, None),
    "verification.training.maxLoss": (50.0, None),
    "verification.training.maxGradNorm": (100.0, None),
    "verification.training.checkpointEveryMinutes": (3.0, None),
    "storage.s3.bucket": ("other-bucket", None),
    "storage.s3.prefix": ("team", None),
    "storage.s3.endpointUrl": ("http://minio:9000", None),
    "storage.s3.region": ("eu-west-1", None),
    "storage.s3.credentialsSecret": ("other-creds", None),
    "storage.local.path": ("elsewhere", LOCAL),
    "suspend": (True, None),
    "deadline": ("2026-01-01T00:00:00Z", None),
    "seed": (4, None),
}
ROLES = ("proposer", "reviewer", "planner", "coder", "observer")
for _role in ROLES:
    CASES[f"agents.models.{_role}[].model"] = ("gpt-4o-mini", None)
    CASES[f"agents.models.{_role}[].weight"] = (
        2.0,
        {"agents": {"models": {_role: [{"model": "gpt-4o"}, {"model": "gpt-4o-mini"}]}}},
    )

EXCEPTIONS: dict[str, str] = {
    "storage.retention": "acts when the run is deleted: tests/operator/test_operator.py::"
    "test_delete_removes_children_and_applies_the_retention and tests/operator/test_identity.py"
    "::test_runs_of_one_name_in_two_namespaces_share_nothing",
    "storage.resumeFrom": "acts when the run binds its store prefix: tests/operator/"
    "test_identity.py::test_a_recreated_run_is_held_back_until_it_resumes_the_kept_archive_on_"
    "purpose and tests/unit/test_run_identity.py",
}


# ------------------------------------------------------------------------------- the leaves


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(options[0]) if len(options) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field of a model as a YAML path (lists of models as ``name[]``)."""
    paths = []
    for name, info in model.model_fields.items():
        alias, annotation = info.alias or name, _unwrap(info.annotation)
        if _is_model(annotation):
            paths += leaf_paths(annotation, f"{prefix}{alias}.")
            continue
        if typing.get_origin(annotation) is list:
            item = _unwrap(typing.get_args(annotation)[0])
            if _is_model(item):
                paths += leaf_paths(item, f"{prefix}{alias}[].")
                continue
        paths.append(prefix + alias)
    return paths


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in (None removes a key; lists are replaced)."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the field at ``path`` set (``[]`` is the first item)."""
    changed = copy.deepcopy(spec)
    target: Any = changed
    parts = path.split(".")
    for part in parts[:-1]:
        if part.endswith("[]"):
            target = target.setdefault(part[:-2], [{}])[0]
        else:
            target = target.setdefault(part, {})
    target[parts[-1]] = copy.deepcopy(value)
    return changed


# ----------------------------------------------------------------------------- observations


def archive(designs: int, sessions: int) -> Archive:
    """A recorded archive: seeds verified at nano, ``designs`` designs in lineage, some at
    micro, with proposal ratings and eval scores that differ."""
    result = Archive("coverage")
    for index, seed in enumerate(("gpt2", "mamba2", "retnet", "rwkv6", "ttt")):
        record = DesignRecord(f"seed-{seed}", seed, "seed", [], index)
        record.verifications["nano"] = Verification(
            "nano",
            "succeeded",
            val_loss=3.0 + index / 10,
            metrics={"genesys_cloze": {"acc": 0.3 + index / 50}},
        )
        result.designs[record.id] = record
    for index in range(designs):
        record = DesignRecord(
            f"d{index:04d}",
            f"design {index}",
            "mutation",
            ["seed-gpt2"],
            5 + index,
            f"s{index:04d}",
            proposal_rating=float(index % 5),
        )
        if index % 3:
            record.verifications["nano"] = Verification(
                "nano",
                "succeeded",
                val_loss=2.5 + (index * 7 % 11) / 10,
                metrics={"genesys_cloze": {"acc": 0.28 + (index * 5 % 13) / 40}},
            )
        if index % 7 == 1:
            record.verifications["micro"] = Verification(
                "micro",
                "succeeded",
                val_loss=2.0 + index / 100,
                metrics={"genesys_cloze": {"acc": 0.5}},
            )
        result.designs[record.id] = record
    for index in range(sessions):
        result.sessions[f"s{index:04d}"] = SessionOutcome(
            status="implemented" if index < designs else "failed", reason="-"
        )
    result.noise["noise/nano/seed-gpt2.json"] = NoiseFloor(
        design="seed-gpt2",
        rung="nano",
        values={"val_loss": [3.0, 3.12, 2.95], "genesys_cloze/acc": [0.3, 0.33, 0.31]},
    )
    return result


OBSERVED = [Observed(Archive("empty"))] + [
    Observed(
        archive(designs, designs + extra),
        running_jobs=frozenset({("d0001", "nano")}),
        failed_attempts={("d0003", "nano"): 2},
        spend_usd=3.0,
        waiting_jobs={("d0001", "nano"): Waiting(NOW - timedelta(hours=2), "Unschedulable")},
    )
    for designs in range(2, 26, 3)
    for extra in (0, 2)
]


def plan_outputs(run: DiscoveryRun) -> list[str]:
    outputs = []
    for observed in OBSERVED:
        result = plan(run.spec, observed, NOW)
        fitness = {key: round(value, 6) for key, value in sorted(result.fitness.items())}
        outputs.append(f"{result.phase} {result.actions!r} {fitness}")
    return outputs


class Observer:
    """What one spec produces; the stores and the work directory are shared by every call."""

    def __init__(self, root: Path) -> None:
        self.store = LocalStore(root / "store")
        self.workdir = root / "work"

    def __call__(self, spec: dict[str, Any]) -> dict[str, Any]:
        metadata = {"name": "coverage", "namespace": "lab", "uid": UID, "generation": 1}
        body = {
            "apiVersion": "genesys.dev/v1alpha1",
            "kind": "DiscoveryRun",
            "metadata": metadata,
            "spec": spec,
        }
        seen: dict[str, Any] = {}
        local: DiscoveryRun | None = None
        try:
            local = parse_discovery_run({**body, "metadata": {"name": "coverage"}})
        except SpecValidationError as exc:
            seen["local validation"] = [error.render() for error in exc.errors]
        cluster, problems = validate(body)
        seen["cluster validation"] = problems
        if local is not None:
            seen.update(self.local(local))
        if cluster is not None:
            seen.update(self.cluster(cluster, body))
        return seen

    def local(self, run: DiscoveryRun) -> dict[str, Any]:
        paths = resolve_paths(run, self.workdir)
        identity = RunIdentity(name=run.metadata.name)
        handle, _ = open_run(run, identity, self.store, data_uri=paths.data_uri)
        session = StartSession("s0007", "d0007", 12, "mutation", ("seed-gpt2",), 99)
        training = StartVerification("d0002", run.spec.ladder.rungs[0].name, 1)
        return {
            "local paths": (
                paths.store_uri,
                paths.data_uri,
                data_source(run.spec.verification.data),
            ),
            "run config": config_json(handle.config),
            "local session": session_arguments(handle, session),
            "local training": repr(verification_app(handle, training, python="py", env={})),
            "plan": plan_outputs(run),
        }

    def cluster(self, run: DiscoveryRun, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes import client

        identity = RunIdentity(namespace="lab", name="coverage", uid=UID)
        handle, _ = open_run(
            run,
            identity,
            self.store.child("cluster"),
            data_uri=run.spec.verification.data.shards or "",
        )
        backend = KubernetesBackend(handle, body, namespace="lab", api_client=client.ApiClient())
        session = StartSession("s0007", "d0007", 12, "mutation", ("seed-gpt2",), 99)
        training = StartVerification("d0002", run.spec.ladder.rungs[0].name, 1)
        return {
            "agent job": manifests.agent_job(handle, session, owner=body, namespace="lab"),
            "check job": manifests.check_job(handle, session, owner=body, namespace="lab"),
            "training job": render_job(
                backend.training_app(training), backend.scheduler_config(training)
            ),
            "cluster run config": config_json(handle.config),
        }


@pytest.fixture(scope="module")
def observe(tmp_path_factory: pytest.TempPathFactory) -> Observer:
    return Observer(tmp_path_factory.mktemp("coverage"))


# ------------------------------------------------------------------------------------ tests


def test_every_spec_field_has_a_case_or_a_stated_exception() -> None:
    leaves = set(leaf_paths(DiscoveryRunSpec))
    missing = sorted(leaves - set(CASES) - set(EXCEPTIONS))
    assert missing == [], f"fields with no recorded effect: {missing}"
    assert sorted((set(CASES) | set(EXCEPTIONS)) - leaves) == []  # no stale entries


def test_the_base_spec_is_valid_locally_and_on_a_cluster(observe: Observer) -> None:
    seen = observe(BASE)
    assert "local validation" not in seen
    assert seen["cluster validation"] == []
    assert {"run config", "agent job", "training job", "plan"} <= set(seen)


@pytest.mark.parametrize("path", sorted(CASES))
def test_changing_a_field_changes_what_the_run_produces(observe: Observer, path: str) -> None:
    value, patch = CASES[path]
    base = merge(BASE, patch or {})
    before = observe(base)
    after = observe(set_path(base, path, value))
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    assert changed, f"{path}: changing it to {value!r} changed nothing the run produces"
