"""``genesys data prepare``: sources -> tokenizer -> train/val token shards + local eval tasks.

Sources: ``builtin`` (the offline corpus), ``files:GLOB[,GLOB...]`` (text or JSONL files), or
``hf:NAME[:SUBSET=WEIGHT,...]`` (a Hugging Face dataset, streamed; cluster use). Synthetic
recall/copy/induction texts are mixed into the training split at ``synthetic_fraction`` of its
tokens. Evaluation items (multiple choice, JSONL) are written under ``tasks/``: the three
synthetic tasks, a cloze set from held-out sentences, and WordNet definitions where Debian's
``wordnet-base`` is installed.

What must stay true: the output depends only on (source, tokenizer, fractions, seed); it lands in
a local directory or any store URI (S3 included) with the layout of :mod:`.shards`.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genesys.store import Store, open_store
from genesys_trainer.data.shards import META_FORMAT, ShardWriter, load_split
from genesys_trainer.data.sources import (
    builtin_documents,
    file_documents,
    huggingface_documents,
)
from genesys_trainer.data.synthetic import ITEM_GENERATORS, choice_items, synthetic_documents
from genesys_trainer.data.tokenizer import (
    ByteTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_json,
    train_bpe,
)

WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")


def documents_of(source: str, *, seed: int) -> Iterator[str]:
    """Documents of a source spec."""
    if source == "builtin":
        return builtin_documents()
    if source.startswith("files:"):
        return file_documents(source.removeprefix("files:").split(","))
    if source.startswith("hf:"):
        name, _, mix = source.removeprefix("hf:").partition(":")
        subsets = []
        for part in filter(None, mix.split(",")):
            subset, _, weight = part.partition("=")
            subsets.append((subset, float(weight or 1.0)))
        return huggingface_documents(name, subsets, seed=seed)
    raise ValueError(f"unknown source {source!r}; expected builtin, files:GLOB or hf:NAME")


def sentences(text: str) -> Iterator[list[str]]:
    """Word lists of the sentences of a text."""
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        yield sentence.split()


def cloze_items(documents: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """Last word of held-out sentences against three distractor words."""
    rng = random.Random(f"cloze:{seed}")
    words: list[str] = []
    candidates: list[tuple[str, str]] = []
    for document in documents:
        for sentence in sentences(document):
            clean = [re.sub(r"[^A-Za-z]", "", w) for w in sentence]
            words.extend(w.lower() for w in clean if len(w) >= 3)
            last = clean[-1] if clean else ""
            if 8 <= len(sentence) <= 40 and len(last) >= 3:
                context = " ".join(sentence[:-1])
                candidates.append((context, last.lower()))
    vocabulary = sorted(set(words))
    rng.shuffle(candidates)
    items = []
    for context, answer in candidates[:count]:
        distractors = rng.sample([w for w in vocabulary if w != answer], 3)
        choices = [answer, *distractors]
        rng.shuffle(choices)
        items.append({"context": context, "choices": choices, "label": choices.index(answer)})
    return items


def wordnet_items(count: int, seed: int) -> list[dict[str, Any]]:
    """Noun glosses of WordNet with the right word among four, when wordnet-base is installed."""
    if not WORDNET_NOUNS.exists():
        return []
    entries = []
    for line in WORDNET_NOUNS.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue
        fields, gloss = line.split("|", 1)
        word = fields.split()[4].replace("_", " ")
        definition = gloss.split(";")[0].strip()
        if word.isalpha() and len(word) >= 3 and definition:
            entries.append((definition, word.lower()))
    rng = random.Random(f"wordnet:{seed}")
    rng.shuffle(entries)
    words = sorted({w for _, w in entries})
    items = []
    for definition, answer in entries[:count]:
        choices = [answer, *rng.sample([w for w in words if w != answer], 3)]
        rng.shuffle(choices)
        items.append(
            {
                "context": f"{definition}. In one word:",
                "choices": choices,
                "label": choices.index(answer),
            }
        )
    return items


def write_tasks(directory: Path, val_documents: list[str], count: int, seed: int) -> list[str]:
    """The local evaluation items, one JSONL file per task; the task names."""
    tasks = directory / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    written = []
    sets: dict[str, list[dict[str, Any]]] = {
        name: [
            {"context": c.context, "choices": c.choices, "label": c.label}
            for c in choice_items(name, count, seed)
        ]
        for name in ITEM_GENERATORS
    }
    sets["genesys_cloze"] = cloze_items(val_documents, count, seed)
    sets["genesys_wordnet"] = wordnet_items(count, seed)
    for name, items in sets.items():
        if items:
            lines = "".join(json.dumps(item) + "\n" for item in items)
            (tasks / f"{name}.jsonl").write_text(lines, encoding="utf-8")
            written.append(name)
    return written


def unigram_entropy(tokens: np.ndarray[Any, Any], vocab_size: int) -> float:
    """Entropy (nats per token) of the token frequencies."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _split_documents(
    documents: Iterator[str], *, val_fraction: float, seed: int, budget: float
) -> tuple[list[str], list[str]]:
    """Non-empty documents drawn into (train, val) until about ``budget`` tokens of text.

    Val gets at least one document when there is any.
    """
    rng = random.Random(seed)
    train_docs: list[str] = []
    val_docs: list[str] = []
    seen = 0
    for document in documents:
        if not document.strip():
            continue
        (val_docs if rng.random() < val_fraction else train_docs).append(document)
        seen += len(document)
        if seen >= budget * 4:  # a generous bound on characters per token
            break
    if not val_docs and train_docs:
        val_docs.append(train_docs.pop())
    return train_docs, val_docs


def _tokenizer_for(name: str, train_docs: list[str]) -> Tokenizer:
    """``byte``, ``bpe:N`` (trained on ``train_docs``) or a Hugging Face tokenizer."""
    if name.startswith("bpe:"):
        return train_bpe(iter(train_docs), int(name.removeprefix("bpe:")))
    return load_tokenizer(name) if name != "byte" else ByteTokenizer()


def _write_train(
    train: ShardWriter,
    tok: Tokenizer,
    train_docs: list[str],
    *,
    synthetic_fraction: float,
    seed: int,
    budget: float,
    progress: bool,
) -> int:
    """Tokenise ``train_docs`` into ``train``, mixing in synthetic texts; the synthetic tokens."""
    synthetic = synthetic_documents(seed)
    synthetic_tokens = 0
    for index, document in enumerate(train_docs):
        train.add([*tok.encode(document), tok.eot])
        while synthetic_fraction > 0 and synthetic_tokens < synthetic_fraction * train.tokens:
            ids = [*tok.encode(next(synthetic)), tok.eot]
            train.add(ids)
            synthetic_tokens += len(ids)
        if train.tokens >= budget:
            break
        if progress and index % 50 == 0:
            print(
                f"prepare: {index}/{len(train_docs)} documents, {train.tokens:,} tokens",
                file=sys.stderr,
            )
    return synthetic_tokens


def _upload(directory: Path, out: str) -> Store:
    """Every file of ``directory`` to the store at ``out``, ``meta.json`` last."""
    store = open_store(out)
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != "meta.json":
            store.put_file(path.relative_to(directory).as_posix(), path)
    store.put_file("meta.json", directory / "meta.json")  # last: marks the set complete
    return store


def prepare(
    *,
    source: str,
    tokenizer: str,
    out: str,
    val_fraction: float = 0.05,
    synthetic_fraction: float = 0.0,
    seed: int = 0,
    max_tokens: int | None = None,
    eval_items: int = 400,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare shards into ``out`` (a path or store URI); the metadata."""
    started = time.perf_counter()
    budget = max_tokens if max_tokens is not None else math.inf
    train_docs, val_docs = _split_documents(
        documents_of(source, seed=seed), val_fraction=val_fraction, seed=seed, budget=budget
    )
    tok = _tokenizer_for(tokenizer, train_docs)
    with tempfile.TemporaryDirectory(prefix="genesys-prepare-") as staging:
        directory = Path(staging)
        train = ShardWriter(directory, "train", tok.vocab_size)
        val = ShardWriter(directory, "val", tok.vocab_size)
        synthetic_tokens = _write_train(
            train,
            tok,
            train_docs,
            synthetic_fraction=synthetic_fraction,
            seed=seed,
            budget=budget,
            progress=progress,
        )
        for document in val_docs:
            val.add([*tok.encode(document), tok.eot])
        splits = {"train": train.close(), "val": val.close()}
        bpe = tokenizer_json(tok)
        if bpe is not None:
            (directory / "tokenizer.json").write_text(bpe, encoding="utf-8")
        tasks = write_tasks(directory, val_docs, eval_items, seed)
        meta: dict[str, Any] = {
            "format": META_FORMAT,
            "source": source,
            "tokenizer": {**tok.to_json(), "name": tok.name},
            "vocab_size": tok.vocab_size,
            "eot": tok.eot,
            "splits": splits,
            "tokens": {name: sum(f["tokens"] for f in files) for name, files in splits.items()},
            "documents": {"train": len(train_docs), "val": len(val_docs)},
            "synthetic_fraction": synthetic_fraction,
            "synthetic_tokens": synthetic_tokens,
            "seed": seed,
            "tasks": tasks,
        }
        meta["unigram_entropy"] = unigram_entropy(
            load_split(directory, meta, "train"), tok.vocab_size
        )
        (directory / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        store = _upload(directory, out)
    if progress:
        print(
            f"prepare: {meta['tokens']['train']:,} train and {meta['tokens']['val']:,} val tokens "
            f"({tok.name}, vocab {tok.vocab_size}, {synthetic_tokens:,} synthetic) in "
            f"{time.perf_counter() - started:.1f}s -> {store.uri}",
            file=sys.stderr,
        )
    return meta


def open_data(uri: str) -> tuple[Path, dict[str, Any]]:
    """A local directory holding the prepared data (S3 data is cached locally), and its meta."""
    local = Path(uri)
    if "://" not in uri or uri.startswith("file://"):
        local = Path(uri.removeprefix("file://"))
        meta_path = local / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{uri} holds no meta.json; run `genesys data prepare` first")
        return local, json.loads(meta_path.read_text(encoding="utf-8"))
    import hashlib
    import os

    store = open_store(uri)
    cache_root = Path(
        os.environ.get("GENESYS_CACHE", Path(tempfile.gettempdir()) / "genesys-cache")
    )
    cache = cache_root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    meta = json.loads(store.get_text("meta.json"))
    if not (cache / "meta.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        for key in store.list():
            if key != "meta.json":
                (cache / key).parent.mkdir(parents=True, exist_ok=True)
                store.get_file(key, cache / key)
        (cache / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return cache, meta


__all__ = ["open_data", "prepare", "unigram_entropy", "write_tasks"]


def main(argv: list[str] | None = None) -> int:
    """``genesys data prepare --source S --tokenizer T --out DIR|URI [...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="genesys data prepare", description=main.__doc__)
    parser.add_argument(
        "--source", default="builtin", help="builtin | files:GLOB[,GLOB] | hf:NAME[:SUBSET=W,...]"
    )
    parser.add_argument("--tokenizer", default="byte", help="byte | bpe:N | HF name or path")
    parser.add_argument("--out", required=True, help="output directory or store URI")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--synthetic-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--eval-items", type=int, default=400)
    args = parser.parse_args(argv)
    meta = prepare(
        source=args.source,
        tokenizer=args.tokenizer,
        out=args.out,
        val_fraction=args.val_fraction,
        synthetic_fraction=args.synthetic_fraction,
        seed=args.seed,
        max_tokens=args.max_tokens,
        eval_items=args.eval_items,
    )
    print(json.dumps({k: meta[k] for k in ("tokens", "vocab_size", "tasks", "unigram_entropy")}))
    return 0
