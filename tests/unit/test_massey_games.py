"""Massey ratings from every column's games at once equal the game-by-game definition.

The reference below plays each pair of designs once per column, as the ranking is defined;
the library computes all the games of a column as one matrix (its cost per reconcile grows with
the square of a run's designs, so it must be cheap).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from genesys.evolution.ranking import game_tie, massey


def massey_game_by_game(ids, matrix, weights, ties, errors, sigmas):  # type: ignore[no-untyped-def]
    n = len(ids)
    games, points = np.zeros((n, n)), np.zeros(n)
    for column in range(len(matrix[0])):
        weight = weights[column]
        if weight <= 0:
            continue
        present = [(i, row[column]) for i, row in enumerate(matrix) if row[column] is not None]
        if len(present) < 2:
            continue
        scale = float(np.array([v for _, v in present]).std()) or 1.0
        for a in range(len(present)):
            for b in range(a + 1, len(present)):
                (i, vi), (j, vj) = present[a], present[b]
                tie = game_tie(ties[column], errors[i][column], errors[j][column], sigmas)
                margin = 0.0 if abs(vi - vj) <= tie else (vi - vj) / scale
                games[i, i] += weight
                games[j, j] += weight
                games[i, j] -= weight
                games[j, i] -= weight
                points[i] += weight * margin
                points[j] -= weight * margin
    games[-1, :] = 1.0
    points[-1] = 0.0
    ratings = np.linalg.lstsq(games, points, rcond=None)[0]
    return dict(zip(ids, ratings, strict=True))


@pytest.mark.parametrize("seed", range(40))
def test_all_games_at_once_equal_game_by_game(seed: int) -> None:
    rng = random.Random(seed)
    n, columns = rng.randint(2, 30), rng.randint(1, 4)
    ids = [f"d{i:02d}" for i in range(n)]
    # every design plays in the first column (a connected run), the others may be missing
    matrix = [
        [round(rng.random(), rng.choice((1, 2, 6)))]
        + [None if rng.random() < 0.3 else rng.random() for _ in range(columns - 1)]
        for _ in ids
    ]
    errors = [[None if rng.random() < 0.3 else rng.random() * 0.05 for _ in row] for row in matrix]
    weights = [1.0] + [rng.choice((0.0, 0.5, 1.0, 2.0)) for _ in range(columns - 1)]
    ties = [rng.choice((0.0, 0.01, 0.1)) for _ in range(columns)]
    sigmas = rng.choice((0.0, 2.0))
    got = massey(ids, matrix, weights, ties, errors, sigmas)
    want = massey_game_by_game(ids, matrix, weights, ties, errors, sigmas)
    assert got.keys() == want.keys()
    for design in ids:
        assert math.isclose(got[design], want[design], rel_tol=1e-9, abs_tol=1e-9)
