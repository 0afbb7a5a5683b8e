"""Paper search: the proposer's view of the literature, from Semantic Scholar or arXiv.

:func:`search_papers` sends one GET to a paper source (``spec.agents.paperSearch``, at
``spec.agents.paperSearchUrl`` or the source's public API) and returns the :class:`Paper` s of
its reply; :func:`parse_semantic_scholar` and :func:`parse_arxiv` read the two reply formats.
This is the only network access of the knowledge base.

What must stay true:

- :func:`search_papers` fails only with :class:`PaperSearchError` (a network or body problem,
  the message naming the source and host and how to turn paper search off) or ``ValueError``
  (bad arguments), and leaves no socket open;
- a reply is read up to :data:`MAX_BODY_BYTES`; a larger one is an error, never truncated;
- a query with no words sends no request.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any


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
_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_SPACE_RE = re.compile(r"\s+")


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


# ------------------------------------------------------------------------- Semantic Scholar


def _semantic_scholar_paper(item: dict[str, Any]) -> Paper:
    year = item.get("year")
    authors = item.get("authors")
    names = (
        [a.get("name") for a in authors if isinstance(a, dict)] if isinstance(authors, list) else []
    )
    url = _clean(item.get("url"))
    if not url and isinstance(item.get("paperId"), str):
        url = f"https://www.semanticscholar.org/paper/{item['paperId']}"
    return Paper(
        title=_clean(item.get("title")),
        abstract=_clean(item.get("abstract")),
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        url=url,
        authors=tuple(_clean(name) for name in names if _clean(name)),
    )


def parse_semantic_scholar(body: bytes) -> list[Paper]:
    """Papers of a Semantic Scholar ``/paper/search`` reply; ValueError when malformed."""
    payload = json.loads(body.decode("utf-8"))
    data = payload.get("data") if isinstance(payload, dict) else None
    if data is None and isinstance(payload, dict) and payload.get("total") == 0:
        return []  # no results: the reply has no "data"
    if not isinstance(data, list):
        raise ValueError("the reply has no 'data' list")
    return [
        _semantic_scholar_paper(item)
        for item in data
        if isinstance(item, dict) and _clean(item.get("title"))
    ]


# ---------------------------------------------------------------------------------- arXiv


def _atom_text(entry: ET.Element, tag: str) -> str:
    element = entry.find(f"{_ATOM}{tag}")
    return _clean(element.text) if element is not None else ""


def _arxiv_paper(entry: ET.Element, title: str) -> Paper:
    url = _atom_text(entry, "id")
    for link in entry.findall(f"{_ATOM}link"):
        if link.get("rel") == "alternate" and link.get("href"):
            url = str(link.get("href"))
            break
    year = _YEAR_RE.match(_atom_text(entry, "published"))
    authors = [_atom_text(author, "name") for author in entry.findall(f"{_ATOM}author")]
    return Paper(
        title=title,
        abstract=_atom_text(entry, "summary"),
        year=int(year.group(1)) if year else None,
        url=url,
        authors=tuple(name for name in authors if name),
    )


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
        if "/api/errors" in _atom_text(entry, "id"):
            raise ValueError(f"arXiv answered with an error: {_atom_text(entry, 'summary')}")
        title = _atom_text(entry, "title")
        if title:
            papers.append(_arxiv_paper(entry, title))
    return papers


# ---------------------------------------------------------------------------------- the request


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


def _check_arguments(source: str, limit: int, timeout_s: float) -> None:
    if source not in PAPER_SOURCES:
        raise ValueError(
            f"unknown paper source {source!r}; expected one of {sorted(PAPER_SOURCES)}"
        )
    if not 1 <= limit <= MAX_PAPERS:
        raise ValueError(f"limit must be between 1 and {MAX_PAPERS}, got {limit}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")


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
    _check_arguments(source, limit, timeout_s)
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
    "MAX_BODY_BYTES",
    "MAX_PAPERS",
    "PAPER_SOURCES",
    "Paper",
    "PaperSearchError",
    "paper_search_url",
    "parse_arxiv",
    "parse_semantic_scholar",
    "search_papers",
]
