"""Validating DiscoveryRun and Design documents into errors that name the field.

Two passes:
1. **Structure** by pydantic (types, bounds, enums, unknown keys, missing fields), with its
   errors translated into :class:`SpecError` lines.
2. **Rules that span fields** by :func:`semantic_errors`: rungs growing, budgets shrinking,
   unique names, secrets required unless offline, and so on.

What must stay true:
- Every error carries the dotted field path as a user writes it in YAML
  (``spec.ladder.rungs[2].budget``), the bad value where there is one, and what was expected.
- The operator turns these errors into a ``SpecInvalid`` phase and a condition message; the CLI
  prints one line per error. Neither retries.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic
from pydantic import BaseModel

from genesys.api.base import API_GROUP_VERSION, PATTERN_MEANINGS
from genesys.api.design import Design
from genesys.api.discoveryrun import (
    Agents,
    Checks,
    Data,
    DiscoveryRun,
    DiscoveryRunSpec,
    Rung,
    Toleration,
    Verification,
)
from genesys.api.ladder import derive_budgets, rung_shape
from genesys.api.presets import reference_params

Loc = Sequence[str | int]

_NO_VALUE: Any = object()


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem with a document: where, what was expected, and the bad value."""

    path: str
    message: str
    value: Any = _NO_VALUE

    def render(self) -> str:
        """One line: ``path: message (got value)``."""
        where = self.path or "<document>"
        if self.value is _NO_VALUE:
            return f"{where}: {self.message}"
        return f"{where}: {self.message} (got {_show(self.value)})"


class SpecValidationError(ValueError):
    """A document failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(error.render() for error in self.errors))


def _show(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(loc: Loc) -> str:
    """('spec', 'ladder', 'rungs', 2, 'budget') -> 'spec.ladder.rungs[2].budget'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or not part:
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
    return text


# ------------------------------------------------------------------- pydantic error translation


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/list/dict to the innermost model class or type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        non_none = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(non_none[0]) if len(non_none) == 1 else annotation
    if origin in (list, tuple, set):
        return _unwrap(typing.get_args(annotation)[0])
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1])
    return annotation


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (the last element), if known."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        if part in fields:
            model = _unwrap(fields[part].annotation)
        elif part in model.model_fields:
            model = _unwrap(model.model_fields[part].annotation)
        else:
            return None  # inside a free-form dict: keep the key, look below it
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _expected(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = error["loc"]
    if kind == "extra_forbidden":
        model = _model_at(root, loc)
        if model is None:
            return "unknown field"
        names = _field_names(model)
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field{hint}; expected one of: {', '.join(names)}"
    if kind == "missing":
        return "required field is missing"
    bounds = {
        "greater_than_equal": ("a number >=", "ge"),
        "greater_than": ("a number >", "gt"),
        "less_than_equal": ("a number <=", "le"),
        "less_than": ("a number <", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected {words} {ctx.get(key)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"expected {PATTERN_MEANINGS.get(pattern, f'a string matching {pattern}')}"
    if kind in ("too_short", "too_long"):
        words = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"expected {words} {limit} item{'s' if limit != 1 else ''}"
    message = str(error["msg"])
    for prefix in ("Input should be ", "Input should have "):
        if message.startswith(prefix):
            return "expected " + message[len(prefix) :]
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    return message


def pydantic_errors(
    exc: pydantic.ValidationError, root: type[BaseModel], prefix: Loc = ()
) -> list[SpecError]:
    """Translate a pydantic ValidationError into SpecErrors with YAML field paths."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = [*prefix, *error["loc"]]
        value = _NO_VALUE if error["type"] in ("missing", "extra_forbidden") else error["input"]
        errors.append(SpecError(format_path(loc), _expected(error, root), value))
    return errors


# ---------------------------------------------------------------------- rules that span fields


_RUNGS = "spec.ladder.rungs"


def _rung_recipe_errors(path: str, rung: Rung) -> Iterator[SpecError]:
    """A rung without a preset names its shape and learning rate; tokens are given one way."""
    if rung.preset is None and rung.model is None:
        yield SpecError(
            f"{path}.preset",
            "expected a preset name or an explicit model shape (model.nEmbd, model.nLayer)",
        )
    if rung.preset is None and rung.lr is None:
        yield SpecError(f"{path}.lr", "expected a learning rate when no preset is set")
    if rung.tokens is not None and rung.tokens_per_param is not None:
        yield SpecError(
            f"{path}.tokens", "expected either tokens or tokensPerParam, not both", rung.tokens
        )


def _rung_shape_errors(path: str, rung: Rung) -> Iterator[SpecError]:
    """A rung's heads divide its width, and one step holds at least one sequence."""
    if rung.model is not None and rung.model.n_embd % rung.model.n_head != 0:
        yield SpecError(
            f"{path}.model.nHead",
            f"expected a divisor of model.nEmbd={rung.model.n_embd}",
            rung.model.n_head,
        )
    context = rung.context_length
    if rung.batch_tokens is not None and context is not None and rung.batch_tokens < context:
        yield SpecError(
            f"{path}.batchTokens",
            f"expected at least one sequence per step (>= contextLength={context})",
            rung.batch_tokens,
        )


def _rung_growth_errors(rungs: Sequence[Rung], vocab: int) -> Iterator[SpecError]:
    """Each rung with a known shape has more reference params than the one below it."""
    previous: tuple[int, str] | None = None
    for index, rung in enumerate(rungs):
        shape = rung_shape(rung)
        if shape is None:
            continue
        size = reference_params(shape[0], shape[1], vocab)
        if previous is not None and size <= previous[0]:
            field = "model" if rung.model is not None else "preset"
            yield SpecError(
                f"{_RUNGS}[{index}].{field}",
                f"rungs must grow strictly: {size:,} reference params is not larger than "
                f"rung {previous[1]!r} ({previous[0]:,})",
            )
        previous = (size, rung.name)


def _rung_budget_errors(spec: DiscoveryRunSpec) -> Iterator[SpecError]:
    """Each rung verifies at most as many designs as the one below it."""
    rungs = spec.ladder.rungs
    budgets = derive_budgets(
        [rung.budget for rung in rungs], spec.ladder.n_target, spec.ladder.selection_ratio
    )
    for index in range(1, len(rungs)):
        if budgets[index] > budgets[index - 1]:
            yield SpecError(
                f"{_RUNGS}[{index}].budget",
                f"expected at most the budget of the rung below ({budgets[index - 1]}); "
                "each rung verifies fewer designs",
                budgets[index],
            )


def _ladder_errors(spec: DiscoveryRunSpec) -> Iterator[SpecError]:
    rungs = spec.ladder.rungs
    first_index: dict[str, int] = {}
    for index, rung in enumerate(rungs):
        path = f"{_RUNGS}[{index}]"
        if rung.name in first_index:
            yield SpecError(
                f"{path}.name",
                f"duplicate rung name, also used by rungs[{first_index[rung.name]}]; "
                "expected unique names",
                rung.name,
            )
        first_index.setdefault(rung.name, index)
        yield from _rung_recipe_errors(path, rung)
        yield from _rung_shape_errors(path, rung)
        yield from _placement_errors(path, rung.tolerations, rung.affinity)
    yield from _rung_growth_errors(rungs, spec.verification.data.vocab_size)
    yield from _rung_budget_errors(spec)


def _session_errors(spec: DiscoveryRunSpec) -> Iterator[SpecError]:
    operators = spec.sessions.operators
    if operators.mutation + operators.crossover + operators.scratch <= 0:
        yield SpecError(
            "spec.sessions.operators",
            "expected mutation + crossover + scratch > 0",
            operators.model_dump(include={"mutation", "crossover", "scratch"}),
        )
    if spec.agents.offline and spec.sessions.flow == "direct":
        yield SpecError(
            "spec.sessions.flow",
            "expected 'gau' with agents.offline: the offline proposer works on unit trees",
            "direct",
        )


def _agent_errors(agents: Agents, scheduler: str) -> Iterator[SpecError]:
    base = "spec.agents"
    if not agents.offline and agents.api_key_secret is None and scheduler != "local":
        yield SpecError(
            f"{base}.apiKeySecret",
            "expected a Secret reference {name, key} unless agents.offline is true (on one "
            "machine, with verification.scheduler local, agents.apiKeyEnv is used instead)",
        )
    capped = agents.max_usd_per_session is not None or agents.max_usd_per_run is not None
    for role, choices in agents.models:
        if sum(choice.weight for choice in choices) <= 0:
            yield SpecError(f"{base}.models.{role}", "expected weights with a positive sum")
        seen: set[str] = set()
        for index, choice in enumerate(choices):
            path = f"{base}.models.{role}[{index}].model"
            if choice.model in seen:
                yield SpecError(path, "expected each model once per role", choice.model)
            seen.add(choice.model)
            if capped and not agents.offline and choice.model not in agents.prices:
                yield SpecError(
                    path,
                    "expected a model with an entry in spec.agents.prices, because a USD cap "
                    "is set",
                    choice.model,
                )
    per_session, per_run = agents.max_usd_per_session, agents.max_usd_per_run
    if per_session is not None and per_run is not None and per_session > per_run:
        yield SpecError(
            f"{base}.maxUsdPerSession",
            f"expected at most maxUsdPerRun ({per_run})",
            per_session,
        )


def _check_errors(checks: Checks) -> Iterator[SpecError]:
    for measure in ("time", "memory", "flops", "loss"):
        warning = getattr(checks, f"{measure}_ratio_warning")
        error = getattr(checks, f"{measure}_ratio_error")
        if warning > error:
            yield SpecError(
                f"spec.checks.{measure}RatioWarning",
                f"expected at most {measure}RatioError ({error})",
                warning,
            )


def _tokenizer_errors(data: Data) -> Iterator[SpecError]:
    """The vocabulary size matches the tokenizer (256 for bytes, N for ``bpe:N``)."""
    base = "spec.verification.data"
    tokenizer = data.tokenizer
    if tokenizer == "byte" and data.vocab_size != 256:
        yield SpecError(f"{base}.vocabSize", "expected 256 for tokenizer 'byte'", data.vocab_size)
    if not tokenizer.startswith("bpe:"):
        return
    size = tokenizer.removeprefix("bpe:")
    if not size.isdigit() or int(size) < 257:
        yield SpecError(f"{base}.tokenizer", "expected 'bpe:<vocab size>', size >= 257", tokenizer)
    elif int(size) != data.vocab_size:
        yield SpecError(
            f"{base}.vocabSize",
            f"expected {size} to match tokenizer {tokenizer!r}",
            data.vocab_size,
        )


def _subset_errors(data: Data) -> Iterator[SpecError]:
    """A dataset read without prepared shards has subsets with a positive total weight."""
    if data.shards is not None or data.dataset == "builtin":
        return
    if not data.subsets:
        yield SpecError("spec.verification.data.subsets", "expected at least one subset")
    elif sum(subset.weight for subset in data.subsets) <= 0:
        yield SpecError("spec.verification.data.subsets", "expected weights with a positive sum")


def _eval_task_errors(tasks: Sequence[str]) -> Iterator[SpecError]:
    seen: set[str] = set()
    for index, task in enumerate(tasks):
        if task in seen:
            yield SpecError(
                f"spec.verification.evalTasks[{index}]", "expected each task once", task
            )
        seen.add(task)


def _toleration_errors(path: str, toleration: Toleration) -> Iterator[SpecError]:
    """Exists takes no value and is the only keyless operator; seconds only with NoExecute."""
    if toleration.operator == "Exists" and toleration.value:
        yield SpecError(f"{path}.value", "expected no value with operator Exists", toleration.value)
    if toleration.key is None and toleration.operator != "Exists":
        yield SpecError(
            f"{path}.operator", "expected Exists when key is empty", toleration.operator
        )
    if toleration.toleration_seconds is not None and toleration.effect != "NoExecute":
        yield SpecError(
            f"{path}.tolerationSeconds",
            "expected only with effect NoExecute",
            toleration.toleration_seconds,
        )


AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")


def _affinity_errors(path: str, affinity: Mapping[str, Any] | None) -> Iterator[SpecError]:
    """An affinity holds only the three kinds of Kubernetes affinity, each an object."""
    for key, value in (affinity or {}).items():
        if key not in AFFINITY_KEYS:
            yield SpecError(f"{path}.{key}", f"expected one of {', '.join(AFFINITY_KEYS)}", key)
        elif not isinstance(value, Mapping):
            yield SpecError(f"{path}.{key}", "expected an object", value)


def _placement_errors(
    path: str, tolerations: Sequence[Toleration] | None, affinity: Mapping[str, Any] | None
) -> Iterator[SpecError]:
    """The tolerations and the affinity of ``verification`` or of one rung."""
    for index, toleration in enumerate(tolerations or []):
        yield from _toleration_errors(f"{path}.tolerations[{index}]", toleration)
    yield from _affinity_errors(f"{path}.affinity", affinity)


def _verification_errors(verification: Verification) -> Iterator[SpecError]:
    yield from _tokenizer_errors(verification.data)
    yield from _subset_errors(verification.data)
    yield from _eval_task_errors(verification.eval_tasks)
    yield from _placement_errors(
        "spec.verification", verification.tolerations, verification.affinity
    )


def _other_errors(spec: DiscoveryRunSpec) -> Iterator[SpecError]:
    if spec.storage.s3 is not None and spec.storage.local is not None:
        yield SpecError("spec.storage", "expected exactly one of s3 or local, not both")
    deadline = spec.deadline
    if isinstance(deadline, datetime) and deadline.tzinfo is None:
        yield SpecError(
            "spec.deadline",
            "expected a time zone, e.g. 2026-12-01T00:00:00Z",
            deadline.isoformat(),
        )


def semantic_errors(spec: DiscoveryRunSpec) -> list[SpecError]:
    """Every cross-field problem of a structurally valid spec."""
    return [
        *_ladder_errors(spec),
        *_session_errors(spec),
        *_agent_errors(spec.agents, spec.verification.scheduler),
        *_check_errors(spec.checks),
        *_verification_errors(spec.verification),
        *_other_errors(spec),
    ]


# ---------------------------------------------------------------------------------- entry points


def _header_errors(document: Mapping[str, Any], kind: str) -> list[SpecError]:
    errors = []
    if document.get("apiVersion") != API_GROUP_VERSION:
        errors.append(
            SpecError("apiVersion", f"expected {API_GROUP_VERSION!r}", document.get("apiVersion"))
        )
    if document.get("kind") != kind:
        errors.append(SpecError("kind", f"expected {kind!r}", document.get("kind")))
    return errors


def parse_discovery_run(document: Any) -> DiscoveryRun:
    """Validate one DiscoveryRun document; raise SpecValidationError listing every problem."""
    if not isinstance(document, Mapping):
        raise SpecValidationError([SpecError("", "expected a mapping", document)])
    header = _header_errors(document, "DiscoveryRun")
    if header:
        raise SpecValidationError(header)
    try:
        run = DiscoveryRun.model_validate(dict(document))
    except pydantic.ValidationError as exc:
        raise SpecValidationError(pydantic_errors(exc, DiscoveryRun)) from None
    errors = semantic_errors(run.spec)
    if errors:
        raise SpecValidationError(errors)
    return run


def parse_design(document: Any) -> Design:
    """Validate one Design document; raise SpecValidationError listing every problem."""
    if not isinstance(document, Mapping):
        raise SpecValidationError([SpecError("", "expected a mapping", document)])
    header = _header_errors(document, "Design")
    if header:
        raise SpecValidationError(header)
    try:
        return Design.model_validate(dict(document))
    except pydantic.ValidationError as exc:
        raise SpecValidationError(pydantic_errors(exc, Design)) from None


PARSERS: dict[str, Callable[[Any], DiscoveryRun | Design]] = {
    "DiscoveryRun": parse_discovery_run,
    "Design": parse_design,
}


def parse_document(document: Any) -> DiscoveryRun | Design:
    """Validate a DiscoveryRun or Design document, chosen by its ``kind``."""
    kind = document.get("kind") if isinstance(document, Mapping) else None
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise SpecValidationError(
            [SpecError("kind", f"expected one of {', '.join(map(repr, PARSERS))}", kind)]
        )
    return parser(document)


__all__ = [
    "SpecError",
    "SpecValidationError",
    "format_path",
    "parse_design",
    "parse_discovery_run",
    "parse_document",
    "pydantic_errors",
    "semantic_errors",
]
