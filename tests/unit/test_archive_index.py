"""The incremental archive index equals a full rebuild after every step of a recorded run.

Each case replays a random interleaving of what a run's store sees: seeds written, sessions
that progress and end (a design, or a rejection), training attempts that fail, results that
arrive (some implausibly low, some unreadable), GPU usage, noise floors, and deletions of
single documents or of whole designs. After every step the index is refreshed and compared
with :func:`load_archive`, the failed-attempt counts, the recorded GPU time and the spend:
either by a whole listing, or by a hinted one that lists only the folders the step wrote.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from genesys.backends.common import failed_attempts
from genesys.store.archive import load_archive, run_spent_usd
from genesys.store.base import LocalStore, Store
from genesys.store.documents import DocumentError, GpuUsage, read_document
from genesys.store.index import ArchiveIndex, key_kind
from genesys_trainer.seeds import load_seed

RUNGS = ("nano", "micro")
SEED_DOCUMENT = load_seed("gpt2").to_json()


def design_document(design_id: str, seq: int, operator: str, parents: list[str]) -> str:
    document = json.loads(json.dumps(SEED_DOCUMENT))
    document["name"] = design_id
    document["metadata"] = {
        "title": f"design {design_id}",
        "operator": operator,
        "parents": parents,
        "seq": seq,
        "session": None if operator == "seed" else f"s{seq}",
    }
    return json.dumps(document)


def result_document(design_id: str, rung: str, rng: random.Random) -> str:
    status = rng.choice(["succeeded", "succeeded", "succeeded", "failed", "error"])
    loss = rng.choice([3.0, 3.2, 3.5, 0.5])  # 0.5: implausibly below any seed
    return json.dumps(
        {
            "design": design_id,
            "rung": rung,
            "status": status,
            "val_loss": loss if status == "succeeded" else None,
            "train_loss": loss,
            "params": 1000,
            "eval": {"cloze": {"acc": rng.random()}},
        }
    )


class RecordedRun:
    """Writes what a run's pods and operator write, at random."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store, self.rng, self.seq = store, rng, 0

    def designs(self) -> list[str]:
        return sorted({k.split("/")[1] for k in self.store.list("designs")})

    def step(self) -> tuple[str, list[str]]:
        """One random event: its name, and the store folders it wrote."""
        events = [
            self.seed,
            self.session_progress,
            self.session_end,
            self.rejection,
            self.result,
            self.attempt,
            self.gpu_usage,
            self.noise,
            self.unreadable,
            self.delete_key,
            self.delete_design,
        ]
        event = self.rng.choice(events)
        return event.__name__, event()

    def seed(self) -> list[str]:
        design_id = f"seed-{self.rng.choice(['gpt2', 'mamba2', 'rwkv6'])}"
        self.store.put_text(
            f"designs/{design_id}/design.json", design_document(design_id, 0, "seed", [])
        )
        return [f"designs/{design_id}"]

    def session_progress(self) -> list[str]:
        session = f"s{self.rng.randrange(8)}"
        state = {
            "session": session,
            "design_id": f"d{session}",
            "seq": 1,
            "operator": "mutation",
            "parents": [],
            "flow": "genesys",
            "seed": 0,
            "models": {},
            "spent_usd": round(self.rng.random(), 3),
        }
        self.store.put_text(f"sessions/{session}/state.json", json.dumps(state))
        return [f"sessions/{session}"]

    def session_end(self) -> list[str]:
        self.seq += 1
        design_id = f"d{self.seq:03d}"
        parents = self.rng.sample(self.designs(), k=min(1, len(self.designs())))
        self.store.put_text(
            f"designs/{design_id}/design.json",
            design_document(design_id, self.seq, "mutation", parents),
        )
        outcome = {"status": "implemented", "design": design_id, "reason": "ok"}
        self.store.put_text(f"sessions/s{self.seq}/session.json", json.dumps(outcome))
        return [f"sessions/s{self.seq}", f"designs/{design_id}", "rejected"]

    def rejection(self) -> list[str]:
        record = {"session": "s1", "operator": "mutation", "parents": [], "reason": "not causal"}
        self.store.put_text(f"rejected/d{self.rng.randrange(20):03d}-impl.json", json.dumps(record))
        return ["rejected"]

    def _design_rung(self) -> tuple[str, str]:
        designs = self.designs() or ["d999"]  # a result may come before its design
        return self.rng.choice(designs), self.rng.choice(RUNGS)

    def result(self) -> list[str]:
        design_id, rung = self._design_rung()
        key = f"designs/{design_id}/verifications/{rung}/result.json"
        self.store.put_text(key, result_document(design_id, rung, self.rng))
        return [f"designs/{design_id}/verifications/{rung}"]

    def attempt(self) -> list[str]:
        design_id, rung = self._design_rung()
        key = f"designs/{design_id}/verifications/{rung}/attempts/{self.rng.randrange(4)}.json"
        self.store.put_text(key, json.dumps({"state": "Failed"}))
        return [f"designs/{design_id}/verifications/{rung}"]

    def gpu_usage(self) -> list[str]:
        design_id, rung = self._design_rung()
        job = f"job-{self.rng.randrange(4)}"
        usage = {"job": job, "gpus": self.rng.randrange(3), "seconds": self.rng.randrange(100)}
        key = f"designs/{design_id}/verifications/{rung}/gpu-usage/{job}.json"
        self.store.put_text(key, json.dumps(usage))
        return [f"designs/{design_id}/verifications/{rung}/gpu-usage"]

    def noise(self) -> list[str]:
        floor = {
            "design": "seed-gpt2",
            "rung": "nano",
            "repeats": 2,
            "metrics": {"val_loss": {"mean": 3.0, "std": self.rng.random() / 10, "n": 2}},
        }
        self.store.put_text(f"noise/nano/seed-gpt2-{self.rng.randrange(2)}.json", json.dumps(floor))
        return ["noise/nano"]

    def unreadable(self) -> list[str]:
        keys = [k for k in self.store.list() if key_kind(k)]
        if not keys:
            return []
        key = self.rng.choice(keys)
        self.store.put_text(key, "{not json")
        return [folder_of(key)]

    def delete_key(self) -> list[str]:
        keys = list(self.store.list())
        if not keys:
            return []
        key = self.rng.choice(keys)
        self.store.delete(key)
        return [folder_of(key)]

    def delete_design(self) -> list[str]:
        designs = self.designs()
        if not designs:
            return []
        folder = f"designs/{self.rng.choice(designs)}"
        self.store.delete_prefix(folder)
        return [folder]


def folder_of(key: str) -> str:
    """The folder that holds ``key``."""
    return key.rsplit("/", 1)[0]


def recorded_gpu_hours(store: Store) -> float:
    """GPU-hours of the readable gpu-usage records, read one by one."""
    seconds = 0.0
    for key in store.list("designs"):
        if key_kind(key) == "gpu-usage":
            try:
                usage = read_document(store, key, GpuUsage)
            except DocumentError:
                continue
            seconds += usage.gpus * usage.seconds if usage is not None else 0.0
    return seconds / 3600


def assert_same_as_rebuild(index: ArchiveIndex, store: Store, context: str) -> None:
    rebuilt = load_archive(store, "run")
    incremental = index.archive()
    assert incremental.designs == rebuilt.designs, context
    assert incremental.sessions == rebuilt.sessions, context
    assert incremental.rejections == rebuilt.rejections, context
    assert incremental.noise == rebuilt.noise, context
    assert incremental.problems == rebuilt.problems, context
    assert incremental == rebuilt, context
    assert index.failed_attempts() == failed_attempts(store), context
    assert index.gpu_hours() == pytest.approx(recorded_gpu_hours(store)), context
    assert index.spent_usd() == pytest.approx(run_spent_usd(store)), context


@pytest.mark.parametrize("seed", range(24))
def test_the_index_equals_a_full_rebuild_after_every_step(tmp_path: Path, seed: int) -> None:
    store = LocalStore(tmp_path)
    rng = random.Random(seed)
    run = RecordedRun(store, rng)
    index = ArchiveIndex("run")
    history = []
    for _ in range(60):
        name, _folders = run.step()
        history.append(name)
        index.refresh(store)
        assert_same_as_rebuild(index, store, f"seed {seed} after {history}")
    assert index.rebuilds == 1, "only the first refresh rebuilds"


@pytest.mark.parametrize("seed", range(24))
def test_a_refresh_of_the_folders_written_equals_a_full_rebuild(tmp_path: Path, seed: int) -> None:
    """Hinted refreshes, now and then a whole one, some after several steps at once."""
    store = LocalStore(tmp_path)
    rng = random.Random(1000 + seed)
    run = RecordedRun(store, rng)
    index = ArchiveIndex("run")
    index.refresh(store)
    history: list[str] = []
    for _ in range(25):
        written: list[str] = []
        for _ in range(rng.choice([1, 1, 2, 3])):  # steps between two refreshes
            name, folders = run.step()
            history.append(name)
            written += folders
        listed_whole = rng.random() < 0.15
        refresh = index.refresh(store, None if listed_whole else written)
        assert refresh.whole == listed_whole
        assert_same_as_rebuild(index, store, f"seed {seed} after {history}")
    assert index.rebuilds == 1, "only the first refresh rebuilds"


def ended_sessions(tmp_path: Path, seed: int, sessions: int) -> tuple[Store, RecordedRun]:
    """A store where ``sessions`` sessions ended, each with its design; and its recorder."""
    store = LocalStore(tmp_path)
    run = RecordedRun(store, random.Random(seed))
    for _ in range(sessions):
        run.session_end()
    return store, run


def test_a_hinted_refresh_lists_only_the_folders_named(tmp_path: Path) -> None:
    """A write outside the folders named waits for the next whole listing."""
    store, run = ended_sessions(tmp_path, 2, 5)
    index = ArchiveIndex("run")
    assert index.refresh(store, ["sessions/s1"]).whole, "an index not built lists everything"
    assert len(index.archive().designs) == 5
    folders = run.session_end()
    noise = run.noise()
    hinted = index.refresh(store, folders)
    assert (hinted.whole, hinted.read) == (False, 2)  # the new design and its session outcome
    assert len(index.archive().designs) == 6
    assert index.archive().noise == {}, "the noise folder was not named"
    assert index.refresh(store, []).read == 0, "nothing named: nothing listed"
    whole = index.refresh(store)
    assert (whole.whole, whole.rebuilt, whole.read) == (True, False, 1)
    assert noise == ["noise/nano"]
    assert_same_as_rebuild(index, store, "after the whole listing")


def test_a_refresh_reads_only_what_changed(tmp_path: Path) -> None:
    store, run = ended_sessions(tmp_path, 0, 30)
    index = ArchiveIndex("run")
    first = index.refresh(store)
    assert first.rebuilt
    assert first.read == 60  # 30 designs and 30 session outcomes
    assert index.refresh(store).read == 0
    run.result()
    run.delete_design()
    second = index.refresh(store)
    assert (second.rebuilt, second.read) == (False, 1)
    assert second.removed >= 1
    assert_same_as_rebuild(index, store, "after a result and a deletion")


def test_a_refresh_that_fails_half_way_rebuilds_next_time(tmp_path: Path) -> None:
    store, run = ended_sessions(tmp_path, 1, 5)
    index = ArchiveIndex("run")
    index.refresh(store)

    class Vanishing(LocalStore):
        """A store whose objects are listed but gone when read (deleted meanwhile)."""

        def get_bytes(self, key: str) -> bytes:
            raise OSError(f"{key} is gone")

    run.session_end()
    with pytest.raises(OSError, match="is gone"):
        index.refresh(Vanishing(tmp_path))
    again = index.refresh(store)
    assert again.rebuilt
    assert index.rebuilds == 2
    assert_same_as_rebuild(index, store, "after the gap")
