"""The Designs' rank refresh: one sweep per refresh, each stale Design written once.

A new result moves the rank of every design below it. Writing every such change on every
reconcile would patch the whole run's Designs each time a result arrives; the refresh instead
takes the Designs whose rank is stale when it starts and writes them a few per reconcile.
"""

from __future__ import annotations

import time
from typing import Any

from genesys.backends import kubernetes
from genesys.backends.kubernetes import KubernetesBackend, RunState


class Recording(KubernetesBackend):
    """The backend's rank refresh, its status patches recorded instead of sent."""

    def __init__(self) -> None:  # no API client: only the refresh is exercised
        self.state = RunState()
        self.patched: list[str] = []

    def patch_status(self, plural: str, name: str, status: Any) -> None:
        self.patched.append(name)


def stale(*names: str) -> dict[str, dict[str, Any]]:
    return {name: {"phase": "Verified", "rank": 1} for name in names}


def test_a_refresh_writes_each_stale_design_once_a_few_per_reconcile() -> None:
    backend = Recording()
    first = [f"d{index:02d}" for index in range(30)]
    written: dict[str, dict[str, Any]] = {}
    backend._refresh_ranks(stale(*first), written)
    assert backend.patched == first[: kubernetes.RANK_PATCHES]
    # a new result makes another Design stale: it waits for the next refresh
    backend._refresh_ranks(stale(*first[kubernetes.RANK_PATCHES :], "late"), written)
    backend._refresh_ranks(stale(*first[2 * kubernetes.RANK_PATCHES :], "late"), written)
    assert backend.patched == first
    assert backend.state.rank_sweep is None
    backend._refresh_ranks(stale("late"), written)
    assert "late" not in backend.patched  # not due yet
    backend.state.ranks_written = time.monotonic() - kubernetes.RANK_REFRESH_SECONDS
    backend._refresh_ranks(stale("late"), written)
    assert backend.patched[-1] == "late"
    assert len(backend.patched) == len(set(backend.patched)) == 31
    assert written["late"] == {"phase": "Verified", "rank": 1}


def test_a_design_whose_rank_went_back_is_not_written() -> None:
    backend = Recording()
    names = [f"d{index:02d}" for index in range(20)]
    backend._refresh_ranks(stale(*names), {})
    backend._refresh_ranks(stale(*names[-2:]), {})  # the others' ranks are as written again
    assert backend.patched == names[: kubernetes.RANK_PATCHES] + names[-2:]
    assert backend.state.rank_sweep is None


def test_a_refresh_writes_first_ranks_the_top_ranks_and_moves_of_a_tenth() -> None:
    from genesys.backends.kubernetes import EXACT_RANKS, rank_moved

    def ranked(rank: int | None, fitness: float | None = 0.5) -> dict[str, Any]:
        return {"phase": "Verified", "rank": rank, "fitness": fitness}

    assert rank_moved({}, ranked(300)), "a first rank is written"
    assert rank_moved(ranked(None, None), ranked(300))
    assert rank_moved(ranked(300), ranked(None, None)), "a rank lost is written"
    assert rank_moved(ranked(EXACT_RANKS), ranked(EXACT_RANKS + 1)), "the top is exact"
    assert rank_moved(ranked(3, 0.5), ranked(3, 0.6)), "so is its fitness"
    assert not rank_moved(ranked(300, 0.5), ranked(300, 0.6)), "fitness drift below the top"
    assert not rank_moved(ranked(300), ranked(329)), "a move of less than a tenth"
    assert rank_moved(ranked(300), ranked(330)), "a move of a tenth"
    assert rank_moved(ranked(300), ranked(270))
    assert rank_moved(ranked(12), ranked(13)), "a tenth of a small rank is one place"


def test_a_sweep_leaves_small_moves_for_later() -> None:
    backend = Recording()
    written = {f"d{rank:03d}": {"rank": rank, "fitness": 1.0} for rank in range(1, 201)}
    moved = {name: {"rank": status["rank"] + 1, "fitness": 0.9} for name, status in written.items()}
    for _ in range(40):  # one refresh, written a few per reconcile
        backend._refresh_ranks(moved, written)
    # the top ten moved by a place, and ranks 11 to 19 (a tenth of them is one place)
    assert sorted(backend.patched) == [f"d{rank:03d}" for rank in range(1, 20)]
    assert backend.state.rank_sweep is None
