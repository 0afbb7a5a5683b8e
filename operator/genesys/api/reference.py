"""The API reference in Markdown, generated from the pydantic models (``genesys docs api``).

:func:`api_reference_markdown` walks :class:`~genesys.api.discoveryrun.DiscoveryRun` and
:class:`~genesys.api.design.Design` field by field, nested models included, and writes one table
row per field: its path as a user writes it in YAML (camelCase; ``[]`` for list items, ``<name>``
for map keys), its type with its bounds, its default and its description. It adds the scale
presets (:mod:`genesys.api.presets`) as a table. ``docs/api.md`` is this text;
``tests/unit/test_api_reference.py`` fails when the file is stale.

What must stay true: the text is a pure function of the models (no I/O, no clock), so the same
models always give the same bytes; every field of every model reachable from a DiscoveryRun
appears exactly once.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import annotated_types
from pydantic import BaseModel, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from genesys.api.base import API_GROUP_VERSION, PATTERN_MEANINGS
from genesys.api.design import Design
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.presets import PAPER_VOCAB_SIZE, SCALE_PRESETS, reference_params

BYTE_VOCAB_SIZE = 256
"""The byte tokenizer's vocabulary, the CPU presets' usual one."""

REGENERATE = "genesys docs api > docs/api.md"
"""The command that rewrites ``docs/api.md``."""

_SCALARS: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    datetime: "date-time (RFC 3339)",
    Any: "any value",
}


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One row of a reference table: a field as a user writes it."""

    path: str
    type: str
    default: str
    description: str


# ----------------------------------------------------------------------------------- walking


def _strip_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    """(the bare type, the constraints) of a possibly ``Annotated`` and optional type."""
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        bare, *metadata = typing.get_args(annotation)
        return _strip_optional(bare), list(metadata)
    return annotation, []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _nested(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path suffix, model) of the models a field's value holds: itself, list items, map values."""
    bare, _ = _split_annotated(annotation)
    model = _model_of(bare)
    if model is not None:
        yield "", model
        return
    origin, args = typing.get_origin(bare), typing.get_args(bare)
    if origin is list and args:
        for suffix, inner in _nested(args[0]):
            yield "[]" + suffix, inner
    elif origin is dict and len(args) == 2:
        for suffix, inner in _nested(args[1]):
            yield ".<name>" + suffix, inner


def _yaml_key(name: str, info: FieldInfo) -> str:
    return info.alias or to_camel(name)


def field_rows(model: type[BaseModel], prefix: str = "") -> Iterator[FieldRow]:
    """Every field of ``model`` and of the models it holds, depth first, in declaration order."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{_yaml_key(name, info)}" if prefix else _yaml_key(name, info)
        yield FieldRow(
            path=path,
            type=_type_text(info.annotation, info.metadata),
            default=_default_text(info),
            description=_description(info, model),
        )
        for suffix, inner in _nested(info.annotation):
            yield from field_rows(inner, path + suffix)


# ------------------------------------------------------------------------------------ types


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value)


_COMPARISONS: tuple[tuple[type[Any], str, str], ...] = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _comparisons(metadata: Sequence[Any]) -> list[str]:
    """``≥ 1``, ``≤ 1,024``, ... in the order the field declares them."""
    return [
        f"{symbol} {_number(getattr(item, attribute))}"
        for item in metadata
        for kind, attribute, symbol in _COMPARISONS
        if isinstance(item, kind)
    ]


def _lengths(metadata: Sequence[Any]) -> tuple[int | None, int | None, str | None]:
    """(minimum length, maximum length, pattern) of a string or list field."""
    low = high = None
    pattern: str | None = None
    for item in metadata:
        if isinstance(item, annotated_types.MinLen | StringConstraints):
            low = item.min_length if item.min_length is not None else low
        if isinstance(item, annotated_types.MaxLen | StringConstraints):
            high = item.max_length if item.max_length is not None else high
        if isinstance(item, StringConstraints) and isinstance(item.pattern, str):
            pattern = item.pattern
    return low, high, pattern


def _length_text(low: int | None, high: int | None, unit: str) -> list[str]:
    if low is not None and high is not None:
        return [f"{_number(low)} to {_number(high)} {unit}"]
    if high is not None:
        return [f"at most {_number(high)} {unit}"]
    if low == 1 and unit == "characters":
        return ["non-empty"]
    if low is not None:
        return [f"at least {_number(low)} {unit if low != 1 else unit.rstrip('s')}"]
    return []


def _bounds(metadata: Sequence[Any], *, unit: str) -> list[str]:
    """Human bounds: ``≥ 1``, ``≤ 1,024``, ``1 to 16 items``, a pattern's meaning."""
    low, high, pattern = _lengths(metadata)
    parts = [*_comparisons(metadata), *_length_text(low, high, unit)]
    if pattern is not None:
        parts.append(PATTERN_MEANINGS.get(pattern, f"matching `{pattern}`"))
    return parts


def _choices(values: Sequence[Any]) -> str:
    return "one of " + ", ".join(f"`{value}`" for value in values)


def _type_text(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """The type a user writes, with its bounds: ``integer, ≥ 1, ≤ 1,024``."""
    bare, inner_metadata = _split_annotated(annotation)
    metadata = [*inner_metadata, *metadata]
    origin, args = typing.get_origin(bare), typing.get_args(bare)
    if origin is typing.Literal and len(args) == 1:
        text = f"`{args[0]}`"
    elif origin is typing.Literal:
        text = _choices(args)
    elif isinstance(bare, type) and issubclass(bare, enum.Enum):
        text = _choices([member.value for member in bare])
    elif _model_of(bare) is not None:
        text = "object"
    elif origin is list:
        item = _type_text(args[0])
        text = f"list of ({item})" if ", " in item else f"list of {item}"
        return ", ".join([text, *_bounds(metadata, unit="items")])
    elif origin is dict:
        value = _type_text(args[1])
        text = f"map of string to ({value})" if ", " in value else f"map of string to {value}"
    else:
        text = _SCALARS.get(bare, getattr(bare, "__name__", str(bare)))
    unit = "characters" if bare is str else "items"
    return ", ".join([text, *_bounds(metadata, unit=unit)])


# --------------------------------------------------------------------------- defaults, words


def _plain(value: Any) -> Any:
    """A default as the JSON a user would write (camelCase keys, unset fields left out)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return ""  # an object: its own fields carry the defaults
    plain = _plain(value)
    if isinstance(plain, str) and plain:
        return f"`{plain}`"
    return "`" + json.dumps(plain, separators=(", ", ": ")) + "`"


def _description(info: FieldInfo, model: type[BaseModel]) -> str:
    text = info.description or ""
    if not text:
        raise ValueError(f"{model.__name__} has a field without a description")
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[FieldRow]) -> list[str]:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    lines += [
        f"| `{_cell(row.path)}` | {_cell(row.type)} | {_cell(row.default)} | "
        f"{_cell(row.description)} |"
        for row in rows
    ]
    return lines


def _first_paragraph(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())


# ---------------------------------------------------------------------------------- the page


def _resource_sections(resource: type[BaseModel], kind: str, *, split: str | None) -> list[str]:
    """The top level, then ``spec`` and ``status``; ``split``'s object fields get a table each."""
    rows = list(field_rows(resource))
    top = [row for row in rows if "." not in row.path or row.path.startswith("metadata.")]
    title = "" if split else f"{kind} "
    sections = ["", f"### {kind}: top level", "", _first_paragraph(resource), "", *_table(top)]
    for part in ("spec", "status"):
        part_rows = [row for row in rows if row.path.startswith(f"{part}.")]
        sections += ["", f"### {title}`{part}`", "", _first_paragraph(_part_model(resource, part))]
        if part != split:
            sections += ["", *_table(part_rows)]
            continue
        objects = [row.path for row in part_rows if row.path.count(".") == 1 and _holds(row)]
        plain = [row for row in part_rows if row.path.count(".") == 1 and not _holds(row)]
        sections += ["", *_table(plain), ""]
        sections.append(
            "Sections: " + ", ".join(f"[`{path}`](#{_anchor(path)})" for path in objects) + "."
        )
        for path in objects:
            group = [
                row
                for row in part_rows
                if row.path == path or row.path.startswith((f"{path}.", f"{path}[]"))
            ]
            sections += ["", f"#### `{path}`", "", *_table(group)]
    return sections


def _holds(row: FieldRow) -> bool:
    return row.type.startswith(("object", "list of object", "map of string to object"))


def _part_model(resource: type[BaseModel], part: str) -> type[BaseModel]:
    (_, model), *_ = _nested(resource.model_fields[part].annotation)
    return model


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens."""
    kept = "".join(char for char in heading.lower() if char.isalnum() or char in "-_ ")
    return kept.replace(" ", "-")


def _presets_table() -> list[str]:
    lines = [
        "| preset | nEmbd x nLayer (nHead) | reference params, vocab 32,000 / 256 | lr | tokens "
        "per param | context | batch tokens | confidence points | slowdown tolerance | deadline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, preset in SCALE_PRESETS.items():
        params = " / ".join(
            f"{reference_params(preset.n_embd, preset.n_layer, vocab):,}"
            for vocab in (PAPER_VOCAB_SIZE, BYTE_VOCAB_SIZE)
        )
        hours = preset.deadline_seconds / 3600
        lines.append(
            f"| `{name}` | {preset.n_embd} x {preset.n_layer} ({preset.n_head}) | {params} | "
            f"{preset.lr:g} | {preset.tokens_per_param:g} | {preset.block_size:,} | "
            f"{preset.batch_tokens:,} | {preset.confidence_points} | "
            f"{preset.slowdown_tolerance:g}x | {hours:g} h |"
        )
    return lines


_PREAMBLE = f"""\
# API reference: `{API_GROUP_VERSION}`

<!-- Generated from operator/genesys/api/ by `genesys docs api`. Do not edit by hand:
     run `{REGENERATE}` after changing a model. -->

Every field of the `DiscoveryRun` and `Design` resources, generated from the pydantic models in
`operator/genesys/api/` (the same models generate the CRDs in `crds/`, so `kubectl explain
discoveryrun.spec.ladder` prints the same descriptions). How to read the tables:

- **field** is the path as you write it in YAML, in camelCase. `[]` marks the items of a list
  (`spec.ladder.rungs[].name`), `<name>` a key of a map (`spec.agents.prices.<name>`).
- **default** is what an absent field means. `unset` means absent unless you set it (the
  description says what absence means); `required` must be given. Where a description says
  `(paper: X)`, X is the Genesys paper's value and the default equals it
  (`tests/unit/test_api_defaults.py` pins them).
- Unknown keys are errors, reported with a suggestion (`spec.ladder.rungz: unknown field (did
  you mean 'rungs'?)`); `genesys validate FILE` checks a file without running it.
- Every field acts: `tests/unit/test_field_coverage.py` changes each leaf field and checks that
  a rendered Job, a session's inputs, the plan or the validation changes (`storage.retention`
  and `storage.resumeFrom`, which act on deletion and on binding the store, are tested apart).

Besides each field's own bounds, `genesys validate`, `genesys run` and the operator enforce rules
across fields (`operator/genesys/api/validation.py`; one invalid example of each lives in
`tests/fixtures/invalid/`): rung names unique; each rung names a preset or a `model` shape, and an
`lr` without a preset; `tokens` or `tokensPerParam`, not both; `model.nHead` divides
`model.nEmbd`; `batchTokens` at least `contextLength`; rungs growing strictly in reference
parameters; budgets never growing up the ladder; some genetic operator with a positive
probability; flow `gau` with `agents.offline`; an `apiKeySecret` unless `agents.offline` (or
`verification.scheduler: local`, which uses `apiKeyEnv`); per-role model weights with a positive
sum, each model once per role, and a price for every model when a USD cap is set;
`maxUsdPerSession` at most `maxUsdPerRun`; each warning ratio of `checks` at most its error ratio;
`vocabSize` 256 with tokenizer `byte`, and equal to N with `bpe:N`; data subsets with a positive
weight sum; each eval task once; Kubernetes' toleration rules; one of `storage.s3` and
`storage.local`; a `deadline` with a time zone. On a cluster the operator also needs an S3 store,
prepared `verification.data.shards` and scheduler `kubernetes`.

## Contents

- [DiscoveryRun](#discoveryrun): [top level](#discoveryrun-top-level), [`spec`](#spec),
  [`status`](#status)
- [Design](#design): [top level](#design-top-level), [`spec`](#design-spec),
  [`status`](#design-status)
- [Scale presets](#scale-presets)

## DiscoveryRun
"""


def api_reference_markdown() -> str:
    """The whole API reference (``docs/api.md``)."""
    lines = [_PREAMBLE.rstrip("\n")]
    lines += _resource_sections(DiscoveryRun, "DiscoveryRun", split="spec")
    lines += [
        "",
        "## Design",
        "",
        "One `Design` per design of a run, created by the operator as a mirror of the run's "
        "archive in the store (the artifacts stay in the store, at `status.artifactUri`). Users "
        "read Designs; they never write them.",
    ]
    lines += _resource_sections(Design, "Design", split=None)
    lines += [
        "",
        "## Scale presets",
        "",
        "`spec.ladder.rungs[].preset` names one of these (`operator/genesys/api/presets.py`); "
        "any field of a rung overrides its preset's value. The paper's ladder is `14M` to "
        "`350M`; `nano`, `micro` and `mini` are sized for a CPU. Reference parameters are those "
        "of a GPT-2 model of that shape with a tied embedding, recomputed for the run's "
        "vocabulary (shown for the paper's 32,000 and the byte tokenizer's 256); a design is "
        "fitted to within `checks.paramTolerance` of it.",
        "",
        *_presets_table(),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # ``python -m genesys.api.reference > docs/api.md``
    print(api_reference_markdown(), end="")
