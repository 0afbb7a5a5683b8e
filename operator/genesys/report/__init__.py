"""Reports of a discovery run: the leaderboard, its plots and a self-contained HTML page.

Everything here is a pure function of the archive (:mod:`genesys.store.archive`), a fitness map
(design id -> fitness, higher is better), the ladder's rung order (lowest first) and the rung
budgets. What must stay true: the same inputs give the same text, PNG bytes and HTML; an empty
archive still renders; nothing here imports torch or touches the store.
"""

from genesys.report.headline import Headline, headline
from genesys.report.html import render_html, write_html
from genesys.report.leaderboard import (
    REFERENCE_ID,
    LeaderboardRow,
    leaderboard,
    margin_over,
    render_text,
)
from genesys.report.plots import (
    evolution_tree_png,
    fitness_over_time_png,
    generation_depths,
    ladder_funnel_png,
    leaderboard_png,
)

__all__ = [
    "REFERENCE_ID",
    "Headline",
    "LeaderboardRow",
    "evolution_tree_png",
    "fitness_over_time_png",
    "generation_depths",
    "headline",
    "ladder_funnel_png",
    "leaderboard",
    "leaderboard_png",
    "margin_over",
    "render_html",
    "render_text",
    "write_html",
]
