"""Tracing overhead: the operator's reconciles and the trainer, with tracing off and on.

Each part runs the same work with tracing off (the baseline, no ``OTEL_*`` variable: the no-op
tracer and meter) and on, interleaved (off, on, off, on, ...) after an untimed warm-up of
each, and prints the medians and their ratio on / off against the target (< 3% overhead):

- operator: one drive of ``benchmarks.operator_scale`` per repetition (``measure``, on a fresh
  Kubernetes API and S3 child: its runs and fake Job controller), each reconcile wrapped as the
  kopf handlers wrap it (a ``genesys.reconcile`` span and the reconcile-duration metric).
  Timed: the time spent in the reconciles (status writes included, the fake Job controller
  not), and, less diluted by the API server's own time, this process's CPU time over the
  drive (every thread: span export included). "On" is what a cluster does:
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, so a BatchSpanProcessor with the OTLP/HTTP exporter and
  an OTLP metric reader, sending to a loopback receiver in another process
  (``tests/support/otlp_receiver.py``), whose spans are counted;
- trainer: ``genesys_trainer.train.main`` (what a training Job runs) in this process, the GPT-2
  seed at the ``benchmarks.train_throughput`` scale (``nano``, 60 steps, no evaluation, no
  slowdown guard), timed end to end, with the trainer's own tokens/s; "on" is a training Job
  of a traced run: ``TRACEPARENT`` set, so its spans are kept in memory and written under its
  output at the end, where they are read back and counted.

Run: ``.venv/bin/python -m benchmarks.telemetry_overhead [--runs 2] [--designs 20]
[--repeats 3] [--steps 60] [--trainer-repeats 5] [--part both] [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks import operator_scale

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.03  # tracing may cost at most 3%
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # a parent's context


# ------------------------------------------------------------------------------- common


@dataclass
class Sample:
    """One timed repetition."""

    seconds: float  # the timed work
    detail: float = 0.0  # operator: p50 reconcile latency (s); trainer: tokens/s
    spans: dict[str, int] = field(default_factory=dict)  # recorded spans by name ("on")
    count: int = 1  # operator: reconciles
    cpu: float = 0.0  # operator: CPU seconds of this process for the whole drive


def verdict(ratio: float) -> str:
    """The overhead of a ratio on / off against the target."""
    overhead = ratio - 1
    met = "met" if overhead < TARGET else "NOT met"
    return f"overhead {overhead:+.1%}, target < {TARGET:.0%}: {met}"


def spans_line(spans: Mapping[str, int]) -> str:
    """Span counts by name, most first."""
    total = sum(spans.values())
    named = ", ".join(f"{count} {name}" for name, count in Counter(spans).most_common())
    return f"{total} spans ({named})" if total else "0 spans"


def interleave(
    repeats: int, once: Callable[[bool], Sample], *, label: str
) -> tuple[list[Sample], list[Sample]]:
    """``once(traced)`` off, on, off, on, ... ``repeats`` times each; (off, on)."""
    off: list[Sample] = []
    on: list[Sample] = []
    for index in range(repeats):
        for traced, samples in ((False, off), (True, on)):
            sample = once(traced)
            samples.append(sample)
            state = "on " if traced else "off"
            print(f"  [{label} {index + 1}/{repeats} {state}] {sample.seconds:.2f} s", flush=True)
    return off, on


def median(samples: list[Sample], attribute: str = "seconds") -> float:
    return float(statistics.median(getattr(sample, attribute) for sample in samples))


def listing(samples: list[Sample], attribute: str = "seconds") -> str:
    return " ".join(f"{getattr(sample, attribute):.2f}" for sample in samples)


# ----------------------------------------------------------------------------- operator


def serve_otlp(conn: Connection) -> None:
    """Child process: an OTLP/HTTP receiver; answers (and forgets) the span counts by name."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.otlp_receiver import otlp_receiver

    with otlp_receiver() as receiver:
        conn.send(receiver.endpoint)
        while conn.recv() != "stop":
            counts = Counter(span.name for span in receiver.spans())
            with receiver.received.lock:
                receiver.received.trace_requests.clear()
                receiver.received.metric_requests.clear()
            conn.send(dict(counts))


def reconcile_with_telemetry(body: Mapping[str, Any], **options: Any) -> Any:
    """The controller's reconcile in what ``reconcile_and_write`` adds: span and duration."""
    from genesys.controller.handlers import traced_reconcile
    from genesys.controller.reconcile import reconcile

    metadata = dict(body.get("metadata") or {})
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    return traced_reconcile(namespace, name, metadata, lambda: reconcile(body, **options))


@contextlib.contextmanager
def operator_tracing(traced: bool, endpoint: str) -> Iterator[None]:
    """Tracing as the operator sets it up from ``OTEL_*`` (on), or none (off); flushed after."""
    from genesys import telemetry

    telemetry.reset()
    if not traced:
        yield
        return
    os.environ[ENDPOINT] = endpoint  # the OTLP exporters read it there
    try:
        telemetry.configure(
            "genesys-operator",
            environ={ENDPOINT: endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        )
        assert telemetry.current().tracing
        yield
    finally:
        telemetry.reset()  # flushes the spans and metrics
        os.environ.pop(ENDPOINT, None)


def operator_once(
    traced: bool, runs: int, designs: int, parallel: int, receiver: Connection, endpoint: str
) -> Sample:
    """One operator_scale drive on a fresh Kubernetes API and S3; the time in reconciles."""
    args = argparse.Namespace(runs=runs, designs=designs, parallel=parallel)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=operator_scale.serve, args=(child,)
    )
    server.start()
    kube_url, s3_url = parent.recv()
    latencies: list[float] = []
    try:
        with operator_tracing(traced, endpoint):
            cpu = time.process_time()  # set-up done: from here on, per-span work
            operator_scale.measure(
                args,
                kube_url,
                s3_url,
                parent,
                reconcile_fn=reconcile_with_telemetry,
                latencies=latencies,
            )
        cpu = time.process_time() - cpu  # every thread, the final export included
    finally:
        parent.send("stop")
        server.join(timeout=30)
    receiver.send("count")
    spans: dict[str, int] = receiver.recv()
    if traced and not spans.get("genesys.reconcile"):
        raise SystemExit("tracing was on but the receiver got no genesys.reconcile span")
    if not traced and spans:
        raise SystemExit(f"tracing was off but the receiver got {spans_line(spans)}")
    return Sample(sum(latencies), statistics.median(latencies), spans, len(latencies), cpu)


def operator_part(args: argparse.Namespace) -> list[str]:
    """Measure the operator's reconciles off and on; the report lines."""
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    receiver, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve_otlp, args=(child,))
    process.start()
    endpoint = str(receiver.recv())
    try:
        print("operator: warm-up (1 run x 2 designs, off and on)", flush=True)
        for traced in (False, True):
            operator_once(traced, 1, 2, args.parallel, receiver, endpoint)
        off, on = interleave(
            args.repeats,
            lambda traced: operator_once(
                traced, args.runs, args.designs, args.parallel, receiver, endpoint
            ),
            label="operator",
        )
    finally:
        receiver.send("stop")
        process.join(timeout=30)
    ratio, cpu = median(on) / median(off), median(on, "cpu") / median(off, "cpu")
    lines = [
        f"operator: {args.runs} runs x {args.designs} designs (parallel {args.parallel}), "
        f"{on[0].count} reconciles a drive, {args.repeats} drives each, interleaved off/on",
    ]
    for state, samples in (("off", off), ("on ", on)):
        lines.append(
            f"  {state}: {median(samples):6.2f} s in reconciles (p50 "
            f"{median(samples, 'detail') * 1000:.0f} ms), {median(samples, 'cpu'):6.2f} CPU s "
            f"for the drive; drives: {listing(samples)} s, CPU {listing(samples, 'cpu')} s"
        )
    return [
        *lines,
        f"  on: the OTLP receiver got {spans_line(on[0].spans)} a drive",
        f"  on / off, time in reconciles: {ratio:.3f}x ({verdict(ratio)})",
        f"  on / off, CPU of the drive:   {cpu:.3f}x ({verdict(cpu)})",
    ]


# ------------------------------------------------------------------------------ trainer


def count_spans(out: Path) -> dict[str, int]:
    """The spans the trainer wrote under its output (``spans.json``, or ``spans/*.json``)."""
    from genesys.telemetry.otlp_json import spans_from_json

    files = sorted(out.glob("spans*.json")) + sorted(out.glob("spans/*.json"))
    return dict(
        Counter(
            span.name
            for path in files
            for span in spans_from_json(path.read_text(encoding="utf-8"))
        )
    )


def trainer_once(traced: bool, data: Path, scratch: Path, rung: str, tokens: int) -> Sample:
    """One ``genesys train`` run in this process; its wall time and tokens/s."""
    import json

    from genesys import telemetry
    from genesys_trainer.train import main as train

    telemetry.reset()
    out = Path(tempfile.mkdtemp(dir=scratch))
    argv = ["--design", "gpt2", "--rung", rung, "--data", str(data), "--out", str(out)]
    argv += ["--tokens", str(tokens), "--no-eval", "--no-slowdown-guard"]
    if traced:
        os.environ["TRACEPARENT"] = TRACEPARENT
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = train(argv)
        seconds = time.perf_counter() - start
    finally:
        os.environ.pop("TRACEPARENT", None)
    if code != 0:
        raise SystemExit(f"the trainer exited with {code}")
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    spans = count_spans(out)
    if traced and not spans:
        raise SystemExit(f"TRACEPARENT was set but the trainer wrote no spans under {out}")
    if not traced and spans:
        raise SystemExit(f"TRACEPARENT was unset but the trainer wrote {spans_line(spans)}")
    return Sample(seconds, float(result["tokens_per_second"]), spans)


def trainer_part(args: argparse.Namespace) -> list[str]:
    """Measure the trainer off and on; the report lines."""
    import torch

    from genesys.api.presets import SCALE_PRESETS
    from genesys_trainer.data.prepare import prepare

    preset = SCALE_PRESETS[args.rung]
    tokens = args.steps * preset.batch_tokens  # as benchmarks.train_throughput
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        data = scratch / "data"
        prepare(source="builtin", tokenizer="byte", out=str(data), progress=False)
        print("trainer: warm-up (10 steps, off and on)", flush=True)
        for traced in (False, True):
            trainer_once(traced, data, scratch, args.rung, 10 * preset.batch_tokens)
        off, on = interleave(
            args.trainer_repeats,
            lambda traced: trainer_once(traced, data, scratch, args.rung, tokens),
            label="trainer",
        )
    ratio = median(on) / median(off)
    speed = median(off, "detail") / median(on, "detail")  # > 1: slower with tracing
    return [
        f"trainer: gpt2 at {args.rung}, {args.steps} steps of {preset.batch_tokens:,} tokens, "
        f"threads={torch.get_num_threads()}, {args.trainer_repeats} repetitions each, "
        "interleaved off/on",
        f"  off: {median(off):6.2f} s end to end, {median(off, 'detail'):9,.0f} tokens/s; "
        f"runs: {listing(off)} s",
        f"  on:  {median(on):6.2f} s end to end, {median(on, 'detail'):9,.0f} tokens/s; "
        f"runs: {listing(on)} s",
        f"  on: the trainer wrote {spans_line(on[0].spans)} under its output",
        f"  on / off, end to end: {ratio:.3f}x ({verdict(ratio)})",
        f"  off / on, tokens/s:   {speed:.3f}x ({verdict(speed)})",
    ]


# --------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.telemetry_overhead", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--part", choices=["both", "operator", "trainer"], default="both")
    parser.add_argument("--runs", type=int, default=2, help="operator: DiscoveryRuns")
    parser.add_argument("--designs", type=int, default=20, help="operator: designs per run")
    parser.add_argument("--parallel", type=int, default=16, help="operator: sessions per run")
    parser.add_argument("--repeats", type=int, default=3, help="operator: repetitions of each")
    parser.add_argument("--rung", default="nano", help="trainer: a CPU-sized preset")
    parser.add_argument("--steps", type=int, default=60, help="trainer: optimiser steps")
    parser.add_argument("--trainer-repeats", type=int, default=5, help="trainer: of each")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 run x 4 designs, 10 steps, 3 of each"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.designs, args.repeats = 1, 4, 3
        args.steps, args.trainer_repeats = 10, 3
    started = time.monotonic()
    lines = [
        "tracing overhead: off (no OTEL_* variable, the baseline) vs on, medians; "
        f"{os.cpu_count()} CPUs"
    ]
    if args.part in ("both", "operator"):
        lines += operator_part(args)
    if args.part in ("both", "trainer"):
        lines += trainer_part(args)
    lines.append(f"({time.monotonic() - started:.0f} s in all)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
