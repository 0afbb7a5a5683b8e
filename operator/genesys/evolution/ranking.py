"""Ranking designs: the ranking matrix and a Massey ranker (Genesys, "Selection").

Rows are designs with at least one successful verification and none quarantined
(:mod:`genesys.store.quarantine`: a design that saw the future never ranks). Columns are
per-task accuracy (``acc_norm`` when present, else ``acc``) averaged over the rungs a design
verified, the negated validation loss, and the proposal rating / 5. An accuracy column is
dropped when no design beats the task's random baseline by ``baselineMargin`` (0.02). Each
column yields pairwise games between the designs it scores, with the column's standardised
difference as the margin; the rating column's games weigh ``proposalRatingWeight`` (the others
1). The Massey ratings solve the weighted least-squares system of all games with ratings summing
to zero.

Noise-aware ties (``selection.ties: noise``, the default) count a game as a tie (margin 0) when
its difference is within ``tieSigmas`` standard deviations of what noise alone gives, so
selection stops chasing differences that retraining or another draw of items would change.
Two sources of noise are known, and the larger one sets the tie:

- the run's measured noise floor (``genesys noise``: the standard deviation sigma of a metric
  over trainings of one design with different seeds): a tie is within tieSigmas x sigma x
  sqrt(2), the spread of a difference of two such values;
- for an accuracy, its standard error over the evaluation items (``acc_stderr``, which every
  evaluation records, sqrt(p (1 - p) / (n - 1)) for n items): a tie is within tieSigmas x
  sqrt(se_a^2 + se_b^2). This needs no measurement, so it holds from the run's first design.

Under noise ties an accuracy column is also kept only when some design beats random by more
than tieSigmas of its standard error (besides ``baselineMargin``): a task every design scores at
chance within its items' noise ranks nothing. ``ties: exact`` is the paper's rule, where every
difference counts and only ``baselineMargin`` keeps a column.

What must stay true: :func:`fitness` is the only fitness: the planner, the status, the report and
``genesys status`` all call it with the run's ``spec.selection``; it is a pure, deterministic
function of the archive and those settings; a design that wins every comparison outranks every
design it beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from genesys.api.discoveryrun import Selection
from genesys.store.archive import Archive, DesignRecord
from genesys.store.noise import LOSS, STDERR_SUFFIX

RANDOM_BASELINES: dict[str, float] = {
    "genesys_mqar": 0.25,
    "genesys_selective_copy": 0.25,
    "genesys_induction": 0.25,
    "genesys_cloze": 0.25,
    "genesys_wordnet": 0.25,
    "hellaswag": 0.25,
    "arc_easy": 0.25,
    "arc_challenge": 0.25,
    "piqa": 0.5,
    "winogrande": 0.5,
    "openbookqa": 0.25,
    "sciq": 0.25,
    "lambada_openai": 0.0,
}
DEFAULT_BASELINE = 0.25
LOSS_COLUMN = "neg_val_loss"
RATING_COLUMN = "rating"


def task_score(metrics: Mapping[str, float]) -> float | None:
    """acc_norm when present, else acc."""
    for key in ("acc_norm", "acc"):
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def design_columns(design: DesignRecord) -> dict[str, float]:
    """A design's column values, averaged over its successful verifications (none: quarantined)."""
    if design.quarantine is not None:
        return {}
    sums: dict[str, list[float]] = {}
    for verification in design.verifications.values():
        if verification.status != "succeeded":
            continue
        for task, metrics in verification.metrics.items():
            score = task_score(metrics)
            if score is not None:
                sums.setdefault(task, []).append(score)
        if verification.val_loss is not None and math.isfinite(verification.val_loss):
            sums.setdefault(LOSS_COLUMN, []).append(-verification.val_loss)
    columns = {name: sum(values) / len(values) for name, values in sums.items()}
    if design.proposal_rating is not None and columns:
        columns[RATING_COLUMN] = design.proposal_rating / 5
    return columns


def task_stderr(metrics: Mapping[str, float]) -> float | None:
    """The standard error over the items of :func:`task_score`'s metric, where recorded."""
    for key in ("acc_norm", "acc"):
        if key in metrics:
            value = metrics.get(key + STDERR_SUFFIX)
            return float(value) if value is not None and math.isfinite(value) else None
    return None


def design_errors(design: DesignRecord) -> dict[str, float]:
    """Each accuracy column's standard error over the items, for :func:`design_columns`' mean.

    The mean of k rungs' scores has the error sqrt(sum of se^2) / k; a column with any
    verification that recorded no standard error has none.
    """
    if design.quarantine is not None:
        return {}
    errors: dict[str, list[float | None]] = {}
    for verification in design.verifications.values():
        if verification.status != "succeeded":
            continue
        for task, metrics in verification.metrics.items():
            if task_score(metrics) is not None:
                errors.setdefault(task, []).append(task_stderr(metrics))
    return {
        task: math.sqrt(sum(e * e for e in known)) / len(known)
        for task, values in errors.items()
        if (known := [e for e in values if e is not None]) and len(known) == len(values)
    }


def ranking_matrix(
    designs: Sequence[DesignRecord],
    *,
    baselines: Mapping[str, float] = RANDOM_BASELINES,
    margin: float = 0.02,
    error_sigmas: float = 0.0,
) -> tuple[list[str], list[str], list[list[float | None]], list[list[float | None]]]:
    """(design ids, kept columns, values, standard errors) of the designs that ranked.

    Rows are the designs with any successful verification. An accuracy column is kept when a
    design beats its random baseline by more than ``margin`` and by more than ``error_sigmas``
    of its standard error over the items (0: the margin alone).
    """
    rows = [(d.id, design_columns(d), design_errors(d)) for d in designs]
    rows = [(i, c, e) for i, c, e in rows if c]
    names = sorted({name for _, columns, _ in rows for name in columns})
    kept = []
    for name in names:
        if name in (LOSS_COLUMN, RATING_COLUMN):
            kept.append(name)
            continue
        baseline = baselines.get(name, DEFAULT_BASELINE)
        needed = [max(margin, error_sigmas * errors.get(name, 0.0)) for _, _, errors in rows]
        if any(
            columns.get(name, -math.inf) - baseline > need
            for (_, columns, _), need in zip(rows, needed, strict=True)
        ):
            kept.append(name)
    matrix = [[columns.get(name) for name in kept] for _, columns, _ in rows]
    errors = [[errors.get(name) for name in kept] for _, _, errors in rows]
    return [i for i, _, _ in rows], kept, matrix, errors


def game_tie(
    column_tie: float, error_a: float | None, error_b: float | None, error_sigmas: float
) -> float:
    """The largest tied difference of one game: the column's, or its two scores' errors'."""
    if error_a is None or error_b is None:
        return column_tie
    return max(column_tie, error_sigmas * math.sqrt(error_a * error_a + error_b * error_b))


def game_ties(
    column_ties: np.ndarray, column_errors: Sequence[float | None], error_sigmas: float
) -> np.ndarray:
    """:func:`game_tie` of every game of one column at once (``column_ties``: m x m)."""
    known = np.array([e is not None for e in column_errors])
    squared = np.array([0.0 if e is None else e * e for e in column_errors])
    both = known[:, None] & known[None, :]
    own = error_sigmas * np.sqrt(squared[:, None] + squared[None, :])
    return np.where(both, np.maximum(column_ties, own), column_ties)


def massey(
    ids: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    weights: Sequence[float] | None = None,
    ties: Sequence[float] | None = None,
    errors: Sequence[Sequence[float | None]] | None = None,
    error_sigmas: float = 0.0,
) -> dict[str, float]:
    """Massey ratings from every column's pairwise games (standardised margins).

    ``weights`` scales each column's games (default 1 each); a column of weight 0 is ignored.
    ``ties`` gives each column the largest difference that is a tie (margin 0; default 0).
    ``errors`` (shaped like ``matrix``) are the values' standard errors: a game whose difference
    is within ``error_sigmas`` x sqrt(se_a^2 + se_b^2) is a tie too (:func:`game_tie`).
    """
    n = len(ids)
    if n == 0:
        return {}
    if n == 1:
        return {ids[0]: 0.0}
    games = np.zeros((n, n))
    points = np.zeros(n)
    for column in range(len(matrix[0]) if matrix else 0):
        weight = 1.0 if weights is None else float(weights[column])
        if weight <= 0:
            continue
        index = np.array([i for i, row in enumerate(matrix) if row[column] is not None])
        if len(index) < 2:
            continue
        values = np.array([matrix[i][column] for i in index], dtype=float)
        scale = float(values.std()) or 1.0
        column_tie = 0.0 if ties is None else float(ties[column])
        tie = np.full((len(index), len(index)), column_tie)
        if errors is not None:
            tie = game_ties(tie, [errors[i][column] for i in index], error_sigmas)
        raw = values[:, None] - values[None, :]  # every game of the column, both ways
        margins = np.where(np.abs(raw) <= tie, 0.0, raw / scale)
        games[np.ix_(index, index)] -= weight  # each pair played once
        games[index, index] += weight * len(index)  # ... and each its m - 1 games
        points[index] += weight * margins.sum(axis=1)
    system = games.copy()
    system[-1, :] = 1.0  # ratings sum to zero
    target = points.copy()
    target[-1] = 0.0
    ratings, *_ = np.linalg.lstsq(system, target, rcond=None)
    return {design: float(r) for design, r in zip(ids, ratings, strict=True)}


def fitness(archive: Archive, selection: Selection | None = None) -> dict[str, float]:
    """Massey fitness of every design with a successful verification: the run's one fitness.

    ``selection`` is the spec's (``spec.selection``): ``baselineMargin`` is the margin over
    random an accuracy column needs, and ``proposalRatingWeight`` weighs the proposal-rating
    column against the others (each weighs 1). None: the paper's values (:class:`Selection`'s
    defaults), for an archive whose spec is unknown.
    """
    settings = selection if selection is not None else Selection()
    noisy = settings.ties == "noise"
    sigmas = settings.tie_sigmas if noisy else 0.0
    ids, columns, matrix, errors = ranking_matrix(
        archive.ordered(), margin=settings.baseline_margin, error_sigmas=sigmas
    )
    weights = [
        settings.proposal_rating_weight if name == RATING_COLUMN else 1.0 for name in columns
    ]
    if not noisy:
        return massey(ids, matrix, weights)
    ties = tie_margins(columns, archive.noise_floor(), settings.tie_sigmas)
    return massey(ids, matrix, weights, ties, errors, sigmas)


def column_noise(column: str, floor: Mapping[str, float]) -> float | None:
    """The noise floor (standard deviation) of a ranking column, where one was measured."""
    if column == LOSS_COLUMN:
        return floor.get(LOSS)
    if column == RATING_COLUMN:
        return None
    return floor.get(f"{column}/acc_norm", floor.get(f"{column}/acc"))


def tie_margins(columns: Sequence[str], floor: Mapping[str, float], sigmas: float) -> list[float]:
    """Each column's largest tied difference: ``sigmas`` x its noise floor x sqrt(2), or 0."""
    return [sigmas * math.sqrt(2) * (column_noise(name, floor) or 0.0) for name in columns]


__all__ = [
    "RANDOM_BASELINES",
    "column_noise",
    "design_columns",
    "design_errors",
    "fitness",
    "game_tie",
    "massey",
    "ranking_matrix",
    "task_score",
    "task_stderr",
    "tie_margins",
]
