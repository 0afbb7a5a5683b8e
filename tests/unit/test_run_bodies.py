"""The newest run body kept between reconciles: the latest resourceVersion wins, copies out."""

from __future__ import annotations

from typing import Any

from genesys.controller.runcache import RunBodies


def body(version: str, phase: str = "", name: str = "r") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
        "status": {"phase": phase},
    }


def test_the_latest_resource_version_is_kept_whatever_the_order() -> None:
    bodies = RunBodies()
    bodies.offer(body("9", "Running"))
    bodies.offer(body("10", "Succeeded"))  # numerically later, though "10" < "9" as text
    bodies.offer(body("8", "Pending"))  # a stale timer body
    kept = bodies.get("ns", "r")
    assert kept is not None
    assert kept["status"]["phase"] == "Succeeded"
    assert bodies.get("ns", "other") is None


def test_a_body_without_a_version_is_not_kept_and_copies_go_out() -> None:
    bodies = RunBodies()
    bodies.offer({"metadata": {"name": "r", "namespace": "ns"}})  # a Job event's stand-in
    assert bodies.get("ns", "r") is None
    bodies.offer(body("3", "Running"))
    first = bodies.get("ns", "r")
    assert first is not None
    first["status"]["phase"] = "changed by a reconcile"
    again = bodies.get("ns", "r")
    assert again is not None
    assert again["status"]["phase"] == "Running"
    bodies.forget("ns", "r")
    assert bodies.get("ns", "r") is None
