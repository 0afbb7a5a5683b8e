"""The knowledge base of a design session: seed units, earlier designs and earlier proposals.

Before proposing or reviewing, an agent searches what the run already knows (Genesys, "A
design session"): the seed units of :mod:`genesys.agents.library`, every design of the run's
archive (its proposal, and each unit it implemented differently from the library), and the
proposals of earlier sessions. :func:`build_knowledge_base` reads them from the store into a
:class:`KnowledgeBase`, which ranks :class:`Document` s for a query by BM25 over
:func:`tokenize` d words, or by cosine similarity of embeddings when an ``embed`` callable is
given. :func:`render_hits` turns hits into a block of prompt text. :func:`search_papers` asks
Semantic Scholar or arXiv for papers (the only network access of this module).

What must stay true:

- no torch import here: unit sources are read as text and parsed with :mod:`ast`, never run;
- a search is deterministic: hits are best first, ties broken by document id, and only hits
  with a score above 0 are returned; a query with no tokens returns no hits;
- ``embed`` is never called while the knowledge base is built: documents are embedded in
  batches at the first search after they were added, their vectors cached by id, and the query
  at every search; the first time ``embed`` raises (or returns something that is not one finite
  vector per text, all of one length) the knowledge base drops it for good and answers by BM25,
  with nothing logged and no search lost;
- unreadable or malformed objects in the store are skipped, never fatal;
- :func:`search_papers` fails only with :class:`PaperSearchError` (a network or body problem,
  the message naming the source and host and how to turn paper search off) or ``ValueError``
  (bad arguments), and leaves no socket open.
"""

from __future__ import annotations

import ast
import http.client
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genesys.agents.library import Library, build_library, sha256_text
from genesys.store.base import Store
from genesys.store.documents import (
    DesignDocument,
    DocumentError,
    SessionState,
    plain,
    read_document,
)

BM25_K1 = 1.5
BM25_B = 0.75
EMBED_BATCH = 32
"""Documents sent to ``embed`` per call."""
EMBED_MAX_CHARS = 8000
"""Characters of a document (title, then text) that are embedded; the rest is cut."""

Embed = Callable[[list[str]], list[list[float]]]

STOP_WORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have",
        "if", "in", "into", "is", "it", "its", "not", "of", "on", "or", "so", "than", "that",
        "the", "their", "then", "there", "these", "this", "to", "was", "we", "were", "which",
        "with", "self", "def", "return", "import", "none",
    }
)  # fmt: skip
"""Words :func:`tokenize` drops: English glue words and the most common Python keywords."""

_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_PART_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SPACE_RE = re.compile(r"\s+")


# ---------------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class Document:
    """One searchable thing: a unit, a design or a session's proposal."""

    id: str  # "unit:RotaryMHA", "unit:d0003/RotaryMHA", "design:d0003", "proposal:s0004"
    kind: str  # "unit" | "design" | "proposal"
    title: str
    text: str  # searched together with the title
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """A document and its score for one query (BM25 or cosine similarity)."""

    document: Document
    score: float


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``, identifiers split into their parts, stop words dropped.

    ``snake_case`` splits at underscores and ``CamelCase`` at case changes and digits
    (``"RotaryMHA"`` -> ``rotary, mha, rotarymha``; the whole identifier is kept as well, so
    an exact name matches). Single letters are dropped too; digits are kept.
    """
    tokens: list[str] = []
    for word in _WORD_RE.findall(text):
        parts = [part.lower() for part in _PART_RE.findall(word)]
        if len(parts) > 1:  # the whole identifier too, so an exact name matches
            parts.append(word.lower().replace("_", ""))
        for token in parts:
            if token in STOP_WORDS or (len(token) == 1 and not token.isdigit()):
                continue
            tokens.append(token)
    return tokens


def _searchable(document: Document) -> str:
    return f"{document.title} {document.text}"


# ---------------------------------------------------------------------------------- BM25 index


class _BM25:
    """An Okapi BM25 index, updated in place as documents are added or replaced."""

    def __init__(self) -> None:
        self.frequencies: dict[str, Counter[str]] = {}
        self.lengths: dict[str, int] = {}
        self.document_frequency: Counter[str] = Counter()
        self.total_length = 0

    def remove(self, doc_id: str) -> None:
        counts = self.frequencies.pop(doc_id, None)
        if counts is None:
            return
        self.document_frequency.subtract(counts.keys())
        self.document_frequency += Counter()  # drops the terms whose count fell to 0
        self.total_length -= self.lengths.pop(doc_id)

    def add(self, doc_id: str, tokens: Sequence[str]) -> None:
        self.remove(doc_id)
        counts = Counter(tokens)
        self.frequencies[doc_id] = counts
        self.lengths[doc_id] = len(tokens)
        self.document_frequency.update(counts.keys())
        self.total_length += len(tokens)

    def idf(self, term: str) -> float:
        n, df = len(self.frequencies), self.document_frequency.get(term, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str], candidates: Iterable[str]) -> dict[str, float]:
        """BM25 score of each candidate for the query tokens (repeated tokens weigh more)."""
        if not self.frequencies:
            return {}
        average = max(self.total_length / len(self.frequencies), 1e-9)
        weights = {term: count * self.idf(term) for term, count in Counter(query).items()}
        scores: dict[str, float] = {}
        for doc_id in candidates:
            counts, length = self.frequencies[doc_id], self.lengths[doc_id]
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average)
            score = 0.0
            for term, weight in weights.items():
                tf = counts.get(term, 0)
                if tf:
                    score += weight * tf * (BM25_K1 + 1.0) / (tf + norm)
            scores[doc_id] = score
        return scores


# ---------------------------------------------------------------------------------- embeddings


class _EmbeddingError(ValueError):
    """``embed`` returned something other than one finite vector per text, all of one length."""


def _checked_vectors(texts: Sequence[str], vectors: Any, width: int | None) -> list[list[float]]:
    """``vectors`` as lists of floats, checked: one per text, finite, all ``width`` long."""
    if not isinstance(vectors, Sequence) or len(vectors) != len(texts):
        raise _EmbeddingError("embed returned the wrong number of vectors")
    checked: list[list[float]] = []
    for vector in vectors:
        if not isinstance(vector, Sequence) or isinstance(vector, str) or not vector:
            raise _EmbeddingError("embed returned a vector that is not a list of numbers")
        values = [float(value) for value in vector]
        if not all(math.isfinite(value) for value in values):
            raise _EmbeddingError("embed returned a vector with a value that is not finite")
        width = len(values) if width is None else width
        if len(values) != width:
            raise _EmbeddingError("embed returned vectors of different lengths")
        checked.append(values)
    return checked


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms > 0 else 0.0


def _embedding_text(document: Document) -> str:
    return f"{document.title}\n{document.text}"[:EMBED_MAX_CHARS]


# ---------------------------------------------------------------------------------- the base


class KnowledgeBase:
    """Documents by id, searchable by BM25 or, with ``embed``, by cosine similarity."""

    def __init__(self, documents: Sequence[Document], *, embed: Embed | None = None) -> None:
        self._documents: dict[str, Document] = {}
        self._index = _BM25()
        self._embed = embed
        self._vectors: dict[str, list[float]] = {}
        for document in documents:
            self.add(document)

    def add(self, document: Document) -> None:
        """Add a document, or replace the one with its id (its vector is recomputed lazily)."""
        self._documents[document.id] = document
        self._index.add(document.id, tokenize(_searchable(document)))
        self._vectors.pop(document.id, None)

    @property
    def backend(self) -> str:
        """``"embeddings"`` while ``embed`` is in use, else ``"bm25"``."""
        return "embeddings" if self._embed is not None else "bm25"

    def __len__(self) -> int:
        return len(self._documents)

    def documents(self, kind: str | None = None) -> list[Document]:
        """The documents (of one kind), sorted by id."""
        return [
            self._documents[doc_id]
            for doc_id in sorted(self._documents)
            if kind is None or self._documents[doc_id].kind == kind
        ]

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        kinds: Collection[str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first, among ``kinds``, less ``exclude``.

        ``exclude`` holds document ids. Only scores above 0 count; ties go to the smaller id.
        """
        tokens = tokenize(query)
        if not tokens or k <= 0:
            return []
        excluded = set(exclude)
        candidates = [
            doc_id
            for doc_id, document in self._documents.items()
            if doc_id not in excluded and (kinds is None or document.kind in kinds)
        ]
        if not candidates:
            return []
        scores = self._embedding_scores(query, candidates) if self._embed is not None else None
        if scores is None:
            scores = self._index.scores(tokens, candidates)
        ranked = sorted(
            ((score, doc_id) for doc_id, score in scores.items() if score > 0),
            key=lambda pair: (-pair[0], pair[1]),
        )
        return [Hit(self._documents[doc_id], score) for score, doc_id in ranked[:k]]

    def _embedding_scores(self, query: str, candidates: Sequence[str]) -> dict[str, float] | None:
        """Cosine similarities, or None after dropping ``embed`` (it failed)."""
        assert self._embed is not None
        try:
            self._embed_missing(self._embed)
            width = len(next(iter(self._vectors.values()))) if self._vectors else None
            (query_vector,) = _checked_vectors([query], self._embed([query]), width)
        except Exception:  # any failure of the caller's embed: BM25 from now on
            self._embed = None
            self._vectors.clear()
            return None
        return {doc_id: _cosine(query_vector, self._vectors[doc_id]) for doc_id in candidates}

    def _embed_missing(self, embed: Embed) -> None:
        missing = [doc_id for doc_id in sorted(self._documents) if doc_id not in self._vectors]
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            texts = [_embedding_text(self._documents[doc_id]) for doc_id in batch]
            width = len(next(iter(self._vectors.values()))) if self._vectors else None
            vectors = _checked_vectors(texts, embed(texts), width)
            self._vectors.update(zip(batch, vectors, strict=True))


# ---------------------------------------------------------------------------------- from a store


def _read_text(store: Store, key: str) -> str | None:
    try:
        return store.get_text(key)
    except (KeyError, ValueError):
        return None


def _children_keys(store: Store, prefix: str, filename: str) -> Iterator[tuple[str, str]]:
    """(child id, key) for every ``<prefix>/<child>/<filename>`` of the store, sorted."""
    folder = f"{prefix}/"
    for key in store.list(folder):
        rest = key.removeprefix(folder)
        if key.startswith(folder) and rest.count("/") == 1 and rest.endswith(f"/{filename}"):
            yield rest.split("/", 1)[0], key


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


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


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


PROPOSAL_FIELDS = ("motivation", "analysis", "design_plan")
"""Proposal fields rendered first, in this order; other fields follow sorted by name."""


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


def _read_plain(
    store: Store, key: str, model: type[DesignDocument] | type[SessionState]
) -> dict[str, Any] | None:
    """A document as plain data, or None when it is missing or does not parse."""
    try:
        document = read_document(store, key, model)
    except DocumentError:
        return None
    return plain(document) if document is not None else None


def build_knowledge_base(
    store: Store, *, library: Library | None = None, embed: Embed | None = None
) -> KnowledgeBase:
    """Every library unit, design, implemented unit and session proposal of a run, searchable.

    ``store`` is the run's own store.

    A unit that several designs implement with the same source is one document, named after
    the first of those designs (by id); ``meta["designs"]`` lists them all.
    """
    library = build_library() if library is None else library
    documents = library_documents(library)
    novel: dict[tuple[str, str], tuple[str, str, str, list[str]]] = {}
    for design_id, key in _children_keys(store, "designs", "design.json"):
        document = _read_plain(store, key, DesignDocument)
        if document is None:
            continue
        metadata = document.get("metadata")
        proposal = metadata.get("proposal") if isinstance(metadata, dict) else None
        if not isinstance(proposal, str) or not proposal.strip():
            proposal = _read_text(store, f"designs/{design_id}/proposal.md") or ""
        documents.append(design_document(design_id, document, proposal))
        for name, source, requirements in implemented_units(document, library):
            identity = (name, sha256_text(source))
            novel.setdefault(identity, (name, source, requirements, []))[3].append(design_id)
    documents.extend(
        implemented_unit_document(name, source, requirements, designs)
        for name, source, requirements, designs in novel.values()
    )
    for session_id, key in _children_keys(store, "sessions", "state.json"):
        state = _read_plain(store, key, SessionState)
        proposal_doc = proposal_document(session_id, state) if state is not None else None
        if proposal_doc is not None:
            documents.append(proposal_doc)
    return KnowledgeBase(documents, embed=embed)


# ---------------------------------------------------------------------------------- rendering


def _excerpt(document: Document, max_chars: int) -> str:
    text = document.text.strip()
    if text.startswith(document.title):
        text = text[len(document.title) :]
    text = _SPACE_RE.sub(" ", text).strip()
    if len(text) <= max_chars:
        return text
    return text[: max(max_chars - 3, 0)].rstrip() + "..."


def render_hits(hits: Sequence[Hit], *, max_chars: int = 600) -> str:
    """Hits as prompt text, one ``[id] title (score)`` line and one indented excerpt each.

    An excerpt has at most ``max_chars`` characters (none when ``max_chars`` <= 0); no hits
    render as ``(no results)``.
    """
    if not hits:
        return "(no results)"
    lines: list[str] = []
    for hit in hits:
        document = hit.document
        lines.append(f"[{document.id}] {document.title} ({hit.score:.3f})")
        excerpt = _excerpt(document, max_chars) if max_chars > 0 else ""
        if excerpt:
            lines.append(f"  {excerpt}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- papers


class PaperSearchError(RuntimeError):
    """A paper search failed: no network, an HTTP error or a body that could not be read."""

    reason = "PaperSearchError"


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper a search found."""

    title: str
    abstract: str
    year: int | None
    url: str
    authors: tuple[str, ...]


PAPER_SOURCES: dict[str, str] = {
    "semantic-scholar": "https://api.semanticscholar.org/graph/v1",
    "arxiv": "https://export.arxiv.org/api",
}
"""Paper source -> default base URL."""

MAX_PAPERS = 100
MAX_BODY_BYTES = 8 << 20
_SEMANTIC_SCHOLAR_FIELDS = "title,abstract,year,url,authors"
_ATOM = "{http://www.w3.org/2005/Atom}"
_YEAR_RE = re.compile(r"^(\d{4})")


def _clean(value: Any) -> str:
    return _SPACE_RE.sub(" ", value).strip() if isinstance(value, str) else ""


def paper_search_url(source: str, query: str, base_url: str, limit: int) -> str:
    """The GET URL of a search at one source."""
    base = base_url.rstrip("/")
    if source == "semantic-scholar":
        params = {"query": query, "limit": str(limit), "fields": _SEMANTIC_SCHOLAR_FIELDS}
        return f"{base}/paper/search?{urllib.parse.urlencode(params)}"
    words = _WORD_RE.findall(query)
    search = " AND ".join(f"all:{word}" for word in words)
    params = {"search_query": search, "start": "0", "max_results": str(limit)}
    return f"{base}/query?{urllib.parse.urlencode(params)}"


def parse_semantic_scholar(body: bytes) -> list[Paper]:
    """Papers of a Semantic Scholar ``/paper/search`` reply; ValueError when malformed."""
    payload = json.loads(body.decode("utf-8"))
    data = payload.get("data") if isinstance(payload, dict) else None
    if data is None and isinstance(payload, dict) and payload.get("total") == 0:
        return []  # no results: the reply has no "data"
    if not isinstance(data, list):
        raise ValueError("the reply has no 'data' list")
    papers: list[Paper] = []
    for item in data:
        if not isinstance(item, dict) or not _clean(item.get("title")):
            continue
        year = item.get("year")
        authors = item.get("authors")
        names = (
            [a.get("name") for a in authors if isinstance(a, dict)]
            if isinstance(authors, list)
            else []
        )
        url = _clean(item.get("url"))
        if not url and isinstance(item.get("paperId"), str):
            url = f"https://www.semanticscholar.org/paper/{item['paperId']}"
        papers.append(
            Paper(
                title=_clean(item.get("title")),
                abstract=_clean(item.get("abstract")),
                year=year if isinstance(year, int) and not isinstance(year, bool) else None,
                url=url,
                authors=tuple(_clean(name) for name in names if _clean(name)),
            )
        )
    return papers


def _atom_text(entry: ET.Element, tag: str) -> str:
    element = entry.find(f"{_ATOM}{tag}")
    return _clean(element.text) if element is not None else ""


def parse_arxiv(body: bytes) -> list[Paper]:
    """Papers of an arXiv API Atom feed; ValueError when malformed or an error feed."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"the reply is not XML: {exc}") from None
    if root.tag != f"{_ATOM}feed":
        raise ValueError(f"the reply is not an Atom feed (root {root.tag!r})")
    papers: list[Paper] = []
    for entry in root.findall(f"{_ATOM}entry"):
        entry_id = _atom_text(entry, "id")
        if "/api/errors" in entry_id:
            raise ValueError(f"arXiv answered with an error: {_atom_text(entry, 'summary')}")
        title = _atom_text(entry, "title")
        if not title:
            continue
        url = entry_id
        for link in entry.findall(f"{_ATOM}link"):
            if link.get("rel") == "alternate" and link.get("href"):
                url = str(link.get("href"))
                break
        year = _YEAR_RE.match(_atom_text(entry, "published"))
        authors = [_atom_text(author, "name") for author in entry.findall(f"{_ATOM}author")]
        papers.append(
            Paper(
                title=title,
                abstract=_atom_text(entry, "summary"),
                year=int(year.group(1)) if year else None,
                url=url,
                authors=tuple(name for name in authors if name),
            )
        )
    return papers


def _fetch(url: str, timeout_s: float) -> bytes:
    """The body of a GET; OSError / HTTPException / ValueError on any failure."""
    request = urllib.request.Request(
        url, headers={"User-Agent": "genesys-operator (paper search)", "Accept": "*/*"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the response's socket
        raise
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"the reply is larger than {MAX_BODY_BYTES} bytes")
    return body


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def search_papers(
    query: str,
    *,
    source: str,
    base_url: str | None = None,
    limit: int = 5,
    timeout_s: float = 10.0,
) -> list[Paper]:
    """Up to ``limit`` papers for ``query`` from ``"semantic-scholar"`` or ``"arxiv"``.

    A query with no words returns ``[]`` without a request. For arXiv every word of the query
    must match (``all:w1 AND all:w2 ...``), so pass a few keywords, not a sentence.
    """
    if source not in PAPER_SOURCES:
        raise ValueError(
            f"unknown paper source {source!r}; expected one of {sorted(PAPER_SOURCES)}"
        )
    if not 1 <= limit <= MAX_PAPERS:
        raise ValueError(f"limit must be between 1 and {MAX_PAPERS}, got {limit}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if not _WORD_RE.search(query):
        return []
    url = paper_search_url(source, query, base_url or PAPER_SOURCES[source], limit)
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        body = _fetch(url, timeout_s)
        papers = parse_semantic_scholar(body) if source == "semantic-scholar" else parse_arxiv(body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise PaperSearchError(
            f"paper search at {source} ({host}) failed: {_describe(exc)}. Paper search needs "
            "network access to that host; turn it off with `spec.agents.paperSearch: off`"
        ) from exc
    return papers[:limit]


__all__ = [
    "BM25_B",
    "BM25_K1",
    "EMBED_BATCH",
    "PAPER_SOURCES",
    "STOP_WORDS",
    "Document",
    "Hit",
    "KnowledgeBase",
    "Paper",
    "PaperSearchError",
    "build_knowledge_base",
    "class_docstring",
    "design_document",
    "implemented_unit_document",
    "implemented_units",
    "library_documents",
    "paper_search_url",
    "parse_arxiv",
    "parse_semantic_scholar",
    "proposal_document",
    "render_hits",
    "search_papers",
    "tokenize",
]
