"""The run report as one self-contained HTML page: summary, plots, leaderboard and rejections.

What must stay true:

- a quarantined design (its training saw the future, :mod:`genesys.store.quarantine`) reads
  ``quarantined`` in the leaderboard's fitness column and is listed with its reason in its own
  section; it is never the best design;
- the page is self-contained: CSS is inline and the four plots are embedded as
  ``data:image/png;base64`` images (alt texts "evolution tree", "ladder funnel", "fitness over
  time", "leaderboard"), so it opens from a bucket or a laptop with no network;
- the page is the Jinja2 template ``templates/report.html.j2`` rendered with autoescaping, so
  every piece of text that comes from the run (title, summary, ids, titles, reasons, task
  names) is escaped: agents write design titles and rejection reasons, and the page must never
  run what they wrote; nothing is marked safe;
- the same inputs give the same page, byte for byte (no timestamps; sorted orders);
- an empty archive, or one without fitness, still renders.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

from genesys.report.headline import Headline, headline
from genesys.report.leaderboard import (
    REFERENCE_ID,
    LeaderboardRow,
    format_number,
    leaderboard,
    leaderboard_tasks,
    margin_over,
)
from genesys.report.plots import (
    evolution_tree_png,
    fitness_over_time_png,
    ladder_funnel_png,
    leaderboard_png,
)
from genesys.store.archive import Archive
from genesys.store.noise import LOSS

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("genesys.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
LEADERBOARD_HEAD = ("Rank", "ID", "Title", "Operator", "Parents", "Fitness", "Highest rung")


def _image(png: bytes, alt: str) -> dict[str, str]:
    return {"data": base64.b64encode(png).decode("ascii"), "alt": alt}


def noise_text(floor: Mapping[str, float]) -> str:
    """The measured noise floor (standard deviations), or how to measure it."""
    if not floor:
        return "not measured (genesys noise SPEC --rung R --repeats N)"
    shown = sorted(floor.items(), key=lambda item: (item[0] != LOSS, item[0]))
    return ", ".join(f"{metric} {value:.4f}" for metric, value in shown)


def _summary(
    archive: Archive,
    rows: Sequence[LeaderboardRow],
    summary: Mapping[str, str] | None,
    verdict: Headline,
) -> list[tuple[str, str]]:
    """The run's own facts, then the caller's (a caller's key replaces a fact of that name)."""
    scored = [row for row in rows if row.fitness is not None]
    best = f"{scored[0].id} ({format_number(scored[0].fitness)})" if scored else "-"
    facts: dict[str, str] = {
        "run": archive.run,
        "headline": verdict.text(),
        "noise floor (std over seeds)": noise_text(archive.noise_floor()),
        "designs": str(len(archive.designs)),
        "scored designs": str(len(scored)),
        "quarantined designs": str(sum(1 for row in rows if row.quarantine is not None)),
        "rejections": str(len(archive.rejections)),
        "best design": best,
        f"fitness margin over {REFERENCE_ID}": format_number(margin_over(rows, REFERENCE_ID)),
    }
    for key, value in (summary or {}).items():
        facts[str(key)] = str(value)
    return list(facts.items())


def _trace_cell(trace_id: str | None, trace_url: str | None) -> dict[str, str] | None:
    """A design's trace: its id, and a link where a trace viewer's URL template is known."""
    if not trace_id:
        return None
    link = trace_url.replace("{trace_id}", trace_id) if trace_url else ""
    return {"id": trace_id, "link": link}


def _row_cells(
    row: LeaderboardRow,
    tasks: Sequence[str],
    traces: Mapping[str, str] | None = None,
    trace_url: str | None = None,
) -> dict[str, object]:
    """One leaderboard row as the text of its cells (numbers formatted, empties as ``-``)."""
    quarantined = row.quarantine is not None
    return {
        "trace": _trace_cell((traces or {}).get(row.id), trace_url),
        "rank": row.rank,
        "id": row.id,
        "title": row.title,
        "operator": row.operator,
        "parents": ", ".join(row.parents) or "-",
        "fitness": "quarantined" if quarantined else format_number(row.fitness),
        "highest_rung": row.highest_rung or "-",
        "val_loss": format_number(row.val_loss),
        "metrics": [format_number(row.metrics.get(task)) for task in tasks],
    }


def render_html(
    archive: Archive,
    fitness: Mapping[str, float],
    rung_order: Sequence[str],
    budgets: Mapping[str, int],
    *,
    title: str,
    summary: Mapping[str, str] | None = None,
    traces: Mapping[str, str] | None = None,
    trace_url: str | None = None,
) -> str:
    """The whole report of a run as one HTML document.

    ``fitness`` maps design ids to fitness (higher is better), ``rung_order`` lists the
    ladder's rungs lowest first and ``budgets`` the number of designs each rung may verify.
    ``summary`` adds key/value lines after the run's own facts. ``traces`` (design id to
    trace id) adds a trace column, its ids linked where ``trace_url`` (a URL with
    ``{trace_id}``, e.g. a Jaeger or Grafana Tempo address) is given.
    """
    rows = leaderboard(archive, fitness, rung_order)
    tasks = leaderboard_tasks(rows)
    images = [
        _image(evolution_tree_png(archive, fitness), "evolution tree"),
        _image(ladder_funnel_png(archive, rung_order, budgets), "ladder funnel"),
        _image(fitness_over_time_png(archive, fitness), "fitness over time"),
        _image(leaderboard_png(rows), "leaderboard"),
    ]
    return _TEMPLATES.get_template("report.html.j2").render(
        title=title,
        run=archive.run,
        summary=_summary(archive, rows, summary, headline(archive, fitness, rung_order)),
        images=images,
        head=[*LEADERBOARD_HEAD, "Val loss", *tasks, *(["Trace"] if traces else [])],
        rows=[_row_cells(row, tasks, traces, trace_url) for row in rows],
        traced=bool(traces),
        quarantined=[row for row in rows if row.quarantine is not None],
        rejections=sorted(archive.rejections, key=lambda item: item.id),
    )


def write_html(path: Path, html_text: str) -> None:
    """Write ``html_text`` to ``path`` (UTF-8), creating parent folders; the replace is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html_text, encoding="utf-8")
    os.replace(partial, path)


__all__ = ["render_html", "write_html"]
