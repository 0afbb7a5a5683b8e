"""Which store folders a reconcile lists after a Job ended (the hinted archive refresh).

A reconcile lists only the folders that the Jobs which just ended (and the operator's ingest
of them) may have written; these tests pin that mapping, and that a Job whose labels do not
say where falls back to a listing of the whole run.
"""

from __future__ import annotations

from typing import Any

from genesys.backends.jobcache import job_view_of
from genesys.backends.kubernetes import written_folders
from genesys.store.archive import session_key, verification_prefix


def ended_job(labels: dict[str, str]) -> Any:
    condition = {"type": "Complete", "status": "True"}
    return job_view_of(
        {"metadata": {"name": "j", "labels": labels}, "status": {"conditions": [condition]}}
    )


def test_a_session_names_its_own_folder_its_design_and_the_rejections() -> None:
    job = ended_job(
        {
            "genesys.dev/role": "session",
            "genesys.dev/session": "s0007",
            "genesys.dev/design": "d0007",
        }
    )
    folders = written_folders(job)
    assert folders == ["sessions/s0007", "designs/d0007", "rejected"]
    assert session_key("s0007").startswith(f"{folders[0]}/")
    assert session_key("s0007", "state.json").startswith(f"{folders[0]}/")


def test_a_training_job_names_its_verification() -> None:
    job = ended_job(
        {
            "genesys.dev/role": "verification",
            "genesys.dev/design": "d0003",
            "genesys.dev/rung": "r1",
        }
    )
    assert written_folders(job) == [verification_prefix("d0003", "r1")]
    assert verification_prefix("d0003", "r1") == "designs/d0003/verifications/r1"


def test_a_job_whose_labels_do_not_say_where_lists_the_whole_run() -> None:
    no_design = {"genesys.dev/role": "session", "genesys.dev/session": "s0001"}
    no_rung = {"genesys.dev/role": "verification", "genesys.dev/design": "d0001"}
    assert written_folders(ended_job(no_design)) is None
    assert written_folders(ended_job(no_rung)) is None
    assert written_folders(ended_job({"genesys.dev/session": "s0001"})) is None


def test_a_check_pod_writes_nothing() -> None:
    check = {"genesys.dev/role": "check", "genesys.dev/session": "s0001"}
    assert written_folders(ended_job(check)) == []
