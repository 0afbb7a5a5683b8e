"""The run report as one self-contained HTML page: summary, plots, leaderboard and rejections.

What must stay true:

- a quarantined design (its training saw the future, :mod:`genesys.store.quarantine`) reads
  ``quarantined`` in the leaderboard's fitness column and is listed with its reason in its own
  section; it is never the best design;
- the page is self-contained: CSS is inline and the four plots are embedded as
  ``data:image/png;base64`` images (alt texts "evolution tree", "ladder funnel", "fitness over
  time", "leaderboard"), so it opens from a bucket or a laptop with no network;
- every piece of text that comes from the run (title, summary, ids, titles, reasons, task
  names) goes through :func:`html.escape`: agents write design titles and rejection reasons,
  and the page must never run what they wrote;
- the same inputs give the same page, byte for byte (no timestamps; sorted orders);
- an empty archive, or one without fitness, still renders.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

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
from genesys.store.archive import Archive, Rejection

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; background: #fff; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.run { color: #666; margin-top: 0; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
.empty { color: #666; font-style: italic; }
""".strip()


def _e(text: object) -> str:
    """``text`` as escaped HTML (quotes included)."""
    return escape(str(text), quote=True)


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{_e(alt)}</figcaption></figure>"
    )


def _summary(
    archive: Archive,
    rows: Sequence[LeaderboardRow],
    summary: Mapping[str, str] | None,
) -> list[tuple[str, str]]:
    """The run's own facts, then the caller's (a caller's key replaces a fact of that name)."""
    scored = [row for row in rows if row.fitness is not None]
    best = f"{scored[0].id} ({format_number(scored[0].fitness)})" if scored else "-"
    facts: dict[str, str] = {
        "run": archive.run,
        "designs": str(len(archive.designs)),
        "scored designs": str(len(scored)),
        "quarantined designs": str(sum(1 for row in rows if row.quarantine is not None)),
        "rejections": str(len(archive.rejections)),
        "best design": best,
        f"margin over {REFERENCE_ID}": format_number(margin_over(rows, REFERENCE_ID)),
    }
    for key, value in (summary or {}).items():
        facts[str(key)] = str(value)
    return list(facts.items())


def _summary_html(items: Iterable[tuple[str, str]]) -> str:
    lines = ['<dl class="summary">']
    lines.extend(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>" for key, value in items)
    lines.append("</dl>")
    return "\n".join(lines)


def _leaderboard_html(rows: Sequence[LeaderboardRow]) -> str:
    if not rows:
        return '<p class="empty">No designs yet.</p>'
    tasks = leaderboard_tasks(rows)
    head = ["Rank", "ID", "Title", "Operator", "Parents", "Fitness", "Highest rung", "Val loss"]
    lines = ['<table class="leaderboard">', "<thead><tr>"]
    lines.extend(f"<th>{_e(name)}</th>" for name in [*head, *tasks])
    lines.append("</tr></thead>")
    lines.append("<tbody>")
    for row in rows:
        fitness = "quarantined" if row.quarantine is not None else format_number(row.fitness)
        cells = [
            f'<td class="num">{row.rank}</td>',
            f"<td>{_e(row.id)}</td>",
            f"<td>{_e(row.title)}</td>",
            f"<td>{_e(row.operator)}</td>",
            f"<td>{_e(', '.join(row.parents) or '-')}</td>",
            f'<td class="num">{fitness}</td>',
            f"<td>{_e(row.highest_rung or '-')}</td>",
            f'<td class="num">{format_number(row.val_loss)}</td>',
            *(f'<td class="num">{format_number(row.metrics.get(task))}</td>' for task in tasks),
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _quarantine_html(rows: Sequence[LeaderboardRow]) -> str:
    quarantined = [row for row in rows if row.quarantine is not None]
    if not quarantined:
        return '<p class="empty">No quarantined designs.</p>'
    lines = ['<table class="quarantine">', "<thead><tr>"]
    lines.extend(f"<th>{name}</th>" for name in ("ID", "Title", "Reason"))
    lines.append("</tr></thead>")
    lines.append("<tbody>")
    for row in quarantined:
        lines.append(
            f"<tr><td>{_e(row.id)}</td><td>{_e(row.title)}</td><td>{_e(row.quarantine)}</td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _rejections_html(rejections: Sequence[Rejection]) -> str:
    if not rejections:
        return '<p class="empty">No rejections.</p>'
    ordered = sorted(rejections, key=lambda item: item.id)
    lines = ['<table class="rejections">', "<thead><tr>"]
    lines.extend(f"<th>{name}</th>" for name in ("ID", "Operator", "Check", "Reason"))
    lines.append("</tr></thead>")
    lines.append("<tbody>")
    for item in ordered:
        lines.append(
            f"<tr><td>{_e(item.id)}</td><td>{_e(item.operator or '-')}</td>"
            f"<td>{_e(item.check or '-')}</td><td>{_e(item.reason)}</td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def render_html(
    archive: Archive,
    fitness: Mapping[str, float],
    rung_order: Sequence[str],
    budgets: Mapping[str, int],
    *,
    title: str,
    summary: Mapping[str, str] | None = None,
) -> str:
    """The whole report of a run as one HTML document.

    ``fitness`` maps design ids to fitness (higher is better), ``rung_order`` lists the
    ladder's rungs lowest first and ``budgets`` the number of designs each rung may verify.
    ``summary`` adds key/value lines after the run's own facts.
    """
    rows = leaderboard(archive, fitness, rung_order)
    images = [
        _image(evolution_tree_png(archive, fitness), "evolution tree"),
        _image(ladder_funnel_png(archive, rung_order, budgets), "ladder funnel"),
        _image(fitness_over_time_png(archive, fitness), "fitness over time"),
        _image(leaderboard_png(rows), "leaderboard"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="run">run {_e(archive.run)}</p>',
        "</header>",
        "<section>",
        "<h2>Summary</h2>",
        _summary_html(_summary(archive, rows, summary)),
        "</section>",
        "<section>",
        "<h2>Plots</h2>",
        *images,
        "</section>",
        "<section>",
        "<h2>Leaderboard</h2>",
        _leaderboard_html(rows),
        "</section>",
        "<section>",
        "<h2>Quarantined</h2>",
        _quarantine_html(rows),
        "</section>",
        "<section>",
        "<h2>Rejections</h2>",
        _rejections_html(archive.rejections),
        "</section>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: Path, html_text: str) -> None:
    """Write ``html_text`` to ``path`` (UTF-8), creating parent folders; the replace is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html_text, encoding="utf-8")
    os.replace(partial, path)


__all__ = ["render_html", "write_report"]
