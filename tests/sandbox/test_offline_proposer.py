"""Offline design sessions against a local store, every candidate checked in the real sandbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from genesys.agents.design_cli import main
from genesys.agents.library import structural_hash
from genesys.agents.offline import run_offline_session
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.ladder import preset_rung
from genesys.api.runconfig import RunIdentity, resolve_run_config
from genesys.sandbox.runner import SandboxLimits
from genesys.store import Store, open_store
from genesys.store.archive import design_key, load_archive, session_key
from genesys.store.configs import write_run_config
from genesys_trainer.seeds import SEEDS, load_seed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

RUNG = preset_rung("nano", vocab_size=256)
SETTINGS: dict[str, Any] = {
    "effectiveness_steps": 3,
    "causality_length": 24,
    "complexity_lengths": [32, 64, 128],
    "forward_length": 128,
}
LIMITS = SandboxLimits(timeout_seconds=120, memory_bytes=4 * 1024**3)
MAX_CANDIDATES = 3
SESSIONS: list[tuple[str, str, list[str]]] = [  # session, operator, parents
    ("s1", "mutation", ["seed-gpt2"]),
    ("s2", "mutation", ["seed-mamba2"]),
    ("s3", "crossover", ["seed-retnet", "seed-rwkv6"]),
    ("s4", "scratch", []),
    ("s5", "crossover", ["seed-ttt", "seed-mamba2"]),
]

OPERATORS = {**{name: operator for name, operator, _ in SESSIONS}, "s6": "mutation"}
IMPOSSIBLE = {**SETTINGS, "param_tolerance": 1e-9}  # no candidate fits the rung this exactly
OUTCOME_KEYS = {"schema_version", "status", "design", "reason", "candidates"}


def session(
    store: Store,
    name: str,
    operator: str,
    parents: list[str],
    seq: int,
    settings: Mapping[str, Any] = SETTINGS,
    max_candidates: int = MAX_CANDIDATES,
    design_id: str | None = None,
) -> dict[str, Any]:
    return run_offline_session(
        store=store,
        session=name,
        design_id=design_id or f"d{seq:04d}",
        seq=seq,
        operator=operator,
        parent_ids=parents,
        seed=seq,
        rung=RUNG,
        settings=settings,
        limits=LIMITS,
        max_candidates=max_candidates,
    )


def impossible_session(store: Store) -> dict[str, Any]:
    return session(store, "s7", "mutation", ["seed-rwkv6"], 7, IMPOSSIBLE, max_candidates=2)


def seeded_store(root: Store) -> Store:
    """A run's own store (under a root that holds another run too) with the seed designs."""
    root.put_text("runs/other/designs/d0001/design.json", load_seed("gpt2").dumps())
    store = root.child("runs/r")
    for name in SEEDS:
        store.put_text(design_key(f"seed-{name}", "design.json"), load_seed(name).dumps())
    return store


def offline_config_uri(store: Store) -> str:
    """A run config for the offline flow, the checks as small as SETTINGS, stored in the run."""
    run = DiscoveryRun.model_validate(
        {
            "metadata": {"name": "r"},
            "spec": {
                "ladder": {"rungs": [{"name": "small", "preset": "nano", "budget": 4}]},
                "agents": {"offline": True},
                "checks": {
                    "effectivenessSteps": 3,
                    "causalityLength": 24,
                    "forwardLength": 128,
                    "sandboxTimeoutSeconds": 120,
                    "sandboxMemory": "4Gi",
                },
                "verification": {"data": {"tokenizer": "byte", "vocabSize": 256}},
            },
        }
    )
    config = resolve_run_config(run, identity=RunIdentity(name="r"), data_uri="/data")
    return write_run_config(store, config)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, dict[str, Any]]]:
    """Five sessions through the API, a mutation of the first new design through the
    ``genesys agent design`` entry point (a run config whose rung is named freely), and a
    session whose every candidate fails ``param_fit``."""
    store = seeded_store(open_store(tmp_path_factory.mktemp("store")))
    outcomes: dict[str, dict[str, Any]] = {}
    for seq, (name, operator, parents) in enumerate(SESSIONS, start=1):
        outcomes[name] = session(store, name, operator, parents, seq)
    implemented = [o["design"] for o in outcomes.values() if o["status"] == "implemented"]
    parent = implemented[0] if implemented else "seed-gpt2"
    argv = [
        "--store",
        str(store.uri),
        "--config",
        offline_config_uri(store),
        "--session",
        "s6",
        "--design-id",
        "d0006",
        "--seq",
        "6",
        "--operator",
        "mutation",
        "--parents",
        parent,
        "--seed",
        "6",
    ]
    assert main(argv) == 0
    outcomes["s6"] = json.loads(store.get_text(session_key("s6")))
    outcomes["s7"] = impossible_session(store)
    return store, outcomes


def rejections(store: Store, design_id: str) -> list[dict[str, Any]]:
    keys = [k for k in store.list("rejected") if f"/{design_id}-c" in k]
    return [json.loads(store.get_text(key)) for key in keys]


def check_implemented(store: Store, name: str, outcome: Mapping[str, Any]) -> None:
    design = outcome["design"]
    document = json.loads(store.get_text(design_key(design, "design.json")))
    rung = "small" if name == "s6" else "nano"  # s6 ran from a run config with a free rung name
    report = json.loads(store.get_text(design_key(design, "checks", f"{rung}.json")))
    proposal = store.get_text(design_key(design, "proposal.md"))
    meta = document["metadata"]
    assert report["passed"] is True
    assert {c["name"] for c in report["checks"]} >= {"compose", "causality", "effectiveness"}
    assert meta["session"] == name
    assert meta["rating"] is None
    assert meta["hash"] == structural_hash(document)
    assert meta["proposal"] == proposal
    assert proposal.startswith(f"# {meta['title']}")
    assert len(rejections(store, design)) == outcome["candidates"] - 1
    assert store.exists(f"hashes/{meta['hash']}.json")  # the design claimed its tree


def check_failed(store: Store, outcome: Mapping[str, Any], design_id: str) -> None:
    assert outcome["design"] is None
    assert outcome["reason"]
    assert not store.exists(design_key(design_id, "design.json"))
    items = rejections(store, design_id)
    assert len(items) == outcome["candidates"]
    for item in items:
        assert item["reason"].startswith("FAIL ")
        assert item["check"]
        assert item["report"]["passed"] is False


@pytest.mark.parametrize("seq", range(1, 8), ids=[f"s{n}" for n in range(1, 8)])
def test_session_records_a_design_or_its_rejections(
    run: tuple[Store, dict[str, dict[str, Any]]], seq: int
) -> None:
    store, outcomes = run
    name = f"s{seq}"
    outcome = outcomes[name]
    assert json.loads(store.get_text(session_key(name))) == outcome
    assert set(outcome) >= OUTCOME_KEYS
    assert 1 <= outcome["candidates"] <= (5 if name == "s6" else MAX_CANDIDATES)
    if outcome["status"] == "implemented":
        assert outcome["design"] == f"d{seq:04d}"
        check_implemented(store, name, outcome)
    else:
        assert outcome["status"] == "failed"
        check_failed(store, outcome, f"d{seq:04d}")


def test_failing_candidates_are_rejected_with_reasons(
    run: tuple[Store, dict[str, dict[str, Any]]],
) -> None:
    store, outcomes = run
    outcome = outcomes["s7"]
    assert outcome["status"] == "failed"
    assert outcome["candidates"] == 2
    assert outcome["reason"].startswith(
        "all 2 candidates failed their checks; last: FAIL param_fit"
    )
    items = rejections(store, "d0007")
    assert [item["check"] for item in items] == ["param_fit", "param_fit"]
    assert all(item["session"] == "s7" for item in items)
    assert all(item["parents"] == ["seed-rwkv6"] for item in items)
    assert len({item["hash"] for item in items}) == 2
    archive = load_archive(store)
    assert sorted(r.id for r in archive.rejections if r.session == "s7") == [
        "d0007-c1",
        "d0007-c2",
    ]


def test_sessions_implement_designs_of_each_operator(
    run: tuple[Store, dict[str, dict[str, Any]]],
) -> None:
    store, outcomes = run
    archive = load_archive(store)
    new = [d for d in archive.ordered() if not d.is_seed]
    assert len(new) >= 3, outcomes
    assert [d.seq for d in new] == sorted(d.seq for d in new)
    for record in new:
        assert record.session == f"s{record.seq}"
        assert record.operator == OPERATORS[record.session]


def test_hashes_are_unique_across_the_run(run: tuple[Store, dict[str, dict[str, Any]]]) -> None:
    store, _ = run
    hashes = [
        structural_hash(json.loads(store.get_text(key)))
        for key in store.list("designs")
        if key.endswith("/design.json")
    ]
    hashes += [json.loads(store.get_text(k))["hash"] for k in store.list("rejected")]
    assert len(hashes) >= len(SEEDS) + 3
    assert len(hashes) == len(set(hashes))


def test_rerunning_a_session_writes_nothing_new(
    run: tuple[Store, dict[str, dict[str, Any]]],
) -> None:
    store, outcomes = run
    before = {key: store.get_text(key) for key in store.list()}
    for seq, (name, operator, parents) in enumerate(SESSIONS, start=1):
        assert session(store, name, operator, parents, seq) == outcomes[name]
    assert impossible_session(store) == outcomes["s7"]
    assert {key: store.get_text(key) for key in store.list()} == before


def test_parallel_sessions_never_implement_the_same_design(tmp_path: Path) -> None:
    """Two sessions drawing the same first candidate at once: one claims it, the other moves on.

    Both run with the same seed, operator and parent, so without a claim they propose, check
    and record the same tree twice (two budget slots spent on one design).
    """
    store = seeded_store(open_store(tmp_path))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(session, store, name, "mutation", ["seed-gpt2"], 11, design_id=design)
            for name, design in (("s11", "d0011"), ("s12", "d0012"))
        ]
        outcomes = [future.result() for future in futures]
    assert [o["status"] for o in outcomes] == ["implemented", "implemented"], outcomes
    documents = [
        json.loads(store.get_text(design_key(d, "design.json"))) for d in ("d0011", "d0012")
    ]
    hashes = {structural_hash(document) for document in documents}
    assert len(hashes) == 2, "two sessions recorded the same design"
    claims = {key.removeprefix("hashes/").removesuffix(".json") for key in store.list("hashes")}
    assert hashes <= claims
