"""Validation: every invalid fixture fails with its field path; the examples pass."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from genesys.api.validation import (
    SpecError,
    SpecValidationError,
    format_path,
    parse_design,
    parse_discovery_run,
)
from genesys.api.yamlio import load_all
from genesys.cli import main

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "fixtures" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def expected_path(fixture: Path) -> str:
    first = fixture.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{fixture.name} must start with '# expect: PATH'"
    return first.removeprefix("# expect: ").strip()


def test_there_are_at_least_twenty_invalid_fixtures() -> None:
    assert len(INVALID) >= 20


@pytest.mark.parametrize("fixture", INVALID, ids=[f.stem for f in INVALID])
def test_invalid_fixture_exits_2_naming_the_field(
    fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(fixture)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{fixture}: {expected_path(fixture)}: " in err


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_is_valid(example: Path) -> None:
    (document,) = load_all(example.read_text(encoding="utf-8"))
    run = parse_discovery_run(document)
    assert run.metadata.name == example.stem


def test_examples_cover_both_deployments() -> None:
    names = {e.stem for e in EXAMPLES}
    assert {"quickstart", "paper-ladder"} <= names


def quickstart() -> dict[str, Any]:
    (document,) = load_all((REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(document)


def test_the_quickstart_is_a_real_discovery_with_tasks_scored_to_0_015() -> None:
    from genesys.backends.driver import EVAL_ITEMS_PER_TASK, resolve_paths

    run = parse_discovery_run(quickstart())
    assert len(run.spec.ladder.rungs) >= 2
    assert run.spec.sessions.max_designs is not None
    assert run.spec.sessions.max_designs >= 10
    limit = run.spec.verification.eval_limit
    assert limit is not None
    assert limit <= EVAL_ITEMS_PER_TASK  # every item it asks for exists
    assert math.sqrt(0.25 / limit) <= 0.015  # the worst-case standard error of an accuracy
    data_uri = resolve_paths(run, Path("/work")).data_uri
    assert data_uri.endswith(f"-e{EVAL_ITEMS_PER_TASK}")  # data with fewer items is not reused


def errors_of(document: dict[str, Any]) -> list[SpecError]:
    with pytest.raises(SpecValidationError) as caught:
        parse_discovery_run(document)
    return caught.value.errors


def test_every_structural_error_is_reported_at_once() -> None:
    document = quickstart()
    document["spec"]["seed"] = -5
    document["spec"]["sessions"]["parallel"] = 0
    document["spec"]["ladder"]["rungs"][0]["budget"] = 0
    paths = {error.path for error in errors_of(document)}
    assert paths == {"spec.seed", "spec.sessions.parallel", "spec.ladder.rungs[0].budget"}


def test_error_carries_bad_value_and_expectation() -> None:
    document = quickstart()
    document["spec"]["ladder"]["rungs"][1]["budget"] = 0
    (error,) = errors_of(document)
    assert error.path == "spec.ladder.rungs[1].budget"
    assert error.value == 0
    assert error.render() == "spec.ladder.rungs[1].budget: expected a number >= 1 (got 0)"


def test_unknown_field_suggests_the_closest_name() -> None:
    document = quickstart()
    document["spec"]["sessions"]["paralel"] = 3
    (error,) = errors_of(document)
    assert error.path == "spec.sessions.paralel"
    assert "did you mean 'parallel'" in error.message


def test_unknown_key_inside_a_free_form_map_is_allowed() -> None:
    document = quickstart()
    document["spec"]["verification"]["nodeSelector"] = {"anything.example/x": "y"}
    assert parse_discovery_run(document).spec.verification.node_selector


def test_price_keys_with_dots_get_bracketed_paths() -> None:
    document = quickstart()
    document["spec"]["agents"]["prices"] = {"gpt-4.1": {"inputPerMTokens": -1}}
    paths = [error.path for error in errors_of(document)]
    assert 'spec.agents.prices["gpt-4.1"].inputPerMTokens' in paths
    assert 'spec.agents.prices["gpt-4.1"].outputPerMTokens' in paths


def test_deadline_with_time_zone_is_accepted() -> None:
    document = quickstart()
    document["spec"]["deadline"] = "2026-12-01T00:00:00Z"
    deadline = parse_discovery_run(document).spec.deadline
    assert deadline is not None
    assert deadline.utcoffset() is not None


def test_defaults_fill_an_empty_spec_except_the_api_key() -> None:
    document = {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": "bare"},
    }
    (error,) = errors_of(document)
    assert error.path == "spec.agents.apiKeySecret"
    document["spec"] = {"agents": {"apiKeySecret": {"name": "llm", "key": "api-key"}}}
    run = parse_discovery_run(document)
    assert [rung.name for rung in run.spec.ladder.rungs] == ["14M", "31M", "70M", "125M", "350M"]


def test_document_that_is_not_a_mapping() -> None:
    with pytest.raises(SpecValidationError, match="expected a mapping"):
        parse_discovery_run(["not", "a", "mapping"])


def test_design_document_validates() -> None:
    design = parse_design(
        {
            "apiVersion": "genesys.dev/v1alpha1",
            "kind": "Design",
            "metadata": {"name": "quickstart-d0007"},
            "spec": {"runName": "quickstart", "operator": "crossover", "parents": ["a", "b"]},
        }
    )
    assert design.spec.parents == ["a", "b"]


def test_design_with_three_parents_is_invalid() -> None:
    with pytest.raises(SpecValidationError) as caught:
        parse_design(
            {
                "apiVersion": "genesys.dev/v1alpha1",
                "kind": "Design",
                "metadata": {"name": "d"},
                "spec": {"runName": "r", "operator": "crossover", "parents": ["a", "b", "c"]},
            }
        )
    assert [e.path for e in caught.value.errors] == ["spec.parents"]


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("spec", "ladder", "rungs", 2, "budget"), "spec.ladder.rungs[2].budget"),
        (("spec", "agents", "prices", "gpt-4.1"), 'spec.agents.prices["gpt-4.1"]'),
        (("kind",), "kind"),
        ((), ""),
    ],
)
def test_format_path(loc: tuple[str | int, ...], expected: str) -> None:
    assert format_path(loc) == expected
