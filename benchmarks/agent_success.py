"""Design-generation success: the unit-by-unit GP flow against direct prompting, same proposals.

The paper's headline ablation (Genesys, "headline results"): genetic programming over unit
trees beat writing the whole block in one prompt by about 86 points of successful design
generation, a design counting as a success when it is implemented and passes every check
within 5 attempts.

This benchmark first has the proposer and reviewer write ``--n`` accepted mutation proposals
(parents cycle through the seeds). Each proposal is then implemented twice, from the same
accepted proposal: once with the ``gau`` flow and once with the ``direct`` flow, each with 5
attempts per unit, no failed round allowed and one implementation session (no retry). It
prints, per flow, the success rate, the mean coder attempts, and the USD per success, plus the
difference in points (GP minus direct), all measured in this run.

It needs a real OpenAI-compatible endpoint and is not run in CI::

    export OPENAI_API_KEY=...
    .venv/bin/python -m benchmarks.agent_success --endpoint https://api.openai.com/v1
        --model gpt-4o-mini --n 10 --price-in 0.15 --price-out 0.6   (one line)

Sessions, traces and check reports stay in ``--store`` (default: a new temporary directory)
for inspection.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genesys.agents.llm import LLMError
from genesys.agents.session import DesignSession, SessionSettings, run_llm_session
from genesys.api.discoveryrun import DiscoveryRun
from genesys.engine.plan import SEED_NAMES
from genesys.store.archive import design_key
from genesys.store.base import Store, open_store
from genesys.store.documents import SessionState, write_document
from genesys_trainer.seeds import load_seed

RUN = "agent-success"
ATTEMPTS = 5
ROLES = ("proposer", "reviewer", "planner", "coder", "observer")


def build_spec(args: argparse.Namespace) -> DiscoveryRun:
    """A DiscoveryRun for the benchmark's sessions (checks at the nano rung)."""
    prices = {}
    if args.price_in is not None or args.price_out is not None:
        prices[args.model] = {
            "inputPerMTokens": args.price_in or 0.0,
            "outputPerMTokens": args.price_out or 0.0,
        }
    document = {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": RUN},
        "spec": {
            "ladder": {"rungs": [{"name": "nano", "preset": "nano", "budget": 1}]},
            "sessions": {
                "searchRounds": args.search_rounds,
                "maxUnitAttempts": ATTEMPTS,
                "maxFailedRounds": 0,
                "maxImplementationSessions": 1,
            },
            "agents": {
                "offline": False,
                "baseUrl": args.endpoint,
                "apiKeyEnv": args.api_key_env,
                "models": {role: [{"model": args.model}] for role in ROLES},
                "prices": prices,
                "maxUsdPerSession": args.max_usd_per_session,
                "timeoutSeconds": args.timeout,
            },
            "checks": {"forwardLength": 256, "causalityLength": 48, "effectivenessSteps": 5},
            "verification": {
                "scheduler": "local",
                "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
            },
        },
    }
    return DiscoveryRun.model_validate(document)


def seed_store(store: Store) -> None:
    """Write the seed designs as ``seed-<name>``."""
    for seq, name in enumerate(SEED_NAMES):
        key = design_key(f"seed-{name}", "design.json")
        if not store.exists(key):
            document = load_seed(name).to_json()
            document["metadata"].update({"seq": seq, "operator": "seed", "parents": []})
            store.put_text(key, json.dumps(document))


def make_proposal(store: Store, settings: SessionSettings, index: int) -> dict[str, Any] | None:
    """An accepted mutation proposal (its session state), or None when none passed review."""
    parent = f"seed-{SEED_NAMES[index % len(SEED_NAMES)]}"
    session = DesignSession(
        store=store,
        session=f"p{index:04d}",
        design_id=f"p{index:04d}",
        seq=index,
        operator="mutation",
        parent_ids=[parent],
        seed=index,
        settings=settings,
    )
    try:
        session.accept_proposal()
    except (ValueError, LLMError) as exc:  # a budget cap or a failing endpoint: no proposal
        print(f"proposal {index + 1}: {exc}", file=sys.stderr)
    state = session.state
    return state.model_dump(mode="json") if state.proposal is not None else None


def implement(store: Store, settings: SessionSettings, proposal: dict[str, Any], flow: str) -> Any:
    """Implement an accepted proposal with ``flow`` in a fresh session; its outcome."""
    sid = f"{flow}-{proposal['session']}"
    key = f"sessions/{sid}/state.json"
    if not store.exists(key):
        copy = {**proposal, "session": sid, "design_id": f"d-{sid}", "flow": flow}
        state = SessionState.model_validate(copy).model_copy(
            update={"spent_usd": 0.0, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        )
        write_document(store, key, state)
    return run_llm_session(
        store=store,
        session=sid,
        design_id=f"d-{sid}",
        seq=proposal["seq"],
        operator="mutation",
        parent_ids=proposal["parents"],
        seed=proposal["seed"],
        settings=settings,
        flow=flow,
        implementation_limit=1,
    )


def summarise(outcomes: list[dict[str, Any]]) -> dict[str, float]:
    """Success rate, mean attempts and USD per success of one flow's outcomes."""
    successes = [o for o in outcomes if o["status"] == "implemented"]
    cost = sum(float(o["cost_usd"]) for o in outcomes)
    return {
        "n": len(outcomes),
        "successes": len(successes),
        "rate": len(successes) / len(outcomes) if outcomes else 0.0,
        "mean_attempts": sum(o["attempts"] for o in outcomes) / max(1, len(outcomes)),
        "usd_per_success": cost / len(successes) if successes else float("inf"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_success", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL")
    parser.add_argument("--model", required=True, help="model name for every role")
    parser.add_argument("--n", type=int, default=10, help="proposals (sessions per flow)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--price-in", type=float, default=None, help="USD per 1M prompt tokens")
    parser.add_argument("--price-out", type=float, default=None, help="USD per 1M output tokens")
    parser.add_argument("--max-usd-per-session", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per LLM call")
    parser.add_argument("--search-rounds", type=int, default=2)
    parser.add_argument("--store", default=None, help="store directory (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    store_dir = args.store or tempfile.mkdtemp(prefix="genesys-agent-success-")
    store = open_store(str(Path(store_dir).resolve()))
    settings = SessionSettings.from_run(build_spec(args))
    seed_store(store)
    print(f"store: {store_dir}", file=sys.stderr)
    proposals = []
    for index in range(args.n):
        state = make_proposal(store, settings, index)
        title = state["proposal"]["title"] if state else "not accepted"
        print(f"proposal {index + 1}/{args.n}: {title}", file=sys.stderr)
        if state is not None:
            proposals.append(state)
    if not proposals:
        print("no proposal passed the review; nothing to implement", file=sys.stderr)
        return 1
    results: dict[str, dict[str, float]] = {}
    for flow in ("gau", "direct"):
        outcomes = []
        for state in proposals:
            outcome = implement(store, settings, state, flow)
            print(
                f"{flow} {state['session']}: {outcome['status']} after "
                f"{outcome['attempts']} attempts",
                file=sys.stderr,
            )
            outcomes.append(outcome)
        results[flow] = summarise(outcomes)
    print(f"{'flow':<8}{'success':>10}{'rate':>8}{'attempts':>10}{'USD/success':>13}")
    for flow, row in results.items():
        print(
            f"{flow:<8}{row['successes']:>6}/{row['n']:<3}{row['rate']:>8.0%}"
            f"{row['mean_attempts']:>10.2f}{row['usd_per_success']:>13.4f}"
        )
    gap = 100 * (results["gau"]["rate"] - results["direct"]["rate"])
    print(f"GP minus direct: {gap:+.0f} points (paper: about +86) on {len(proposals)} proposals")
    if args.json:
        print(json.dumps({"results": results, "gap_points": gap, "proposals": len(proposals)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
