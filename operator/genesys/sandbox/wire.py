"""What crosses the sandbox's walls, and how each message is checked before it is believed.

Two messages, both size-capped and schema-validated by the side that reads them:

- **worker -> supervisor** (inside the sandbox): frames ``MAGIC | u64 json length | JSON |
  u64 blob length | blob``; first a ``probes`` frame (right after the design is fitted: the
  shape of every probe's hidden states in the blob, float32, row-major), then a ``final`` one.
  The JSON holds the worker's findings (the checks it ran next to the design code: claims, not
  proof). The supervisor hashes each (sample, position) itself.
- **supervisor -> parent**: JSON lines, each a :class:`SandboxReport` carrying the parent's
  nonce: ``probes`` (digests, so the parent can decide causality early), then ``final``. The
  supervisor is the only process in the sandbox that holds this pipe, and it never runs design
  code.

What must stay true: a message that is too large, truncated, malformed or of the wrong shape is
rejected with a reason (the check fails); nothing here executes anything it reads.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genesys.sandbox.report import Finding, Report, Status

MAGIC = b"GNSYSWR1"
MAX_WORKER_JSON = 16 * 1024 * 1024
MAX_WORKER_BLOB = 1024 * 1024 * 1024
MAX_REPORT_BYTES = 32 * 1024 * 1024
DIGEST_BYTES = 8
MAX_FINDINGS = 500

Text = Annotated[str, Field(max_length=8000)]


class WireError(ValueError):
    """A message that cannot be believed."""


class FindingModel(BaseModel):
    """One finding as sent over a pipe."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["pass", "warn", "fail"]
    message: Text
    unit: Annotated[str, Field(max_length=256)] | None = None
    line: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    hint: Text = ""


class ReportModel(BaseModel):
    """A report as sent over a pipe (``passed`` must agree with the findings)."""

    model_config = ConfigDict(extra="forbid")

    passed: bool
    checks: Annotated[list[FindingModel], Field(max_length=MAX_FINDINGS)]
    timings: dict[Annotated[str, Field(max_length=64)], float] = {}
    info: dict[str, Any] = {}

    def to_report(self) -> Report:
        """The report, after checking that ``passed`` tells the truth."""
        report = Report(
            [
                Finding(f.name, Status(f.status), f.message, f.unit, f.line, f.hint)
                for f in self.checks
            ],
            dict(self.timings),
            dict(self.info),
        )
        if report.passed != self.passed:
            raise WireError("the report's 'passed' disagrees with its findings")
        return report


class ProbeShape(BaseModel):
    """Where one probe's hidden states sit in the worker's blob."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=64)]
    rows: Annotated[int, Field(ge=1, le=100_000)]
    length: Annotated[int, Field(ge=1, le=1_000_000)]
    width: Annotated[int, Field(ge=1, le=1_000_000)]
    offset: Annotated[int, Field(ge=0)]


class WorkerResult(BaseModel):
    """The JSON part of a worker's frame: ``probes`` (once, with the blob), then ``final``."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["probes", "final"]
    report: ReportModel
    probes: Annotated[list[ProbeShape], Field(max_length=64)] = []
    fit: dict[str, int] | None = None


class SandboxReport(BaseModel):
    """One message of the supervisor to the parent: ``probes`` (digests), then ``final``."""

    model_config = ConfigDict(extra="forbid")

    nonce: Annotated[str, Field(min_length=16, max_length=128)]
    stage: Literal["probes", "final"]
    report: ReportModel
    digests: dict[str, list[list[str]]] = {}
    fit: dict[str, int] | None = None


def encode_frame(result: dict[str, Any], blob: bytes) -> bytes:
    """The worker's frame."""
    text = json.dumps(result).encode("utf-8")
    return MAGIC + struct.pack("<Q", len(text)) + text + struct.pack("<Q", len(blob)) + blob


def read_exact(stream: BinaryIO, size: int) -> bytes:
    """Exactly ``size`` bytes, or :class:`WireError` at a premature end."""
    chunks, missing = [], size
    while missing:
        chunk = stream.read(min(missing, 1 << 20))
        if not chunk:
            raise WireError("the worker's result frame is truncated")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> tuple[WorkerResult, bytes] | None:
    """The next frame of a worker, None at a clean end; :class:`WireError` when not believable."""
    magic = stream.read(len(MAGIC))
    if not magic:
        return None
    if magic != MAGIC:
        raise WireError("the worker sent something that is not a result frame")
    (text_length,) = struct.unpack("<Q", read_exact(stream, 8))
    if text_length > MAX_WORKER_JSON:
        raise WireError("the worker's result is too large")
    text = read_exact(stream, text_length)
    (blob_length,) = struct.unpack("<Q", read_exact(stream, 8))
    if blob_length > MAX_WORKER_BLOB:
        raise WireError("the worker's probe outputs are too large")
    blob = read_exact(stream, blob_length)
    try:
        result = WorkerResult.model_validate_json(text)
    except ValidationError as exc:
        raise WireError(f"the worker's result is malformed: {first_error(exc)}") from exc
    return result, blob


def first_error(exc: ValidationError) -> str:
    """The first validation error, short."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"[:300]


def hidden_digests(blob: bytes, shape: ProbeShape) -> list[list[str]]:
    """A digest of every (row, position) hidden state (``width`` float32 values)."""
    step = shape.width * 4
    end = shape.offset + shape.rows * shape.length * step
    if end > len(blob):
        raise WireError(f"probe {shape.name} lies outside the worker's blob")
    view = memoryview(blob)
    table = []
    for row in range(shape.rows):
        base = shape.offset + row * shape.length * step
        table.append(
            [
                hashlib.blake2b(
                    view[base + p * step : base + (p + 1) * step], digest_size=DIGEST_BYTES
                ).hexdigest()
                for p in range(shape.length)
            ]
        )
    return table


def parse_sandbox_report(data: bytes, nonce: str) -> SandboxReport:
    """One supervisor message (a JSON line), checked for size, schema and the nonce."""
    if not data.strip():
        raise WireError("no report came back")
    if len(data) > MAX_REPORT_BYTES:
        raise WireError(f"the report is larger than {MAX_REPORT_BYTES} bytes")
    try:
        report = SandboxReport.model_validate_json(data)
    except ValidationError as exc:
        raise WireError(f"the report is malformed: {first_error(exc)}") from exc
    if report.nonce != nonce:
        raise WireError("the report does not carry this check's nonce (forged)")
    return report


__all__ = [
    "MAX_REPORT_BYTES",
    "ProbeShape",
    "ReportModel",
    "SandboxReport",
    "WireError",
    "WorkerResult",
    "encode_frame",
    "hidden_digests",
    "parse_sandbox_report",
    "read_frame",
]
