"""The knowledge base's search index: documents, tokens, BM25 and embedding similarity.

A :class:`KnowledgeBase` holds :class:`Document` s by id and ranks them for a query by Okapi
BM25 over :func:`tokenize` d words, or, when an ``embed`` callable is given, by the cosine
similarity (numpy) of embedding vectors. :func:`render_hits` turns the ranked :class:`Hit` s into
a block of prompt text. Where the documents come from is :mod:`genesys.agents.knowledge.corpus`.

What must stay true:

- a search is deterministic: hits are best first, ties broken by document id, and only hits
  with a score above 0 are returned; a query with no tokens returns no hits;
- ``embed`` is never called while documents are added: they are embedded in batches of
  :data:`EMBED_BATCH` at the first search after they were added, their vectors cached by id, and
  the query at every search; the first time ``embed`` raises (or returns something that is not
  one finite vector per text, all of one length) the knowledge base drops it for good and
  answers by BM25, with nothing logged and no search lost.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

BM25_K1 = 1.5
BM25_B = 0.75
EMBED_BATCH = 32
"""Documents sent to ``embed`` per call."""
EMBED_MAX_CHARS = 8000
"""Characters of a document (title, then text) that are embedded; the rest is cut."""

Embed = Callable[[list[str]], list[list[float]]]
Vector = npt.NDArray[np.float64]

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
        tokens.extend(token for token in parts if _is_kept(token))
    return tokens


def _is_kept(token: str) -> bool:
    return token not in STOP_WORDS and (len(token) > 1 or token.isdigit())


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
        return {doc_id: self._score(doc_id, weights, average) for doc_id in candidates}

    def _score(self, doc_id: str, weights: Mapping[str, float], average: float) -> float:
        counts, length = self.frequencies[doc_id], self.lengths[doc_id]
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average)
        score = 0.0
        for term, weight in weights.items():
            tf = counts.get(term, 0)
            if tf:
                score += weight * tf * (BM25_K1 + 1.0) / (tf + norm)
        return score


# ---------------------------------------------------------------------------------- embeddings


class _EmbeddingError(ValueError):
    """``embed`` returned something other than one finite vector per text, all of one length."""


def _checked_vectors(texts: Sequence[str], vectors: Any, width: int | None) -> list[Vector]:
    """``vectors`` as float arrays, checked: one per text, finite, all ``width`` long."""
    if not isinstance(vectors, Sequence) or len(vectors) != len(texts):
        raise _EmbeddingError("embed returned the wrong number of vectors")
    checked: list[Vector] = []
    for vector in vectors:
        if not isinstance(vector, Sequence) or isinstance(vector, str) or not vector:
            raise _EmbeddingError("embed returned a vector that is not a list of numbers")
        values = np.array([float(value) for value in vector], dtype=np.float64)
        if not np.isfinite(values).all():
            raise _EmbeddingError("embed returned a vector with a value that is not finite")
        width = len(values) if width is None else width
        if len(values) != width:
            raise _EmbeddingError("embed returned vectors of different lengths")
        checked.append(values)
    return checked


def cosine_similarities(query: Vector, vectors: Sequence[Vector]) -> list[float]:
    """The cosine similarity of ``query`` with each of ``vectors`` (0 where a norm is 0)."""
    if not vectors:
        return []
    matrix = np.stack(vectors)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    dots = matrix @ query
    similarities = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return [float(value) for value in similarities]


def _embedding_text(document: Document) -> str:
    return f"{document.title}\n{document.text}"[:EMBED_MAX_CHARS]


# ---------------------------------------------------------------------------------- the base


class KnowledgeBase:
    """Documents by id, searchable by BM25 or, with ``embed``, by cosine similarity."""

    def __init__(self, documents: Sequence[Document], *, embed: Embed | None = None) -> None:
        self._documents: dict[str, Document] = {}
        self._index = _BM25()
        self._embed = embed
        self._vectors: dict[str, Vector] = {}
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

    def _width(self) -> int | None:
        return len(next(iter(self._vectors.values()))) if self._vectors else None

    def _embedding_scores(self, query: str, candidates: Sequence[str]) -> dict[str, float] | None:
        """Cosine similarities, or None after dropping ``embed`` (it failed)."""
        assert self._embed is not None
        try:
            self._embed_missing(self._embed)
            (query_vector,) = _checked_vectors([query], self._embed([query]), self._width())
        except Exception:  # any failure of the caller's embed: BM25 from now on
            self._embed = None
            self._vectors.clear()
            return None
        vectors = [self._vectors[doc_id] for doc_id in candidates]
        return dict(zip(candidates, cosine_similarities(query_vector, vectors), strict=True))

    def _embed_missing(self, embed: Embed) -> None:
        missing = [doc_id for doc_id in sorted(self._documents) if doc_id not in self._vectors]
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            texts = [_embedding_text(self._documents[doc_id]) for doc_id in batch]
            vectors = _checked_vectors(texts, embed(texts), self._width())
            self._vectors.update(zip(batch, vectors, strict=True))


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


__all__ = [
    "BM25_B",
    "BM25_K1",
    "EMBED_BATCH",
    "EMBED_MAX_CHARS",
    "STOP_WORDS",
    "Document",
    "Embed",
    "Hit",
    "KnowledgeBase",
    "cosine_similarities",
    "render_hits",
    "tokenize",
]
