"""The cost of the sandbox boundary: a full check of every seed, against a one-process baseline.

For each seed design, times a full check at a rung (default ``nano``) three ways, one after the
other so machine load hits all alike:

- ``baseline``: what the checker did before the boundary, as a lower bound: one plain child
  process (no bubblewrap, no second sandbox, no probes) running every in-process check;
- ``bubblewrap``: :func:`genesys.sandbox.runner.check_design` as shipped (two bubblewrap
  sandboxes, supervisors, the causality probes decided by the parent);
- ``unconfined``: the same in the explicit weaker mode (plain child processes).

Prints the median wall times and the ratio of bubblewrap to the baseline; the target is at most
1.5x. The baseline skips work the old checker did (its in-process causality check), so the ratio
overstates the cost.

Run: ``.venv/bin/python -m benchmarks.check_boundary [--rung nano] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from genesys.api.ladder import preset_rung
from genesys.sandbox.boundary import Boundary, bubblewrap_problem
from genesys.sandbox.runner import GIB, Sandbox, SandboxLimits, check_design, rung_request
from genesys_trainer.seeds import SEEDS, load_seed

LIMITS = SandboxLimits(timeout_seconds=900, memory_bytes=8 * GIB)


def baseline_check(document: dict[str, Any], rung: Any) -> bool:
    """One unconfined sandbox running every in-process check, no probes; True when it passed."""
    request = {
        "design": document,
        "rung": rung_request(rung),
        "settings": {},
        "role": "checks",
        "probes": {"model_seed": 0, "probes": []},
    }
    sandbox = Sandbox(request, LIMITS, Boundary.UNCONFINED)
    try:
        final = sandbox.wait({"final"}, time.monotonic() + LIMITS.timeout_seconds)
    finally:
        sandbox.close()
    return final is not None and final.report.passed


def timed(mode: str, document: dict[str, Any], rung: Any) -> float:
    """Wall seconds of one check in ``mode``; exits when the check does not pass."""
    start = time.perf_counter()
    if mode == "baseline":
        passed = baseline_check(document, rung)
    else:
        passed = check_design(document, rung=rung, limits=LIMITS, boundary=mode).passed
    seconds = time.perf_counter() - start
    if not passed:
        sys.exit(f"{document['name']} failed its check ({mode})")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rung", default="nano")
    parser.add_argument("--repeat", type=int, default=2, help="runs per seed and mode")
    args = parser.parse_args()
    problem = bubblewrap_problem()
    if problem is not None:
        sys.exit(f"bubblewrap cannot run here: {problem}")
    rung = preset_rung(args.rung, vocab_size=256)
    modes = ("baseline", "bubblewrap", "unconfined")
    print(f"full check at {args.rung}: median wall seconds of {args.repeat} runs")
    print(f"{'seed':<10}" + "".join(f"{m:>12}" for m in modes) + f"{'ratio':>8}")
    ratios = []
    for seed in SEEDS:
        document = load_seed(seed).to_json()
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode in modes:
                times[mode].append(timed(mode, document, rung))
        medians = {mode: statistics.median(values) for mode, values in times.items()}
        ratio = medians["bubblewrap"] / medians["baseline"]
        ratios.append(ratio)
        print(f"{seed:<10}" + "".join(f"{medians[m]:>12.2f}" for m in modes) + f"{ratio:>7.2f}x")
    worst = max(ratios)
    verdict = "within" if worst <= 1.5 else "ABOVE"
    print(f"worst ratio bubblewrap/baseline {worst:.2f}x: {verdict} the 1.5x target")


if __name__ == "__main__":
    main()
