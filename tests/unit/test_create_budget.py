"""One reconcile's creates: bounded, Designs on a budget of their own, never stuck."""

from __future__ import annotations

from genesys.backends.kubernetes import KubernetesBackend


def budget(max_creates: int) -> KubernetesBackend:
    """A backend with only its budget set (no API client: only the budget is exercised)."""
    backend = KubernetesBackend.__new__(KubernetesBackend)
    backend.max_creates = backend.creates_left = backend.design_creates_left = max_creates
    backend.deferred = 0
    return backend


def test_starts_stop_at_the_budget_and_are_counted_as_deferred() -> None:
    backend = budget(5)
    assert [backend._spend(2) for _ in range(4)] == [True, True, False, False]
    assert backend._spend(1)  # a training still fits
    assert not backend._spend(1)
    assert backend.deferred == 3


def test_a_start_larger_than_the_budget_goes_through_alone() -> None:
    backend = budget(2)
    assert backend._spend(4)  # a first session with the run's check network: 4 objects
    assert not backend._spend(1)
    assert backend.creates_left == 0


def test_designs_have_a_budget_of_their_own() -> None:
    backend = budget(3)
    assert backend._spend(3)
    assert [backend._spend_design() for _ in range(4)] == [True, True, True, False]
    assert backend.deferred == 1
