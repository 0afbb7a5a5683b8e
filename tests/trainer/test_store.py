"""The artifact store: URI parsing and local details.

The store contract itself (objects, folders, version tags, create, delete_prefix, key rules,
children) is checked for every implementation by tests/store/test_conformance.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genesys.store import open_store
from genesys.store.base import LocalStore, S3Store


def test_open_store_picks_the_implementation_from_the_uri(tmp_path: Path) -> None:
    local = open_store(tmp_path)
    assert isinstance(local, LocalStore)
    assert local.uri == str(tmp_path.resolve())
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://genesys-test//prefix/./deeper/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.uri) == (
        "genesys-test",
        "prefix/deeper",
        "s3://genesys-test/prefix/deeper",
    )
    assert (
        open_store("s3://genesys-test", endpoint_url="http://127.0.0.1:9").uri
        == "s3://genesys-test"
    )


def test_open_store_refuses_an_s3_uri_without_bucket() -> None:
    with pytest.raises(ValueError, match="without a bucket"):
        open_store("s3:///prefix")


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for index in range(5):
        store.put_text("a/b.json", str(index))
        store.create_text("a/c.json", str(index))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json", "c.json"]
    assert store.get_text("a/b.json") == "4"
    assert store.get_text("a/c.json") == "0"


def test_open_store_refuses_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported store URI"):
        open_store("gs://bucket/x")
