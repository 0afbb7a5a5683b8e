"""The run report: leaderboard ranking, the terminal table, the four plots and the HTML page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genesys.report import (
    LeaderboardRow,
    evolution_tree_png,
    fitness_over_time_png,
    generation_depths,
    ladder_funnel_png,
    leaderboard,
    leaderboard_png,
    margin_over,
    render_html,
    render_text,
    write_html,
)
from genesys.store.archive import Archive, DesignRecord, Rejection, Verification

PNG = b"\x89PNG\r\n\x1a\n"
RUNGS = ["nano", "micro"]
BUDGETS = {"nano": 10, "micro": 4}
SEEDS = ["seed-gpt2", "seed-mamba2", "seed-retnet", "seed-hyena", "seed-rwkv"]
ALTS = ["evolution tree", "ladder funnel", "fitness over time", "leaderboard"]


def ok(rung: str, loss: float, cloze: float, mqar: float) -> Verification:
    return Verification(
        rung=rung,
        status="succeeded",
        val_loss=loss,
        train_loss=loss - 0.1,
        params=1000,
        tokens=5000,
        metrics={
            "genesys_cloze": {"acc": cloze - 0.05, "acc_norm": cloze},
            "genesys_mqar": {"acc": mqar},  # no acc_norm: acc is the score
        },
    )


def failed(rung: str, reason: str = "loss diverged") -> Verification:
    return Verification(rung=rung, status="failed", reason=reason)


def design(
    design_id: str, operator: str, parents: list[str], seq: int, *verifications: Verification
) -> DesignRecord:
    return DesignRecord(
        id=design_id,
        title=f"Design {design_id}",
        operator=operator,
        parents=parents,
        seq=seq,
        verifications={v.rung: v for v in verifications},
    )


def make_archive() -> Archive:
    records = [
        design(
            "seed-gpt2", "seed", [], 0, ok("nano", 3.0, 0.40, 0.20), ok("micro", 2.8, 0.50, 0.30)
        ),
        design("seed-mamba2", "seed", [], 1, ok("nano", 3.1, 0.38, 0.25)),
        design("seed-retnet", "seed", [], 2, ok("nano", 3.2, 0.35, 0.15)),
        design("seed-hyena", "seed", [], 3, failed("nano")),
        design("seed-rwkv", "seed", [], 4, ok("nano", 3.3, 0.33, 0.10)),
        design(
            "d-005",
            "mutation",
            ["seed-gpt2"],
            5,
            ok("nano", 2.9, 0.42, 0.22),
            ok("micro", 2.7, 0.54, 0.34),
        ),
        design("d-006", "mutation", ["seed-mamba2"], 6, ok("nano", 3.05, 0.39, 0.26)),
        design(
            "d-007",
            "crossover",
            ["d-005", "seed-mamba2"],
            7,
            ok("nano", 2.85, 0.45, 0.28),
            failed("micro", "out of memory"),
        ),
        design("d-008", "scratch", [], 8, ok("nano", 3.4, 0.30, 0.05)),
        design("d-009", "mutation", ["d-007"], 9, ok("nano", 2.95, 0.41, 0.27)),
        design("d-010", "crossover", ["d-009", "d-006"], 10),
        design("d-011", "mutation", ["d-010"], 11, failed("nano", "nan loss")),
        design("d-012", "scratch", [], 12),
    ]
    return Archive(
        run="demo",
        designs={record.id: record for record in records},
        rejections=[
            Rejection(
                id="r-001",
                session="s1",
                operator="mutation",
                parents=["seed-gpt2"],
                reason="not causal: output at t depends on t+1",
                check="causality",
            ),
            Rejection(
                id="r-002",
                session="s2",
                operator="scratch",
                parents=[],
                reason="too many parameters <4x budget>",
                check="size",
            ),
        ],
    )


FITNESS = {
    "seed-gpt2": 0.50,
    "seed-mamba2": 0.48,
    "seed-retnet": 0.40,
    "seed-hyena": 0.10,
    "seed-rwkv": 0.35,
    "d-005": 0.62,
    "d-006": 0.47,
    "d-007": 0.55,
    "d-008": 0.30,
    "d-009": 0.55,  # ties d-007: the earlier design ranks first
    "d-011": float("nan"),  # not finite: treated as no fitness
}


@pytest.fixture
def archive() -> Archive:
    return make_archive()


@pytest.fixture
def rows(archive: Archive) -> list[LeaderboardRow]:
    return leaderboard(archive, FITNESS, RUNGS)


def by_id(rows: list[LeaderboardRow]) -> dict[str, LeaderboardRow]:
    return {row.id: row for row in rows}


# ------------------------------------------------------------------ leaderboard


def test_leaderboard_orders_by_fitness_then_unscored_by_seq(rows: list[LeaderboardRow]) -> None:
    assert [row.id for row in rows] == [
        "d-005",
        "d-007",
        "d-009",
        "seed-gpt2",
        "seed-mamba2",
        "d-006",
        "seed-retnet",
        "seed-rwkv",
        "d-008",
        "seed-hyena",
        "d-010",
        "d-011",
        "d-012",
    ]
    assert [row.rank for row in rows] == list(range(1, 14))
    assert rows[0].fitness == pytest.approx(0.62)
    assert [row.fitness for row in rows[-3:]] == [None, None, None]


def test_leaderboard_highest_rung_ignores_failed_verifications(
    rows: list[LeaderboardRow],
) -> None:
    table = by_id(rows)
    assert table["d-005"].highest_rung == "micro"
    assert table["d-005"].val_loss == pytest.approx(2.7)
    assert table["d-007"].highest_rung == "nano"  # micro failed
    assert table["d-007"].val_loss == pytest.approx(2.85)
    assert table["seed-hyena"].highest_rung is None
    assert table["seed-hyena"].val_loss is None
    assert table["d-010"].highest_rung is None


def test_leaderboard_metrics_average_succeeded_rungs_preferring_acc_norm(
    rows: list[LeaderboardRow],
) -> None:
    table = by_id(rows)
    assert table["seed-gpt2"].metrics == pytest.approx(
        {"genesys_cloze": 0.45, "genesys_mqar": 0.25}
    )
    # d-007's failed micro rung does not count.
    assert table["d-007"].metrics == pytest.approx({"genesys_cloze": 0.45, "genesys_mqar": 0.28})
    assert table["seed-hyena"].metrics == {}


def test_leaderboard_row_keeps_lineage(rows: list[LeaderboardRow]) -> None:
    row = by_id(rows)["d-007"]
    assert (row.title, row.operator, row.parents) == (
        "Design d-007",
        "crossover",
        ["d-005", "seed-mamba2"],
    )


def test_leaderboard_rung_order_decides_highest_rung(archive: Archive) -> None:
    reversed_rows = by_id(leaderboard(archive, FITNESS, ["micro", "nano"]))
    assert reversed_rows["d-005"].highest_rung == "nano"
    assert reversed_rows["d-005"].val_loss == pytest.approx(2.9)


def test_leaderboard_empty_archive_has_no_rows() -> None:
    assert leaderboard(Archive(run="empty"), {}, RUNGS) == []


# ------------------------------------------------------------------ margin_over


def test_margin_over_reference_is_best_other_minus_reference(rows: list[LeaderboardRow]) -> None:
    assert margin_over(rows, "seed-gpt2") == pytest.approx(0.62 - 0.50)


def test_margin_over_negative_when_reference_is_best(rows: list[LeaderboardRow]) -> None:
    assert margin_over(rows, "d-005") == pytest.approx(0.55 - 0.62)


@pytest.mark.parametrize(
    ("reference", "fitness"),
    [
        ("seed-gpt2", {}),
        ("no-such-design", FITNESS),
        ("seed-gpt2", {"seed-gpt2": 0.5}),
    ],
    ids=["no-fitness", "missing-reference", "no-other-scored"],
)
def test_margin_over_none_when_missing(
    archive: Archive, reference: str, fitness: dict[str, float]
) -> None:
    assert margin_over(leaderboard(archive, fitness, RUNGS), reference) is None


# ------------------------------------------------------------------ render_text


def test_render_text_lists_ids_aligned(rows: list[LeaderboardRow]) -> None:
    text = render_text(rows, limit=20)
    lines = text.splitlines()
    for row in rows:
        assert row.id in text
    assert lines[0].split() == [
        "#",
        "id",
        "operator",
        "fitness",
        "rung",
        "val",
        "loss",
        "genesys_cloze",
        "genesys_mqar",
    ]
    assert set(lines[1]) <= {"-", " "}
    first = lines[2].split()
    assert first == ["1", "d-005", "mutation", "0.620", "micro", "2.700", "0.480", "0.280"]
    # Aligned: the id column starts at the same offset on every row.
    starts = {line.index(row.id) for line, row in zip(lines[2:], rows, strict=True)}
    assert len(starts) == 1
    assert not re.search(r"\bnan\b", text)  # d-011's NaN fitness reads "-"


def test_render_text_limit_truncates_with_count(rows: list[LeaderboardRow]) -> None:
    text = render_text(rows, limit=3)
    assert "d-009" in text
    assert "seed-gpt2" not in text
    assert text.splitlines()[-1] == "... 10 more"


def test_render_text_shows_at_most_four_tasks() -> None:
    tasks = {f"task_{i}": 0.1 * i for i in range(6)}
    row = LeaderboardRow(1, "x", "X", "scratch", [], 1.0, "nano", 2.0, tasks)
    header = render_text([row]).splitlines()[0]
    assert "task_3" in header
    assert "task_4" not in header


def test_render_text_empty_says_so() -> None:
    assert render_text([]) == "no designs yet"


def test_render_text_rejects_nonpositive_limit(rows: list[LeaderboardRow]) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        render_text(rows, limit=0)


# ------------------------------------------------------------------ plots


def test_generation_depths_follow_deepest_parent(archive: Archive) -> None:
    depths = generation_depths(archive)
    assert {seed: depths[seed] for seed in SEEDS} == dict.fromkeys(SEEDS, 0)
    assert depths["d-005"] == 1
    assert depths["d-007"] == 2  # parents at depth 1 and 0
    assert depths["d-009"] == 3
    assert depths["d-010"] == 4  # max(d-009: 3, d-006: 1) + 1
    assert depths["d-011"] == 5
    assert depths["d-008"] == 0  # scratch: no parents


def test_generation_depths_survive_cycles_and_unknown_parents() -> None:
    archive = Archive(
        run="odd",
        designs={
            "a": design("a", "mutation", ["b"], 0),
            "b": design("b", "mutation", ["a"], 1),
            "c": design("c", "mutation", ["gone"], 2),
        },
    )
    depths = generation_depths(archive)
    assert depths["c"] == 0
    assert set(depths) == {"a", "b", "c"}


@pytest.mark.parametrize(
    "fitness", [FITNESS, {}, dict.fromkeys(SEEDS, 0.5)], ids=["scored", "unscored", "all-equal"]
)
def test_plots_are_png(archive: Archive, fitness: dict[str, float]) -> None:
    rows = leaderboard(archive, fitness, RUNGS)
    for png in (
        evolution_tree_png(archive, fitness),
        ladder_funnel_png(archive, RUNGS, BUDGETS),
        fitness_over_time_png(archive, fitness),
        leaderboard_png(rows),
    ):
        assert png.startswith(PNG)
        assert len(png) > 1000


def test_plots_on_empty_archive_are_png() -> None:
    empty = Archive(run="empty")
    for png in (
        evolution_tree_png(empty, {}),
        ladder_funnel_png(empty, RUNGS, BUDGETS),
        ladder_funnel_png(empty, [], {}),
        fitness_over_time_png(empty, {}),
        leaderboard_png([]),
    ):
        assert png.startswith(PNG)


def test_plots_are_deterministic(archive: Archive, rows: list[LeaderboardRow]) -> None:
    assert evolution_tree_png(archive, FITNESS) == evolution_tree_png(make_archive(), FITNESS)
    assert leaderboard_png(rows) == leaderboard_png(list(rows))


def test_plots_close_their_figures(archive: Archive) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    evolution_tree_png(archive, FITNESS)
    ladder_funnel_png(archive, RUNGS, BUDGETS)
    assert len(plt.get_fignums()) == before


def test_plots_draw_dollar_ids_literally() -> None:
    archive = Archive(run="odd", designs={"a$b": design("a$b", "scratch", [], 0)})
    assert evolution_tree_png(archive, {"a$b": 1.0}).startswith(PNG)


# ------------------------------------------------------------------ html


def page(
    archive: Archive, *, title: str = "Demo run", summary: dict[str, str] | None = None
) -> str:
    return render_html(archive, FITNESS, RUNGS, BUDGETS, title=title, summary=summary)


def test_render_html_embeds_four_plots_with_alt_texts(archive: Archive) -> None:
    html_text = page(archive)
    images = re.findall(
        r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">', html_text
    )
    assert [alt for _, alt in images] == ALTS
    assert html_text.count("<img ") == 4
    assert all(data.startswith("iVBORw0KGgo") for data, _ in images)  # base64 of the PNG header


def test_render_html_is_self_contained(archive: Archive) -> None:
    html_text = page(archive)
    assert html_text.startswith("<!DOCTYPE html>")
    assert "<style>" in html_text
    assert "http://" not in html_text
    assert "https://" not in html_text
    assert "<link" not in html_text
    assert "<script" not in html_text


def test_render_html_lists_every_design_and_rejection(archive: Archive) -> None:
    html_text = page(archive)
    for design_id in archive.designs:
        assert f"<td>{design_id}</td>" in html_text
    assert "not causal: output at t depends on t+1" in html_text
    assert "too many parameters &lt;4x budget&gt;" in html_text
    assert "<th>genesys_cloze</th>" in html_text
    assert "<th>genesys_mqar</th>" in html_text


def test_render_html_summary_has_run_facts_and_caller_items(archive: Archive) -> None:
    html_text = page(archive, summary={"model": "gpt-x", "designs": "13 (override)"})
    assert "<dt>model</dt><dd>gpt-x</dd>" in html_text
    assert "<dt>designs</dt><dd>13 (override)</dd>" in html_text
    assert "<dt>best design</dt><dd>d-005 (0.620)</dd>" in html_text
    assert "<dt>fitness margin over seed-gpt2</dt><dd>0.120</dd>" in html_text
    assert (
        "<dt>headline</dt><dd>best discovered d-005 vs best seed seed-gpt2 at micro: val loss "
        "2.700 vs 2.800, margin +0.100 (noise floor not measured (genesys noise)): a win that "
        "may be noise</dd>"
    ) in html_text
    assert "<dt>noise floor (std over seeds)</dt><dd>not measured" in html_text


def test_render_html_escapes_title_and_text(archive: Archive) -> None:
    archive.designs["d-005"].title = 'Gated <b>"attention"</b>'
    html_text = page(archive, title="<script>alert(1)</script>", summary={"<k>": "<v>"})
    assert "<script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "Gated &lt;b&gt;&#34;attention&#34;&lt;/b&gt;" in html_text  # Jinja2 autoescape
    assert "<dt>&lt;k&gt;</dt><dd>&lt;v&gt;</dd>" in html_text


def test_render_html_is_deterministic(archive: Archive) -> None:
    assert page(archive) == page(make_archive())


def test_render_html_empty_archive_renders() -> None:
    html_text = render_html(Archive(run="empty"), {}, RUNGS, BUDGETS, title="Empty")
    assert html_text.count('src="data:image/png;base64,') == 4
    assert "No designs yet." in html_text
    assert "No rejections." in html_text
    assert "<dt>fitness margin over seed-gpt2</dt><dd>-</dd>" in html_text
    assert "<dt>headline</dt><dd>no discovered design has been verified" in html_text


def test_write_html_creates_folders_and_writes_utf8(tmp_path: Path) -> None:
    target = tmp_path / "out" / "nested" / "report.html"
    write_html(target, "<p>fitness ≥ 0.5</p>\n")
    assert target.read_text(encoding="utf-8") == "<p>fitness ≥ 0.5</p>\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_render_html_links_each_designs_trace_when_a_viewer_is_known(archive: Archive) -> None:
    traces = {design_id: f"{n:032x}" for n, design_id in enumerate(archive.designs, start=1)}
    linked = render_html(
        archive,
        FITNESS,
        RUNGS,
        BUDGETS,
        title="t",
        traces=traces,
        trace_url="https://jaeger.example/trace/{trace_id}",
    )
    assert "<th>Trace</th>" in linked
    for trace_id in traces.values():
        assert f'<a href="https://jaeger.example/trace/{trace_id}">{trace_id}</a>' in linked
    plain = render_html(archive, FITNESS, RUNGS, BUDGETS, title="t", traces=traces)
    assert all(f'<code class="trace">{t}</code>' in plain for t in traces.values())
    assert "jaeger" not in plain
    assert "<th>Trace</th>" not in page(archive)
