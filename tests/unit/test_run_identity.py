"""Run identity in the store: prefixes, binding a prefix to one run, claims, one training job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity
from genesys.backends.common import BindError, open_run, session_arguments
from genesys.backends.kubernetes import KubernetesBackend
from genesys.backends.local import LocalBackend
from genesys.engine.actions import StartSession, StartVerification
from genesys.store.base import LocalStore, Store
from genesys.store.claims import bind_run, bound_to, claim_hash
from genesys.store.configs import read_run_config
from genesys.store.documents import RunRecord, read_document
from support.kube import KUBERNETES_CLIENT_WARNINGS

FIRST = RunIdentity(namespace="team-a", name="alpha", uid="11111111-aaaa")
SECOND = RunIdentity(namespace="team-a", name="alpha", uid="22222222-bbbb")


def run(**spec: Any) -> DiscoveryRun:
    return DiscoveryRun.model_validate({"metadata": {"name": "alpha"}, "spec": spec})


def prefix_store(tmp_path: Path, identity: RunIdentity = FIRST) -> Store:
    return LocalStore(tmp_path).child(identity.store_prefix)


def test_store_prefixes_name_the_namespace_on_a_cluster_and_keep_the_local_layout() -> None:
    assert FIRST.store_prefix == "runs/team-a/alpha"
    assert RunIdentity(namespace="team-b", name="alpha").store_prefix == "runs/team-b/alpha"
    assert RunIdentity(name="quickstart").store_prefix == "runs/quickstart"  # genesys run


def test_the_first_run_binds_its_prefix_and_records_its_uid(tmp_path: Path) -> None:
    store = prefix_store(tmp_path)
    assert bind_run(store, FIRST, run(seed=1)).bound
    record = read_document(store, "spec.json", RunRecord)
    assert record is not None
    assert record.identity == FIRST
    assert record.run.spec.seed == 1
    assert bind_run(store, FIRST, run(seed=2)).bound  # the same run: its edited spec is kept
    record = read_document(store, "spec.json", RunRecord)
    assert record is not None
    assert record.run.spec.seed == 2


def test_another_run_of_the_same_name_is_refused_with_how_to_resume(tmp_path: Path) -> None:
    store = prefix_store(tmp_path)
    bind_run(store, FIRST, run())
    before = store.get_text("spec.json")
    binding = bind_run(store, SECOND, run())
    assert not binding.bound
    assert FIRST.uid is not None
    assert FIRST.uid in binding.message
    assert f"spec.storage.resumeFrom: {FIRST.uid}" in binding.message
    assert store.get_text("spec.json") == before  # nothing taken from the owner
    assert not bound_to(store, SECOND)
    with pytest.raises(BindError, match="resumeFrom"):
        open_run(run(), SECOND, LocalStore(tmp_path), data_uri="/data")


def test_resume_from_adopts_the_archive_on_purpose(tmp_path: Path) -> None:
    store = prefix_store(tmp_path)
    bind_run(store, FIRST, run())
    binding = bind_run(store, SECOND, run(storage={"resumeFrom": FIRST.uid}))
    assert binding.bound
    assert binding.adopted == FIRST.uid
    record = read_document(store, "spec.json", RunRecord)
    assert record is not None
    assert (record.identity, record.adopted_from) == (SECOND, [FIRST.uid])
    assert bound_to(store, SECOND)
    assert not bound_to(store, FIRST)  # the old run's deletion can no longer remove it


def test_a_wrong_resume_from_is_still_refused(tmp_path: Path) -> None:
    store = prefix_store(tmp_path)
    bind_run(store, FIRST, run())
    assert not bind_run(store, SECOND, run(storage={"resumeFrom": "someone-else"})).bound


def test_genesys_run_resumes_its_own_prefix_and_an_older_layout(tmp_path: Path) -> None:
    local = RunIdentity(name="alpha")
    store = prefix_store(tmp_path, local)
    store.put_text("spec.json", json.dumps({"apiVersion": "genesys.dev/v1alpha1"}))  # older
    assert bind_run(store, local, run()).bound
    assert bind_run(store, local, run()).bound


def test_a_hash_claim_is_won_once_and_kept_by_its_holder(tmp_path: Path) -> None:
    store = prefix_store(tmp_path)
    assert claim_hash(store, "abc", design="d0001", session="s1") is None
    assert claim_hash(store, "abc", design="d0001", session="s1") is None  # a resumed session
    assert claim_hash(store, "abc", design="d0002", session="s2") == "d0001"
    assert claim_hash(store, "def", design="d0002", session="s2") is None


def test_sessions_get_the_run_store_and_the_config_with_a_freely_named_rung(
    tmp_path: Path,
) -> None:
    spec = {
        "ladder": {"rungs": [{"name": "small", "preset": "nano", "budget": 3}]},
        "agents": {"offline": True},
    }
    handle, _ = open_run(run(**spec), FIRST, LocalStore(tmp_path), data_uri="/data")
    arguments = session_arguments(handle, StartSession("s0001", "d0001", 6, "scratch", (), 5))
    assert arguments[arguments.index("--store") + 1].endswith("/runs/team-a/alpha")
    config = read_run_config(arguments[arguments.index("--config") + 1])
    assert config.lowest.name == "small"
    assert (config.lowest.n_embd, config.lowest.context_length) == (64, 256)  # nano's
    assert "--rung" not in arguments  # nothing downstream looks a rung up by its name


@KUBERNETES_CLIENT_WARNINGS
def test_both_backends_run_the_same_training_job(tmp_path: Path) -> None:
    from kubernetes import client

    spec = {
        "ladder": {"rungs": [{"name": "small", "preset": "nano", "budget": 3}]},
        "verification": {
            "resources": {"cpu": "500m", "memory": "3Gi", "gpus": 0},
            "evalLimit": 25,
            "training": {"checkpointEveryMinutes": 4.0},
        },
    }
    handle, _ = open_run(run(**spec), FIRST, LocalStore(tmp_path), data_uri="/data")
    action = StartVerification("d0004", "small", 2)
    body = {"metadata": {"name": "alpha", "uid": FIRST.uid}}
    local = LocalBackend(handle, workdir=tmp_path / "work").training_app(action)
    cluster = KubernetesBackend(handle, body, namespace="team-a", api_client=client.ApiClient())
    remote = cluster.training_app(action)
    assert local.name == remote.name == "verify-alpha-111111-d0004-small-a2"
    (local_role,), (remote_role,) = local.roles, remote.roles
    assert local_role.args == remote_role.args  # the same command, to the letter
    assert local_role.args[local_role.args.index("--config") + 1] == handle.config_uri
    assert local_role.resource == remote_role.resource
    assert local_role.resource.cpu == 0.5  # "500m", parsed as the API server does
    assert local_role.resource.memMB == 3072
    assert local_role.env["OMP_NUM_THREADS"] == "1"
    assert handle.config.eval.limit == 25
    assert handle.config.training.checkpoint_every_minutes == 4.0


class CountingStore(LocalStore):
    """A local store that counts the objects it reads."""

    reads = 0

    def get_bytes(self, key: str) -> bytes:
        self.reads += 1
        return super().get_bytes(key)


def test_the_archive_index_reads_again_only_what_changed(tmp_path: Path) -> None:
    from genesys.store.index import ArchiveIndex
    from genesys_trainer.seeds import load_seed

    store = CountingStore(tmp_path)
    document = load_seed("gpt2").to_json()
    for design in ("d1", "d2"):
        store.put_text(f"designs/{design}/design.json", json.dumps(document))
    store.put_text("designs/d3/design.json", "{not json")
    index = ArchiveIndex()
    index.refresh(store)
    first = index.archive()
    assert set(first.designs) == {"d1", "d2"}
    assert len(first.problems) == 1  # the broken document is reported, not half-read
    read = store.reads
    index.refresh(store)
    assert index.archive().designs.keys() == first.designs.keys()
    assert store.reads == read  # nothing changed: nothing read
    document["metadata"]["title"] = "changed"
    store.put_text("designs/d2/design.json", json.dumps(document))
    index.refresh(store)
    assert store.reads == read + 1
    assert index.archive().designs["d2"].title == "changed"
