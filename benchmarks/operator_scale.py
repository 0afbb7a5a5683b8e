"""Operator scale: many runs with many designs against a Kubernetes API on loopback (kmock).

A child process serves the Kubernetes API (the emulator of ``tests/support/kube.py``) and S3
(moto). This process plays the operator, calling the controller's reconcile exactly as the kopf
handlers do (read the run, reconcile, write the status), round-robin over ``--runs`` runs of
``--designs`` designs each, and a fake Job controller that completes every Job at once (a
session Job writes its design and outcome to the store; a training Job writes a result).

It prints, measured in this run:

- reconcile latency p50 / p95 (target: p95 < 1 s), and the ratio of the archive load (the
  store part of a reconcile) without the store cache (every object read again) to with it,
  on the same final state;
- Kubernetes API requests per design made by the operator side;
- this process's peak RSS (target < 300 MB; it includes the fake Job controller).

Run: ``.venv/bin/python -m benchmarks.operator_scale [--runs 20] [--designs 200]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bench"
USER_AGENT = "genesys-operator-bench"


# ---------------------------------------------------------------------------------- servers


def serve(conn: Connection) -> None:
    """Child process: the Kubernetes API and S3 until told to stop; answers request counts."""
    sys.path.insert(0, str(REPO / "tests"))
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from support.kube import running_kmock

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    ).create_bucket(Bucket=BUCKET)
    with running_kmock(fail_on_server_errors=False) as kube:
        conn.send((kube.url, endpoint))
        while True:
            message = conn.recv()
            if message == "stop":
                break
            agent = str(message)
            requests = kube.requests()
            conn.send(sum(1 for r in requests if agent in str(r.headers.get("User-Agent", ""))))
    s3.stop()


# ----------------------------------------------------------------------------------- runs


def run_document(name: str, designs: int, parallel: int, endpoint: str) -> dict[str, Any]:
    """A DiscoveryRun (in its own namespace) that the fake controller completes at once."""
    return {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": name, "namespace": name},
        "spec": {
            "seed": 1,
            "ladder": {"rungs": [{"name": "nano", "preset": "nano", "budget": designs}]},
            "sessions": {"parallel": parallel, "maxDesigns": designs},
            "agents": {"offline": True},
            "verification": {
                "scheduler": "kubernetes",
                "maxParallelJobsPerRung": 64,
                "data": {"shards": f"s3://{BUCKET}/data", "tokenizer": "byte", "vocabSize": 256},
                "resources": {"gpus": 0, "cpu": "1", "memory": "1Gi"},
            },
            "storage": {"s3": {"bucket": BUCKET, "prefix": name, "endpointUrl": endpoint}},
        },
    }


def argument(args: list[str], flag: str) -> str:
    """The value after ``flag`` in a command line."""
    return args[args.index(flag) + 1]


def complete(store: Any, job: Any, seed_document: dict[str, Any]) -> None:
    """Do what the Job's pod would have written to the run's store."""
    args = list(job.spec.template.spec.containers[0].args or [])
    if "design" in args[:2]:
        session = argument(args, "--session")
        run_store = store.child(argument(args, "--store").split(f"s3://{BUCKET}/", 1)[1])
        design_id = argument(args, "--design-id")
        parents = [p for p in argument(args, "--parents").split(",") if p]
        document = json.loads(json.dumps(seed_document))
        document["name"] = design_id
        document["metadata"] = {
            "title": f"design {design_id}",
            "operator": "mutation",
            "parents": parents,
            "seq": int(argument(args, "--seq")),
            "session": session,
        }
        run_store.put_text(f"designs/{design_id}/design.json", json.dumps(document))
        outcome = {"status": "implemented", "design": design_id, "reason": "bench"}
        run_store.put_text(f"sessions/{session}/session.json", json.dumps(outcome))
        return
    out = argument(args, "--out")
    key = out.split(f"s3://{BUCKET}/", 1)[1] + "/result.json"
    design = argument(args, "--design").rstrip("/").split("/")[-2]
    salt = sum(map(ord, design)) % 97 / 97
    result = {
        "design": design,
        "rung": argument(args, "--rung"),
        "status": "succeeded",
        "params": 100_000,
        "train_loss": 3 + salt,
        "val_loss": 3.1 + salt,
        "eval": {"genesys_cloze": {"acc": 0.3 + 0.4 * salt}},
    }
    store.put_text(key, json.dumps(result))


def finish_jobs(batch: Any, namespace: str, store: Any, seed_document: dict[str, Any]) -> int:
    """Complete every unfinished Job of a namespace (the fake Job controller); how many."""
    done = 0
    for job in batch.list_namespaced_job(namespace).items:
        if (job.status and job.status.conditions) or not job.metadata.labels:
            continue
        if (job.spec.template.spec.containers[0].args or [])[:1] == ["check-server"]:
            continue  # a session's check pod serves until the operator deletes it
        complete(store, job, seed_document)
        condition = {"type": "Complete", "status": "True", "reason": "Completed"}
        status = {"status": {"succeeded": 1, "conditions": [condition]}}
        batch.patch_namespaced_job_status(job.metadata.name, namespace, status)
        done += 1
    return done


# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator_scale")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--designs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=16, help="sessions at once per run")
    args = parser.parse_args(argv)
    import os

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,))
    server.start()
    kube_url, s3_url = parent.recv()
    try:
        report = measure(args, kube_url, s3_url, parent)
    finally:
        parent.send("stop")
        server.join(timeout=30)
    print(report)
    return 0


def measure(
    args: argparse.Namespace,
    kube_url: str,
    s3_url: str,
    conn: Connection,
    *,
    reconcile_fn: Callable[..., Any] | None = None,
    latencies: list[float] | None = None,
) -> str:
    """Drive the runs to the end; the report text.

    ``reconcile_fn`` replaces the controller's ``reconcile`` (same arguments), and
    ``latencies``, when given, receives each reconcile's latency
    (``benchmarks.telemetry_overhead``).
    """
    from kubernetes import client

    from genesys.api.discoveryrun import Phase
    from genesys.controller.handlers import read_run, write_status
    from genesys.controller.reconcile import reconcile
    from genesys.store import open_store
    from genesys.store.archive import DocumentCache
    from genesys_trainer.seeds import load_seed

    api = client.ApiClient(client.Configuration(host=kube_url))
    api.user_agent = USER_AGENT
    helper = client.ApiClient(client.Configuration(host=kube_url))
    helper.user_agent = "bench-fake-controller"
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        client.ApiextensionsV1Api(helper).create_custom_resource_definition(crd)
    custom, batch = client.CustomObjectsApi(helper), client.BatchV1Api(helper)
    store = open_store(f"s3://{BUCKET}", endpoint_url=s3_url)
    seed_document = load_seed("gpt2").to_json()
    names = [f"run-{index:02d}" for index in range(args.runs)]
    for name in names:
        document = run_document(name, args.designs, args.parallel, s3_url)
        custom.create_namespaced_custom_object(
            "genesys.dev", "v1alpha1", name, "discoveryruns", document
        )
    caches = {name: DocumentCache() for name in names}
    ingested: dict[str, set[str]] = {name: set() for name in names}
    latencies = [] if latencies is None else latencies
    reconcile_fn = reconcile if reconcile_fn is None else reconcile_fn
    started = time.monotonic()
    pending = set(names)
    while pending:
        for name in sorted(pending):
            body = read_run(name, name, api)
            assert body is not None
            tick = time.perf_counter()
            outcome = reconcile_fn(
                body, api_client=api, cache=caches[name], ingested=ingested[name]
            )
            if outcome.status != (body.get("status") or {}):
                write_status(name, name, outcome.status, api)
            latencies.append(time.perf_counter() - tick)
            if Phase(outcome.phase).is_terminal():
                pending.discard(name)
        for name in names:
            finish_jobs(batch, name, store, seed_document)
    wall = time.monotonic() - started
    from genesys.store.archive import load_archive

    uncached, cached = [], []
    first = store.child(f"{names[0]}/runs/{names[0]}/{names[0]}")  # prefix/runs/<ns>/<name>
    for _ in range(3):  # the store part of a reconcile, on the final state: without, with cache
        tick = time.perf_counter()
        load_archive(first, names[0], cache=DocumentCache())
        uncached.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        load_archive(first, names[0], cache=caches[names[0]])
        cached.append(time.perf_counter() - tick)
    conn.send(USER_AGENT)
    requests = int(conn.recv())
    designs = args.runs * args.designs
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[18] if len(latencies) >= 20 else max(latencies)
    ratio = statistics.median(uncached) / statistics.median(cached)
    return "\n".join(
        [
            f"operator scale: {args.runs} runs x {args.designs} designs, "
            f"{len(latencies)} reconciles in {wall:.0f} s",
            f"reconcile latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
            f"(target p95 < 1000 ms: {'met' if p95 < 1 else 'NOT met'})",
            f"archive load without / with the store cache: {ratio:.1f}x "
            f"({statistics.median(uncached) * 1000:.0f} ms vs "
            f"{statistics.median(cached) * 1000:.0f} ms)",
            f"API requests per design: {requests / designs:.1f} ({requests} in all)",
            f"peak RSS of this process: {peak_mb:.0f} MB "
            f"(target < 300 MB: {'met' if peak_mb < 300 else 'NOT met'})",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
