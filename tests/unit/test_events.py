"""Events name the object they are about the way kopf's poster needs it."""

from __future__ import annotations

from kopf._cogs.structs.bodies import build_object_reference

from genesys.backends.kubernetes import Happening
from genesys.controller.handlers import involved_object


def test_involved_object_of_a_run_carries_its_uid() -> None:
    body = involved_object(
        Happening("run", "tiny", "Normal", "Succeeded", "done"), namespace="lab", run_uid="u-1"
    )
    assert build_object_reference(body) == {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "name": "tiny",
        "uid": "u-1",
        "namespace": "lab",
    }


def test_involved_object_of_a_design_has_no_run_uid() -> None:
    body = involved_object(
        Happening("design", "tiny-d0001", "Normal", "Promoted", "to s"),
        namespace="lab",
        run_uid="u-1",
    )
    reference = build_object_reference(body)
    assert reference["kind"] == "Design"
    assert "uid" not in reference
