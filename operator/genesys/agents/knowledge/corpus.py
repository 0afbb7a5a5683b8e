"""The knowledge base's corpus: the documents a run knows, read from the library and its store.

:func:`build_knowledge_base` reads, from a run's own store, every design of the archive (its
proposal, and each unit it implemented differently from the library) and the proposal of every
session so far, adds a document per seed unit of :mod:`genesys.agents.library`, and returns
them as a searchable :class:`~genesys.agents.knowledge.index.KnowledgeBase`.

Document ids: ``unit:<name>`` (a library unit), ``unit:<design>/<name>`` (a unit a design
implemented, named after the first such design by id), ``design:<id>`` and
``proposal:<session>``.

What must stay true:

- the store is only read: ``designs/<id>/design.json`` (and ``designs/<id>/proposal.md`` when
  the design has no proposal in its metadata) and ``sessions/<sid>/state.json``;
- no torch import here: unit sources are read as text and parsed with :mod:`ast`, never run;
- unreadable or malformed objects in the store are skipped, never fatal;
- documents come out in a deterministic order: library units by name, then designs by id and
  the units they implement, then session proposals by id.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from genesys.agents.knowledge.index import Document, Embed, KnowledgeBase
from genesys.agents.library import Library, build_library, sha256_text
from genesys.store.base import Store
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    SessionState,
    plain,
    read_document,
)

PROPOSAL_FIELDS = ("motivation", "analysis", "design_plan")
"""Proposal fields rendered first, in this order; other fields follow sorted by name."""


def class_docstring(source: str) -> str:
    """The docstring of the first class defined at the top of ``source`` ("" when none)."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    for node in module.body:
        if isinstance(node, ast.ClassDef):
            return ast.get_docstring(node) or ""
    return ""


def _unit_text(requirements: str, source: str) -> str:
    parts = (requirements.strip(), class_docstring(source).strip(), source)
    return "\n\n".join(part for part in parts if part)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def library_documents(library: Library) -> list[Document]:
    """One ``unit`` document per library unit."""
    return [
        Document(
            id=f"unit:{name}",
            kind="unit",
            title=f"{name} ({unit.kind})",
            text=_unit_text(unit.requirements, unit.source),
            meta={"source": unit.source, "kind": unit.kind, "children": dict(unit.children)},
        )
        for name, unit in sorted(library.items())
    ]


def design_document(design_id: str, document: Mapping[str, Any], proposal: str) -> Document:
    """The ``design`` document of one ``design.json`` and its proposal text."""
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    title = str(metadata.get("title") or design_id)
    units = document.get("units")
    names = sorted(units) if isinstance(units, dict) else []
    parts = [title, proposal.strip(), f"Units: {', '.join(names)}" if names else ""]
    return Document(
        id=f"design:{design_id}",
        kind="design",
        title=title,
        text="\n\n".join(part for part in parts if part),
        meta={
            "design": design_id,
            "parents": _as_list(metadata.get("parents")),
            "operator": metadata.get("operator"),
            "session": metadata.get("session"),
            "rating": metadata.get("rating"),
            "units": names,
        },
    )


def implemented_units(
    document: Mapping[str, Any], library: Library
) -> Iterator[tuple[str, str, str]]:
    """(name, source, requirements) of each unit of a design whose source is not the library's."""
    units = document.get("units")
    if not isinstance(units, dict):
        return
    for name, spec in sorted(units.items()):
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
            continue
        source: str = spec["source"]
        if name in library and library[name].source == source:
            continue
        requirements = spec.get("requirements")
        yield name, source, requirements if isinstance(requirements, str) else ""


def implemented_unit_document(
    name: str, source: str, requirements: str, designs: Sequence[str]
) -> Document:
    """The ``unit`` document of a unit that designs implement (named after the first one)."""
    return Document(
        id=f"unit:{designs[0]}/{name}",
        kind="unit",
        title=f"{name} (implemented in {designs[0]})",
        text=_unit_text(requirements, source),
        meta={"source": source, "design": designs[0], "designs": list(designs)},
    )


def _proposal_field_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(f"- {item}" for item in value)
    return json.dumps(value, sort_keys=True, default=str)


def proposal_document(session_id: str, state: Mapping[str, Any]) -> Document | None:
    """The ``proposal`` document of a session's ``state.json``; None when it has no proposal."""
    proposal = state.get("proposal")
    if not isinstance(proposal, dict):
        return None
    title = str(proposal.get("title") or session_id)
    rest = sorted(name for name in proposal if name not in (*PROPOSAL_FIELDS, "title"))
    parts = [title]
    for name in (*PROPOSAL_FIELDS, *rest):
        if name in proposal and proposal[name] not in (None, "", [], {}):
            parts.append(
                f"{name.replace('_', ' ').capitalize()}: {_proposal_field_text(proposal[name])}"
            )
    return Document(
        id=f"proposal:{session_id}",
        kind="proposal",
        title=title,
        text="\n\n".join(parts),
        meta={
            "session": session_id,
            "parents": _as_list(state.get("parents", [])),
            "status": state.get("status"),
            "challenging": bool(state.get("challenging")),
            "rating": state.get("rating"),
        },
    )


# ---------------------------------------------------------------------------------- from a store


def _read_text(store: Store, key: str) -> str | None:
    try:
        return store.get_text(key)
    except (KeyError, ValueError):
        return None


def _read_plain(
    store: Store, key: str, model: type[DesignDocument] | type[SessionState]
) -> dict[str, Any] | None:
    """A document as plain data, or None when it is missing or does not parse."""
    try:
        document = read_document(store, key, model)
    except DocumentError:
        return None
    return plain(document) if document is not None else None


def _children_keys(store: Store, prefix: str, filename: str) -> Iterator[tuple[str, str]]:
    """(child id, key) for every ``<prefix>/<child>/<filename>`` of the store, sorted."""
    folder = f"{prefix}/"
    for key in store.list(folder):
        rest = key.removeprefix(folder)
        if key.startswith(folder) and rest.count("/") == 1 and rest.endswith(f"/{filename}"):
            yield rest.split("/", 1)[0], key


def _design_proposal(store: Store, design_id: str, document: Mapping[str, Any]) -> str:
    """The design's proposal: from its metadata, else from its ``proposal.md``."""
    metadata = document.get("metadata")
    proposal = metadata.get("proposal") if isinstance(metadata, dict) else None
    if isinstance(proposal, str) and proposal.strip():
        return proposal
    return _read_text(store, f"designs/{design_id}/proposal.md") or ""


def _design_documents(store: Store, library: Library) -> list[Document]:
    """A ``design`` document per readable design, then one ``unit`` per unit they implement.

    A unit that several designs implement with the same source is one document, named after
    the first of those designs (by id); ``meta["designs"]`` lists them all.
    """
    documents: list[Document] = []
    novel: dict[tuple[str, str], tuple[str, str, str, list[str]]] = {}
    for design_id, key in _children_keys(store, "designs", "design.json"):
        document = _read_plain(store, key, DesignDocument)
        if document is None:
            continue
        documents.append(
            design_document(design_id, document, _design_proposal(store, design_id, document))
        )
        for name, source, requirements in implemented_units(document, library):
            identity = (name, sha256_text(source))
            novel.setdefault(identity, (name, source, requirements, []))[3].append(design_id)
    documents.extend(
        implemented_unit_document(name, source, requirements, designs)
        for name, source, requirements, designs in novel.values()
    )
    return documents


def _proposal_documents(store: Store) -> list[Document]:
    """A ``proposal`` document per session whose state holds a proposal."""
    documents: list[Document] = []
    for session_id, key in _children_keys(store, "sessions", "state.json"):
        state = _read_plain(store, key, SessionState)
        document = proposal_document(session_id, state) if state is not None else None
        if document is not None:
            documents.append(document)
    return documents


def build_knowledge_base(
    store: Store, *, library: Library | None = None, embed: Embed | None = None
) -> KnowledgeBase:
    """Every library unit, design, implemented unit and session proposal of a run, searchable.

    ``store`` is the run's own store.

    A unit that several designs implement with the same source is one document, named after
    the first of those designs (by id); ``meta["designs"]`` lists them all.
    """
    library = build_library() if library is None else library
    documents = [
        *library_documents(library),
        *_design_documents(store, library),
        *_proposal_documents(store),
    ]
    return KnowledgeBase(documents, embed=embed)


__all__ = [
    "PROPOSAL_FIELDS",
    "build_knowledge_base",
    "class_docstring",
    "design_document",
    "implemented_unit_document",
    "implemented_units",
    "library_documents",
    "proposal_document",
]
