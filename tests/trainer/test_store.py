"""The artifact store: local directory and S3 (a real moto server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesys.store import open_store
from genesys.store.base import LocalStore, PrefixedStore, S3Store


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


def versions_and_cache(store_uri: str) -> None:
    """Version tags change with content, and the archive cache reads only what changed."""
    from genesys.store.archive import JsonCache, load_archive

    store = open_store(store_uri)
    document = '{"metadata": {"title": "t", "operator": "mutation", "parents": []}}'
    store.put_text("runs/v/designs/d1/design.json", document)
    store.put_text("runs/v/designs/d2/design.json", document)
    before = store.list_versions("runs/v")
    assert set(before) == {"runs/v/designs/d1/design.json", "runs/v/designs/d2/design.json"}
    assert all(before.values())
    store.put_text("runs/v/designs/d2/design.json", document.replace('"t"', '"changed"'))
    after = store.list_versions("runs/v")
    assert after["runs/v/designs/d1/design.json"] == before["runs/v/designs/d1/design.json"]
    assert after["runs/v/designs/d2/design.json"] != before["runs/v/designs/d2/design.json"]
    child = store.child("runs")
    assert set(child.list_versions("v")) == {"v/designs/d1/design.json", "v/designs/d2/design.json"}

    reads: list[str] = []

    class Counting(PrefixedStore):
        def get_bytes(self, key: str) -> bytes:
            reads.append(key)
            return super().get_bytes(key)

    counting = Counting(store, "")
    cache = JsonCache()
    first = load_archive(counting, "v", cache=cache)
    assert first.designs["d2"].title == "changed"
    assert len(reads) == 2
    counting.put_text("runs/v/designs/d1/design.json", document.replace('"t"', '"new"'))
    second = load_archive(counting, "v", cache=cache)
    assert second.designs["d1"].title == "new"
    assert second.designs["d2"].title == "changed"
    assert len(reads) == 3  # only d1 was read again


def test_local_versions_and_archive_cache(tmp_path: Path) -> None:
    versions_and_cache(str(tmp_path / "store"))


def test_s3_versions_and_archive_cache(s3_env: dict[str, str]) -> None:
    versions_and_cache("s3://genesys-test/cache")
