"""Incremental reconciles against a real API server and S3 on loopback (kmock and moto).

The controller's reconcile is driven as the kopf handlers drive it, with what the operator keeps
between reconciles (a :class:`RunState` per run) and the Jobs of a watch (a :class:`JobCache`
fed by a real watch stream). A fake Job controller completes every Job at once (the one of
``benchmarks.operator_scale``). A restart is a new state and a new cache: the operator then
rebuilds the same index from the store and creates nothing twice.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` does not put the repository root on the path
    sys.path.insert(0, str(REPO))

from benchmarks.operator_scale import finish_jobs, run_document, watch_jobs  # noqa: E402

from genesys.api.discoveryrun import Phase  # noqa: E402
from genesys.backends.jobcache import JobCache  # noqa: E402
from genesys.backends.kubernetes import RunState  # noqa: E402
from genesys.controller import handlers  # noqa: E402
from genesys.controller.handlers import read_run, write_status  # noqa: E402
from genesys.controller.reconcile import reconcile  # noqa: E402
from genesys.store import open_store  # noqa: E402
from genesys.store.archive import load_archive  # noqa: E402
from genesys_trainer.seeds import load_seed  # noqa: E402
from support.kube import (  # noqa: E402
    KUBERNETES_CLIENT_WARNINGS,
    KMockServer,
    api_client,
    running_kmock,
)

pytestmark = KUBERNETES_CLIENT_WARNINGS
RUN = "restart"
CONTROLLER = "fake-job-controller"


class Operator:
    """The operator's memory of one process: run states and a watched Job cache."""

    def __init__(self, url: str) -> None:
        self.api = api_client(url)
        self.state = RunState()
        self.jobs = JobCache()
        self.stop = threading.Event()
        self.watch = threading.Thread(
            target=watch_jobs, args=(url, self.jobs, self.stop), daemon=True
        )
        self.watch.start()

    def reconcile(self) -> str:
        body = read_run(RUN, RUN, self.api)
        assert body is not None
        outcome = reconcile(
            body,
            api_client=self.api,
            state=self.state,
            job_cache=self.jobs,
            publish=lambda handle, archive: None,  # the process dies before its report
        )
        if outcome.status != (body.get("status") or {}):
            write_status(RUN, RUN, outcome.status, self.api)
        return outcome.phase

    def close(self) -> None:
        self.stop.set()
        self.watch.join(timeout=30)


@pytest.fixture
def world(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KMockServer, Any]]:
    """An API server with the CRDs and one run, and its S3 bucket (the store root)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"incremental-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    with running_kmock(fail_on_server_errors=False) as kube:
        helper = api_client(kube.url)
        helper.user_agent = CONTROLLER
        from kubernetes import client

        for path in sorted((REPO / "crds").glob("*.yaml")):
            crd = yaml.safe_load(path.read_text(encoding="utf-8"))
            client.ApiextensionsV1Api(helper).create_custom_resource_definition(crd)
        document = run_document(RUN, 8, 3, s3_server, bucket)
        client.CustomObjectsApi(helper).create_namespaced_custom_object(
            "genesys.dev", "v1alpha1", RUN, "discoveryruns", document
        )
        yield kube, open_store(f"s3://{bucket}", endpoint_url=s3_server)


def drive(operator: Operator, kube: KMockServer, root: Any, reconciles: int) -> str:
    """Reconcile and complete Jobs ``reconciles`` times, or until the run finishes."""
    from kubernetes import client

    helper = api_client(kube.url)
    helper.user_agent = CONTROLLER
    seed = load_seed("gpt2").to_json()
    phase = ""
    for _ in range(reconciles):
        phase = operator.reconcile()
        if Phase(phase).is_terminal():
            break
        finish_jobs(client.BatchV1Api(helper), RUN, root, seed)
    return phase


def creations(kube: KMockServer) -> Counter[str]:
    """How many times the operator asked to create each object (by resource and name)."""
    counts: Counter[str] = Counter()
    for request in kube.requests():
        if request.method.value != "POST" or CONTROLLER in str(request.headers.get("User-Agent")):
            continue
        name = ((request.data or {}).get("metadata") or {}).get("name")
        if name and "events" not in request.url.path:
            counts[f"{request.url.path.rsplit('/', 1)[-1]}/{name}"] += 1
    return counts


def test_a_restarted_operator_rebuilds_the_same_index_and_creates_nothing_twice(
    world: tuple[KMockServer, Any],
) -> None:
    kube, root = world
    first = Operator(kube.url)
    try:
        assert not Phase(drive(first, kube, root, 4)).is_terminal()
    finally:
        first.close()
    before = first.state.index.archive()
    assert len(before.designs) > 3  # seeds and some designs: the run is under way
    store = root.child(f"{RUN}/runs/{RUN}/{RUN}")

    restarted = Operator(kube.url)
    restarted.state.index.name = RUN  # as the backend names it
    try:
        restarted.state.index.refresh(store)
        assert restarted.state.index.archive() == load_archive(store, RUN)
        first.state.index.refresh(store)
        assert restarted.state.index.archive() == first.state.index.archive()
        assert drive(restarted, kube, root, 40) == Phase.SUCCEEDED.value
    finally:
        restarted.close()
    assert restarted.state.index.rebuilds == 1
    twice = {name: n for name, n in creations(kube).items() if n > 1}
    assert not twice, f"created more than once: {twice}"
    jobs = [name for name in creations(kube) if name.startswith("jobs/")]
    assert len(jobs) >= 8 * 3  # each design's agent, check and training Jobs, once each


def test_a_reconcile_creates_at_most_its_budget(world: tuple[KMockServer, Any]) -> None:
    kube, root = world
    operator = Operator(kube.url)
    try:
        operator.reconcile()  # the seeds
        body = read_run(RUN, RUN, operator.api)
        assert body is not None
        seen = len(kube.requests())
        outcome = reconcile(
            body,
            api_client=operator.api,
            state=operator.state,
            job_cache=operator.jobs,
            max_creates=5,
        )
        posts = [
            r.url.path.rsplit("/", 1)[-1]
            for r in kube.requests()[seen:]
            if r.method.value == "POST" and "events" not in r.url.path
        ]
        # 3 sessions (2 objects each, the run's check Service and NetworkPolicy 2 more) and
        # the 5 seeds' trainings and Designs are wanted: 5 objects fit, and 5 Designs
        designs = [kind for kind in posts if kind == "designs"]
        assert 0 < len(posts) - len(designs) <= 5
        assert len(designs) == 5
        assert outcome.deferred > 0
        assert sum(outcome.actions.values()) > 5
        assert drive(operator, kube, root, 60) == Phase.SUCCEEDED.value
    finally:
        operator.close()
    # the run's last reconcile created every Design still missing
    from kubernetes import client

    listed = client.CustomObjectsApi(api_client(kube.url)).list_namespaced_custom_object(
        "genesys.dev", "v1alpha1", RUN, "designs"
    )
    store = root.child(f"{RUN}/runs/{RUN}/{RUN}")
    assert len(listed["items"]) == len(load_archive(store, RUN).designs)


def test_a_report_lost_to_a_restart_is_written_when_the_run_is_seen_again(
    world: tuple[KMockServer, Any],
) -> None:
    kube, root = world
    operator = Operator(kube.url)
    try:
        assert drive(operator, kube, root, 60) == Phase.SUCCEEDED.value
    finally:
        operator.close()
    store = root.child(f"{RUN}/runs/{RUN}/{RUN}")
    assert not store.exists("report.html")
    body = read_run(RUN, RUN, operator.api)
    assert body is not None
    written = handlers.ensure_report(body, logging.getLogger("test"))
    assert written is not None
    written.result(timeout=120)
    assert "<html" in store.get_text("report.html").lower()
    assert handlers.ensure_report(body, logging.getLogger("test")) is None  # once is enough
