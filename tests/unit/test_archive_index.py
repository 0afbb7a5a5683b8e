"""The incremental archive index equals a full rebuild after every step of a recorded run.

Each case replays a random interleaving of what a run's store sees: seeds written, sessions
that progress and end (a design, or a rejection), training attempts that fail, results that
arrive (some implausibly low, some unreadable), GPU usage, noise floors, and deletions of
single documents or of whole designs. After every step the index is refreshed and compared
with :func:`load_archive`, the failed-attempt counts, the recorded GPU time and the spend.
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

    def step(self) -> str:
        """One random event; its name."""
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
        event()
        return event.__name__

    def seed(self) -> None:
        design_id = f"seed-{self.rng.choice(['gpt2', 'mamba2', 'rwkv6'])}"
        self.store.put_text(
            f"designs/{design_id}/design.json", design_document(design_id, 0, "seed", [])
        )

    def session_progress(self) -> None:
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

    def session_end(self) -> None:
        self.seq += 1
        design_id = f"d{self.seq:03d}"
        parents = self.rng.sample(self.designs(), k=min(1, len(self.designs())))
        self.store.put_text(
            f"designs/{design_id}/design.json",
            design_document(design_id, self.seq, "mutation", parents),
        )
        outcome = {"status": "implemented", "design": design_id, "reason": "ok"}
        self.store.put_text(f"sessions/s{self.seq}/session.json", json.dumps(outcome))

    def rejection(self) -> None:
        record = {"session": "s1", "operator": "mutation", "parents": [], "reason": "not causal"}
        self.store.put_text(f"rejected/d{self.rng.randrange(20):03d}-impl.json", json.dumps(record))

    def _design_rung(self) -> tuple[str, str]:
        designs = self.designs() or ["d999"]  # a result may come before its design
        return self.rng.choice(designs), self.rng.choice(RUNGS)

    def result(self) -> None:
        design_id, rung = self._design_rung()
        key = f"designs/{design_id}/verifications/{rung}/result.json"
        self.store.put_text(key, result_document(design_id, rung, self.rng))

    def attempt(self) -> None:
        design_id, rung = self._design_rung()
        key = f"designs/{design_id}/verifications/{rung}/attempts/{self.rng.randrange(4)}.json"
        self.store.put_text(key, json.dumps({"state": "Failed"}))

    def gpu_usage(self) -> None:
        design_id, rung = self._design_rung()
        job = f"job-{self.rng.randrange(4)}"
        usage = {"job": job, "gpus": self.rng.randrange(3), "seconds": self.rng.randrange(100)}
        key = f"designs/{design_id}/verifications/{rung}/gpu-usage/{job}.json"
        self.store.put_text(key, json.dumps(usage))

    def noise(self) -> None:
        floor = {
            "design": "seed-gpt2",
            "rung": "nano",
            "repeats": 2,
            "metrics": {"val_loss": {"mean": 3.0, "std": self.rng.random() / 10, "n": 2}},
        }
        self.store.put_text(f"noise/nano/seed-gpt2-{self.rng.randrange(2)}.json", json.dumps(floor))

    def unreadable(self) -> None:
        keys = [k for k in self.store.list() if key_kind(k)]
        if keys:
            self.store.put_text(self.rng.choice(keys), "{not json")

    def delete_key(self) -> None:
        keys = list(self.store.list())
        if keys:
            self.store.delete(self.rng.choice(keys))

    def delete_design(self) -> None:
        designs = self.designs()
        if designs:
            self.store.delete_prefix(f"designs/{self.rng.choice(designs)}")


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
        history.append(run.step())
        index.refresh(store)
        assert_same_as_rebuild(index, store, f"seed {seed} after {history}")
    assert index.rebuilds == 1, "only the first refresh rebuilds"


def test_a_refresh_reads_only_what_changed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    run = RecordedRun(store, random.Random(0))
    for _ in range(30):
        run.session_end()
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
    store = LocalStore(tmp_path)
    run = RecordedRun(store, random.Random(1))
    for _ in range(5):
        run.session_end()
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
