"""Token shards: binary token arrays with a header, and a ``meta.json`` index.

Layout of a prepared data directory (local or in the store)::

    meta.json          {"format", "tokenizer", "vocab_size", "eot", "splits": {"train": [...],
                        "val": [...]}, "sources", "synthetic_fraction", "seed", "tokens"}
    tokenizer.json     the trained BPE (bpe:N tokenizers only)
    train-00000.bin    header + tokens
    val-00000.bin
    tasks/*.jsonl      local evaluation items (multiple choice)

Shard header (little-endian, 32 bytes): magic ``b"GNSYSTOK"``, version u32 = 1, bytes per token
u32 (2 or 4), token count u64, vocab size u64. Tokens follow as uint16 or uint32.

What must stay true: a shard written then read gives the same tokens; readers memory-map, so a
shard is never loaded whole.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAGIC = b"GNSYSTOK"
VERSION = 1
HEADER = struct.Struct("<8sIIQQ")
META_FORMAT = "genesys.shards/v1"
SHARD_TOKENS = 1 << 27  # tokens per shard file


def token_dtype(vocab_size: int) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned dtype that holds every token id."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def write_shard(path: Path, tokens: NDArray[Any], vocab_size: int) -> None:
    """Write one shard file."""
    dtype = token_dtype(vocab_size)
    array = np.asarray(tokens, dtype=dtype)
    with path.open("wb") as out:
        out.write(HEADER.pack(MAGIC, VERSION, np.dtype(dtype).itemsize, array.size, vocab_size))
        out.write(array.tobytes())


def read_shard(path: Path) -> NDArray[Any]:
    """Memory-map one shard's tokens."""
    with path.open("rb") as handle:
        magic, version, width, count, _vocab = HEADER.unpack(handle.read(HEADER.size))
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"{path} is not a genesys token shard (magic {magic!r}, v{version})")
    dtype = np.uint16 if width == 2 else np.uint32
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER.size, shape=(count,))


class ShardWriter:
    """Accumulates tokens of one split and writes them in fixed-size shards."""

    def __init__(self, directory: Path, split: str, vocab_size: int) -> None:
        self.directory, self.split, self.vocab_size = directory, split, vocab_size
        self.buffer: list[int] = []
        self.files: list[dict[str, Any]] = []

    @property
    def tokens(self) -> int:
        """Tokens written or buffered."""
        return int(sum(f["tokens"] for f in self.files)) + len(self.buffer)

    def add(self, ids: list[int]) -> None:
        """Append a document's tokens."""
        self.buffer.extend(ids)
        while len(self.buffer) >= SHARD_TOKENS:
            self._flush(self.buffer[:SHARD_TOKENS])
            self.buffer = self.buffer[SHARD_TOKENS:]

    def close(self) -> list[dict[str, Any]]:
        """Write the rest; the index entries of every shard."""
        if self.buffer:
            self._flush(self.buffer)
            self.buffer = []
        return self.files

    def _flush(self, ids: list[int]) -> None:
        name = f"{self.split}-{len(self.files):05d}.bin"
        write_shard(self.directory / name, np.asarray(ids), self.vocab_size)
        self.files.append({"file": name, "tokens": len(ids)})


def load_split(directory: Path, meta: dict[str, Any], split: str) -> NDArray[Any]:
    """All tokens of a split, concatenated (memory-mapped when there is one shard)."""
    arrays = [read_shard(directory / entry["file"]) for entry in meta["splits"][split]]
    if not arrays:
        raise ValueError(f"split {split!r} has no tokens")
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


__all__ = ["META_FORMAT", "ShardWriter", "load_split", "read_shard", "token_dtype", "write_shard"]
