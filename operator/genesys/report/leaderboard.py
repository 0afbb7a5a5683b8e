"""The leaderboard of a run: designs ranked by fitness, with their highest rung and task metrics.

What must stay true:

- the leaderboard is a pure function of (archive, fitness, rung order): the same inputs give the
  same rows in the same order, and nothing is read from anywhere else;
- rows are ranked by fitness, highest first; designs without a (finite) fitness come last, and
  ties are broken by creation order (``seq``, then id), so ranks are 1, 2, 3, ... with no gaps;
- a row's highest rung, validation loss and task metrics come only from verifications whose
  status is ``succeeded``: a failed or crashed run never scores;
- a quarantined design (:mod:`genesys.store.quarantine`: its training saw the future) has no
  fitness whatever the fitness map says, ranks after every other design and carries its reason,
  so it can never read as a winner;
- a task's metric is ``acc_norm`` where the evaluation reports it, else ``acc``, averaged over
  the rungs the design verified successfully.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from genesys.store.archive import Archive, DesignRecord
from genesys.store.quarantine import QUARANTINED

#: The status of a verification that passed (see :class:`genesys.store.archive.Verification`).
SUCCEEDED = "succeeded"

#: The design every other design is compared with: the GPT-2 seed.
REFERENCE_ID = "seed-gpt2"

#: How many task columns the terminal table shows at most.
TEXT_TASK_COLUMNS = 4


@dataclass(slots=True)
class LeaderboardRow:
    """One design on the leaderboard."""

    rank: int  # 1-based position in the leaderboard
    id: str
    title: str
    operator: str  # seed | mutation | crossover | scratch
    parents: list[str]  # design ids, first parent first
    fitness: float | None  # None: not scored (yet)
    highest_rung: str | None  # highest rung (by the ladder's order) that succeeded
    val_loss: float | None  # the validation loss at highest_rung
    metrics: dict[str, float]  # task -> acc_norm (else acc), mean over succeeded rungs
    quarantine: str | None = None  # why the design may never score; None for the others


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None where it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def task_score(values: Mapping[str, float]) -> float | None:
    """The score of one task's results: ``acc_norm`` where present, else ``acc``."""
    for key in ("acc_norm", "acc"):
        if key in values:
            score = finite_or_none(values[key])
            if score is not None:
                return score
    return None


def design_metrics(record: DesignRecord) -> dict[str, float]:
    """Task -> score, averaged over the design's succeeded verifications (tasks sorted)."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _, verification in sorted(record.verifications.items()):
        if verification.status != SUCCEEDED:
            continue
        for task, values in sorted(verification.metrics.items()):
            score = task_score(values)
            if score is None:
                continue
            totals[task] = totals.get(task, 0.0) + score
            counts[task] = counts.get(task, 0) + 1
    return {task: totals[task] / counts[task] for task in sorted(totals)}


def highest_rung(record: DesignRecord, rung_order: Sequence[str]) -> str | None:
    """The highest rung of ``rung_order`` (lowest first) at which ``record`` succeeded."""
    for rung in reversed(rung_order):
        verification = record.verifications.get(rung)
        if verification is not None and verification.status == SUCCEEDED:
            return rung
    return None


def leaderboard(
    archive: Archive, fitness: Mapping[str, float], rung_order: Sequence[str]
) -> list[LeaderboardRow]:
    """Every design of ``archive`` as a ranked row, best fitness first.

    ``fitness`` maps design ids to fitness (higher is better); ids it lacks, or whose value is
    not finite, rank last in creation order, and quarantined designs after them. ``rung_order``
    lists the ladder's rungs, lowest first.
    """

    def score_of(record: DesignRecord) -> float | None:
        return None if record.quarantine is not None else finite_or_none(fitness.get(record.id))

    def order(record: DesignRecord) -> tuple[bool, bool, float, int, str]:
        score = score_of(record)
        return (
            record.quarantine is not None,
            score is None,
            -score if score is not None else 0.0,
            record.seq,
            record.id,
        )

    rows: list[LeaderboardRow] = []
    for rank, record in enumerate(sorted(archive.designs.values(), key=order), start=1):
        top = highest_rung(record, rung_order)
        rows.append(
            LeaderboardRow(
                rank=rank,
                id=record.id,
                title=record.title,
                operator=record.operator,
                parents=list(record.parents),
                fitness=score_of(record),
                highest_rung=top,
                val_loss=finite_or_none(record.verifications[top].val_loss) if top else None,
                metrics=design_metrics(record),
                quarantine=record.quarantine,
            )
        )
    return rows


def margin_over(rows: Sequence[LeaderboardRow], reference_id: str) -> float | None:
    """The best fitness among the other designs minus the fitness of ``reference_id``.

    ``reference_id`` is usually :data:`REFERENCE_ID`, the GPT-2 seed. Positive means some design
    beats the reference. None when the reference is missing or has
    no fitness, or when no other design has one.
    """
    reference = next((row for row in rows if row.id == reference_id), None)
    if reference is None or reference.fitness is None:
        return None
    others = [row.fitness for row in rows if row.id != reference_id and row.fitness is not None]
    if not others:
        return None
    return max(others) - reference.fitness


def leaderboard_tasks(rows: Sequence[LeaderboardRow]) -> list[str]:
    """Every task that some row has a metric for, sorted by name."""
    return sorted({task for row in rows for task in row.metrics})


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or ``-`` where it is missing."""
    return "-" if value is None else f"{value:.{digits}f}"


def render_text(rows: Sequence[LeaderboardRow], *, limit: int = 15) -> str:
    """An aligned plain-text table of the first ``limit`` rows, for the terminal.

    Columns: rank, id, operator, fitness (3 decimals), highest rung, validation loss and up to
    four task metrics (the first tasks by name). Missing values read ``-``; a quarantined
    design's fitness reads ``quarantined``, and every quarantined design of ``rows`` (shown or
    not) is listed with its reason after the table.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not rows:
        return "no designs yet"
    shown = list(rows[:limit])
    tasks = leaderboard_tasks(shown)[:TEXT_TASK_COLUMNS]
    header = ["#", "id", "operator", "fitness", "rung", "val loss", *tasks]
    right = [True, False, False, True, False, True, *([True] * len(tasks))]
    table = [header]
    for row in shown:
        table.append(
            [
                str(row.rank),
                row.id,
                row.operator,
                QUARANTINED if row.quarantine is not None else format_number(row.fitness),
                row.highest_rung or "-",
                format_number(row.val_loss),
                *(format_number(row.metrics.get(task)) for task in tasks),
            ]
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip()

    lines = [line(header), "  ".join("-" * width for width in widths)]
    lines.extend(line(cells) for cells in table[1:])
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more")
    lines.extend(
        f"{QUARANTINED} {row.id}: {row.quarantine}" for row in rows if row.quarantine is not None
    )
    return "\n".join(lines)


__all__ = [
    "REFERENCE_ID",
    "SUCCEEDED",
    "LeaderboardRow",
    "design_metrics",
    "finite_or_none",
    "format_number",
    "highest_rung",
    "leaderboard",
    "leaderboard_tasks",
    "margin_over",
    "render_text",
    "task_score",
]
