"""The knowledge base of a design session: seed units, earlier designs and earlier proposals.

Before proposing or reviewing, an agent searches what the run already knows (Genesys, "A
design session"): the seed units of :mod:`genesys.agents.library`, every design of the run's
archive (its proposal, and each unit it implemented differently from the library), and the
proposals of earlier sessions. The package has one module per concept:

- :mod:`~genesys.agents.knowledge.index`: documents, tokens, the BM25 / embedding search of a
  :class:`KnowledgeBase`, and :func:`render_hits` (hits as prompt text);
- :mod:`~genesys.agents.knowledge.corpus`: :func:`build_knowledge_base`, the documents of a
  run read from the library and the run's store;
- :mod:`~genesys.agents.knowledge.paper_search`: :func:`search_papers` at Semantic Scholar or
  arXiv (the only network access of the package).

Everything callers use is importable from ``genesys.agents.knowledge`` itself.

What must stay true: no torch import in the package (unit sources are read as text and parsed
with :mod:`ast`, never run); each module's docstring says what else must hold.
"""

from genesys.agents.knowledge.corpus import (
    PROPOSAL_FIELDS,
    build_knowledge_base,
    class_docstring,
    design_document,
    implemented_unit_document,
    implemented_units,
    library_documents,
    proposal_document,
)
from genesys.agents.knowledge.index import (
    BM25_B,
    BM25_K1,
    EMBED_BATCH,
    EMBED_MAX_CHARS,
    STOP_WORDS,
    Document,
    Embed,
    Hit,
    KnowledgeBase,
    render_hits,
    tokenize,
)
from genesys.agents.knowledge.paper_search import (
    MAX_BODY_BYTES,
    MAX_PAPERS,
    PAPER_SOURCES,
    Paper,
    PaperSearchError,
    paper_search_url,
    parse_arxiv,
    parse_semantic_scholar,
    search_papers,
)

__all__ = [
    "BM25_B",
    "BM25_K1",
    "EMBED_BATCH",
    "EMBED_MAX_CHARS",
    "MAX_BODY_BYTES",
    "MAX_PAPERS",
    "PAPER_SOURCES",
    "PROPOSAL_FIELDS",
    "STOP_WORDS",
    "Document",
    "Embed",
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
