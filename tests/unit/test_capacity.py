"""Waiting for capacity: which training Jobs wait to be scheduled, and what the status says.

:func:`~genesys.backends.kubernetes.job_waiting` reads a Job and its pods the way the API serves
them; :func:`~genesys.controller.status.capacity_condition` turns the waiting Jobs into the
run's ``WaitingForCapacity`` condition, and a Design's rung shows ``WaitingForCapacity`` too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes.client import V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus

from genesys.backends.kubernetes import JobView, job_waiting
from genesys.controller.status import capacity_condition, design_status
from genesys.engine.state import Waiting
from genesys.store.archive import DesignRecord

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=30)
REFUSED = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."


def job(*, suspended: bool = False, queue: str | None = None) -> JobView:
    return JobView(
        name="verify-d0001-nano-a0",
        labels={},
        annotations={},
        finished=None,
        reason="",
        suspended=suspended,
        gpus=1,
        started=None,
        completed=None,
        created=CREATED,
        queue=queue,
    )


def pod(phase: str, scheduled: str | None, reason: str = "", message: str = "") -> V1Pod:
    conditions = []
    if scheduled is not None:
        conditions.append(
            V1PodCondition(
                type="PodScheduled",
                status=scheduled,
                reason=reason or None,
                message=message or None,
                last_transition_time=NOW - timedelta(minutes=10),
            )
        )
    return V1Pod(
        metadata=V1ObjectMeta(name="p"),
        status=V1PodStatus(phase=phase, conditions=conditions),
    )


def test_a_suspended_job_waits_for_kueue_since_its_creation() -> None:
    waiting = job_waiting(job(suspended=True, queue="gpus"), [], NOW)
    assert waiting == Waiting(CREATED, "Queued", "not admitted yet by the Kueue queue gpus")
    assert waiting.for_capacity


def test_an_unschedulable_pod_waits_for_capacity_with_the_scheduler_s_words() -> None:
    waiting = job_waiting(job(), [pod("Pending", "False", "Unschedulable", REFUSED)], NOW)
    assert waiting == Waiting(NOW - timedelta(minutes=10), "Unschedulable", REFUSED)
    assert waiting.for_capacity


def test_a_job_without_a_placed_pod_is_being_scheduled() -> None:
    for pods in ([], [pod("Pending", None)]):
        waiting = job_waiting(job(), pods, NOW)
        assert waiting == Waiting(CREATED, "Scheduling")
        assert not waiting.for_capacity


def test_a_placed_pod_waits_no_more() -> None:
    assert job_waiting(job(), [pod("Pending", "True")], NOW) is None  # pulling its image
    assert job_waiting(job(), [pod("Running", "True")], NOW) is None


def test_a_failed_pod_does_not_count_but_its_pending_successor_does() -> None:
    pods = [pod("Failed", "True"), pod("Pending", "False", "Unschedulable", REFUSED)]
    waiting = job_waiting(job(), pods, NOW)
    assert waiting is not None
    assert waiting.reason == "Unschedulable"


def test_capacity_condition_names_the_longest_wait() -> None:
    condition = capacity_condition(
        {
            ("d0002", "nano"): Waiting(NOW - timedelta(minutes=5), "Unschedulable", REFUSED),
            ("d0001", "micro"): Waiting(NOW - timedelta(minutes=9), "Queued", "no quota"),
            ("d0003", "nano"): Waiting(NOW, "Scheduling"),
        }
    )
    assert condition.type == "WaitingForCapacity"
    assert condition.status is True
    assert condition.reason == "Queued"
    assert condition.message.startswith("2 training pod(s) wait for capacity")
    assert "d0001 at micro" in condition.message
    assert "no quota" in condition.message


def test_capacity_condition_is_false_when_nothing_waits_for_capacity() -> None:
    condition = capacity_condition({("d0003", "nano"): Waiting(NOW, "Scheduling")})
    assert (condition.status, condition.reason) == (False, "NoneWaiting")


def test_a_waiting_rung_shows_on_its_design() -> None:
    record = DesignRecord(id="d0001", title="t", operator="mutation", parents=[], seq=5)
    common = {
        "rung_order": ["nano"],
        "fitness": {},
        "rank": {},
        "running": {("d0001", "nano")},
        "attempts": {},
        "rung_points": {"nano": 1},
        "artifact_uri": "s3://b/runs/r/designs/d0001",
    }
    waiting = design_status(record, **common, waiting={("d0001", "nano")})
    running = design_status(record, **common)
    assert waiting["rungs"][0]["phase"] == "WaitingForCapacity"
    assert running["rungs"][0]["phase"] == "Running"
    assert waiting["phase"] == running["phase"] == "Verifying"
