"""``genesys agent design``: run one design session, offline or with LLM agents.

This is the entry point agent pods and the local backend run. ``--mode`` picks the session:

- ``offline``: genetic programming without an LLM (:mod:`genesys.agents.offline`; its own
  arguments follow);
- ``gau`` / ``direct``: an LLM session (:mod:`genesys.agents.session`) with the unit-by-unit
  flow or the direct-prompt baseline. The DiscoveryRun spec is read from ``--spec`` (YAML or
  JSON) or else from the store's ``runs/<run>/spec.json``, which ``genesys run`` writes.
- ``llm``: an LLM session with the flow the spec names (``spec.sessions.flow``).

Exit status: 0 when the session recorded an outcome (a rejected design is a normal outcome), 2
on bad arguments or spec, 1 on infrastructure failure (the store).

What must stay true: this process never executes design code (the sandbox does), and the API
key is read from the environment variable the spec names, never from arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from genesys.agents import offline
from genesys.api.discoveryrun import DiscoveryRun
from genesys.sandbox.runner import SandboxLimits
from genesys.store.archive import run_prefix
from genesys.store.base import Store, open_store

MODES = ("offline", "llm", "gau", "direct")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genesys agent design",
        description="Run one LLM design session (modes llm, gau, direct); mode offline takes "
        "the offline proposer's arguments (see --mode offline --help).",
    )
    parser.add_argument("--store", required=True, help="store URI: a path or s3://bucket/prefix")
    parser.add_argument("--run", required=True, help="DiscoveryRun name")
    parser.add_argument("--session", required=True, help="session id, e.g. s0004")
    parser.add_argument("--design-id", required=True, help="id of the design it may add")
    parser.add_argument("--seq", type=int, required=True, help="sequence number of the design")
    parser.add_argument("--operator", required=True, choices=sorted(offline.OPERATORS))
    parser.add_argument("--parents", default="", help="comma-separated parent design ids")
    parser.add_argument("--seed", type=int, required=True, help="seed of the model draws")
    parser.add_argument(
        "--spec", default=None, help="DiscoveryRun YAML/JSON (default: the store's)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="sandbox wall-clock seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _mode(argv: list[str]) -> tuple[str, list[str]]:
    """The ``--mode`` value (default offline) and the remaining arguments."""
    rest, mode, index = [], "offline", 0
    while index < len(argv):
        item = argv[index]
        if item == "--mode" and index + 1 < len(argv):
            mode, index = argv[index + 1], index + 2
            continue
        if item.startswith("--mode="):
            mode = item.split("=", 1)[1]
        else:
            rest.append(item)
        index += 1
    return mode, rest


def load_run_spec(store: Store, run: str, path: str | None) -> DiscoveryRun:
    """The DiscoveryRun from ``path`` or the store; ValueError says what is wrong."""
    from genesys.api.yamlio import load_all

    if path is not None:
        documents = load_all(Path(path).read_text(encoding="utf-8"))
        runs = [d for d in documents if isinstance(d, dict) and d.get("kind") == "DiscoveryRun"]
        if len(runs) != 1:
            raise ValueError(f"{path} must hold exactly one DiscoveryRun")
        return DiscoveryRun.model_validate(runs[0])
    key = f"{run_prefix(run)}/spec.json"
    try:
        text = store.get_text(key)
    except KeyError:
        raise ValueError(f"no --spec given and the store has no {key}") from None
    return DiscoveryRun.model_validate(json.loads(text))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry (see the module docstring for exit statuses)."""
    mode, rest = _mode(list(sys.argv[1:] if argv is None else argv))
    if mode == "offline":
        return offline.main(rest)
    if mode not in MODES:
        print(f"error: --mode must be one of {', '.join(MODES)}, got {mode!r}", file=sys.stderr)
        return 2
    try:
        args = _parser().parse_args(rest)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    from pydantic import ValidationError

    from genesys.agents.session import SessionSettings, run_llm_session

    parents = [p.strip() for p in args.parents.split(",") if p.strip()]
    if offline.OPERATORS[args.operator] != len(parents):
        print(f"error: {args.operator} takes {offline.OPERATORS[args.operator]} parent(s), "
              f"got {len(parents)}", file=sys.stderr)  # fmt: skip
        return 2
    store = open_store(args.store)
    try:
        run = load_run_spec(store, args.run, args.spec)
        settings = SessionSettings.from_run(run)
    except (ValueError, ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.timeout:
        limits = settings.limits
        settings = SessionSettings(
            settings.agents, settings.sessions, settings.checks, settings.rung, settings.preset,
            settings.vocab_size, SandboxLimits(timeout_seconds=args.timeout,
                                               memory_bytes=limits.memory_bytes),
        )  # fmt: skip

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        outcome = run_llm_session(
            store=store, run=args.run, session=args.session, design_id=args.design_id,
            seq=args.seq, operator=args.operator, parent_ids=parents, seed=args.seed,
            settings=settings, flow=None if mode == "llm" else mode, progress=progress,
        )  # fmt: skip
    except OSError as exc:  # the store is unreachable: infrastructure failure
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outcome))
    return 0


__all__ = ["MODES", "load_run_spec", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
