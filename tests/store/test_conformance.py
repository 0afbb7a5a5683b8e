"""The store contract (genesys.store.base), checked against every implementation in conftest.py.

Each test takes ``store_case``: a fresh store of one implementation (local, moto, s3rver, each
directly and as a child view). What an implementation is known not to do is stated in the case
(s3rver ignores If-None-Match), and the test then asserts the clear refusal instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from genesys.store import ConditionalWriteUnsupportedError, open_store
from genesys.store.base import (
    _CONDITIONAL_WRITES,
    DELETE_BATCH,
    PROBE_FOLDER,
    LocalStore,
    S3Store,
    conditional_put_outcome,
)

if TYPE_CHECKING:
    from conftest import StoreCase

FOLDER_LAYOUT = {
    "runs/demo/a.json": "a",
    "runs/demo/sub/b.json": "b",
    "runs/demo-2/c.json": "c",
    "runs/demox.json": "x",
    "top.txt": "t",
}


def put_all(case: StoreCase, objects: dict[str, str]) -> None:
    for key, text in objects.items():
        case.store.put_text(key, text)


def assert_create_unsupported(case: StoreCase, key: str) -> None:
    """s3rver: create refuses clearly, naming the endpoint, and writes nothing."""
    assert case.endpoint is not None
    with pytest.raises(ConditionalWriteUnsupportedError, match="If-None-Match") as caught:
        case.store.create_text(key, "x")
    assert case.endpoint in str(caught.value)
    assert not case.store.exists(key)


# ---------------------------------------------------------------- objects


def test_store_put_get_round_trip_and_overwrite(store_case: StoreCase) -> None:
    store = store_case.store
    store.put_bytes("runs/r1/designs/d1/design.json", b'{"a": 1}')
    store.put_text("runs/r1/notes.txt", "héllo")
    assert store.get_bytes("runs/r1/designs/d1/design.json") == b'{"a": 1}'
    assert store.get_text("runs/r1/notes.txt") == "héllo"
    store.put_bytes("runs/r1/designs/d1/design.json", b"{}")
    assert store.get_bytes("runs/r1/designs/d1/design.json") == b"{}"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_store_missing_key_raises_key_error(store_case: StoreCase, tmp_path: Path) -> None:
    store = store_case.store
    store.put_text("runs/r1/present.json", "{}")
    with pytest.raises(KeyError):
        store.get_bytes("runs/r1/missing.json")
    with pytest.raises(KeyError):
        store.get_text("runs/r1/missing.json")
    with pytest.raises(KeyError):
        store.get_file("runs/r1/missing.json", tmp_path / "out.json")
    with pytest.raises(KeyError):
        store.get_bytes("runs/r1")  # a folder is not an object
    assert not (tmp_path / "out.json").exists()


def test_store_exists_only_for_objects(store_case: StoreCase) -> None:
    store = store_case.store
    store.put_text("runs/r1/a.json", "{}")
    assert store.exists("runs/r1/a.json")
    assert not store.exists("runs/r1/b.json")
    assert not store.exists("runs/r1")  # a folder
    assert not store.exists("runs/r")  # a partial name


def test_store_delete_removes_and_missing_is_fine(store_case: StoreCase) -> None:
    store = store_case.store
    store.put_text("a/b.json", "1")
    store.put_text("a/c.json", "2")
    store.delete("a/b.json")
    store.delete("a/b.json")  # again: no error
    store.delete("never/there.json")
    assert not store.exists("a/b.json")
    assert list(store.list("")) == ["a/c.json"]


# ---------------------------------------------------------------- key rules


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param("/runs/r1/a.json", "runs/r1/a.json", id="leading-slash"),
        pytest.param("runs\\r1\\a.json", "runs/r1/a.json", id="backslashes"),
        pytest.param("runs/./r1//a.json", "runs/r1/a.json", id="dot-and-empty-segments"),
        pytest.param("runs/r1/a.json/", "runs/r1/a.json", id="trailing-slash"),
    ],
)
def test_store_keys_are_normalised(store_case: StoreCase, written: str, read: str) -> None:
    store = store_case.store
    store.put_text(written, "v")
    assert store.get_text(read) == "v"
    assert store.exists(written)
    assert list(store.list("")) == [read]


FORBIDDEN_OPERATIONS = {
    "put": lambda store, key: store.put_text(key, "x"),
    "get": lambda store, key: store.get_bytes(key),
    "exists": lambda store, key: store.exists(key),
    "delete": lambda store, key: store.delete(key),
    "list": lambda store, key: list(store.list(key)),
    "list_versions": lambda store, key: store.list_versions(key),
    "create": lambda store, key: store.create_text(key, "x"),
    "delete_prefix": lambda store, key: store.delete_prefix(key),
    "child": lambda store, key: store.child(key),
}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param("../escape", r"'\.\.'", id="dotdot-first"),
        pytest.param("runs/../../escape", r"'\.\.'", id="dotdot-inside"),
        pytest.param(".hidden", r"start with '\.'", id="dot-name"),
        pytest.param("runs/.tmp/a.json", r"start with '\.'", id="dot-folder"),
        pytest.param(f"{PROBE_FOLDER}/x", r"start with '\.'", id="probe-folder"),
    ],
)
def test_store_key_rules_refuse_reserved_segments(
    store_case: StoreCase, key: str, message: str
) -> None:
    store_case.store.put_text("runs/keep.json", "k")
    not_refused = []
    for name, operation in FORBIDDEN_OPERATIONS.items():
        try:
            operation(store_case.store, key)
        except ValueError as exc:
            if not re.search(message, str(exc)):
                not_refused.append(f"{name}: {exc}")
        else:
            not_refused.append(f"{name}: no ValueError")
    assert not_refused == []
    assert list(store_case.store.list("")) == ["runs/keep.json"]


@pytest.mark.parametrize("key", ["", "/", ".", "./"])
def test_store_empty_object_key_is_refused(store_case: StoreCase, key: str) -> None:
    with pytest.raises(ValueError, match="non-empty key"):
        store_case.store.put_text(key, "x")
    with pytest.raises(ValueError, match="non-empty key"):
        store_case.store.get_bytes(key)


# ---------------------------------------------------------------- folder listing


@pytest.mark.parametrize("prefix", ["runs/demo", "runs/demo/", "/runs/demo", "runs\\demo"])
def test_store_list_is_a_folder_not_a_name_prefix(store_case: StoreCase, prefix: str) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    expected = ["runs/demo/a.json", "runs/demo/sub/b.json"]
    assert list(store_case.store.list(prefix)) == expected
    assert list(store_case.store.list_versions(prefix)) == expected


def test_store_list_of_an_object_key_is_empty(store_case: StoreCase) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    assert list(store_case.store.list("runs/demo/a.json")) == []
    assert list(store_case.store.list("runs/demox.json")) == []
    assert store_case.store.list_versions("top.txt") == {}


def test_store_list_of_a_missing_folder_is_empty(store_case: StoreCase) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    assert list(store_case.store.list("runs/dem")) == []
    assert list(store_case.store.list("nothing/here")) == []


def test_store_list_root_returns_every_key_sorted(store_case: StoreCase) -> None:
    keys = ["z.txt", "runs/b/2.json", "a/b/c/d.json", "runs/a.json", "runs/b/10.json", "A.txt"]
    for key in keys:
        store_case.store.put_text(key, key)
    assert list(store_case.store.list("")) == sorted(keys)
    assert list(store_case.store.list()) == sorted(keys)
    assert list(store_case.store.list("/")) == sorted(keys)
    assert list(store_case.store.list_versions()) == sorted(keys)


def test_store_list_versions_keys_equal_list_keys(store_case: StoreCase) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    for prefix in ["", "runs", "runs/demo", "runs/demo-2/", "runs/demo/sub", "top.txt", "none"]:
        versions = store_case.store.list_versions(prefix)
        assert list(versions) == list(store_case.store.list(prefix)), prefix
        assert all(versions.values()), f"empty tag under {prefix!r}: {versions}"


def test_store_version_tag_changes_on_rewrite_only(store_case: StoreCase) -> None:
    store = store_case.store
    store.put_text("runs/v/one.json", "first")
    store.put_text("runs/v/two.json", "other")
    before = store.list_versions("runs/v")
    assert before == store.list_versions("runs/v")  # nothing changed: same tags
    store.put_text("runs/v/one.json", "again")  # same size, new content
    after = store.list_versions("runs/v")
    assert after["runs/v/one.json"] != before["runs/v/one.json"]
    assert after["runs/v/two.json"] == before["runs/v/two.json"]
    if store_case.honours_conditional_writes:
        assert store.create_text("runs/v/two.json", "other") is False
    assert store.list_versions("runs/v")["runs/v/two.json"] == before["runs/v/two.json"]


# ---------------------------------------------------------------- conditional create


def test_store_create_writes_only_a_missing_key(store_case: StoreCase) -> None:
    store = store_case.store
    if not store_case.honours_conditional_writes:
        assert_create_unsupported(store_case, "claims/lock.json")
        return
    assert store.create_text("claims/lock.json", "first") is True
    assert store.create_text("claims/lock.json", "second") is False
    assert store.create_bytes("claims/lock.json", b"third") is False
    assert store.get_text("claims/lock.json") == "first"
    store.put_text("claims/put.json", "put")
    assert store.create_bytes("claims/put.json", b"create") is False
    assert store.get_text("claims/put.json") == "put"
    assert list(store.list("")) == ["claims/lock.json", "claims/put.json"]  # no probe, no temp


def test_store_create_after_delete_creates_again(store_case: StoreCase) -> None:
    if not store_case.honours_conditional_writes:
        assert_create_unsupported(store_case, "claims/lock.json")
        return
    assert store_case.store.create_text("claims/lock.json", "first") is True
    store_case.store.delete("claims/lock.json")
    assert store_case.store.create_text("claims/lock.json", "second") is True
    assert store_case.store.get_text("claims/lock.json") == "second"


def test_store_create_race_between_threads_has_one_winner(store_case: StoreCase) -> None:
    writers, barrier = 8, threading.Barrier(8)
    results: dict[int, bool | BaseException] = {}

    def create(index: int) -> None:
        barrier.wait()
        try:
            results[index] = store_case.store.create_text("claims/race.json", f"writer-{index}")
        except Exception as exc:  # judged below, per implementation
            results[index] = exc

    threads = [threading.Thread(target=create, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == writers
    if not store_case.honours_conditional_writes:
        assert all(isinstance(r, ConditionalWriteUnsupportedError) for r in results.values())
        assert not store_case.store.exists("claims/race.json")
        return
    winners = [index for index, result in results.items() if result is True]
    assert sorted(results.values(), key=str) == [False] * (writers - 1) + [True], results
    assert store_case.store.get_text("claims/race.json") == f"writer-{winners[0]}"


# ---------------------------------------------------------------- delete_prefix


@pytest.mark.parametrize("prefix", ["runs/demo", "runs/demo/", "/runs/demo"])
def test_store_delete_prefix_removes_exactly_the_folder(store_case: StoreCase, prefix: str) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    assert store_case.store.delete_prefix(prefix) == 2
    assert list(store_case.store.list("")) == ["runs/demo-2/c.json", "runs/demox.json", "top.txt"]
    assert store_case.store.get_text("runs/demo-2/c.json") == "c"
    assert store_case.store.delete_prefix(prefix) == 0  # again: nothing left


def test_store_delete_prefix_of_an_object_or_gap_deletes_nothing(store_case: StoreCase) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    assert store_case.store.delete_prefix("runs/demox.json") == 0
    assert store_case.store.delete_prefix("runs/dem") == 0
    assert list(store_case.store.list("")) == sorted(FOLDER_LAYOUT)


@pytest.mark.parametrize("prefix", ["", "/", ".", "./"])
def test_store_delete_prefix_refuses_the_whole_store(store_case: StoreCase, prefix: str) -> None:
    put_all(store_case, FOLDER_LAYOUT)
    with pytest.raises(ValueError, match="not the whole store"):
        store_case.store.delete_prefix(prefix)
    assert list(store_case.store.list("")) == sorted(FOLDER_LAYOUT)


ROOT_STORES = [  # for tests whose subject does not depend on the view (slow on S3)
    pytest.param("local", id="local"),
    pytest.param("moto", id="moto", marks=pytest.mark.integration),
    pytest.param("s3rver", id="s3rver", marks=pytest.mark.integration),
]


@pytest.mark.parametrize("store_case", ROOT_STORES, indirect=True)
def test_store_delete_prefix_beyond_one_batch(store_case: StoreCase) -> None:
    count = DELETE_BATCH + 5  # two DeleteObjects requests, two listing pages
    keys = [f"bulk/{index:05d}.txt" for index in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store_case.store.put_bytes(key, b"x"), keys))
    store_case.store.put_text("bulk-2/keep.txt", "kept")
    assert list(store_case.store.list("bulk")) == keys
    assert store_case.store.delete_prefix("bulk") == count
    assert list(store_case.store.list("")) == ["bulk-2/keep.txt"]


# ---------------------------------------------------------------- files and children


def test_store_large_file_round_trip(store_case: StoreCase, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # over boto3's 8 MiB multipart threshold
    store_case.store.put_file("ckpt/big.bin", big)
    store_case.store.get_file("ckpt/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    tag = store_case.store.list_versions("ckpt")["ckpt/big.bin"]
    if store_case.multipart_etag:
        assert tag.endswith("-2"), f"expected a two-part multipart ETag, got {tag!r}"


def test_store_child_keys_are_relative(store_case: StoreCase) -> None:
    store = store_case.store
    store.put_text("runs/r1/designs/d1/design.json", "d1")
    store.put_text("runs/r1-b/other.json", "sibling")
    child = store.child("runs/r1")
    assert child.get_text("designs/d1/design.json") == "d1"
    assert list(child.list("")) == ["designs/d1/design.json"]
    assert list(child.list_versions("designs")) == ["designs/d1/design.json"]
    child.put_text("designs/d2/design.json", "d2")
    assert store.get_text("runs/r1/designs/d2/design.json") == "d2"
    assert child.delete_prefix("designs/d1") == 1
    assert list(store.list("runs")) == ["runs/r1-b/other.json", "runs/r1/designs/d2/design.json"]
    with pytest.raises(ValueError, match="not the whole store"):
        child.delete_prefix("")


def test_store_child_uri_reopens_the_same_view(store_case: StoreCase) -> None:
    store = store_case.store
    child = store.child("runs/r1/")
    child.put_text("designs/d1/design.json", "d1")
    store.put_text("runs/r1-b/other.json", "sibling")
    reopened = open_store(child.uri)
    assert type(reopened) is type(open_store(store.uri))
    assert list(reopened.list("")) == ["designs/d1/design.json"]
    assert reopened.get_text("designs/d1/design.json") == "d1"
    reopened.put_text("designs/d2/design.json", "d2")
    assert list(child.list("designs")) == ["designs/d1/design.json", "designs/d2/design.json"]
    assert open_store(store.uri).get_text("runs/r1/designs/d2/design.json") == "d2"


# ---------------------------------------------------------------- implementation details


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        pytest.param(None, "created", id="no-error"),
        pytest.param(("PreconditionFailed", 412), "exists", id="412"),
        pytest.param(("", 412), "exists", id="412-without-code"),
        pytest.param(("ConditionalRequestConflict", 409), "conflict", id="409"),
        pytest.param(("NotImplemented", 501), "unsupported", id="501"),
        pytest.param(("AccessDenied", 403), "error", id="403"),
        pytest.param(("InternalError", 500), "error", id="500"),
    ],
)
def test_conditional_put_outcome_classifies_s3_answers(
    error: tuple[str, int] | None, outcome: str
) -> None:
    assert conditional_put_outcome(error) == outcome


@pytest.mark.integration
@pytest.mark.parametrize(
    ("server", "honoured"),
    [("moto_server", True), ("s3rver_server", False)],
    ids=["moto", "s3rver"],
)
def test_s3_probe_is_cached_and_leaves_no_object(
    request: pytest.FixtureRequest, server: str, honoured: bool, fresh_s3_store: Any
) -> None:
    store = fresh_s3_store(request.getfixturevalue(server)).child("some/prefix")
    assert isinstance(store, S3Store)
    for _ in range(2):  # the second call answers from the cache
        assert store.conditional_writes_honoured() is honoured
    assert _CONDITIONAL_WRITES[(store.endpoint, store.bucket)] is honoured
    raw = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    assert [item["Key"] for item in raw] == []


def test_local_hides_and_cleans_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".a.json.tmp123").write_text("torn")  # a crashed writer's leftover
    store.put_text("runs/a.json", "a")
    assert store.create_text("runs/b.json", "b") is True
    assert store.create_text("runs/b.json", "c") is False
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        ".a.json.tmp123",
        "a.json",
        "b.json",
    ]
    assert list(store.list("")) == ["runs/a.json", "runs/b.json"]
    assert store.delete_prefix("runs") == 2  # the leftover goes too, but is not a key
    assert list(tmp_path.iterdir()) == []


RACE_SCRIPT = """
import json, pathlib, sys, time
from genesys.store import open_store
root, name, ready, go, rounds = sys.argv[1:]
store = open_store(root)
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.001)
print(json.dumps([store.create_text(f"claims/{i}.json", name) for i in range(int(rounds))]))
"""


def test_local_create_race_between_processes_has_one_winner(tmp_path: Path) -> None:
    processes, rounds = 4, 50
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(processes)]
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACE_SCRIPT,
                str(tmp_path / "store"),
                f"p{index}",
                str(ready[index]),
                str(go),
                str(rounds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = [racer.communicate(timeout=60)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * processes, outputs
    won = [json.loads(output) for output in outputs]
    store = open_store(tmp_path / "store")
    for round_ in range(rounds):
        winners = [f"p{index}" for index in range(processes) if won[index][round_]]
        assert len(winners) == 1, (round_, winners)
        assert store.get_text(f"claims/{round_}.json") == winners[0]
