"""The five agent roles' prompts and replies: rendering, parsing, and bounded re-asking.

Prompts are files in ``genesys/agents/prompts/`` (one per role, sections marked
``<!-- @name -->``, placeholders ``$name`` filled by :func:`render`). Every system section
starts with ``ROLE: <role>`` so traces and test servers can tell the roles apart.

Replies are parsed into the dataclasses below, by the parsers that
:meth:`~genesys.agents.llm.LLMClient.ask` takes (it re-asks with the parse error a bounded
number of times before raising :class:`~genesys.agents.llm.ReplyError`).

What must stay true: parsing never executes code; a parse error says what was wrong in words
the model can act on; the pass thresholds never appear in a prompt.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from string import Template
from typing import Any, TypeVar

from genesys.agents.llm import Messages, parse_last
from genesys.agents.treeops import WrittenUnit

T = TypeVar("T")

_SECTION_RE = re.compile(r"^<!-- @(\w+) -->\s*$", re.MULTILINE)
_FENCE_RE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
PROPOSAL_FIELDS = (
    "title",
    "motivation",
    "related_work",
    "analysis",
    "design_plan",
    "pseudo_code",
)


# ----------------------------------------------------------------------------------- prompts


@functools.cache
def prompt_sections(name: str) -> dict[str, str]:
    """The sections of ``prompts/<name>.md``, by section name."""
    text = resources.files("genesys.agents").joinpath("prompts", f"{name}.md").read_text("utf-8")
    parts = _SECTION_RE.split(text)
    return {parts[i]: parts[i + 1].strip() + "\n" for i in range(1, len(parts) - 1, 2)}


def render(name: str, section: str, **values: Any) -> str:
    """Fill one prompt section; every placeholder must be given (KeyError otherwise)."""
    return Template(prompt_sections(name)[section]).substitute(
        {key: str(value) for key, value in values.items()}
    )


def messages(name: str, section: str, system: Mapping[str, Any], **values: Any) -> Messages:
    """A system message (the role's ``system`` section) and one user message."""
    return [
        {"role": "system", "content": render(name, "system", **system)},
        {"role": "user", "content": render(name, section, **values)},
    ]


# ---------------------------------------------------------------------------------- replies


@dataclass(slots=True)
class ProposalDoc:
    """A structured design proposal."""

    title: str
    motivation: str
    related_work: str
    analysis: str
    design_plan: str
    pseudo_code: str
    references: list[str] = field(default_factory=list)
    selected_unit: str | None = None

    def render(self) -> str:
        """The proposal as Markdown (``proposal.md`` and prompts)."""
        parts = [f"# {self.title}"]
        if self.selected_unit:
            parts.append(f"**Selected unit:** `{self.selected_unit}`")
        for name in PROPOSAL_FIELDS[1:]:
            body = getattr(self, name).strip()
            if name == "pseudo_code" and body and not body.startswith("```"):
                body = f"```\n{body}\n```"
            parts.append(f"## {name.replace('_', ' ').capitalize()}\n\n{body}")
        if self.references:
            parts.append("## References\n\n" + "\n".join(f"- {r}" for r in self.references))
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, *, needs_selection: bool = False) -> ProposalDoc:
        """Validate a proposal reply; ValueError names what is missing."""
        if not isinstance(data, dict):
            raise ValueError("the proposal must be a JSON object")
        missing = [name for name in PROPOSAL_FIELDS if not _text(data.get(name))]
        if missing:
            raise ValueError(f"the proposal lacks the text fields {missing}")
        selected = _text(data.get("selected_unit"))
        if needs_selection and not selected:
            raise ValueError(
                'a mutation proposal must name the one unit it changes in "selected_unit"'
            )
        references = data.get("references") or []
        if isinstance(references, str):
            references = [references]
        texts = {name: _text(data[name]) for name in PROPOSAL_FIELDS}
        return cls(
            **texts,
            references=[str(r) for r in references if str(r).strip()],
            selected_unit=selected or None,
        )


@dataclass(slots=True)
class Rating:
    """A reviewer's or observer's verdict."""

    rating: float
    review: str
    suggestions: str = ""

    def render(self) -> str:
        """The verdict as text for the next prompt."""
        text = f"Rating: {self.rating:g}/5\n\n{self.review}"
        return text + (f"\n\nSuggestions: {self.suggestions}" if self.suggestions else "")

    @classmethod
    def from_json(cls, data: Any) -> Rating:
        """Validate a rating reply (a number from 0 to 5 and a review)."""
        if not isinstance(data, dict):
            raise ValueError("the verdict must be a JSON object")
        raw = data.get("rating")
        try:
            rating = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f'"rating" must be a number from 0 to 5, got {raw!r}') from None
        if not 0 <= rating <= 5:
            raise ValueError(f'"rating" must be from 0 to 5, got {rating:g}')
        review = _text(data.get("review"))
        if not review:
            raise ValueError('the verdict needs a "review" text')
        return cls(rating, review, _text(data.get("suggestions")))


@dataclass(slots=True)
class PlanStep:
    """The planner's choice for one round."""

    unit: str
    reuse: list[str] = field(default_factory=list)
    instructions: str = ""

    @classmethod
    def from_json(cls, data: Any, *, pending: list[str]) -> PlanStep:
        """Validate a plan; the unit must be one of ``pending``."""
        if not isinstance(data, dict):
            raise ValueError("the plan must be a JSON object")
        unit = _text(data.get("unit"))
        if unit not in pending and len(pending) == 1:
            unit = pending[0]  # only one choice: a misspelt name is no reason to re-ask
        if unit not in pending:
            raise ValueError(f'"unit" must be one of the waiting units {pending}, got {unit!r}')
        reuse = data.get("reuse") or []
        if isinstance(reuse, str):
            reuse = [reuse]
        return cls(unit, [str(r) for r in reuse if str(r).strip()], _text(data.get("instructions")))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value).strip()
    return str(value).strip()


def _python_blocks(text: str) -> list[str]:
    return [
        body
        for language, body in ((m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(text))
        if language in {"python", "py", "python3", ""}
    ]


def _is_tests(body: str) -> bool:
    return "def test_" in body and "class " not in body


def split_code(text: str) -> tuple[str, str]:
    """(unit source, unit tests) from a coder reply; ValueError when there is no unit source.

    The last block of each kind wins: a draft earlier in the reply is not the answer.
    """
    blocks = _python_blocks(text)
    sources = [b for b in blocks if not _is_tests(b) and re.search(r"^class \w+", b, re.M)]
    if not sources:
        raise ValueError("no ```python block with a unit class in the reply")
    tests = [b for b in blocks if _is_tests(b)]
    return sources[-1], tests[-1] if tests else ""


def parse_unit_reply(text: str) -> WrittenUnit:
    """A coder's unit reply: the source, the tests and the ```json bindings block."""
    source, tests = split_code(text)
    json_blocks = [m.group(2) for m in _FENCE_RE.finditer(text) if m.group(1).lower() == "json"]
    try:
        meta = json.loads(json_blocks[-1]) if json_blocks else {}
    except ValueError as exc:
        raise ValueError(f"the ```json block with the unit's name and children: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError("the ```json block must be an object")
    name = _text(meta.get("unit"))
    class_name = re.search(r"^class (\w+)", source, re.M)
    if not name and class_name:
        name = class_name.group(1)
    children = meta.get("children") or {}
    hyper = meta.get("hyperparameters") or {}
    if not isinstance(children, dict) or not all(isinstance(v, str) for v in children.values()):
        raise ValueError('"children" must map each child slot to a unit name')
    if not isinstance(hyper, dict):
        raise ValueError('"hyperparameters" must be an object')
    return WrittenUnit(
        name,
        source,
        {str(k): v for k, v in children.items()},
        dict(hyper),
        _text(meta.get("requirements")),
        tests,
    )


def parse_block_reply(text: str) -> WrittenUnit:
    """A direct-flow reply: one block source (no children) and its tests."""
    source, tests = split_code(text)
    match = re.search(r"^class (\w+)", source, re.M)
    name = match.group(1) if match else "Block"
    return WrittenUnit(name, source, {}, {}, "the whole block, written in one prompt", tests)


def parse_queries(data: Any) -> list[str]:
    """A search round's queries (at most 3)."""
    if not isinstance(data, dict) or not isinstance(data.get("queries", None), list):
        raise ValueError('reply with a JSON object {"queries": [...]}')
    return [str(q).strip() for q in data["queries"] if str(q).strip()][:3]


# ------------------------------------------------------------------------------------ asking


def json_parser(convert: Callable[[Any], T]) -> Callable[[str], T]:
    """A parser that extracts the reply's JSON, then converts it."""

    def parse(text: str) -> T:
        return parse_last(text, convert)

    return parse


__all__ = [
    "PROPOSAL_FIELDS",
    "PlanStep",
    "ProposalDoc",
    "Rating",
    "json_parser",
    "messages",
    "parse_block_reply",
    "parse_queries",
    "parse_unit_reply",
    "prompt_sections",
    "render",
    "split_code",
]
