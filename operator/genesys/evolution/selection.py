"""Choosing operators, parents and promotions (Genesys, "Selection").

- Confidence: 1 (proposed) + 1 (implemented) + the points of every rung verified.
- Quadrants: the top ``design_quantile`` by fitness is *good*, the top ``confidence_quantile`` by
  confidence is *high*. Parents: exploit from good/high, explore (probability 0.2) from poor/high.
  Promotions: exploit from good/low, explore from poor/low. With probability ``noise`` the pick
  is uniform; with ``restart_probability`` (and always until ``seed_warmup`` designs are
  verified) the first parent is a seed.
- Operators: mutation / crossover / scratch with their probabilities, crossover and scratch
  enabled only after their warm-ups, renormalised. With ``operators.adaptive`` each probability
  is also weighed by its operator's record in the run (:func:`operator_record`): a design
  *improved* when its fitness beats its best parent's (a scratch design: the median ranked
  design's), and the weight is 2 x (improved + 1) / (ranked + 2), so an operator with no record
  keeps its probability and one whose designs keep losing to their parents fades.

What must stay true: every function is pure given its ``random.Random``; an empty quadrant falls
back to the nearest non-empty pool, so a choice is always made when any candidate exists; a
quarantined design (:mod:`genesys.store.quarantine`) is never a parent, even as a fallback.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence

from genesys.api.discoveryrun import GeneticOperators, Selection
from genesys.store.archive import DesignRecord


def confidence(design: DesignRecord, rung_points: Mapping[str, int]) -> int:
    """Confidence points of a design."""
    verified = sum(
        rung_points.get(rung, 0)
        for rung, v in design.verifications.items()
        if v.status == "succeeded"
    )
    return 2 + verified


OperatorRecord = dict[str, tuple[int, int]]
"""Operator -> (its designs that improved on their parents, its designs ranked)."""


def improved(design: DesignRecord, fitness: Mapping[str, float], median: float) -> bool:
    """True when a ranked design's fitness beats its best ranked parent's (or ``median``)."""
    parents = [fitness[p] for p in design.parents if p in fitness]
    return fitness[design.id] > (max(parents) if parents else median)


def operator_record(
    designs: Sequence[DesignRecord], fitness: Mapping[str, float]
) -> OperatorRecord:
    """Each operator's designs that improved on their parents, and its designs ranked."""
    if not fitness:
        return {}
    median = statistics.median(fitness.values())
    record: OperatorRecord = {}
    for design in designs:
        if design.is_seed or design.id not in fitness:
            continue
        wins, ranked = record.get(design.operator, (0, 0))
        record[design.operator] = (wins + improved(design, fitness, median), ranked + 1)
    return record


def credit(record: OperatorRecord, operator: str) -> float:
    """An operator's weight from its record: 2 (wins + 1) / (ranked + 2); 1 with no record."""
    wins, ranked = record.get(operator, (0, 0))
    return 2 * (wins + 1) / (ranked + 2)


def choose_operator(
    rng: random.Random,
    implemented: int,
    operators: GeneticOperators,
    record: OperatorRecord | None = None,
) -> str:
    """mutation, crossover or scratch, honouring the warm-ups (and ``record`` when adaptive)."""
    weights = {
        "mutation": operators.mutation,
        "crossover": operators.crossover if implemented >= operators.crossover_warmup else 0.0,
        "scratch": operators.scratch if implemented >= operators.scratch_warmup else 0.0,
    }
    if operators.adaptive and record:
        weights = {name: weight * credit(record, name) for name, weight in weights.items()}
    total = sum(weights.values())
    if total <= 0:
        return "mutation"
    pick = rng.random() * total
    for name, weight in weights.items():
        pick -= weight
        if pick < 0:
            return name
    return "mutation"


def top(ids: Sequence[str], score: Mapping[str, float], quantile: float) -> set[str]:
    """The top ``quantile`` of ids by score (at least one when any)."""
    ranked = sorted(ids, key=lambda i: (-score.get(i, -math.inf), i))
    count = max(1, math.ceil(quantile * len(ranked))) if ranked else 0
    return set(ranked[:count])


def _pick(rng: random.Random, pools: Sequence[Sequence[str]]) -> str | None:
    for pool in pools:
        if pool:
            return sorted(pool)[rng.randrange(len(pool))]
    return None


def select_parents(
    rng: random.Random,
    designs: Sequence[DesignRecord],
    fitness: Mapping[str, float],
    confidence_of: Mapping[str, int],
    count: int,
    selection: Selection,
) -> list[str]:
    """``count`` distinct parent ids (0, 1 or 2); never a quarantined design."""
    designs = [d for d in designs if d.quarantine is None]
    seeds = sorted(d.id for d in designs if d.is_seed)
    ranked = [d.id for d in designs if d.id in fitness]
    verified = sum(1 for d in designs if not d.is_seed and d.id in fitness)
    good = top(ranked, fitness, selection.design_quantile)
    high = top(ranked, confidence_of, selection.confidence_quantile)
    parents: list[str] = []
    for index in range(count):
        pool_all = [d.id for d in designs if d.id not in parents]
        candidates = [i for i in ranked if i not in parents]
        first = index == 0
        if first and (
            verified < selection.seed_warmup or rng.random() < selection.restart_probability
        ):
            choice = _pick(rng, [[s for s in seeds if s not in parents], pool_all])
        elif rng.random() < selection.noise:
            choice = _pick(rng, [pool_all])
        else:
            explore = rng.random() < selection.explore_probability
            quadrant = [i for i in candidates if (i in good) != explore and i in high]
            choice = _pick(rng, [quadrant, candidates, pool_all])
        if choice is None:
            break
        parents.append(choice)
    return parents


def select_promotions(
    rng: random.Random,
    candidates: Sequence[str],
    fitness: Mapping[str, float],
    confidence_of: Mapping[str, int],
    count: int,
    selection: Selection,
) -> list[str]:
    """Up to ``count`` designs to verify at the next rung."""
    pool = sorted(candidates)
    good = top(pool, fitness, selection.design_quantile)
    high = top(pool, confidence_of, selection.confidence_quantile)
    chosen: list[str] = []
    while len(chosen) < count:
        left = [i for i in pool if i not in chosen]
        if not left:
            break
        if rng.random() < selection.noise:
            choice = _pick(rng, [left])
        else:
            explore = rng.random() < selection.explore_probability
            quadrant = [i for i in left if (i in good) != explore and i not in high]
            best_first = sorted(left, key=lambda i: (-fitness.get(i, -math.inf), i))
            choice = _pick(rng, [quadrant]) or best_first[0]
        if choice is None:
            break
        chosen.append(choice)
    return chosen


__all__ = [
    "OperatorRecord",
    "choose_operator",
    "confidence",
    "credit",
    "improved",
    "operator_record",
    "select_parents",
    "select_promotions",
    "top",
]
