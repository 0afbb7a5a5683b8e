"""The operator's pure parts: agent Job and Design builders, spec checks, statuses."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from genesys.api.discoveryrun import DiscoveryRun, FinishReason, Phase
from genesys.api.runconfig import RunIdentity
from genesys.api.validation import parse_discovery_run
from genesys.backends import manifests
from genesys.backends.common import RunHandle, open_run
from genesys.controller.reconcile import validate
from genesys.controller.status import (
    ConditionSpec,
    design_status,
    merge_conditions,
    ranks,
    run_status,
)
from genesys.engine.actions import StartSession
from genesys.engine.plan import Plan, RungSummary
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.base import LocalStore
from genesys.store.configs import read_run_config

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OWNER = {"metadata": {"name": "paper-ladder", "uid": "1234-abcd"}}
IDENTITY = RunIdentity(namespace="genesys", name="paper-ladder", uid="1234-abcd")


def paper_run() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "examples" / "paper-ladder.yaml").read_text())
    return document


def handle_for(run: DiscoveryRun, tmp_path: Path) -> RunHandle:
    handle, _ = open_run(run, IDENTITY, LocalStore(tmp_path), data_uri="s3://b/data")
    return handle


def test_agent_job_has_no_token_and_takes_credentials_from_secret_refs(tmp_path: Path) -> None:
    run = parse_discovery_run(paper_run())
    action = StartSession("s0003", "d0003", 3, "mutation", ("seed-gpt2",), 11)
    handle = handle_for(run, tmp_path)
    job = manifests.agent_job(handle, action, owner=OWNER, namespace="genesys")
    assert job["metadata"]["name"] == "paper-ladder-1234ab-s0003"
    assert job["metadata"]["labels"]["genesys.dev/run-uid"] == "1234-abcd"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    assert job["spec"]["ttlSecondsAfterFinished"] == manifests.JOB_TTL_SECONDS
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    container = pod["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-credentials",
        "key": "api-key",
    }
    assert "value" not in env["OPENAI_API_KEY"]
    assert all(
        "value" not in item
        for name, item in env.items()
        if name.startswith("AWS_") and "KEY" in name
    )
    args = container["args"]
    assert args[:2] == ["agent", "design"]
    assert args[args.index("--store") + 1] == handle.store_uri
    assert handle.store_uri.endswith("/runs/genesys/paper-ladder")
    config = read_run_config(args[args.index("--config") + 1])
    assert config.session_flow == "gau"
    assert config == handle.config
    assert job["spec"]["activeDeadlineSeconds"] == run.spec.agents.pod.deadline_seconds
    version = kubernetes_validate.latest_version()
    assert kubernetes_validate.validate(job, desired_version=version, strict=True)


def test_offline_agent_job_runs_the_offline_proposer_without_llm_settings(
    tmp_path: Path,
) -> None:
    document = paper_run()
    document["spec"]["agents"] = {"offline": True}
    run = parse_discovery_run(document)
    action = StartSession("s0000", "d0000", 0, "scratch", (), 1)
    job = manifests.agent_job(handle_for(run, tmp_path), action, owner=OWNER, namespace="genesys")
    container = job["spec"]["template"]["spec"]["containers"][0]
    config = read_run_config(container["args"][container["args"].index("--config") + 1])
    assert config.session_flow == "offline"
    assert not [e for e in container["env"] if e["name"] in ("OPENAI_API_KEY", "OPENAI_BASE_URL")]


def test_runtime_classes_reach_the_agent_and_training_pods_only_when_set(
    tmp_path: Path,
) -> None:
    from kubernetes import client

    from genesys.backends.kubernetes import KubernetesBackend
    from genesys.backends.torchx_job import render_job
    from genesys.engine.actions import StartVerification

    session = StartSession("s0003", "d0003", 3, "mutation", ("seed-gpt2",), 11)
    training = StartVerification("d0002", "14M", 1)

    def pods(document: dict[str, Any], store: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        handle = handle_for(parse_discovery_run(document), store)
        agent = manifests.agent_job(handle, session, owner=OWNER, namespace="genesys")
        backend = KubernetesBackend(
            handle, OWNER, namespace="genesys", api_client=client.ApiClient()
        )
        job = render_job(backend.training_app(training), backend.scheduler_config(training))
        return agent["spec"]["template"]["spec"], job["spec"]["template"]["spec"]

    agent_pod, training_pod = pods(paper_run(), tmp_path / "default")
    assert "runtimeClassName" not in agent_pod
    assert "runtimeClassName" not in training_pod
    document = paper_run()
    document["spec"]["agents"].setdefault("pod", {})["runtimeClassName"] = "gvisor"
    document["spec"]["verification"]["runtimeClassName"] = "kata"
    agent_pod, training_pod = pods(document, tmp_path / "sandboxed")
    assert agent_pod["runtimeClassName"] == "gvisor"
    assert training_pod["runtimeClassName"] == "kata"


def test_training_jobs_hold_no_credential_only_a_grant_to_their_own_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rendered training Job: no Secret, no AWS key, a grant whose puts are its own keys."""
    import json
    import secrets as tokens

    import boto3
    from kubernetes import client
    from moto import mock_aws

    from genesys.backends.kubernetes import KubernetesBackend
    from genesys.backends.torchx_job import render_job
    from genesys.engine.actions import StartVerification
    from genesys.store.archive import design_key, verification_prefix
    from genesys.store.base import S3Store
    from genesys.store.grant import GRANT_VARIABLE, TRAINER_KEYS, granted_puts, load_grant

    secret = f"operator-secret-{tokens.token_hex(12)}"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    run = parse_discovery_run(paper_run())
    data = "s3://genesys-artifacts/data/smollm-llama2"
    with mock_aws():
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            aws_access_key_id="AKIAOPERATOR",
            aws_secret_access_key=secret,
        )
        s3.create_bucket(Bucket="genesys-artifacts")
        for key in ("meta.json", "train-00000.bin", "tasks/genesys_cloze.jsonl"):
            s3.put_object(Bucket="genesys-artifacts", Key=f"data/smollm-llama2/{key}", Body=b"x")
        root = S3Store("genesys-artifacts", client=s3)
        handle, _ = open_run(run, IDENTITY, root, data_uri=data)
        backend = KubernetesBackend(
            handle, OWNER, namespace="genesys", api_client=client.ApiClient()
        )
        training = StartVerification("d0002", "14M", 1)
        options = backend.scheduler_config(training)
        job = render_job(backend.training_app(training), options)

    assert "env_from_secrets" not in options
    rendered = json.dumps(job)
    assert "secretKeyRef" not in rendered
    assert secret not in rendered
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert all("valueFrom" not in item for item in env.values())
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"  # plain settings stay
    grant = load_grant(env[GRANT_VARIABLE]["value"])
    out = handle.uri(verification_prefix("d0002", "14M"))
    assert handle.store_uri == "s3://genesys-artifacts/runs/genesys/paper-ladder"
    assert grant.writable == out
    assert granted_puts(grant) == sorted(f"{out}/{key}" for key in TRAINER_KEYS)
    assert all(uri.startswith(f"{out}/") for uri in granted_puts(grant))
    reads = set(grant.objects) - set(granted_puts(grant))
    assert reads == {
        handle.uri(design_key("d0002", "design.json")),
        handle.config_uri,
        f"{data}/meta.json",
        f"{data}/train-00000.bin",
        f"{data}/tasks/genesys_cloze.jsonl",
    }
    lifetime = handle.config.rung("14M").deadline_seconds + 3600
    assert all(f"X-Amz-Expires={lifetime}&" in urls.get for urls in grant.objects.values())


def test_names_are_deterministic_dns_labels() -> None:
    assert manifests.dns_name("Paper_Ladder", "seed-GPT2") == "paper-ladder-seed-gpt2"
    long = manifests.dns_name("r" * 80, "d0001")
    assert len(long) <= 63
    assert long == manifests.dns_name("r" * 80, "d0001")
    assert long != manifests.dns_name("r" * 80, "d0002")  # cut names keep a hash of the whole
    assert manifests.label_value("d0001.d0002") == "d0001.d0002"


def test_design_object_is_owned_and_labelled_with_lineage() -> None:
    record = DesignRecord("d0004", "A title", "crossover", ["d0001", "seed-gpt2"], 4, "s0004")
    body = manifests.design_object(IDENTITY, record, owner=OWNER, namespace="genesys", flow="gau")
    labels = body["metadata"]["labels"]
    assert labels["genesys.dev/run"] == "paper-ladder"
    assert labels["genesys.dev/run-uid"] == "1234-abcd"
    assert labels["genesys.dev/operator"] == "crossover"
    assert labels["genesys.dev/parents"] == "d0001.seed-gpt2"
    assert body["spec"]["parents"] == ["paper-ladder-d0001", "paper-ladder-seed-gpt2"]
    assert body["metadata"]["ownerReferences"][0]["kind"] == "DiscoveryRun"


def test_invalid_and_local_only_specs_name_their_fields() -> None:
    bad = paper_run()
    bad["spec"]["ladder"]["rungs"][2]["budget"] = 0
    body = {**bad, "metadata": {**bad["metadata"], "generation": 1, "uid": "u"}}
    run, problems = validate(body)
    assert run is None
    assert any(p.startswith("spec.ladder.rungs[2].budget") for p in problems)
    local = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    run, problems = validate(local)
    assert run is None
    assert {p.split(":")[0] for p in problems} == {
        "spec.verification.scheduler",
        "spec.storage.s3",
        "spec.verification.data.shards",
    }


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    first = merge_conditions([], [ConditionSpec("Ready", False, "Running")], NOW, 1)
    later = NOW + timedelta(minutes=5)
    same = merge_conditions(first, [ConditionSpec("Ready", False, "Running", "x")], later, 2)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    flipped = merge_conditions(same, [ConditionSpec("Ready", True, "BudgetsSpent")], later, 2)
    assert flipped[0]["lastTransitionTime"] == "2026-11-26T12:05:00Z"


def test_run_status_reports_phase_rungs_best_and_finish() -> None:
    plan = Plan(
        [],
        Phase.VERIFYING,
        [RungSummary("14M", 2, 2, 0), RungSummary("31M", 1, 1, 0)],
        {"d0001": 0.5, "seed-gpt2": 0.1},
        "d0001",
        3,
        0,
    )
    archive = Archive("r")
    status = run_status(
        {},
        plan,
        archive,
        now=NOW,
        generation=3,
        finish=FinishReason.BUDGETS_SPENT,
        llm_usd=1.5,
        gpu_hours=2.25,
    )
    assert status["phase"] == "Succeeded"
    assert status["finishReason"] == "BudgetsSpent"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["BudgetExhausted"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert status["bestDesign"] == "d0001"
    assert status["currentRung"] == "31M"
    assert status["spend"] == {"llmUsd": 1.5, "gpuHours": 2.25}
    assert status["observedGeneration"] == 3


def test_design_status_follows_its_verifications() -> None:
    record = DesignRecord("d0001", "t", "mutation", ["seed-gpt2"], 1)
    record.verifications["14M"] = Verification(
        "14M", "succeeded", val_loss=3.0, params=10, metrics={"x": {"acc": 0.5}}
    )
    common: dict[str, Any] = {
        "rung_order": ["14M", "31M"],
        "fitness": {"d0001": 0.2},
        "rank": ranks({"d0001": 0.2, "d0002": 0.9}),
        "rung_points": {"14M": 1, "31M": 2},
        "artifact_uri": "s3://b/x",
    }
    running = design_status(record, running={("d0001", "31M")}, attempts={}, **common)
    assert running["phase"] == "Verifying"
    assert running["rank"] == 2
    assert [r["phase"] for r in running["rungs"]] == ["Succeeded", "Running"]
    failed_record = copy.deepcopy(record)
    failed_record.verifications["31M"] = Verification("31M", "error", reason="OOM")
    done = design_status(failed_record, running=set(), attempts={("d0001", "31M"): 2}, **common)
    assert done["phase"] == "Verified"
    assert done["highestRung"] == "14M"
    assert done["rungs"][1] == {"rung": "31M", "phase": "Failed", "attempts": 3, "reason": "OOM"}
    assert done["confidence"] == 3


def test_the_paper_ladder_example_is_a_valid_cluster_run() -> None:
    run, problems = validate(paper_run())
    assert problems == []
    assert isinstance(run, DiscoveryRun)


@pytest.mark.parametrize("retention", ["keep", "delete"])
def test_retention_is_part_of_the_storage_spec(retention: str) -> None:
    document = paper_run()
    document["spec"]["storage"]["retention"] = retention
    assert parse_discovery_run(document).spec.storage.retention == retention


def _client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("make", "transient"),
    [
        (lambda: __import__("kubernetes").client.ApiException(status=503), True),
        (lambda: __import__("kubernetes").client.ApiException(status=429), True),
        (lambda: __import__("kubernetes").client.ApiException(status=403), False),
        (lambda: __import__("kubernetes").client.ApiException(status=422), False),
        (lambda: _client_error(500, "InternalError"), True),
        (lambda: _client_error(503, "SlowDown"), True),
        (lambda: _client_error(404, "NoSuchBucket"), False),
        (lambda: ConnectionRefusedError(111, "refused"), True),
        (lambda: TimeoutError("read timed out"), True),
        (lambda: TypeError("a programming error"), False),
        (lambda: KeyError("missing"), False),
    ],
    ids=[
        "api-503",
        "api-429",
        "api-403",
        "api-422",
        "s3-500",
        "s3-slowdown",
        "s3-no-bucket",
        "connection",
        "timeout",
        "type-error",
        "key-error",
    ],
)
def test_errors_are_classified_transient_or_permanent(make: Any, transient: bool) -> None:
    from genesys.controller.handlers import is_transient

    assert is_transient(make()) is transient
