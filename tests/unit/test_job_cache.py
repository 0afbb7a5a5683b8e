"""The Job cache: watch events in, each run's own Jobs out, and a list when it is due."""

from __future__ import annotations

from typing import Any

from genesys.api.runconfig import RunIdentity
from genesys.backends import manifests
from genesys.backends.jobcache import JobCache, job_view_of, newer

RUN = RunIdentity(namespace="ns", name="run", uid="uid-1")
OTHER = RunIdentity(namespace="ns", name="run", uid="uid-2")  # a new run of the same name


def job(name: str, version: str, identity: RunIdentity = RUN, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": version,
            "labels": manifests.run_labels(identity),
            "creationTimestamp": "2026-12-04T10:00:00Z",
        },
        "spec": {
            "template": {
                "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]}
            }
        },
        "status": status,
    }


def complete(name: str, version: str) -> dict[str, Any]:
    condition = {"type": "Complete", "status": "True", "reason": "Completed"}
    return job(name, version, startTime="2026-12-04T10:00:05Z", conditions=[condition])


def names(cache: JobCache, identity: RunIdentity = RUN) -> list[str]:
    jobs = cache.run_jobs("ns", identity)
    assert jobs is not None
    return [view.name for view in jobs]


def test_a_view_reads_a_job_in_its_json_form() -> None:
    view = job_view_of(complete("a", "7"))
    assert (view.name, view.namespace, view.resource_version) == ("a", "ns", "7")
    assert (view.finished, view.reason, view.gpus) == ("Complete", "Completed", 2)
    assert view.started is not None
    assert view.started.isoformat() == "2026-12-04T10:00:05+00:00"


def test_jobs_come_from_memory_only_after_a_list_and_until_the_resync() -> None:
    cache = JobCache(resync_seconds=60)
    cache.observe("ADDED", job("a", "1"))
    assert cache.run_jobs("ns", RUN) is None  # never listed in this process
    cache.replace_run("ns", RUN, [job_view_of(job("a", "1"))])
    assert names(cache) == ["a"]
    stale = JobCache(resync_seconds=0)
    stale.replace_run("ns", RUN, [])
    assert stale.run_jobs("ns", RUN) is None  # the resync is due at once
    cache.invalidate()
    assert cache.run_jobs("ns", RUN) is None


def test_events_add_update_and_delete_but_never_go_back_in_time() -> None:
    cache = JobCache()
    cache.replace_run("ns", RUN, [])
    cache.observe("ADDED", job("a", "5"))
    cache.observe("MODIFIED", complete("a", "9"))
    cache.observe("MODIFIED", job("a", "6"))  # a late event of an older state
    (view,) = cache.run_jobs("ns", RUN) or []
    assert view.finished == "Complete"
    cache.observe("DELETED", complete("a", "10"))
    assert names(cache) == []


def test_a_list_keeps_newer_states_seen_meanwhile_and_drops_what_is_gone() -> None:
    cache = JobCache()
    cache.replace_run("ns", RUN, [])
    cache.observe("MODIFIED", complete("a", "9"))
    cache.observe("ADDED", job("gone", "3"))
    cache.replace_run("ns", RUN, [job_view_of(job("a", "8")), job_view_of(job("b", "8"))])
    jobs = {view.name: view for view in cache.run_jobs("ns", RUN) or []}
    assert sorted(jobs) == ["a", "b"]
    assert jobs["a"].finished == "Complete"


def test_what_the_operator_creates_is_seen_at_once_and_its_event_replaces_it() -> None:
    cache = JobCache()
    cache.replace_run("ns", RUN, [])
    manifest = job("new", "")
    del manifest["metadata"]["namespace"]
    cache.put("ns", manifest)
    assert names(cache) == ["new"]
    cache.observe("MODIFIED", complete("new", "4"))
    (view,) = cache.run_jobs("ns", RUN) or []
    assert view.finished == "Complete"
    cache.drop("ns", RUN, "new")
    assert names(cache) == []


def test_a_run_never_sees_the_jobs_of_another_run_of_the_same_name() -> None:
    cache = JobCache()
    cache.replace_run("ns", RUN, [])
    cache.replace_run("ns", OTHER, [])
    cache.observe("ADDED", job("old", "1", OTHER))
    cache.observe("ADDED", job("mine", "2", RUN))
    assert names(cache) == ["mine"]
    assert names(cache, OTHER) == ["old"]
    cache.replace_run("ns", RUN, [])  # a list of this run leaves the other's Jobs alone
    assert names(cache, OTHER) == ["old"]
    cache.forget_run("ns", OTHER)
    assert cache.run_jobs("ns", OTHER) is None
    assert len(cache) == 0


def test_resource_versions_compare_as_numbers() -> None:
    assert newer("10", "9")
    assert not newer("9", "10")
    assert newer("abc", "10")  # not numbers: the later arrival wins
