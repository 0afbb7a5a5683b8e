"""The check report: what every checker returns, in the parent and in the sandboxed child.

JSON shape (``genesys check --json`` prints it)::

    {"passed": bool,
     "checks": [{"name", "status": "pass|warn|fail", "message", "unit", "line", "hint"}],
     "timings": {"<check>": seconds, ...},
     "info": {...}}          # measured figures: fitted shape, ratios, exponents, sandbox facts

What must stay true: ``passed`` is true exactly when no finding has status ``fail``; a report
always round-trips through JSON, so the child can send it over a pipe.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """Outcome of one finding."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one check: what, where (unit, line) and how to fix it."""

    name: str
    status: Status
    message: str
    unit: str | None = None
    line: int | None = None
    hint: str = ""

    def render(self) -> str:
        """One readable line."""
        where = ""
        if self.unit is not None:
            where = f" [{self.unit}" + (f":{self.line}" if self.line is not None else "") + "]"
        hint = f" -- hint: {self.hint}" if self.hint and self.status != Status.PASS else ""
        return f"{self.status.value.upper():<4} {self.name}{where}: {self.message}{hint}"


@dataclass(slots=True)
class Report:
    """Every finding of a check run, its timings and measured figures."""

    checks: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when nothing failed."""
        return not any(finding.status == Status.FAIL for finding in self.checks)

    def failed(self, name: str | None = None) -> list[Finding]:
        """Failing findings, optionally of one check."""
        return [
            f for f in self.checks if f.status == Status.FAIL and (name is None or f.name == name)
        ]

    def add(self, finding: Finding) -> None:
        """Append a finding."""
        self.checks.append(finding)

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "passed": self.passed,
            "checks": [{**asdict(f), "status": f.status.value} for f in self.checks],
            "timings": {name: round(value, 4) for name, value in self.timings.items()},
            "info": self.info,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Report:
        """Rebuild a report from its JSON document."""
        checks = [
            Finding(
                name=str(item["name"]),
                status=Status(item["status"]),
                message=str(item["message"]),
                unit=item.get("unit"),
                line=item.get("line"),
                hint=str(item.get("hint", "")),
            )
            for item in document.get("checks", [])
        ]
        return cls(checks, dict(document.get("timings", {})), dict(document.get("info", {})))

    def render(self) -> str:
        """Readable multi-line text."""
        lines = [finding.render() for finding in self.checks]
        total = self.timings.get("sandbox_total", sum(self.timings.values()))
        lines.append(f"{'PASSED' if self.passed else 'FAILED'} ({total:.1f}s of checks)")
        return "\n".join(lines)


__all__ = ["Finding", "Report", "Status"]
