"""Data: shards round-trip, synthetic tasks are deterministic, tokenizers and the sampler."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from genesys_trainer.data.prepare import prepare
from genesys_trainer.data.sampler import WindowSampler
from genesys_trainer.data.shards import read_shard, write_shard
from genesys_trainer.data.synthetic import (
    ITEM_GENERATORS,
    choice_items,
    copy_text,
    induction_text,
    mqar_text,
    synthetic_documents,
)
from genesys_trainer.data.tokenizer import ByteTokenizer, load_tokenizer, train_bpe


@pytest.mark.parametrize("vocab", [256, 70_000], ids=["uint16", "uint32"])
def test_shard_round_trips(tmp_path: Path, vocab: int) -> None:
    tokens = np.random.default_rng(0).integers(0, vocab, size=10_001)
    write_shard(tmp_path / "s.bin", tokens, vocab)
    assert np.array_equal(np.asarray(read_shard(tmp_path / "s.bin")), tokens)


def test_shard_with_bad_magic_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.bin").write_bytes(b"NOTASHARD" * 8)
    with pytest.raises(ValueError, match="not a genesys token shard"):
        read_shard(tmp_path / "bad.bin")


def test_synthetic_generators_are_deterministic_under_a_seed() -> None:
    a = [next(iter(synthetic_documents(7))) for _ in range(1)]
    first, second = synthetic_documents(7), synthetic_documents(7)
    assert [next(first) for _ in range(50)] == [next(second) for _ in range(50)]
    assert a[0] == next(synthetic_documents(7))
    assert [next(synthetic_documents(8)) for _ in range(1)] != a
    for task in ITEM_GENERATORS:
        assert choice_items(task, 20, 3) == choice_items(task, 20, 3)
        assert choice_items(task, 20, 3) != choice_items(task, 20, 4)


def test_synthetic_texts_hold_their_answers() -> None:
    rng = random.Random(1)
    text = mqar_text(rng)
    pairs, queries = text.removeprefix("mqar: ").split(" ; ")
    known = dict(p.split("=") for p in pairs.split())
    assert all(known[k] == v for k, v in (q.split("=") for q in queries.split()))
    head, letters = copy_text(rng).split(" | ")
    assert "".join(c for c in head.removeprefix("copy: ") if c != ".") == letters
    body = induction_text(rng).removeprefix("induction: ")
    assert any(body.count(body[i : i + 2]) >= 2 for i in range(len(body) - 1))


@pytest.mark.parametrize("task", list(ITEM_GENERATORS))
def test_choice_items_are_well_formed(task: str) -> None:
    for item in choice_items(task, 50, 0):
        assert len(item.choices) == 4
        assert len(set(item.choices)) == 4
        assert 0 <= item.label < 4


def test_mqar_item_answer_is_recallable_from_context() -> None:
    for item in choice_items("genesys_mqar", 30, 2):
        pairs, key = item.context.removeprefix("mqar: ").split(" ; ")
        known = dict(p.split("=") for p in pairs.split())
        assert known[key.rstrip("=")] == item.choices[item.label]


def test_byte_tokenizer_round_trips() -> None:
    tok = ByteTokenizer()
    text = "Call me Ishmael — naïve café."
    assert tok.decode(tok.encode(text)) == text
    assert max(tok.encode(text)) < 256


def test_bpe_tokenizer_trains_and_round_trips(tmp_path: Path) -> None:
    texts = ["the whale and the sea " * 20, "a ship, a captain and a crew " * 20]
    tok = train_bpe(texts, 300)
    assert tok.vocab_size <= 300
    assert tok.decode(tok.encode("the whale and the crew")) == "the whale and the crew"
    (tmp_path / "tokenizer.json").write_text(tok.tokenizer.to_str(), encoding="utf-8")
    again = load_tokenizer("bpe:300", tmp_path)
    assert again.encode("the sea") == tok.encode("the sea")


def test_sampler_is_deterministic_and_partitions_ranks() -> None:
    tokens = np.arange(10_000) % 251
    sampler = WindowSampler(tokens, block_size=16, seed=3)
    again = WindowSampler(tokens, block_size=16, seed=3)
    one_rank = sampler.samples(step=5, per_step=8, rank=0, world=1)
    two_ranks = sampler.samples(5, 8, 0, 2) + sampler.samples(5, 8, 1, 2)
    assert sorted(two_ranks) == one_rank
    x, y = sampler.batch(one_rank)
    x2, _ = again.batch(one_rank)
    assert x.shape == (8, 16)
    assert bool((x == x2).all())
    assert bool((x[:, 1:] == y[:, :-1]).all())
    assert not bool((WindowSampler(tokens, 16, seed=4).batch(one_rank)[0] == x).all())


def test_prepare_from_files_with_bpe(tmp_path: Path) -> None:
    for index in range(12):
        (tmp_path / f"doc{index}.txt").write_text(
            f"Document {index}. The whale swam past the ship in the grey sea. " * 30,
            encoding="utf-8",
        )
    meta = prepare(
        source=f"files:{tmp_path}/*.txt",
        tokenizer="bpe:300",
        out=str(tmp_path / "out"),
        val_fraction=0.2,
        synthetic_fraction=0.25,
        seed=1,
        eval_items=10,
        progress=False,
    )
    assert meta["tokenizer"]["name"] == "bpe:300"
    assert (tmp_path / "out" / "tokenizer.json").exists()
    assert meta["tokens"]["train"] > 0
    assert meta["tokens"]["val"] > 0
    assert meta["synthetic_tokens"] >= 0.2 * meta["tokens"]["train"] - 100
    assert set(meta["tasks"]) >= {"genesys_mqar", "genesys_selective_copy", "genesys_induction"}
    saved = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert saved["tokens"] == meta["tokens"]


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha beta gamma. " * 200, encoding="utf-8")
    (tmp_path / "b.txt").write_text("delta epsilon zeta. " * 200, encoding="utf-8")
    for name in ("one", "two"):
        prepare(
            source=f"files:{tmp_path}/*.txt",
            tokenizer="byte",
            out=str(tmp_path / name),
            synthetic_fraction=0.1,
            seed=5,
            eval_items=5,
            progress=False,
        )
    for file in ("train-00000.bin", "val-00000.bin", "tasks/genesys_mqar.jsonl"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_missing_files_source_is_a_clear_error(tmp_path: Path) -> None:
    from genesys_trainer.data.sources import SourceError

    with pytest.raises(SourceError, match="no files match"):
        prepare(
            source=f"files:{tmp_path}/none-*.txt",
            tokenizer="byte",
            out=str(tmp_path / "o"),
            progress=False,
        )


def test_builtin_corpus_prepares_offline(builtin_data: Path) -> None:
    meta = json.loads((builtin_data / "meta.json").read_text())
    assert meta["source"] == "builtin"
    assert meta["tokens"]["train"] > 5_000_000
    assert 2.5 < meta["unigram_entropy"] < 3.5
    assert "genesys_cloze" in meta["tasks"]
