"""One trace as an indented tree of spans, for ``genesys trace``.

Each line is a span: its name, its duration, the service that made it and its most telling
attributes (the ones :data:`SHOWN` lists, in that order), children below their parent in start
order. Spans whose parent is not in the file (a trace still being written) are shown as roots.

What must stay true: pure: spans in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

SHOWN = (
    "genesys.design.operator",
    "genesys.design.parents",
    "genesys.job.kind",
    "genesys.rung",
    "genesys.attempt",
    "genesys.session.status",
    "genesys.proposal.accepted",
    "genesys.implementation.passed",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "genesys.llm.cost_usd",
    "error.type",
    "genesys.checks.passed",
    "genesys.check.failed",
    "genesys.check.verdict",
    "genesys.check.message",
    "genesys.train.status",
    "genesys.train.tokens_per_second",
    "genesys.train.loss",
    "genesys.train.val_loss",
)


def _seconds(span: ReadableSpan) -> float:
    return ((span.end_time or 0) - (span.start_time or 0)) / 1e9


def _label(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    service = span.resource.attributes.get("service.name", "?")
    shown = []
    for key in SHOWN:
        if key in attributes:
            value = attributes[key]
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            shown.append(f"{key.rsplit('.', 1)[-1]}={text[:80]}")
    return f"{span.name}  {_seconds(span):.2f}s  [{service}]" + (
        "  " + " ".join(shown) if shown else ""
    )


def render_trace(spans: Sequence[ReadableSpan], trace_id: int) -> str:
    """The spans of ``trace_id`` as a tree ('' when there are none)."""
    mine = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    ids = {s.context.span_id for s in mine if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in mine:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, prefix: str) -> None:
        ordered = sorted(children.get(parent, []), key=lambda s: s.start_time or 0)
        for index, span in enumerate(ordered):
            last = index == len(ordered) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            lines.append(prefix + branch + _label(span))
            deeper = prefix if parent is None else prefix + ("   " if last else "│  ")
            walk(span.context.span_id if span.context else None, deeper)

    walk(None, "")
    return "\n".join(lines)


__all__ = ["SHOWN", "render_trace"]
