"""The artifact store: local directory and S3 (a real moto server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesys.store import open_store
from genesys.store.base import LocalStore, S3Store


def exercise(store_uri: str, tmp_path: Path) -> None:
    store = open_store(store_uri)
    store.put_text("runs/r1/designs/d1/design.json", '{"a": 1}')
    store.put_bytes("runs/r1/designs/d1/verifications/nano/result.json", b"{}")
    assert store.get_text("runs/r1/designs/d1/design.json") == '{"a": 1}'
    assert store.exists("runs/r1/designs/d1/design.json")
    assert not store.exists("runs/r1/nothing")
    assert list(store.list("runs/r1/designs/d1")) == [
        "runs/r1/designs/d1/design.json",
        "runs/r1/designs/d1/verifications/nano/result.json",
    ]
    with pytest.raises(KeyError):
        store.get_bytes("runs/r1/missing.json")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB
    store.put_file("ckpt/big.bin", big)
    store.get_file("ckpt/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    child = store.child("runs/r1")
    assert child.get_text("designs/d1/design.json") == '{"a": 1}'
    assert "designs/d1/design.json" in list(child.list())
    store.delete("runs/r1/designs/d1/design.json")
    assert not store.exists("runs/r1/designs/d1/design.json")


def test_local_store(tmp_path: Path) -> None:
    exercise(str(tmp_path / "store"), tmp_path)
    assert isinstance(open_store(tmp_path), LocalStore)


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for index in range(5):
        store.put_text("a/b.json", str(index))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json"]
    assert store.get_text("a/b.json") == "4"


def test_keys_may_not_escape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.\.'"):
        open_store(tmp_path).put_text("../escape", "x")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URI"):
        open_store("gs://bucket/x")


@pytest.mark.integration
def test_s3_store_against_moto(s3_env: dict[str, str], tmp_path: Path) -> None:
    exercise("s3://genesys-test/prefix", tmp_path)
    assert isinstance(open_store("s3://genesys-test/prefix"), S3Store)
