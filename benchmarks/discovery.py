"""Does discovery beat the seeds? The quickstart run several times, its winners retrained.

For each of ``--runs`` runs (the spec with run seed ``spec.seed + i`` and its own name), this
benchmark

1. runs the discovery to the end (``genesys run``);
2. takes the best *discovered* design and the best *seed* by the run's fitness;
3. retrains both ``--retrains`` times at the top rung with fresh seeds (``genesys noise
   --seed-offset 1000``), so the winner's luck in selection, which picked it from many noisy
   trainings, is not counted;
4. prints the margin on validation loss (best seed's mean minus best discovered design's mean:
   positive when discovery won) and on each task (discovered minus seed), each with an interval
   of two standard errors of the difference, and whether the loss margin exceeds twice the
   pooled noise floor (the standard deviation of one training, from both sets of retrains).

The last line counts the wins. Everything it trains stays in ``--workdir`` (default: a new
temporary directory), so a rerun with the same directory resumes instead of retraining::

    .venv/bin/python -m benchmarks.discovery                      # 3 runs of the quickstart
    .venv/bin/python -m benchmarks.discovery --runs 1 --retrains 2 --workdir /tmp/disc
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genesys.api.validation import parse_discovery_run
from genesys.evolution.ranking import fitness
from genesys.report.headline import headline
from genesys.store.archive import load_archive
from genesys.store.base import open_store
from genesys.store.noise import NoiseFloor, pooled_std

REPO = Path(__file__).resolve().parents[1]
FRESH_SEEDS = 1000
QUICKSTART_BUDGET_SECONDS = 600
"""The quickstart's target: one whole run in 10 minutes or less on 2 idle cores."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric of the best discovered design against the best seed, over retrains."""

    metric: str
    discovered: list[float]
    seed: list[float]

    @property
    def margin(self) -> float:
        """Discovered minus seed for a score; seed minus discovered for the loss."""
        difference = statistics.fmean(self.discovered) - statistics.fmean(self.seed)
        return -difference if self.metric == "val_loss" else difference

    @property
    def interval(self) -> float:
        """Two standard errors of the difference of the two means."""
        return 2 * math.sqrt(
            sum(statistics.variance(v) / len(v) for v in (self.discovered, self.seed))
        )

    @property
    def noise_floor(self) -> float:
        """The pooled standard deviation of one training (both sets of retrains)."""
        floors = [
            NoiseFloor(design=name, rung="-", values={self.metric: values})
            for name, values in (("discovered", self.discovered), ("seed", self.seed))
        ]
        return pooled_std(floors, self.metric) or 0.0


def genesys(*args: str) -> list[str]:
    return [sys.executable, "-m", "genesys", *args]


def run_spec(base: dict[str, Any], index: int, workdir: Path) -> Path:
    """Write run ``index``'s spec: its own name and run seed."""
    document = json.loads(json.dumps(base))
    document["metadata"]["name"] = f"{base['metadata']['name']}-disc{index}"
    document["spec"]["seed"] = int(base["spec"].get("seed", 0)) + index
    path = workdir / f"run{index}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def retrain(spec: Path, workdir: Path, rung: str, design: str, repeats: int) -> dict[str, Any]:
    """``genesys noise`` of one design with fresh seeds; its record."""
    command = genesys(
        "noise", str(spec), "--rung", rung, "--design", design, "--repeats", str(repeats),
        "--seed-offset", str(FRESH_SEEDS), "--workdir", str(workdir), "--json",
    )  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"genesys noise failed for {design}:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout[done.stdout.index("{") :]))


def comparisons(discovered: dict[str, Any], seed: dict[str, Any]) -> list[Comparison]:
    """The loss and every task score both records have."""
    tasks = [m for m in discovered["values"] if m.endswith("/acc_norm") and m in seed["values"]]
    metrics = ["val_loss", *sorted(tasks)]
    return [Comparison(m, discovered["values"][m], seed["values"][m]) for m in metrics]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One benchmark run: its wall time, the two designs compared and the loss comparison."""

    name: str
    seconds: float
    discovered: str | None
    seed: str | None
    loss: Comparison | None

    @property
    def won(self) -> bool:
        """The loss margin exceeds twice the pooled noise floor."""
        return self.loss is not None and self.loss.margin > 2 * self.loss.noise_floor


def summary_table(outcomes: Sequence[RunOutcome]) -> list[str]:
    """A Markdown table of the runs: wall time, designs, loss margin, floor and verdict."""
    lines = [
        "| run | wall time | best discovered | best seed | loss margin ± 2 se | 2 x floor | win |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        loss = outcome.loss
        margin = f"{loss.margin:+.3f} ± {loss.interval:.3f}" if loss else "-"
        floor = f"{2 * loss.noise_floor:.3f}" if loss else "-"
        lines.append(
            f"| {outcome.name} | {outcome.seconds / 60:.1f} min | {outcome.discovered or '-'} | "
            f"{outcome.seed or '-'} | {margin} | {floor} | {'yes' if outcome.won else 'no'} |"
        )
    return lines


def one_run(base: dict[str, Any], index: int, workdir: Path, retrains: int) -> RunOutcome:
    """Run, retrain the two winners, print the comparison and return it."""
    spec = run_spec(base, index, workdir)
    run = parse_discovery_run(yaml.safe_load(spec.read_text(encoding="utf-8")))
    name = run.metadata.name
    print(f"\n== run {index}: {name} (seed {run.spec.seed})", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        genesys("run", str(spec), "--workdir", str(workdir)), cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"genesys run {name} failed ({done.returncode})")
    seconds = time.perf_counter() - started
    ratio = seconds / QUICKSTART_BUDGET_SECONDS
    print(f"run took {seconds:.0f} s: {ratio:.2f} x the {QUICKSTART_BUDGET_SECONDS} s budget")
    store = open_store(str(workdir / ".genesys" / "runs" / name))
    archive = load_archive(store, name)
    rungs = [r.name for r in run.spec.ladder.rungs]
    verdict = headline(archive, fitness(archive, run.spec.selection), rungs)
    print(f"run's headline: {verdict.text()}")
    if verdict.discovered is None or verdict.seed is None:
        print("no discovered design or no seed to compare: counted as no win")
        return RunOutcome(name, seconds, verdict.discovered, verdict.seed, None)
    top = rungs[-1]
    ours = retrain(spec, workdir, top, verdict.discovered, retrains)
    theirs = retrain(spec, workdir, top, verdict.seed, retrains)
    rows = comparisons(ours, theirs)
    print(f"retrained {retrains}x at {top}: {verdict.discovered} vs {verdict.seed}")
    print(f"{'metric':32s} {'margin':>8s} {'+-2se':>8s} {'floor':>8s}")
    for row in rows:
        print(f"{row.metric:32s} {row.margin:+8.4f} {row.interval:8.4f} {row.noise_floor:8.4f}")
    outcome = RunOutcome(name, seconds, verdict.discovered, verdict.seed, rows[0])
    print(f"win (loss margin > 2 x noise floor {2 * rows[0].noise_floor:.4f}): {outcome.won}")
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "examples" / "quickstart.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--retrains", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    if args.retrains < 2:
        parser.error("--retrains must be at least 2 (an interval needs two values)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="genesys-discovery-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(Path(args.spec).read_text(encoding="utf-8"))
    print(f"discovery benchmark: {args.runs} run(s) of {args.spec} in {workdir}")
    outcomes = [one_run(base, index, workdir, args.retrains) for index in range(args.runs)]
    print()
    print("\n".join(summary_table(outcomes)))
    wins = sum(outcome.won for outcome in outcomes)
    print(f"\ndiscovered design beat the best seed beyond the noise floor in {wins}/{args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
