"""Tokenizers: byte-level, a BPE trained offline on the corpus, or any Hugging Face tokenizer.

Specs: ``byte`` (vocab 256; document separator 0, the NUL byte, which text never holds),
``bpe:<vocab>`` (trained with ``tokenizers`` on the prepared corpus, saved beside the shards as
``tokenizer.json``), or a Hugging Face name or path (cluster runs; needs the hub or a local copy).

What must stay true: ``encode`` then ``decode`` returns the text for byte and BPE tokenizers, and
every tokenizer reports its ``vocab_size`` and ``eot`` (end of document) id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol


class Tokenizer(Protocol):
    """What data preparation, training and evaluation need of a tokenizer."""

    name: str
    vocab_size: int
    eot: int

    def encode(self, text: str) -> list[int]:
        """Token ids of a text."""
        ...

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids."""
        ...

    def to_json(self) -> dict[str, Any]:
        """How to rebuild this tokenizer (saved in the shards' metadata)."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as tokens; the NUL byte separates documents."""

    name = "byte"
    vocab_size = 256
    eot = 0

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(int(i) for i in ids if 0 < int(i) < 256).decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "byte"}


class HuggingFaceTokenizer:
    """A ``tokenizers.Tokenizer`` (a trained BPE, or one loaded by name or path)."""

    def __init__(self, tokenizer: Any, *, name: str, eot: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.vocab_size = int(tokenizer.get_vocab_size())
        found = eot if eot is not None else tokenizer.token_to_id("<|endoftext|>")
        if found is None:
            found = tokenizer.token_to_id("</s>")
        self.eot = int(found) if found is not None else 0

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.tokenizer.decode([int(i) for i in ids]))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "huggingface", "name": self.name, "eot": self.eot}


def train_bpe(texts: Iterable[str], vocab_size: int) -> HuggingFaceTokenizer:
    """A byte-level BPE trained on the texts, with <|endoftext|> as id 0."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tokenizer = RawTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return HuggingFaceTokenizer(tokenizer, name=f"bpe:{vocab_size}", eot=0)


def load_tokenizer(spec: str | dict[str, Any], directory: Path | None = None) -> Tokenizer:
    """A tokenizer from a spec string or from shard metadata; BPE reads ``tokenizer.json``."""
    if isinstance(spec, dict):
        kind = spec.get("kind")
        if kind == "byte":
            return ByteTokenizer()
        spec = str(spec.get("name"))
    if spec == "byte":
        return ByteTokenizer()
    from tokenizers import Tokenizer as RawTokenizer

    if spec.startswith("bpe:"):
        if directory is None or not (directory / "tokenizer.json").exists():
            raise FileNotFoundError(f"{spec} needs the tokenizer.json written by data prepare")
        return HuggingFaceTokenizer(
            RawTokenizer.from_file(str(directory / "tokenizer.json")), name=spec, eot=0
        )
    path = Path(spec)
    if path.is_dir() and (path / "tokenizer.json").exists():
        return HuggingFaceTokenizer(RawTokenizer.from_file(str(path / "tokenizer.json")), name=spec)
    if path.is_file():
        return HuggingFaceTokenizer(RawTokenizer.from_file(str(path)), name=spec)
    return HuggingFaceTokenizer(RawTokenizer.from_pretrained(spec), name=spec)  # the hub


def tokenizer_json(tokenizer: Tokenizer) -> str | None:
    """The serialised BPE to save beside the shards, if any."""
    if isinstance(tokenizer, HuggingFaceTokenizer):
        return str(tokenizer.tokenizer.to_str())
    return None


__all__ = [
    "ByteTokenizer",
    "HuggingFaceTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "tokenizer_json",
    "train_bpe",
]
