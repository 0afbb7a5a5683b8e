"""``genesys agent design``: run one design session, offline or with LLM agents.

This is the entry point agent pods and the local backend run::

    genesys agent design --store RUN_STORE_URI --config RUN_CONFIG_URI --session s0004 \
        --design-id d0004 --seq 9 --operator mutation --parents seed-gpt2 --seed 123

``--store`` is the run's own store (its prefix); ``--config`` the resolved run config
(:mod:`genesys.api.runconfig`), which says the session's flow (``offline``: genetic
programming without an LLM, :mod:`genesys.agents.offline`; ``gau`` / ``direct``: an LLM session,
:mod:`genesys.agents.session`), the lowest rung the design is checked at, the check settings
and the agents' settings. ``--mode`` overrides the flow (benchmarks compare flows on one run).

Exit status: 0 when the session recorded an outcome (a rejected design is a normal outcome), 2
on bad arguments or config, 1 on infrastructure failure (the store).

With ``GENESYS_SANDBOX=remote`` (an agent pod on a cluster) the checks run in the session's
check pod, at ``GENESYS_CHECK_SERVER``: the session waits for it to answer before it starts, and
tells it to stop once the session has recorded its outcome (not after an infrastructure failure,
exit 1: the Job's retried pod resumes the session and needs the check pod).

What must stay true: this process never executes design code (the sandbox does), and the API
key is read from the environment variable the config names, never from arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from genesys import telemetry
from genesys.agents import offline
from genesys.api.runconfig import RunConfig
from genesys.sandbox.boundary import (
    CHECK_SERVER_VAR,
    Boundary,
    SandboxUnavailableError,
    requested_boundary,
    resolve_boundary,
)
from genesys.store.archive import session_key
from genesys.store.base import Store, open_store
from genesys.store.configs import read_run_config
from genesys.store.documents import SessionOutcome, create_document, read_document

MODES = ("offline", "gau", "direct")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genesys agent design",
        description="Run one design session of a run, as its run config says.",
    )
    parser.add_argument("--store", required=True, help="the run's store: a path or s3:// URI")
    parser.add_argument("--config", required=True, help="the run config's URI")
    parser.add_argument("--session", required=True, help="session id, e.g. s0004")
    parser.add_argument("--design-id", required=True, help="id of the design it may add")
    parser.add_argument("--seq", type=int, required=True, help="sequence number of the design")
    parser.add_argument("--operator", required=True, choices=sorted(offline.OPERATORS))
    parser.add_argument("--parents", default="", help="comma-separated parent design ids")
    parser.add_argument("--seed", type=int, required=True, help="seed of the session's draws")
    parser.add_argument("--mode", choices=MODES, default=None, help="override the flow")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry (see the module docstring for exit statuses)."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    parents = [p.strip() for p in args.parents.split(",") if p.strip()]
    if offline.OPERATORS[args.operator] != len(parents):
        print(
            f"error: {args.operator} takes {offline.OPERATORS[args.operator]} parent(s), "
            f"got {len(parents)}",
            file=sys.stderr,
        )
        return 2
    try:
        config = read_run_config(args.config)
    except (ValueError, OSError) as exc:
        print(f"error: --config: {exc}", file=sys.stderr)
        return 2
    store = open_store(args.store)
    try:
        boundary = resolve_boundary(requested_boundary())
        if boundary is Boundary.REMOTE:  # the session's check pod: wait until it answers
            from genesys.sandbox.remote import ensure_server

            ensure_server()
    except SandboxUnavailableError as exc:  # refuse before any design is written
        reason = f"design checks cannot run: {exc}"
        print(f"error: {reason}", file=sys.stderr)
        create_document(
            store, session_key(args.session), SessionOutcome(status="failed", reason=reason)
        )
        return 1
    status = traced_session(args, parents, config, store)
    # once the outcome is recorded the check pod is of no more use; after an infrastructure
    # failure (1) the Job's retried pod resumes the session and still needs it
    if boundary is Boundary.REMOTE and status != 1:
        from genesys.sandbox.remote import shutdown_server

        shutdown_server(os.environ[CHECK_SERVER_VAR])
    return status


def traced_session(
    args: argparse.Namespace, parents: list[str], config: RunConfig, store: Store
) -> int:
    """:func:`run_session` in a ``genesys.session`` span, continuing the trace it was handed.

    Spans go where the ``OTEL_*`` variables (or ``GENESYS_TRACE_FILE``) say; a telemetry
    setting this process cannot honour is reported and the session runs untraced.
    """
    try:
        telemetry.configure(
            "genesys-agent",
            trace_file=os.environ.get("GENESYS_TRACE_FILE") or None,
            environ={**os.environ, "OTEL_METRICS_EXPORTER": "none"},  # the operator counts
        )
    except (telemetry.TelemetryConfigError, OSError) as exc:
        print(f"warning: telemetry off: {exc}", file=sys.stderr)
    attributes = {
        "genesys.session.id": args.session,
        "genesys.design.id": args.design_id,
        "genesys.design.operator": args.operator,
        "genesys.design.parents": parents,
        "genesys.flow": args.mode or config.session_flow,
    }
    try:
        with telemetry.span(
            "genesys.session", attributes, context=telemetry.context_from_env()
        ) as span:
            status = run_session(args, parents, config, store)
            span.set_attribute("genesys.session.status", _outcome_status(store, args.session))
            return status
    finally:
        telemetry.reset()  # flush before the process ends


def _outcome_status(store: Store, session: str) -> str:
    """The recorded outcome's status, or ``none`` when there is none."""
    try:
        outcome = read_document(store, session_key(session), SessionOutcome)
    except (OSError, ValueError):
        return "unreadable"
    return outcome.status if outcome is not None else "none"


def run_session(
    args: argparse.Namespace, parents: list[str], config: RunConfig, store: Store
) -> int:
    """The session itself, once its checks can run; the exit status."""
    flow = args.mode or config.session_flow
    try:
        if flow == "offline":
            outcome = offline.run_offline_session(
                store=store,
                session=args.session,
                design_id=args.design_id,
                seq=args.seq,
                operator=args.operator,
                parent_ids=parents,
                seed=args.seed,
                rung=config.lowest,
                checks=config.checks,
            )
        else:
            from genesys.agents.session import SessionSettings, run_llm_session

            outcome = run_llm_session(
                store=store,
                session=args.session,
                design_id=args.design_id,
                seq=args.seq,
                operator=args.operator,
                parent_ids=parents,
                seed=args.seed,
                settings=SessionSettings.from_config(config),
                flow=flow,
                progress=None if args.quiet else _progress,
            )
    except OSError as exc:  # the store is unreachable: infrastructure failure
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outcome))
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = ["MODES", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
