"""The report's plots: evolution tree, ladder funnel, fitness over time and leaderboard heatmap.

What must stay true:

- every function returns the bytes of one PNG and closes its figure, so no pyplot state outlives
  a call;
- the same inputs give the same bytes: the PNG carries no software version or date, and every
  collection is drawn in a sorted order;
- an archive with no designs, no fitness or no metrics still renders, with a "no data yet" note
  in the plot instead of an error;
- matplotlib runs on the non-interactive "Agg" backend, selected before pyplot is imported, so
  the plots render in pods and CI with no display;
- ids are drawn as plain text: a ``$`` in one never starts mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from genesys.report.leaderboard import SUCCEEDED, LeaderboardRow, finite_or_none, leaderboard_tasks
from genesys.store.archive import Archive, DesignRecord

# The backend must be chosen before pyplot is imported.
matplotlib.use("Agg")

import matplotlib.pyplot as plt

#: The colormap of fitness and metric values (perceptually uniform, readable in grey).
CMAP_NAME = "viridis"
#: The fill of a node that has no fitness yet.
NO_FITNESS_COLOUR = "#c8c8c8"
#: The bar colours of the ladder funnel.
SUCCEEDED_COLOUR = "#2a9d55"
FAILED_COLOUR = "#d1495b"
#: Rows in the leaderboard heatmap at most.
HEATMAP_ROWS = 15
#: The resolution of every PNG.
DPI = 100
#: The note drawn where a plot has nothing to show.
NO_DATA = "no data yet"


def _label(text: str) -> str:
    """``text`` as matplotlib draws it literally (a ``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    """The figure as PNG bytes, without metadata that varies between runs; closes the figure."""
    buffer = io.BytesIO()
    try:
        figure.savefig(
            buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None}
        )
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _empty(title: str, note: str) -> bytes:
    """A small figure with a title and an explanatory note in place of data."""
    figure, axes = plt.subplots(figsize=(6.0, 2.5))
    axes.set_title(title)
    axes.text(0.5, 0.5, note, ha="center", va="center", fontsize=12, color="#666666")
    axes.set_axis_off()
    return _png(figure)


def _note(axes: Axes, note: str) -> None:
    """An explanatory note in the middle of ``axes``."""
    axes.text(
        0.5,
        0.5,
        note,
        ha="center",
        va="center",
        fontsize=12,
        color="#666666",
        transform=axes.transAxes,
    )


def _norm(values: Sequence[float]) -> Normalize:
    """A colour scale over ``values`` that stays valid when they are all equal."""
    low, high = min(values), max(values)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return Normalize(vmin=low, vmax=high)


def _fitness_of(fitness: Mapping[str, float], design_id: str) -> float | None:
    return finite_or_none(fitness.get(design_id))


def generation_depths(archive: Archive) -> dict[str, int]:
    """Design id -> generation: 0 for seeds, one more than the deepest parent for the rest.

    A design with no parent in the archive is generation 0 too; parents outside the archive are
    ignored and a cycle is cut.
    """
    depths: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(record: DesignRecord) -> int:
        if record.id in depths:
            return depths[record.id]
        if record.is_seed or record.id in visiting:
            return 0
        visiting.add(record.id)
        parents = [archive.designs[p] for p in record.parents if p in archive.designs]
        value = 1 + max(depth(parent) for parent in parents) if parents else 0
        visiting.discard(record.id)
        depths[record.id] = value
        return value

    for record in archive.ordered():
        depths[record.id] = depth(record)
    return depths


def evolution_tree_png(archive: Archive, fitness: Mapping[str, float]) -> bytes:
    """The lineage of every design: x = creation order, y = generation, colour = fitness.

    Edges run from parent to child; a crossover's second parent is dashed. Seeds are squares,
    other designs circles, designs without fitness grey. Each node is labelled with its id.
    """
    title = "Evolution tree"
    records = archive.ordered()
    if not records:
        return _empty(title, f"{NO_DATA}: no designs")
    depths = generation_depths(archive)
    position = {record.id: (float(record.seq), float(depths[record.id])) for record in records}
    scores = {record.id: _fitness_of(fitness, record.id) for record in records}
    known = [score for score in scores.values() if score is not None]
    cmap: Colormap = plt.get_cmap(CMAP_NAME)
    norm = _norm(known) if known else Normalize(vmin=0.0, vmax=1.0)

    width = min(24.0, max(8.0, 0.75 * len(records)))
    height = min(10.0, max(3.5, 0.8 * (max(depths.values()) + 2)))
    figure, axes = plt.subplots(figsize=(width, height))
    axes.set_title(title)
    for record in records:
        for index, parent in enumerate(record.parents):
            if parent not in position:
                continue
            dashed = record.operator == "crossover" and index == 1
            axes.annotate(
                "",
                xy=position[record.id],
                xytext=position[parent],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "#777777",
                    "linestyle": "--" if dashed else "-",
                    "linewidth": 1.0,
                    "shrinkA": 7.0,
                    "shrinkB": 7.0,
                },
                zorder=1,
            )
    for seeds, marker in ((True, "s"), (False, "o")):
        group = [record for record in records if record.is_seed == seeds]
        if not group:
            continue
        colours = [
            cmap(norm(score)) if (score := scores[record.id]) is not None else NO_FITNESS_COLOUR
            for record in group
        ]
        axes.scatter(
            [position[record.id][0] for record in group],
            [position[record.id][1] for record in group],
            c=colours,
            marker=marker,
            s=140,
            edgecolors="#333333",
            linewidths=0.8,
            zorder=2,
        )
    for record in records:
        axes.annotate(
            _label(record.id),
            position[record.id],
            textcoords="offset points",
            xytext=(-3, 8),
            ha="left",
            va="bottom",
            fontsize=7,
            rotation=30,
            zorder=3,
        )
    axes.set_xlabel("creation order (seq)")
    axes.set_ylabel("generation")
    axes.set_yticks(range(max(depths.values()) + 1))
    axes.set_ylim(-0.6, max(depths.values()) + 0.9)
    axes.grid(axis="y", color="#eeeeee", zorder=0)
    legend = [
        Line2D([], [], marker="s", linestyle="", color="#888888", label="seed"),
        Line2D([], [], marker="o", linestyle="", color="#888888", label="design"),
        Line2D([], [], linestyle="--", color="#777777", label="second parent (crossover)"),
    ]
    axes.legend(handles=legend, loc="upper left", fontsize=8, framealpha=0.8)
    if known:
        figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="fitness")
    else:
        axes.text(
            0.99,
            0.02,
            f"{NO_DATA}: no fitness",
            ha="right",
            va="bottom",
            fontsize=9,
            color="#666666",
            transform=axes.transAxes,
        )
    return _png(figure)


def _funnel_counts(
    archive: Archive, rungs: Sequence[str]
) -> tuple[list[int], list[int], list[int]]:
    """Per rung: verifications that succeeded, that failed, and the seeds' at the lowest rung."""
    succeeded = [0] * len(rungs)
    failed = [0] * len(rungs)
    seeds = [0] * len(rungs)
    for record in archive.designs.values():
        for index, rung in enumerate(rungs):
            verification = record.verifications.get(rung)
            if verification is None:
                continue
            if record.is_seed and index == 0:
                seeds[index] += 1
            elif verification.status == SUCCEEDED:
                succeeded[index] += 1
            else:
                failed[index] += 1
    return succeeded, failed, seeds


def _funnel_label(done: int, limit: int | None, seeds: int) -> str:
    """``done/limit`` (or ``done (no budget)``), plus the seeds outside the budget."""
    text = f"{done}/{limit}" if limit is not None else f"{done} (no budget)"
    if seeds:
        text += f" + {seeds} seeds"
    return text


def ladder_funnel_png(
    archive: Archive, rung_order: Sequence[str], budgets: Mapping[str, int]
) -> bytes:
    """Designs verified per rung (succeeded and failed, stacked) against each rung's budget.

    The lowest rung is at the top. Rungs that appear in verifications but not in
    ``rung_order`` follow it, sorted by name. The seeds' verifications at the lowest rung are
    outside its budget (they are the reference), so they are drawn apart, in grey.
    """
    title = "Ladder funnel"
    seen = {rung for record in archive.designs.values() for rung in record.verifications}
    rungs = list(rung_order) + sorted(seen - set(rung_order))
    if not rungs:
        return _empty(title, f"{NO_DATA}: no rungs")
    succeeded, failed, seeds = _funnel_counts(archive, rungs)
    limits = [budgets.get(rung) for rung in rungs]

    figure, axes = plt.subplots(figsize=(8.0, max(2.5, 0.7 * len(rungs) + 1.2)))
    axes.set_title(title)
    y = np.arange(len(rungs))
    budget_widths = [limit if limit is not None else 0 for limit in limits]
    axes.barh(
        y,
        budget_widths,
        height=0.7,
        color="none",
        edgecolor="#444444",
        linestyle="--",
        label="budget",
        zorder=1,
    )
    axes.barh(y, succeeded, height=0.5, color=SUCCEEDED_COLOUR, label="succeeded", zorder=2)
    axes.barh(y, failed, height=0.5, left=succeeded, color=FAILED_COLOUR, label="failed", zorder=2)
    if any(seeds):
        lefts = [s + f for s, f in zip(succeeded, failed, strict=True)]
        axes.barh(
            y,
            seeds,
            height=0.5,
            left=lefts,
            color="#bbbbbb",
            zorder=2,
            label="seeds (outside the budget)",
        )
    totals = [s + f + e for s, f, e in zip(succeeded, failed, seeds, strict=True)]
    widest = max([*budget_widths, *totals, 1])
    for index in range(len(rungs)):
        axes.text(
            max(totals[index], budget_widths[index]) + widest * 0.01,
            index,
            _funnel_label(succeeded[index] + failed[index], limits[index], seeds[index]),
            va="center",
            fontsize=9,
        )
    axes.set_yticks(y, [_label(rung) for rung in rungs])
    axes.invert_yaxis()
    axes.set_xlim(0, widest * 1.2)
    axes.set_xlabel("designs verified")
    axes.legend(loc="lower right", fontsize=8)
    if not any(succeeded) and not any(failed):
        _note(axes, f"{NO_DATA}: no verifications")
    return _png(figure)


def fitness_over_time_png(archive: Archive, fitness: Mapping[str, float]) -> bytes:
    """Fitness of each design against its creation order, with the best so far as a step line."""
    title = "Fitness over time"
    points = [
        (record.seq, score, record)
        for record in archive.ordered()
        if (score := _fitness_of(fitness, record.id)) is not None
    ]
    if not points:
        note = "no designs" if not archive.designs else "no fitness"
        return _empty(title, f"{NO_DATA}: {note}")
    figure, axes = plt.subplots(figsize=(8.0, 4.0))
    axes.set_title(title)
    operators = sorted({record.operator for _, _, record in points})
    markers = {"seed": "s", "mutation": "o", "crossover": "D", "scratch": "^"}
    for operator in operators:
        group = [(seq, score) for seq, score, record in points if record.operator == operator]
        axes.scatter(
            [seq for seq, _ in group],
            [score for _, score in group],
            label=_label(operator),
            marker=markers.get(operator, "o"),
            s=40,
            alpha=0.85,
            zorder=2,
        )
    best: list[float] = []
    for _, score, _ in points:
        best.append(score if not best else max(best[-1], score))
    axes.step(
        [seq for seq, _, _ in points],
        best,
        where="post",
        color="#222222",
        linewidth=1.5,
        label="best so far",
        zorder=1,
    )
    axes.set_xlabel("creation order (seq)")
    axes.set_ylabel("fitness")
    axes.grid(color="#eeeeee", zorder=0)
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def leaderboard_png(rows: Sequence[LeaderboardRow]) -> bytes:
    """A heatmap of the top designs (at most 15, in the given order) by task, values annotated."""
    title = "Leaderboard"
    top = list(rows[:HEATMAP_ROWS])
    tasks = leaderboard_tasks(top)
    if not top or not tasks:
        note = "no designs" if not top else "no task metrics"
        return _empty(title, f"{NO_DATA}: {note}")
    values = np.array(
        [[row.metrics.get(task, np.nan) for task in tasks] for row in top], dtype=float
    )
    masked = np.ma.masked_invalid(values)
    norm = _norm([float(value) for value in values[np.isfinite(values)]])
    cmap = plt.get_cmap(CMAP_NAME).with_extremes(bad="#eeeeee")

    width = min(20.0, max(6.0, 1.3 * len(tasks) + 4.0))
    figure, axes = plt.subplots(figsize=(width, max(2.5, 0.42 * len(top) + 1.5)))
    axes.set_title(title)
    image = axes.imshow(masked, cmap=cmap, norm=norm, aspect="auto")
    for i, row in enumerate(top):
        for j, task in enumerate(tasks):
            value = row.metrics.get(task)
            if value is None:
                axes.text(j, i, "-", ha="center", va="center", fontsize=8, color="#666666")
                continue
            red, green, blue, _ = cmap(norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            axes.text(
                j,
                i,
                f"{value:.3f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    axes.set_xticks(range(len(tasks)), [_label(task) for task in tasks], rotation=30, ha="right")
    axes.set_yticks(range(len(top)), [_label(f"{row.rank}. {row.id}") for row in top])
    figure.colorbar(image, ax=axes, label="acc_norm (else acc)")
    return _png(figure)


__all__ = [
    "NO_DATA",
    "evolution_tree_png",
    "fitness_over_time_png",
    "generation_depths",
    "ladder_funnel_png",
    "leaderboard_png",
]
