"""Operator scale: many runs with many designs against a Kubernetes API on loopback (kmock).

A child process serves the Kubernetes API (the emulator of ``tests/support/kube.py``, its
request history drained as it goes, so its cost per request stays flat) and S3 (moto, one bucket
per run: moto scans a whole bucket on every list and conditional put, which S3 does not). This
process plays the operator as the kopf handlers do: a :class:`RunState` per run, one
:class:`JobCache` fed by a real watch of every run's Jobs, reconciles of different runs on
``--workers`` threads (one at a time per run: take the run's newest body, reconcile with at
most ``--max-creates`` creates, write the status), reports rendered on the report thread. Between
rounds, a fake Job controller in the server process completes every Job at once (a session Job
writes its design and outcome to the store; a training Job writes a result; a check Job ends
with its session, as its agent stops it).

It prints, measured in this run:

- the wall time (target < 20 min at 20 runs x 200 designs);
- reconcile latency p50 / p95 / p99 over all reconciles and over the first and last quarter
  (target: p95 < 1 s; the last quarter's p95 at most 1.5x the first's);
- the store part of a reconcile on one run's final state: a full rebuild of its archive
  against the incremental refresh of its index;
- Kubernetes API requests per design made by the operator side (target <= 5), by verb;
- this process's peak RSS (target < 300 MB; the operator's, the fake Job controller runs in the
  server process) and its growth per 1,000 designs after the first quarter;
- and, stated as a projection, what 100 runs x 2,000 designs would cost at the measured
  per-design rates.

Run: ``.venv/bin/python -m benchmarks.operator_scale [--runs 20] [--designs 200] [--workers 2]
[--max-creates 12]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bench"
USER_AGENT = "genesys-operator-bench"
DRAIN_SECONDS = 0.5
ARENAS = "2"  # MALLOC_ARENA_MAX, as in the operator image


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
        agents: collections.Counter[str] = collections.Counter()
        kinds: collections.Counter[str] = collections.Counter()  # the operator's, by verb
        guard, stop = threading.Lock(), threading.Event()

        def drain() -> None:  # count by User-Agent, and keep kmock's cost per request flat
            with guard:
                for request in kube.drain_requests():
                    agent = str(request.headers.get("User-Agent", ""))
                    agents[agent] += 1
                    if USER_AGENT in agent:
                        kinds[request_kind(str(request.method.value), request.url.path)] += 1

        def drain_often() -> None:
            while not stop.wait(DRAIN_SECONDS):
                drain()

        drainer = threading.Thread(target=drain_often, daemon=True)
        drainer.start()
        conn.send((kube.url, endpoint))
        controller = FakeJobController(kube.url, endpoint)
        while True:
            message = conn.recv()
            if message == "stop":
                break
            if isinstance(message, tuple) and message[0] == "finish":
                conn.send(sum(controller.finish(namespace) for namespace in message[1]))
                continue
            drain()
            with guard:
                total = sum(n for agent, n in agents.items() if str(message) in agent)
                conn.send((total, dict(kinds)))
        stop.set()
        drainer.join()
    s3.stop()


def request_kind(method: str, path: str) -> str:
    """``VERB resource`` of an API request path (``POST jobs``, ``PATCH designs/status``)."""
    parts = [part for part in path.strip("/").split("/") if part]
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        parts = parts[parts.index("namespaces") + 2 :]
    else:
        parts = parts[-1:]
    resource = parts[0] if parts else path
    if len(parts) >= 3:
        resource += f"/{parts[2]}"
    watch = method == "GET" and path.endswith("jobs") and len(parts) == 1
    return f"{'LIST/WATCH' if watch else method} {resource}"


# ----------------------------------------------------------------------------------- runs


def run_document(
    name: str, designs: int, parallel: int, endpoint: str, bucket: str = BUCKET
) -> dict[str, Any]:
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
                "data": {"shards": f"s3://{bucket}/data", "tokenizer": "byte", "vocabSize": 256},
                "resources": {"gpus": 0, "cpu": "1", "memory": "1Gi"},
            },
            "storage": {"s3": {"bucket": bucket, "prefix": name, "endpointUrl": endpoint}},
        },
    }


def argument(args: list[str], flag: str) -> str:
    """The value after ``flag`` in a command line."""
    return args[args.index(flag) + 1]


def complete(store: Any, job: dict[str, Any], seed_document: dict[str, Any]) -> None:
    """Do what the Job's pod would have written to the run's store (``store``: the bucket)."""
    root = f"{store.uri.rstrip('/')}/"
    args = list(job["spec"]["template"]["spec"]["containers"][0].get("args") or [])
    if "design" in args[:2]:
        session = argument(args, "--session")
        run_store = store.child(argument(args, "--store").split(root, 1)[1])
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
    key = out.split(root, 1)[1] + "/result.json"
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
    """Complete every unfinished Job of a namespace (the fake Job controller); how many.

    A check Job ends with its session, as its agent stops the check server when it ends. Jobs
    are read as JSON, not as client models: the controller's own memory stays small.
    """
    done = 0
    response = batch.list_namespaced_job(namespace, _preload_content=False)
    for job in json.loads(response.data)["items"]:
        containers = job["spec"]["template"]["spec"]["containers"]
        if (job.get("status") or {}).get("conditions") or not job["metadata"].get("labels"):
            continue
        if (containers[0].get("args") or [])[:1] != ["check-server"]:
            complete(store, job, seed_document)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        condition = {
            "type": "Complete",
            "status": "True",
            "reason": "Completed",
            "lastTransitionTime": now,
        }
        status = {"status": {"succeeded": 1, "completionTime": now, "conditions": [condition]}}
        batch.patch_namespaced_job_status(job["metadata"]["name"], namespace, status)
        done += 1
    return done


class FakeJobController:
    """The fake Job controller of the server process: it ends every run's Jobs when told to.

    It runs beside the emulators, not in the operator's process, so the operator's memory and
    CPU are measured without it.
    """

    def __init__(self, kube_url: str, s3_url: str) -> None:
        from kubernetes import client

        from genesys_trainer.seeds import load_seed

        api = client.ApiClient(client.Configuration(host=kube_url))
        api.user_agent = "bench-fake-controller"
        self.batch = client.BatchV1Api(api)
        self.s3_url = s3_url
        self.stores: dict[str, Any] = {}
        self.seed = load_seed("gpt2").to_json()

    def finish(self, namespace: str) -> int:
        """End the unfinished Jobs of one run (its namespace, its bucket); how many."""
        from genesys.store import open_store

        if namespace not in self.stores:
            self.stores[namespace] = open_store(
                f"s3://{BUCKET}-{namespace}", endpoint_url=self.s3_url
            )
        return finish_jobs(self.batch, namespace, self.stores[namespace], self.seed)


# ---------------------------------------------------------------------------------- watch


def watch_jobs(kube_url: str, cache: Any, stop: threading.Event) -> None:
    """The operator's Job watch (kopf's genesys-job-event): every run's Jobs into ``cache``."""
    from kubernetes import client, watch

    from genesys.api.labels import LABEL_RUN

    api = client.ApiClient(client.Configuration(host=kube_url))
    api.user_agent = USER_AGENT  # the operator's own requests
    batch = client.BatchV1Api(api)
    while not stop.is_set():
        stream = watch.Watch()
        try:
            for event in stream.stream(
                batch.list_job_for_all_namespaces,
                label_selector=LABEL_RUN,
                timeout_seconds=5,
                _request_timeout=30,
            ):
                cache.observe(event["type"], api.sanitize_for_serialization(event["object"]))
                if stop.is_set():
                    break
        except Exception:  # a dropped watch is restarted, and every run lists its Jobs again
            cache.invalidate()
            time.sleep(0.2)


# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator_scale")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--designs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=16, help="sessions at once per run")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="reconciles at once (the operator's GENESYS_WORKERS; 2: one per core here)",
    )
    parser.add_argument(
        "--max-creates", type=int, default=12, help="objects one reconcile may create"
    )
    args = parser.parse_args(argv)
    import os

    if argv is None and os.environ.get("MALLOC_ARENA_MAX") != ARENAS:  # as the operator image
        os.environ["MALLOC_ARENA_MAX"] = ARENAS  # glibc reads it at start: run again with it
        command = [sys.executable, "-m", "benchmarks.operator_scale", *sys.argv[1:]]
        os.execv(sys.executable, command)

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


@dataclass
class Sample:
    """One reconcile: when it started, how long it took, its CPU time, and its waits.

    ``started`` is in seconds into the drive; ``store`` and ``kube`` are its time in S3 and
    in Kubernetes API requests.
    """

    started: float
    seconds: float
    cpu: float
    store: float = 0.0
    kube: float = 0.0


class KubeClock:
    """Time spent in Kubernetes API requests, per thread.

    An emulator's cost per request may grow with the objects of every run that it holds (the
    test support's kmock indexes its objects but still walks their keys on each request), and
    a real API server's cost is another matter. Timing the requests separates the API
    server's part of a reconcile from the operator's own.
    """

    def __init__(self) -> None:
        self.local = threading.local()

    def client(self, configuration: Any) -> Any:
        """An API client whose HTTP requests (not its decoding of them) are timed here."""
        from kubernetes import client

        clock = self

        class TimedApiClient(client.ApiClient):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return super().request(*args, **kwargs)
                finally:
                    clock.local.seconds = clock.seconds() + time.perf_counter() - started

        return TimedApiClient(configuration)

    def seconds(self) -> float:
        """The time the calling thread has spent in API requests so far."""
        return float(getattr(self.local, "seconds", 0.0))


class StoreClock:
    """Time spent in S3 requests, per thread, through botocore's documented event hooks.

    Registered on boto3's default session before any store client exists, so every client
    the operator creates afterwards reports its calls here (no library code is replaced).
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self.calls: collections.Counter[str] = collections.Counter()  # by S3 operation
        self.lock = threading.Lock()

    def install(self) -> None:
        import boto3

        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        events = boto3.DEFAULT_SESSION.events
        events.register("before-call.s3", self._before)
        events.register("after-call.s3", self._after)
        events.register("after-call-error.s3", self._after)

    def _before(self, context: dict[str, Any], model: Any = None, **_: Any) -> None:
        context["bench_started"] = time.perf_counter()
        with self.lock:
            self.calls[getattr(model, "name", "?")] += 1

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_started")
        if started is not None:
            self.local.seconds = self.seconds() + time.perf_counter() - started

    def seconds(self) -> float:
        """The time the calling thread has spent in S3 requests so far."""
        return float(getattr(self.local, "seconds", 0.0))


def rss_mb() -> float:
    """The resident memory of this process now (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_growth(memory: list[tuple[int, float]]) -> tuple[float, float]:
    """(RSS MB, MB per 1,000 designs) from the first quarter of the designs to the end.

    The first quarter is left out: its growth is the imports and caches of a first use.
    """
    total = memory[-1][0]
    start = next((point for point in memory if point[0] >= total / 4), memory[0])
    grown = memory[-1][1] - start[1]
    return memory[-1][1], max(0.0, grown) / max(1, total - start[0]) * 1000


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


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
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    from genesys.api.discoveryrun import Phase
    from genesys.backends.jobcache import JobCache
    from genesys.backends.kubernetes import RunState
    from genesys.controller import memory
    from genesys.controller.handlers import (
        current_run,
        publish_in_background,
        reports_written,
        run_in_background,
        write_status,
    )
    from genesys.controller.reconcile import reconcile
    from genesys.store import open_store

    memory.settle()  # as the operator's start-up does
    memory.start_trimming()
    workers = int(getattr(args, "workers", 2))
    max_creates = int(getattr(args, "max_creates", 12))
    clock = StoreClock()
    clock.install()
    configuration = client.Configuration(host=kube_url)
    configuration.connection_pool_maxsize = workers + 2
    kube_clock = KubeClock()
    api = kube_clock.client(configuration)
    api.user_agent = USER_AGENT
    helper = client.ApiClient(client.Configuration(host=kube_url))
    helper.user_agent = "bench-fake-controller"
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        client.ApiextensionsV1Api(helper).create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(helper)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    stores = {}  # each run in its own bucket: moto scans a whole bucket on every list and
    for name in [f"run-{index:02d}" for index in range(args.runs)]:  # conditional put (S3 not)
        s3.create_bucket(Bucket=f"{BUCKET}-{name}")
        stores[name] = open_store(f"s3://{BUCKET}-{name}", endpoint_url=s3_url)
    names = [f"run-{index:02d}" for index in range(args.runs)]
    for name in names:
        document = run_document(name, args.designs, args.parallel, s3_url, f"{BUCKET}-{name}")
        custom.create_namespaced_custom_object(
            "genesys.dev", "v1alpha1", name, "discoveryruns", document
        )
    job_cache = JobCache()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_jobs, args=(kube_url, job_cache, stop), daemon=True)
    watcher.start()
    states = {name: RunState() for name in names}
    samples: list[Sample] = []
    reconcile_fn = reconcile if reconcile_fn is None else reconcile_fn
    memory: list[tuple[int, float]] = []  # (designs in the archives, RSS MB) after each round
    started = time.monotonic()

    def reconcile_run(name: str) -> bool:
        """Reconcile one run as the kopf handler does; True once it has finished."""
        body = current_run(name, name, api)  # kopf's event body, or our last status write
        assert body is not None
        tick, cpu = time.perf_counter(), time.thread_time()
        store, kube = clock.seconds(), kube_clock.seconds()
        outcome = reconcile_fn(
            body,
            api_client=api,
            state=states[name],
            job_cache=job_cache,
            max_creates=max_creates,
            publish=publish_in_background,  # as the kopf handlers do
            later=run_in_background,
        )
        if outcome.status != (body.get("status") or {}):
            write_status(name, name, outcome.status, api)
        elapsed = time.perf_counter() - tick
        cpu = time.thread_time() - cpu
        samples.append(
            Sample(
                tick - started_perf,
                elapsed,
                cpu,
                clock.seconds() - store,
                kube_clock.seconds() - kube,
            )
        )
        return bool(Phase(outcome.phase).is_terminal())

    started_perf = time.perf_counter()
    pending = set(names)
    rounds = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:  # one reconcile at a time per run
        while pending:
            rounds += 1
            order = sorted(pending)
            outcomes = list(pool.map(reconcile_run, order))
            finished = [name for name, done in zip(order, outcomes, strict=True) if done]
            pending.difference_update(finished)
            conn.send(("finish", names))  # the fake Job controller, in the server process
            conn.recv()
            done = sum(len(s.index.archive().designs) for s in states.values())
            memory.append((done, rss_mb()))
            if rounds % 10 == 0:
                print(
                    f"  round {rounds}: {len(samples)} reconciles, {done} designs, "
                    f"{len(pending)} runs left, {time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    reports_written()  # the runs' final Design ranks and reports, on the report thread
    wall = time.monotonic() - started
    stop.set()
    watcher.join(timeout=30)
    from genesys.store.archive import load_archive

    first = stores[names[0]].child(f"{names[0]}/runs/{names[0]}/{names[0]}")  # <ns>/<name>
    full, incremental = [], []
    for _ in range(3):  # the store part of a reconcile, on the final state: rebuild vs refresh
        tick = time.perf_counter()
        load_archive(first, names[0])
        full.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        states[names[0]].index.refresh(first)
        states[names[0]].index.archive()
        incremental.append(time.perf_counter() - tick)
    conn.send(USER_AGENT)
    requests, kinds = conn.recv()
    if latencies is not None:
        latencies.extend(sample.seconds for sample in samples)
    return report(
        args,
        samples,
        wall=wall,
        requests=int(requests),
        kinds=kinds,
        rss=rss_growth(memory),
        store_load=(statistics.median(full), statistics.median(incremental)),
        s3_calls=dict(clock.calls),
        designs_done=sum(len(s.index.archive().designs) for s in states.values()),
    )


def quarter_line(label: str, samples: list[Sample]) -> str:
    """p50 / p95 / p99 of some reconciles, in ms."""
    seconds = [sample.seconds for sample in samples]
    return (
        f"{label}: p50 {percentile(seconds, 50) * 1000:.0f} ms, "
        f"p95 {percentile(seconds, 95) * 1000:.0f} ms, p99 {percentile(seconds, 99) * 1000:.0f} ms"
        f" ({len(seconds)} reconciles)"
    )


def store_line(first: list[Sample], last: list[Sample]) -> str:
    """How much of the first and last quarter's reconciles waited on S3, and the rest's p95."""

    def parts(samples: list[Sample]) -> tuple[float, float]:
        share = sum(s.store for s in samples) / max(1e-9, sum(s.seconds for s in samples))
        return share, percentile([s.seconds - s.store for s in samples], 95)

    (first_share, first_rest), (last_share, last_rest) = parts(first), parts(last)

    def kube_parts(samples: list[Sample]) -> tuple[float, float]:
        share = sum(s.kube for s in samples) / max(1e-9, sum(s.seconds for s in samples))
        return share, percentile([s.seconds - s.store - s.kube for s in samples], 95)

    (first_kube, first_own), (last_kube, last_own) = kube_parts(first), kube_parts(last)
    return (
        f"  in S3 requests: {first_share:.0%} of the first quarter's reconcile time, "
        f"{last_share:.0%} of the last's; without them, p95 {first_rest * 1000:.0f} ms then "
        f"{last_rest * 1000:.0f} ms ({last_rest / max(1e-9, first_rest):.2f}x)\n"
        f"  in Kubernetes API requests: {first_kube:.0%} of the first quarter's, "
        f"{last_kube:.0%} of the last's; without S3 and API time (the operator's own), p95 "
        f"{first_own * 1000:.0f} ms then {last_own * 1000:.0f} ms "
        f"({last_own / max(1e-9, first_own):.2f}x)"
    )


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    *,
    wall: float,
    requests: int,
    kinds: dict[str, int],
    rss: tuple[float, float],
    store_load: tuple[float, float],
    s3_calls: dict[str, int],
    designs_done: int,
) -> str:
    """The printed figures, and the projection to 100 runs x 2,000 designs."""
    ordered = sorted(samples, key=lambda sample: sample.started)
    quarter = max(1, len(ordered) // 4)
    seconds = [sample.seconds for sample in ordered]
    p95 = percentile(seconds, 95)
    first_p95 = percentile([s.seconds for s in ordered[:quarter]], 95)
    last_p95 = percentile([s.seconds for s in ordered[-quarter:]], 95)
    growth = last_p95 / first_p95
    designs = args.runs * args.designs
    per_design = requests / designs
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_now, rss_per_thousand = rss
    cpu_per_design = sum(sample.cpu for sample in samples) / designs
    full, incremental = store_load
    projected = 100 * 2000
    cpu_hours = cpu_per_design * projected / 3600

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return "\n".join(
        [
            f"operator scale: {args.runs} runs x {args.designs} designs ({designs_done} in the "
            f"archives), {len(samples)} reconciles in {wall:.0f} s (target < 1200 s: "
            f"{verdict(wall < 1200)})",
            quarter_line("reconcile latency, all", ordered)
            + f" (target p95 < 1000 ms: {verdict(p95 < 1)})",
            quarter_line("  first quarter", ordered[:quarter]),
            quarter_line("  last quarter", ordered[-quarter:])
            + f" (p95 last / first {growth:.2f}x, target <= 1.5x: {verdict(growth <= 1.5)})",
            store_line(ordered[:quarter], ordered[-quarter:]),
            f"store part of a reconcile on the final state of one run: full rebuild "
            f"{full * 1000:.0f} ms, refresh from a whole listing {incremental * 1000:.0f} ms "
            f"({full / incremental:.1f}x)",
            f"S3 requests per design: {sum(s3_calls.values()) / designs:.1f}, by operation: "
            + ", ".join(
                f"{name} {count / designs:.2f}"
                for name, count in sorted(s3_calls.items(), key=lambda item: -item[1])
            ),
            f"API requests per design: {per_design:.1f} ({requests} in all; target <= 5: "
            f"{verdict(per_design <= 5)})",
            "  per design, by verb: "
            + ", ".join(
                f"{kind} {count / designs:.2f}"
                for kind, count in sorted(kinds.items(), key=lambda item: -item[1])
            ),
            f"peak RSS of this process: {peak_mb:.0f} MB (target < 300 MB: "
            f"{verdict(peak_mb < 300)}); {rss_now:.0f} MB at the end, growing "
            f"{rss_per_thousand:.1f} MB per 1,000 designs after the first quarter",
            f"operator CPU in reconciles: {cpu_per_design * 1000:.1f} ms per design",
            f"projection (not measured) to 100 runs x 2,000 designs = {projected:,} designs, "
            f"from the per-design costs above: {per_design * projected:,.0f} API requests, "
            f"{cpu_hours:.1f} CPU-hours of reconciles over the runs' lifetime, "
            f"{rss_now + rss_per_thousand * (projected - designs) / 1000:.0f} MB of operator "
            "memory (if nothing is ever forgotten)",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
