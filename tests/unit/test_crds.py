"""The generated CRDs: valid apiextensions/v1 objects, structural, described, and in agreement
with the pydantic models on examples and invalid fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from genesys.api.crd import all_crds
from genesys.cli import CRD_DIRS, main

REPO = Path(__file__).resolve().parents[2]
CRDS = all_crds()
FORBIDDEN_KEYS = {"$ref", "anyOf", "allOf", "oneOf", "not", "const", "title", "$defs"}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def to_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema draft 4: nullable becomes a null type."""
    if isinstance(node, list):
        return [to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {
        key: (value if key == "default" else to_jsonschema(value))
        for key, value in node.items()
        if key != "nullable" and key != "properties"
    }
    if "properties" in node:
        result["properties"] = {k: to_jsonschema(v) for k, v in node["properties"].items()}
    if node.get("nullable"):
        result["type"] = [node["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
    return result


def crd_validator(kind: str) -> jsonschema.Draft4Validator:
    crd = next(c for c in CRDS.values() if c["spec"]["names"]["kind"] == kind)
    return jsonschema.Draft4Validator(to_jsonschema(schema_of(crd)))


@pytest.mark.parametrize("name", list(CRDS))
def test_crd_validates_against_apiextensions_v1(name: str) -> None:
    version = kubernetes_validate.latest_version()
    assert kubernetes_validate.validate(CRDS[name], desired_version=version, strict=True)


@pytest.mark.parametrize("name", list(CRDS))
def test_crd_file_on_disk_parses_to_the_generated_object(name: str) -> None:
    on_disk = yaml.safe_load((REPO / "crds" / name).read_text(encoding="utf-8"))
    assert on_disk == CRDS[name]


@pytest.mark.parametrize("name", list(CRDS))
def test_crd_schema_is_structural(name: str) -> None:
    problems = []
    for path, node in walk(schema_of(CRDS[name])):
        if "type" not in node:
            problems.append(f"{path or '<root>'}: no type")
        if FORBIDDEN_KEYS & node.keys():
            problems.append(f"{path}: has {sorted(FORBIDDEN_KEYS & node.keys())}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties beside additionalProperties")
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            problems.append(f"{path}: numeric exclusiveMinimum (draft 2020 style)")
    assert problems == []


@pytest.mark.parametrize("name", list(CRDS))
def test_every_crd_field_has_a_description(name: str) -> None:
    missing = [path for path, node in walk(schema_of(CRDS[name])) if not node.get("description")]
    assert missing == []


@pytest.mark.parametrize("name", list(CRDS))
def test_crd_defaults_satisfy_their_own_schema(name: str) -> None:
    for path, node in walk(schema_of(CRDS[name])):
        if "default" in node:
            schema = to_jsonschema({k: v for k, v in node.items() if k != "default"})
            assert jsonschema.Draft4Validator(schema).is_valid(node["default"]), path


@pytest.mark.parametrize("name", list(CRDS))
def test_printer_columns_point_at_schema_fields(name: str) -> None:
    crd = CRDS[name]
    (version,) = crd["spec"]["versions"]
    schema = schema_of(crd)
    for column in version["additionalPrinterColumns"]:
        parts = column["jsonPath"].lstrip(".").split(".")
        if parts[0] == "metadata":
            continue
        node = schema
        for part in parts:
            node = node["properties"][part]
        assert node["type"] in ("string", "integer", "number", "array"), column


def test_crd_names_categories_and_status_subresource() -> None:
    runs = CRDS["genesys.dev_discoveryruns.yaml"]
    assert runs["metadata"]["name"] == "discoveryruns.genesys.dev"
    assert "dr" in runs["spec"]["names"]["shortNames"]
    assert "genesys" in runs["spec"]["names"]["categories"]
    (version,) = runs["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:5] == ["Phase", "Rung", "Designs", "Best", "Spend"]
    assert columns[-1] == "Age"
    assert not any("conditions" in c["jsonPath"] for c in version["additionalPrinterColumns"])


def test_crd_carries_paper_defaults() -> None:
    spec = schema_of(CRDS["genesys.dev_discoveryruns.yaml"])["properties"]["spec"]
    operators = spec["properties"]["sessions"]["properties"]["operators"]["properties"]
    assert operators["mutation"]["default"] == 0.8
    assert operators["crossoverWarmup"]["default"] == 10
    ladder = spec["properties"]["ladder"]["properties"]
    assert [r["preset"] for r in ladder["rungs"]["default"]] == [
        "14M",
        "31M",
        "70M",
        "125M",
        "350M",
    ]


@pytest.mark.parametrize(
    "example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.stem
)
def test_examples_satisfy_the_crd_schema(example: Path) -> None:
    document = yaml.safe_load(example.read_text(encoding="utf-8"))
    crd_validator("DiscoveryRun").validate(document)


# Fixtures whose error is structural, so the API server's schema must reject them at admission.
STRUCTURAL_FIXTURES = [
    "budget-zero",
    "rung-unknown-preset",
    "rung-name-bad",
    "selection-ratio-zero",
    "rungs-empty",
    "operator-probability",
    "proposal-rating-high",
    "flow-unknown",
    "parallel-type",
    "base-url-scheme",
    "selection-quantile",
    "scheduler-unknown",
    "memory-quantity",
    "s3-bucket-name",
    "seed-negative",
    "unknown-field-typo",
]


@pytest.mark.parametrize("fixture", STRUCTURAL_FIXTURES)
def test_structural_fixtures_are_rejected_by_the_crd_schema(fixture: str) -> None:
    path = REPO / "tests" / "fixtures" / "invalid" / f"{fixture}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator = crd_validator("DiscoveryRun")
    if fixture == "unknown-field-typo":
        # The API server prunes unknown fields instead of rejecting them; pydantic rejects.
        # Check that the field is indeed absent from the schema, so it would be pruned.
        ladder = schema_of(CRDS["genesys.dev_discoveryruns.yaml"])["properties"]["spec"]
        assert "rungz" not in ladder["properties"]["ladder"]["properties"]
        return
    assert list(validator.iter_errors(document)), f"{fixture} passed the CRD schema"


def test_crds_default_dirs_are_the_repository_and_the_chart_copy() -> None:
    assert CRD_DIRS == ("crds", "helm/genesys-operator/files/crds")
    assert (REPO / "helm" / "genesys-operator" / "Chart.yaml").is_file()
    for directory in CRD_DIRS:
        assert sorted(p.name for p in (REPO / directory).glob("*.yaml")) == sorted(CRDS)


def test_crds_check_without_dir_checks_the_chart_copy_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for directory in CRD_DIRS:
        shutil.copytree(REPO / "crds", tmp_path / directory)
    monkeypatch.chdir(tmp_path)
    assert main(["crds", "--check"]) == 0
    chart_copy = tmp_path / CRD_DIRS[1] / "genesys.dev_designs.yaml"
    chart_copy.write_text(chart_copy.read_text(encoding="utf-8") + "# drift\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["crds", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale CRDs in {CRD_DIRS[1]}: genesys.dev_designs.yaml" in err


def test_crds_without_dir_writes_both_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["crds"]) == 0
    for name in CRDS:
        first, second = (tmp_path / directory / name for directory in CRD_DIRS)
        assert first.read_bytes() == second.read_bytes() == (REPO / "crds" / name).read_bytes()
