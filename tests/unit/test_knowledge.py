"""The knowledge base of design sessions: BM25, embeddings, the store reader and paper search."""

from __future__ import annotations

import copy
import json
import math
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from genesys.agents.knowledge import (
    EMBED_BATCH,
    Document,
    Hit,
    KnowledgeBase,
    Paper,
    PaperSearchError,
    build_knowledge_base,
    library_documents,
    render_hits,
    search_papers,
    tokenize,
)
from genesys.agents.knowledge.index import cosine_similarities
from genesys.agents.library import LibraryUnit, build_library
from genesys.store.base import LocalStore, Store, open_store
from genesys_trainer.seeds import load_seed

pytestmark = pytest.mark.unit

RUN = "run-1"


# ---------------------------------------------------------------------------------- helpers


def doc(doc_id: str, text: str, *, kind: str = "unit", title: str = "") -> Document:
    return Document(id=doc_id, kind=kind, title=title, text=text)


def ids(hits: list[Hit]) -> list[str]:
    return [hit.document.id for hit in hits]


class FakeEmbed:
    """Hashed bag-of-words vectors (deterministic), recording every call."""

    def __init__(self, width: int = 64) -> None:
        self.width = width
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        vectors = []
        for text in texts:
            vector = [0.0] * self.width
            for token in tokenize(text):
                vector[zlib.crc32(token.encode()) % self.width] += 1.0
            vectors.append(vector)
        return vectors


FRUIT = [
    doc("d:apple", "apple orchard harvest in autumn", kind="design"),
    doc("d:banana", "banana plantation tropical banana bread", kind="design"),
    doc("p:cherry", "cherry blossom spring festival", kind="proposal"),
    doc("u:banana-split", "a banana split with cherry on top", kind="unit"),
]


@pytest.fixture(scope="module")
def library() -> dict[str, LibraryUnit]:
    return build_library()


@pytest.fixture(scope="module")
def library_kb(library: dict[str, LibraryUnit]) -> KnowledgeBase:
    return KnowledgeBase(library_documents(library))


# ---------------------------------------------------------------------------------- tokenize


def test_tokenize_splits_identifiers_and_drops_stop_words() -> None:
    assert tokenize("RotaryMHA") == ["rotary", "mha", "rotarymha"]
    assert tokenize("seq_mixer channel_norm") == ["seq", "mixer", "channel", "norm"]
    assert tokenize("Mamba2Mixer") == ["mamba", "2", "mixer", "mamba2mixer"]
    assert tokenize("The gating of the SwiGLUMLP, with x") == [
        "gating",
        "swi",
        "glumlp",
        "swiglumlp",
    ]
    assert tokenize("TTTLinear: self.conv(X)") == ["ttt", "linear", "tttlinear", "conv"]
    assert tokenize("gating") == ["gating"]  # a plain word is not doubled
    assert tokenize("") == []
    assert tokenize("the of and , ; a") == []


# ---------------------------------------------------------------------------------- BM25


def test_rotary_attention_ranks_rotary_mha_first(library_kb: KnowledgeBase) -> None:
    assert library_kb.backend == "bm25"
    hits = library_kb.search("rotary attention", k=3, kinds={"unit"})
    assert ids(hits)[0] == "unit:RotaryMHA"
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(hit.score > 0 for hit in hits)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state space model selective scan", "unit:Mamba2Mixer"),
        ("multi-scale retention decay", "unit:MultiScaleRetention"),
        ("gated MLP", "unit:SwiGLUMLP"),
    ],
)
def test_library_queries(library_kb: KnowledgeBase, query: str, expected: str) -> None:
    assert ids(library_kb.search(query, k=1)) == [expected]


def test_library_documents_carry_kind_source_and_children(
    library_kb: KnowledgeBase, library: dict[str, LibraryUnit]
) -> None:
    assert len(library_kb) == len(library)
    rotary = next(d for d in library_kb.documents() if d.id == "unit:RotaryMHA")
    assert rotary.title == "RotaryMHA (seq_mixer)"
    assert rotary.meta["source"] == library["RotaryMHA"].source
    assert rotary.meta["kind"] == "seq_mixer"
    assert library["RotaryMHA"].requirements in rotary.text
    block = next(d for d in library_kb.documents() if d.id == "unit:ResidualBlock")
    assert block.meta["children"]["seq_mixer"] == "RotaryMHA"


def test_kinds_and_exclude_filter_before_ranking() -> None:
    kb = KnowledgeBase(FRUIT)
    assert ids(kb.search("banana")) == ["d:banana", "u:banana-split"]
    assert ids(kb.search("banana", kinds={"unit"})) == ["u:banana-split"]
    assert ids(kb.search("banana", kinds={"unit", "proposal"})) == ["u:banana-split"]
    assert ids(kb.search("banana", exclude={"d:banana"})) == ["u:banana-split"]
    assert kb.search("banana", kinds=set()) == []
    assert ids(kb.search("banana cherry", k=1)) == ["u:banana-split"]
    assert kb.search("banana", k=0) == []


def test_no_hits_without_matching_tokens() -> None:
    kb = KnowledgeBase(FRUIT)
    assert kb.search("durian") == []
    assert kb.search("") == []
    assert kb.search("the and of") == []
    assert KnowledgeBase([]).search("banana") == []


def test_ties_are_broken_by_id() -> None:
    kb = KnowledgeBase([doc("b", "same words here"), doc("c", "same words here"), doc("a", "x")])
    kb.add(doc("a", "same words here"))
    hits = kb.search("words")
    assert ids(hits) == ["a", "b", "c"]
    assert len({hit.score for hit in hits}) == 1


def test_add_replaces_by_id_and_updates_the_index() -> None:
    kb = KnowledgeBase(FRUIT)
    kb.add(doc("d:banana", "mango lassi", kind="design"))
    assert len(kb) == len(FRUIT)
    assert ids(kb.search("banana")) == ["u:banana-split"]
    assert ids(kb.search("mango")) == ["d:banana"]
    kb.add(doc("d:kiwi", "kiwi", kind="design"))
    assert len(kb) == len(FRUIT) + 1
    assert [d.id for d in kb.documents("design")] == ["d:apple", "d:banana", "d:kiwi"]
    assert [d.id for d in kb.documents()] == [
        "d:apple",
        "d:banana",
        "d:kiwi",
        "p:cherry",
        "u:banana-split",
    ]


def test_title_is_searched() -> None:
    kb = KnowledgeBase([doc("x", "body text", title="Hierarchical Gating"), doc("y", "body")])
    assert ids(kb.search("hierarchical")) == ["x"]


# ---------------------------------------------------------------------------------- embeddings


def test_embeddings_rank_by_cosine_and_embed_lazily() -> None:
    embed = FakeEmbed()
    kb = KnowledgeBase(FRUIT, embed=embed)
    assert kb.backend == "embeddings"
    assert embed.calls == []  # nothing is embedded before the first search
    hits = kb.search("banana bread")
    assert ids(hits)[0] == "d:banana"
    assert all(0 < hit.score <= 1 + 1e-9 for hit in hits)
    assert [len(call) for call in embed.calls] == [len(FRUIT), 1]  # documents, then the query
    assert embed.calls[1] == ["banana bread"]
    embed.calls.clear()
    kb.search("cherry")
    assert embed.calls == [["cherry"]]  # the documents' vectors are cached
    embed.calls.clear()
    kb.add(doc("d:kiwi", "kiwi fruit salad", kind="design"))
    assert embed.calls == []
    assert ids(kb.search("kiwi salad", k=1)) == ["d:kiwi"]
    assert embed.calls == [["\nkiwi fruit salad"], ["kiwi salad"]]
    assert ids(kb.search("cherry", kinds={"proposal"})) == ["p:cherry"]
    assert kb.search("the of") == []
    assert kb.backend == "embeddings"


def test_cosine_similarities_are_plain_floats_and_0_for_a_zero_vector() -> None:
    query = np.array([1.0, 0.0])
    vectors = [np.array([2.0, 0.0]), np.array([0.0, 3.0]), np.array([-1.0, 1.0]), np.zeros(2)]
    similarities = cosine_similarities(query, vectors)
    assert similarities == pytest.approx([1.0, 0.0, -math.sqrt(0.5), 0.0])
    assert all(type(value) is float for value in similarities)
    assert cosine_similarities(np.zeros(2), vectors) == [0.0, 0.0, 0.0, 0.0]
    assert cosine_similarities(query, []) == []


def test_embeddings_only_return_documents_that_point_the_query_way() -> None:
    vectors = {"apple": [1.0, 0.0], "banana": [0.0, 1.0], "cherry": [0.0, 0.0], "query": [1.0, 0.1]}

    def embed(texts: list[str]) -> list[list[float]]:
        return [vectors[text.split()[-1]] for text in texts]

    documents = [doc(f"d:{name}", name, kind="design") for name in ("apple", "banana", "cherry")]
    kb = KnowledgeBase(documents, embed=embed)
    hits = kb.search("query")
    assert ids(hits) == ["d:apple", "d:banana"]  # cherry's zero vector scores 0
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.01))


def test_embeddings_are_sent_in_batches() -> None:
    embed = FakeEmbed()
    documents = [doc(f"n{i:03d}", f"note number {i}") for i in range(EMBED_BATCH * 2 + 3)]
    kb = KnowledgeBase(documents, embed=embed)
    kb.search("note")
    assert [len(call) for call in embed.calls] == [EMBED_BATCH, EMBED_BATCH, 3, 1]


def test_embeddings_use_the_caller_function_on_library_units(library_kb: KnowledgeBase) -> None:
    kb = KnowledgeBase(library_kb.documents(), embed=FakeEmbed(width=256))
    assert kb.search("rotary attention", k=1)[0].document.id == "unit:RotaryMHA"


def _raising(texts: list[str]) -> list[list[float]]:
    raise RuntimeError("embedding endpoint is down")


def _wrong_count(texts: list[str]) -> list[list[float]]:
    return [[1.0, 0.0]]


def _not_finite(texts: list[str]) -> list[list[float]]:
    return [[math.nan, 1.0] for _ in texts]


def _ragged(texts: list[str]) -> list[list[float]]:
    return [[1.0] * (2 + i) for i, _ in enumerate(texts)]


@pytest.mark.parametrize("embed", [_raising, _wrong_count, _not_finite, _ragged])
def test_embed_failures_fall_back_to_bm25(embed: Callable[[list[str]], list[list[float]]]) -> None:
    kb = KnowledgeBase(FRUIT, embed=embed)
    expected = KnowledgeBase(FRUIT).search("banana cherry")
    assert kb.search("banana cherry") == expected
    assert kb.backend == "bm25"
    assert kb.search("apple") == KnowledgeBase(FRUIT).search("apple")


def test_embed_failing_later_falls_back_for_good() -> None:
    fake = FakeEmbed()
    calls = {"n": 0}

    def flaky(texts: list[str]) -> list[list[float]]:
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionError("gone")
        return fake(texts)

    kb = KnowledgeBase(FRUIT, embed=flaky)
    assert kb.search("banana")  # documents + query: 2 calls
    assert kb.backend == "embeddings"
    assert ids(kb.search("banana")) == ids(KnowledgeBase(FRUIT).search("banana"))
    assert kb.backend == "bm25"
    kb.search("apple")
    assert calls["n"] == 3  # never called again


# ---------------------------------------------------------------------------------- the store


def _design(title: str, **metadata: Any) -> dict[str, Any]:
    document = load_seed("gpt2").to_json()
    document["name"] = title.lower().replace(" ", "-")
    document["metadata"] = {"title": title, **metadata}
    return document


STATE: dict[str, Any] = {
    "session": "s",
    "design_id": "d",
    "seq": 1,
    "operator": "mutation",
    "parents": [],
    "flow": "gau",
    "seed": 0,
    "models": {},
}  # the required fields of a session's state.json


def _put_json(store: Store, key: str, value: Any) -> None:
    store.put_text(key, json.dumps(value))


@pytest.fixture
def run_store(tmp_path: Path, library: dict[str, LibraryUnit]) -> Store:
    root = open_store(tmp_path / "store")
    assert isinstance(root, LocalStore)
    store = root.child(f"runs/{RUN}")  # the run's own store
    base = "."
    novel_source = library["RotaryMHA"].source + "\n# xPos: an exponential decay on the angles\n"

    first = _design(
        "xPos decay for rotary attention",
        operator="mutation",
        parents=["gpt2"],
        proposal="Add an exponential xPos decay to the rotary angles for length extrapolation.",
        session="s0001",
        rating=None,
    )
    first["units"]["RotaryMHA"]["source"] = novel_source
    _put_json(store, f"{base}/designs/d0001/design.json", first)
    store.put_text(f"{base}/designs/d0001/proposal.md", "ignored: metadata.proposal wins")
    _put_json(store, f"{base}/designs/d0001/checks/tiny.json", {"passed": True})

    second = copy.deepcopy(first)
    second["metadata"] = {"title": "Wider channel mixer", "operator": "mutation"}
    second["metadata"]["parents"] = ["d0001"]
    _put_json(store, f"{base}/designs/d0002/design.json", second)
    store.put_text(
        f"{base}/designs/d0002/proposal.md",
        "# Wider channel mixer\n\nRaise the SwiGLU hidden ratio from 8/3 to 4 for capacity.",
    )

    store.put_text(f"{base}/designs/d0003/design.json", "{not json")
    _put_json(store, f"{base}/designs/d0004/design.json", ["a", "list"])
    _put_json(store, f"{base}/designs/d0005/nested/design.json", _design("Nested lookalike"))
    _put_json(root, "runs/other-run/designs/d0001/design.json", _design("Other run design"))

    _put_json(
        store,
        f"{base}/sessions/s0007/state.json",
        {
            **STATE,
            "status": "reviewing",
            "parents": ["d0001", "d0002"],
            "challenging": 1,
            "rating": 4.0,
            "proposal": {
                "title": "Chunked retention with a forget gate",
                "motivation": "Long contexts need a learned forget gate.",
                "analysis": "Retention decays at a fixed rate per head.",
                "design_plan": ["gate the decay per chunk", "keep the parallel form"],
                "novelty": {"score": 3},
            },
        },
    )
    _put_json(store, f"{base}/sessions/s0008/state.json", {**STATE, "status": "proposing"})
    store.put_text(f"{base}/sessions/s0009/state.json", "[broken")
    _put_json(store, f"{base}/sessions/s0010/state.json", {**STATE, "proposal": "not a dict"})
    _put_json(store, f"{base}/sessions/s0001/session.json", {"status": "implemented"})
    return store


def test_build_knowledge_base_reads_designs_units_and_proposals(
    run_store: Store, library: dict[str, LibraryUnit]
) -> None:
    kb = build_knowledge_base(run_store, library=library)
    assert kb.backend == "bm25"
    designs = kb.documents("design")
    assert [d.id for d in designs] == ["design:d0001", "design:d0002"]
    first, second = designs
    assert first.title == "xPos decay for rotary attention"
    assert "length extrapolation" in first.text
    assert "ignored" not in first.text
    assert first.meta["parents"] == ["gpt2"]
    assert first.meta["operator"] == "mutation"
    assert first.meta["design"] == "d0001"
    assert "hidden ratio from 8/3 to 4" in second.text  # from proposal.md
    assert second.meta["parents"] == ["d0001"]

    units = [d for d in kb.documents("unit") if "/" in d.id]
    assert [d.id for d in units] == ["unit:d0001/RotaryMHA"]  # one document for both designs
    assert units[0].meta["design"] == "d0001"
    assert units[0].meta["designs"] == ["d0001", "d0002"]
    assert "xPos" in units[0].meta["source"]
    assert len(kb.documents("unit")) == len(library) + 1

    (proposal,) = kb.documents("proposal")
    assert proposal.id == "proposal:s0007"
    assert proposal.title == "Chunked retention with a forget gate"
    assert dict(proposal.meta) == {
        "session": "s0007",
        "parents": ["d0001", "d0002"],
        "status": "reviewing",
        "challenging": True,
        "rating": 4.0,
    }
    for words in ("learned forget gate", "fixed rate per head", "gate the decay per chunk"):
        assert words in proposal.text

    assert ids(kb.search("wider SwiGLU hidden ratio", kinds={"design"}, k=1)) == ["design:d0002"]
    assert ids(kb.search("xPos length extrapolation", k=1)) == ["design:d0001"]
    assert ids(kb.search("forget gate retention", kinds={"proposal", "design"})) == [
        "proposal:s0007"
    ]
    assert ids(kb.search("xPos decay angles", kinds={"unit"}, k=1)) == ["unit:d0001/RotaryMHA"]


def test_build_knowledge_base_of_an_empty_run_has_the_library(
    tmp_path: Path, library: dict[str, LibraryUnit]
) -> None:
    kb = build_knowledge_base(LocalStore(tmp_path), embed=FakeEmbed())
    assert len(kb) == len(library)
    assert kb.backend == "embeddings"
    assert kb.documents("design") == []


# ---------------------------------------------------------------------------------- rendering


def test_render_hits() -> None:
    assert render_hits([]) == "(no results)"
    long_text = "Title words\n\n" + " ".join(f"word{i}" for i in range(400))
    hits = [
        Hit(doc("design:d0001", long_text, kind="design", title="Title words"), 3.14159),
        Hit(doc("unit:X", "short\n  body", title="X"), 0.5),
    ]
    text = render_hits(hits, max_chars=50)
    lines = text.splitlines()
    assert lines[0] == "[design:d0001] Title words (3.142)"
    assert lines[1].startswith("  word0 word1")
    assert lines[1].endswith("...")
    assert len(lines[1]) <= 2 + 50
    assert lines[2:] == ["[unit:X] X (0.500)", "  short body"]
    assert render_hits(hits, max_chars=0).splitlines() == [lines[0], lines[2]]


# ---------------------------------------------------------------------------------- papers

SEMANTIC_SCHOLAR_REPLY = {
    "total": 2,
    "offset": 0,
    "data": [
        {
            "paperId": "abc",
            "title": "RoFormer: Enhanced Transformer with Rotary Position Embedding",
            "abstract": "Position encoding\n  in transformers.",
            "year": 2021,
            "url": "https://www.semanticscholar.org/paper/abc",
            "authors": [{"authorId": "1", "name": "Jianlin Su"}, {"name": "Yu Lu"}],
        },
        {"paperId": "def", "title": "No abstract", "abstract": None, "year": None, "authors": []},
        {"paperId": "ghi", "title": ""},
    ],
}

ARXIV_REPLY = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>arXiv Query</title>
  <entry>
    <id>http://arxiv.org/abs/2104.09864v5</id>
    <published>2021-04-20T10:00:00Z</published>
    <title>RoFormer: Enhanced Transformer with
      Rotary Position Embedding</title>
    <summary>  Position encoding recently has shown effective. </summary>
    <author><name>Jianlin Su</name></author>
    <author><name>Yu Lu</name></author>
    <link href="http://arxiv.org/abs/2104.09864v5" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2104.09864v5" rel="related"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2307.08621v1</id>
    <published>2023-07-17T00:00:00Z</published>
    <title>Retentive Network</title>
    <summary>Retention.</summary>
  </entry>
</feed>
"""

ARXIV_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format</id>
    <title>Error</title>
    <summary>incorrect id format</summary>
  </entry>
</feed>
"""


class _PaperServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    routes: dict[str, tuple[int, str, bytes]]
    paths: list[str]


class _PaperHandler(BaseHTTPRequestHandler):
    server: _PaperServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        route = self.server.routes.get(urlsplit(self.path).path)
        status, content_type, body = route or (404, "text/plain", b"not found")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def paper_server() -> Iterator[_PaperServer]:
    server = _PaperServer(("127.0.0.1", 0), _PaperHandler)
    server.routes = {
        "/graph/v1/paper/search": (
            200,
            "application/json",
            json.dumps(SEMANTIC_SCHOLAR_REPLY).encode(),
        ),
        "/api/query": (200, "application/atom+xml", ARXIV_REPLY.encode()),
        "/bad/paper/search": (200, "application/json", b"<html>gateway</html>"),
        "/bad/query": (200, "application/atom+xml", b"<html>not atom</html>"),
        "/nodata/paper/search": (200, "application/json", b'{"message": "x"}'),
        "/list/paper/search": (200, "application/json", b"[]"),
        "/empty/paper/search": (200, "application/json", b'{"total": 0, "offset": 0}'),
        "/error/paper/search": (500, "application/json", b'{"error": "boom"}'),
        "/error/query": (200, "application/atom+xml", ARXIV_ERROR.encode()),
    }
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def _base(server: _PaperServer, prefix: str) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}{prefix}"


def test_semantic_scholar_search(paper_server: _PaperServer) -> None:
    papers = search_papers(
        "rotary position embedding",
        source="semantic-scholar",
        base_url=_base(paper_server, "/graph/v1"),
        limit=3,
    )
    assert papers == [
        Paper(
            title="RoFormer: Enhanced Transformer with Rotary Position Embedding",
            abstract="Position encoding in transformers.",
            year=2021,
            url="https://www.semanticscholar.org/paper/abc",
            authors=("Jianlin Su", "Yu Lu"),
        ),
        Paper(
            title="No abstract",
            abstract="",
            year=None,
            url="https://www.semanticscholar.org/paper/def",
            authors=(),
        ),
    ]
    (path,) = paper_server.paths
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/graph/v1/paper/search"
    assert query == {
        "query": ["rotary position embedding"],
        "limit": ["3"],
        "fields": ["title,abstract,year,url,authors"],
    }


def test_semantic_scholar_limit_cuts_results(paper_server: _PaperServer) -> None:
    base = _base(paper_server, "/graph/v1/")
    papers = search_papers("rotary", source="semantic-scholar", base_url=base, limit=1)
    assert [p.year for p in papers] == [2021]


def test_semantic_scholar_without_results(paper_server: _PaperServer) -> None:
    base = _base(paper_server, "/empty")
    assert search_papers("zzz", source="semantic-scholar", base_url=base) == []


def test_arxiv_search(paper_server: _PaperServer) -> None:
    papers = search_papers(
        "rotary attention", source="arxiv", base_url=_base(paper_server, "/api"), limit=2
    )
    assert papers == [
        Paper(
            title="RoFormer: Enhanced Transformer with Rotary Position Embedding",
            abstract="Position encoding recently has shown effective.",
            year=2021,
            url="http://arxiv.org/abs/2104.09864v5",
            authors=("Jianlin Su", "Yu Lu"),
        ),
        Paper(
            title="Retentive Network",
            abstract="Retention.",
            year=2023,
            url="http://arxiv.org/abs/2307.08621v1",
            authors=(),
        ),
    ]
    (path,) = paper_server.paths
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/api/query"
    assert query["search_query"] == ["all:rotary AND all:attention"]
    assert query["max_results"] == ["2"]


@pytest.mark.parametrize(
    ("source", "prefix", "detail"),
    [
        ("semantic-scholar", "/bad", "Expecting value"),
        ("semantic-scholar", "/nodata", "no 'data' list"),
        ("semantic-scholar", "/list", "no 'data' list"),
        ("semantic-scholar", "/error", "HTTP 500"),
        ("semantic-scholar", "/missing", "HTTP 404"),
        ("arxiv", "/bad", "not an Atom feed"),
        ("arxiv", "/error", "incorrect id format"),
    ],
)
def test_paper_search_failures_raise_paper_search_error(
    paper_server: _PaperServer, source: str, prefix: str, detail: str
) -> None:
    base = _base(paper_server, prefix)
    with pytest.raises(PaperSearchError) as caught:
        search_papers("rotary", source=source, base_url=base)
    message = str(caught.value)
    assert detail in message
    assert source in message
    assert f"127.0.0.1:{paper_server.server_address[1]}" in message
    assert "spec.agents.paperSearch: off" in message


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_paper_search_against_a_closed_port() -> None:
    port = _closed_port()
    with pytest.raises(PaperSearchError) as caught:
        search_papers(
            "rotary", source="semantic-scholar", base_url=f"http://127.0.0.1:{port}", timeout_s=2
        )
    message = str(caught.value)
    assert f"semantic-scholar (127.0.0.1:{port})" in message
    assert "needs network access" in message
    assert "spec.agents.paperSearch: off" in message


def test_paper_search_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts connections in the kernel, never answers
        port = silent.getsockname()[1]
        with pytest.raises(PaperSearchError, match="timed out"):
            search_papers(
                "rotary", source="arxiv", base_url=f"http://127.0.0.1:{port}", timeout_s=0.2
            )


def test_paper_search_arguments() -> None:
    with pytest.raises(ValueError, match="unknown paper source"):
        search_papers("rotary", source="google-scholar")
    with pytest.raises(ValueError, match="limit"):
        search_papers("rotary", source="arxiv", limit=0)
    closed = f"http://127.0.0.1:{_closed_port()}"
    assert search_papers("  ,; ", source="arxiv", base_url=closed) == []  # no request made
