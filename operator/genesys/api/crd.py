"""Generating the CustomResourceDefinitions in ``crds/`` from the pydantic models.

Pydantic writes JSON Schema (draft 2020-12 with ``$ref``); Kubernetes wants a *structural*
OpenAPI v3.0 schema. :func:`structural` converts one into the other:

- ``$ref``/``allOf`` are inlined (structural schemas allow no references);
- ``X | None`` becomes ``X`` with ``nullable: true``;
- ``const`` becomes a one-value ``enum``; numeric ``exclusiveMinimum: n`` becomes
  ``minimum: n`` plus ``exclusiveMinimum: true``;
- a boolean ``additionalProperties`` is dropped (a free-form object, such as an ``affinity``,
  carries ``x-kubernetes-preserve-unknown-fields`` instead);
- ``title`` is dropped, every ``description`` kept, and defaults (factories included) are written
  so that the API server fills them in and ``kubectl explain`` shows them.

What must stay true:
- ``genesys crds --check`` exits 1 whenever ``crds/`` differs from what this module generates;
  a test runs it.
- Every property in the generated schema has a description (a test walks them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, NoDefault
from pydantic_core import core_schema

from genesys.api.base import API_GROUP, API_VERSION
from genesys.api.design import DesignSpec, DesignStatus
from genesys.api.discoveryrun import DiscoveryRunSpec, DiscoveryRunStatus

Schema = dict[str, Any]

_DROPPED_KEYS = {"title", "examples", "$defs", "discriminator"}


class _FactoryDefaults(GenerateJsonSchema):
    """JSON Schema generation that also writes defaults built by default factories."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            factory: Callable[[], Any] = schema["default_factory"]  # type: ignore[assignment]
            return factory()
        return schema.get("default", NoDefault)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def _inlined(node: JsonSchemaValue, defs: dict[str, Schema], *, keep_defaults: bool) -> Schema:
    """``node`` with its ``$ref``, single-member ``allOf`` and ``anyOf`` merged in.

    Outer keys win (field descriptions); a multi-member ``allOf`` is dropped.
    """
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        node = {**defs[ref.rsplit("/", 1)[-1]], **node}
    all_of = node.pop("allOf", None)
    if all_of is not None and len(all_of) == 1:
        node = {**structural(all_of[0], defs, keep_defaults=keep_defaults), **node}
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        node = _without_null_option(node, any_of, defs, keep_defaults=keep_defaults)
    return node


def _without_null_option(
    node: Schema, any_of: list[Any], defs: dict[str, Schema], *, keep_defaults: bool
) -> Schema:
    """``Optional[X]`` -> ``X`` with ``nullable: true``; any other union is refused."""
    options = [option for option in any_of if option != {"type": "null"}]
    if len(options) != 1:
        raise ValueError(f"union of several types is not structural: {any_of}")
    merged = {**structural(options[0], defs, keep_defaults=keep_defaults), **node}
    if len(options) < len(any_of):
        merged["nullable"] = True
    return merged


# -- how each key of a JSON-schema node becomes entries of the structural schema

_Converter = Callable[[str, Any, dict[str, Schema], bool], Schema]


def _kept(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    return {key: value}


def _const(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    return {"enum": [value]}


def _exclusive(bound: str) -> _Converter:
    """Numeric ``exclusiveMinimum: n`` -> ``minimum: n`` plus ``exclusiveMinimum: true``."""

    def convert(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
        if isinstance(value, bool):
            return {key: value}
        return {bound: value, key: True}

    return convert


def _properties(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    return {
        key: {
            name: structural(prop, defs, keep_defaults=keep_defaults)
            for name, prop in value.items()
        }
    }


def _child(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    return {key: structural(value, defs, keep_defaults=keep_defaults)}


def _additional(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    if value is False or value is True:
        # false: structural schemas forbid it beside properties, and the API server prunes;
        # true: a free-form object says so with x-kubernetes-preserve-unknown-fields instead
        return {}
    if isinstance(value, dict):
        return _child(key, value, defs, keep_defaults)
    return {key: value}


def _default(key: str, value: Any, defs: dict[str, Schema], keep_defaults: bool) -> Schema:
    if keep_defaults and value is not None:
        return {key: _without_none(value)}
    return {}


_CONVERTERS: dict[str, _Converter] = {
    "const": _const,
    "exclusiveMinimum": _exclusive("minimum"),
    "exclusiveMaximum": _exclusive("maximum"),
    "properties": _properties,
    "additionalProperties": _additional,
    "items": _child,
    "default": _default,
}

_CHILD_LABELS = (("items", "One item of"), ("additionalProperties", "One value of"))


def _with_child_descriptions(schema: Schema) -> Schema:
    """Items and values without a description of their own get one from their parent."""
    result = dict(schema)
    for key, label in _CHILD_LABELS:
        child = result.get(key)
        if isinstance(child, dict) and "description" not in child and "description" in result:
            result[key] = _ordered({**child, "description": f"{label}: {result['description']}"})
    return result


def _is_untyped_string_enum(schema: Schema) -> bool:
    if "enum" not in schema or "type" in schema:
        return False
    return {type(item) for item in schema["enum"]} == {str}


def _with_implied_type(schema: Schema) -> Schema:
    """A string enum is a string; a schema with properties is an object (default ``{}``)."""
    result = dict(schema)
    if _is_untyped_string_enum(result):
        result["type"] = "string"
    if "properties" in result:
        result.setdefault("type", "object")
        if isinstance(result.get("default"), dict):
            result["default"] = {}  # the API server then applies the nested defaults
    return result


def structural(node: JsonSchemaValue, defs: dict[str, Schema], *, keep_defaults: bool) -> Schema:
    """Convert one pydantic JSON-schema node into a structural OpenAPI v3.0 schema."""
    node = _inlined(node, defs, keep_defaults=keep_defaults)
    if "$ref" in node or "allOf" in node:
        return structural(node, defs, keep_defaults=keep_defaults)
    result: Schema = {}
    for key, value in node.items():
        if key not in _DROPPED_KEYS:
            convert = _CONVERTERS.get(key, _kept)
            result.update(convert(key, value, defs, keep_defaults))
    return _ordered(_with_implied_type(_with_child_descriptions(result)))


_KEY_ORDER = ("type", "format", "description", "nullable", "enum", "default")


def _ordered(schema: Schema) -> Schema:
    """Put type and description first so the YAML reads well."""
    first = {key: schema[key] for key in _KEY_ORDER if key in schema}
    return {**first, **{key: value for key, value in schema.items() if key not in first}}


def model_schema(model: type[BaseModel], *, keep_defaults: bool) -> Schema:
    """Structural schema of one pydantic model."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    defs = raw.get("$defs", {})
    return structural(raw, defs, keep_defaults=keep_defaults)


def _resource_schema(
    *, description: str, spec: type[BaseModel], status: type[BaseModel], spec_required: bool
) -> Schema:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is the REST resource this object represents.",
            },
            "metadata": {"type": "object", "description": "Standard object metadata."},
            "spec": {
                **model_schema(spec, keep_defaults=True),
                **({} if spec_required else {"default": {}}),
            },
            "status": model_schema(status, keep_defaults=False),
        },
        **({"required": ["spec"]} if spec_required else {}),
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    schema: Schema,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "genesys-operator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["genesys", "all"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _column(name: str, type_: str, path: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, "description": description, **extra}


def discoveryrun_crd() -> dict[str, Any]:
    """The DiscoveryRun CustomResourceDefinition."""
    schema = _resource_schema(
        description="A DiscoveryRun: LLM agents discover LM block designs and verify them on a "
        "ladder of scales.",
        spec=DiscoveryRunSpec,
        status=DiscoveryRunStatus,
        spec_required=False,
    )
    columns = [
        _column("Phase", "string", ".status.phase", "Lifecycle phase."),
        _column("Rung", "string", ".status.currentRung", "Highest rung in progress."),
        _column("Designs", "integer", ".status.designs.total", "Designs so far."),
        _column("Best", "number", ".status.bestFitness", "Fitness of the best design."),
        _column("Spend", "number", ".status.spend.llmUsd", "LLM spend in USD."),
        _column("GPU-h", "number", ".status.spend.gpuHours", "GPU-hours spent.", priority=1),
        _column("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
    ]
    return _crd(
        kind="DiscoveryRun",
        plural="discoveryruns",
        short_names=["dr", "druns"],
        schema=schema,
        columns=columns,
    )


def design_crd() -> dict[str, Any]:
    """The Design CustomResourceDefinition."""
    schema = _resource_schema(
        description="A Design: one discovered LM block design, owned by its DiscoveryRun.",
        spec=DesignSpec,
        status=DesignStatus,
        spec_required=True,
    )
    columns = [
        _column("Phase", "string", ".status.phase", "Lifecycle phase."),
        _column("Operator", "string", ".spec.operator", "Genetic operator that made it."),
        _column("Rung", "string", ".status.highestRung", "Highest rung verified."),
        _column("Fitness", "number", ".status.fitness", "Fitness from the ranking."),
        _column("Parents", "string", ".spec.parents", "Parent designs."),
        _column("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
    ]
    return _crd(kind="Design", plural="designs", short_names=["gd"], schema=schema, columns=columns)


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every custom resource of the project."""
    return {
        f"{API_GROUP}_discoveryruns.yaml": discoveryrun_crd(),
        f"{API_GROUP}_designs.yaml": design_crd(),
    }


__all__ = ["all_crds", "design_crd", "discoveryrun_crd", "model_schema", "structural"]
