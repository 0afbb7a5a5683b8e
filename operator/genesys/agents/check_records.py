"""Design checks as a session runs them: a traced call, and a record per run in the store.

:func:`traced_check` runs :func:`~genesys.sandbox.runner.check_design` inside a
``genesys.checks`` span, adds a child span per check (``genesys.check <name>``, with its verdict
and, where the report timed it, its duration), and writes ``sessions/<sid>/checks/<n>.json``
(n = 00001, 00002, ...)::

    {"design": "d0004", "passed": false, "verdicts": {"causality": "fail", ...},
     "seconds": 12.5, "at": 1767225600.0}

The operator counts checks by name and verdict from these records when the session ends
(``genesys.checks``).

What must stay true: a check's verdict per name is its worst finding (fail > warn > pass); a
record is written for every check run, passed or not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from genesys import telemetry
from genesys.sandbox.report import Report, Status
from genesys.sandbox.runner import check_design
from genesys.store.archive import session_key
from genesys.store.base import Store

_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def verdicts(report: Report) -> dict[str, str]:
    """Each check's verdict: its worst finding."""
    worst: dict[str, Status] = {}
    for finding in report.checks:
        seen = worst.get(finding.name)
        if seen is None or _SEVERITY[finding.status] > _SEVERITY[seen]:
            worst[finding.name] = finding.status
    return {name: status.value for name, status in worst.items()}


def checks_prefix(session: str) -> str:
    """Where a session's check records live."""
    return session_key(session).rsplit("/", 1)[0] + "/checks"


def record_check(store: Store, session: str, design_id: str, report: Report) -> str:
    """Write the next check record of ``session``; its key."""
    prefix = checks_prefix(session)
    number = len(list(store.list(prefix))) + 1
    key = f"{prefix}/{number:05d}.json"
    record = {
        "design": design_id,
        "passed": report.passed,
        "verdicts": verdicts(report),
        "seconds": round(float(report.timings.get("sandbox_total", 0.0)), 3),
        "at": time.time(),
    }
    store.put_text(key, json.dumps(record, indent=2) + "\n")
    return key


def _check_spans(report: Report, started_ns: int) -> None:
    """A child span per check, laid end to end from ``started_ns`` by the report's timings."""
    tracer = telemetry.current().tracer
    cursor = started_ns
    for name, verdict in verdicts(report).items():
        seconds = float(report.timings.get(name, 0.0))
        end = cursor + int(seconds * 1e9)
        messages = [f.message for f in report.checks if f.name == name and f.status != Status.PASS]
        attributes: dict[str, Any] = {"genesys.check.name": name, "genesys.check.verdict": verdict}
        if messages:
            attributes["genesys.check.message"] = messages[0][:500]
        span = tracer.start_span(f"genesys.check {name}", start_time=cursor, attributes=attributes)
        span.end(end_time=end)
        cursor = end


def traced_check(
    store: Store, session: str, design_id: str, document: Mapping[str, Any], **options: Any
) -> Report:
    """:func:`check_design` of ``document`` (``options`` are its keywords), traced and recorded."""
    started_ns = time.time_ns()
    with telemetry.span("genesys.checks", {"genesys.design.id": design_id}) as span:
        report = check_design(document, **options)
        failed = report.failed()
        span.set_attribute("genesys.checks.passed", report.passed)
        if failed:
            span.set_attribute("genesys.check.failed", failed[0].name)
        if span.is_recording():
            _check_spans(report, started_ns)
    record_check(store, session, design_id, report)
    return report


__all__ = ["checks_prefix", "record_check", "traced_check", "verdicts"]
