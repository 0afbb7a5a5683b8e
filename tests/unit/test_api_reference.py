"""docs/api.md is the generated API reference, current, and names every field users write."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from genesys.api.design import Design
from genesys.api.discoveryrun import DiscoveryRun, DiscoveryRunSpec, FinishReason, Phase
from genesys.api.presets import SCALE_PRESETS
from genesys.api.reference import REGENERATE, api_reference_markdown
from genesys.cli import main

pytestmark = pytest.mark.unit

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path suffix, model) of every model a field holds: itself, list items, map values."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin is list:
        yield from (("[]" + suffix, model) for suffix, model in models_in(args[0]))
    elif origin is dict:
        yield from ((".<name>" + suffix, model) for suffix, model in models_in(args[1]))
    else:  # X | None, Annotated[X, ...]
        for arg in args:
            yield from models_in(arg)


def yaml_paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Every path a user can write under ``model`` (written apart from the generator's walk)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}" if prefix else (info.alias or name)
        yield path
        for suffix, inner in models_in(info.annotation):
            yield from yaml_paths(inner, path + suffix)


def documented_paths(text: str) -> list[str]:
    """The first cell of every row of the field tables (the presets' table comes after them)."""
    fields = text.split("\n## Scale presets", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", fields, flags=re.MULTILINE)


def test_docs_api_md_is_current() -> None:
    current = API_MD.read_text(encoding="utf-8") if API_MD.exists() else ""
    assert current == api_reference_markdown(), (
        f"docs/api.md is stale (the API models changed): regenerate it with `{REGENERATE}`"
    )


def test_genesys_docs_api_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "api"]) == 0
    assert capsys.readouterr().out == api_reference_markdown()


def test_every_spec_field_has_a_row() -> None:
    documented = set(documented_paths(api_reference_markdown()))
    expected = set(yaml_paths(DiscoveryRunSpec, "spec"))
    assert {
        "spec.ladder.rungs[].model.nEmbd",
        "spec.agents.prices.<name>.inputPerMTokens",
        "spec.verification.tolerations[].tolerationSeconds",
    } <= expected
    missing = sorted(expected - documented)
    assert not missing, f"spec fields missing from the API reference: {missing}"


def test_every_field_of_both_resources_has_exactly_one_row() -> None:
    rows = documented_paths(api_reference_markdown())
    expected = [*yaml_paths(DiscoveryRun, ""), *yaml_paths(Design, "")]
    assert sorted(rows) == sorted(expected)


def test_a_row_shows_type_bounds_default_and_description() -> None:
    text = api_reference_markdown()
    assert (
        "| `spec.sessions.parallel` | integer, ≥ 1, ≤ 1,024 | `1` | Design sessions run at once. |"
        in text
    )
    assert "| `spec.agents.offline` | boolean | `false` |" in text
    assert "| `spec.ladder.rungs[].name` | string, 1 to 24 characters" in text


def test_phases_finish_reasons_and_presets_are_listed() -> None:
    text = api_reference_markdown()
    for value in [*Phase, *FinishReason]:
        assert f"`{value.value}`" in text
    for preset in SCALE_PRESETS:
        assert f"| `{preset}` |" in text
