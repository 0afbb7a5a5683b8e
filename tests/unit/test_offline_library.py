"""The offline proposer's library and genetic operators, without the sandbox."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from genesys.agents.design_cli import main
from genesys.agents.genetic_operators import grid_steps
from genesys.agents.library import (
    HYPERPARAMETER_VARIANTS,
    PARAMETER_FREE_UNITS,
    SLOT_KINDS,
    LibraryUnit,
    build_library,
    dead_parameters,
    effective_hyperparameters,
    init_defaults,
    reachable,
    sha256_text,
    structural_hash,
    tree_hash,
)
from genesys.agents.offline import (
    Proposal,
    ProposalError,
    crossover,
    known_hashes,
    mutate,
    propose,
    run_offline_session,
    scratch,
    tree_slots,
)
from genesys.api.ladder import preset_rung
from genesys.sandbox.static import check_design_document
from genesys.store import open_store
from genesys.store.archive import design_key, session_key
from genesys_trainer.seeds import SEEDS, load_seed
from genesys_trainer.tree import UnitTree, tree_from_json, validate_tree

LIBRARY = build_library()
REPO = Path(__file__).resolve().parents[2]


def seed(name: str) -> UnitTree:
    tree = load_seed(name)
    tree.name = f"seed-{name}"
    return tree


def contents(tree: UnitTree) -> dict[str, tuple[Any, ...]]:
    """Slot path ("" for the root) -> (unit, source hash, effective hyper-parameters)."""

    def content(name: str) -> tuple[Any, ...]:
        unit = tree.units[name]
        hyper = effective_hyperparameters(unit.source, unit.hyperparameters)
        return (name, sha256_text(unit.source), sorted(hyper.items()))

    found = {"": content(tree.root)}
    found.update({slot.path: content(slot.unit) for slot in tree_slots(tree)})
    return found


def changed_paths(before: UnitTree, after: UnitTree) -> set[str]:
    old, new = contents(before), contents(after)
    return {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + ".")


# ---------------------------------------------------------------- library


@pytest.mark.parametrize("name", list(SEEDS))
def test_library_covers_every_unit_of_seed_by_kind(name: str) -> None:
    tree = load_seed(name)
    assert LIBRARY[tree.root].kind == "block"
    for slot in tree_slots(tree):
        assert LIBRARY[slot.unit].kind == SLOT_KINDS[slot.name]
        assert LIBRARY[slot.unit].source == tree.units[slot.unit].source
        assert LIBRARY[slot.unit].children == tree.units[slot.unit].children


def test_library_kinds_hold_the_seed_units() -> None:
    kinds: dict[str, set[str]] = {}
    for unit in LIBRARY.values():
        kinds.setdefault(unit.kind, set()).add(unit.name)
    assert kinds == {
        "block": {"ResidualBlock"},
        "norm": {"RMSNorm", "Identity"},
        "seq_mixer": {
            "RotaryMHA",
            "Mamba2Mixer",
            "MultiScaleRetention",
            "RWKV6TimeMix",
            "TTTLinear",
        },
        "channel_mixer": {"SwiGLUMLP", "RetNetMLP", "RWKV6ChannelMix", "ZeroMixer"},
        "conv": {"CausalConv"},
    }
    assert LIBRARY["TTTLinear"].children == {"conv": "CausalConv"}


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_variants_contain_the_init_default(name: str) -> None:
    unit: LibraryUnit = LIBRARY[name]
    assert unit.hyperparameter_choices == HYPERPARAMETER_VARIANTS.get(name, {})
    for parameter, values in unit.hyperparameter_choices.items():
        assert unit.defaults[parameter] in values
        assert len(set(values)) == len(values) >= 2


def test_library_never_perturbs_norms_or_units_without_hyperparameters() -> None:
    for name in ("RMSNorm", "Identity", "ZeroMixer", "ResidualBlock"):
        assert LIBRARY[name].hyperparameter_choices == {}
    assert LIBRARY["SwiGLUMLP"].hyperparameter_choices == {"hidden_ratio": (2.0, 8 / 3, 3.0, 4.0)}
    assert LIBRARY["Mamba2Mixer"].hyperparameter_choices == {
        "d_state": (8, 16, 32, 64),
        "expand": (1, 2),
    }


def test_init_defaults_reads_literal_keyword_defaults_only() -> None:
    source = (
        "class Helper:\n"
        "    def __init__(self, z: int = 9) -> None:\n"
        "        pass\n"
        "class A(Unit):\n"
        "    def __init__(self, d_model: int, a: float = 8 / 3, b: int = -2, c=None, d=f(), "
        "*, n_head: int = 4, e: str = 'x', **context: int) -> None:\n"
        "        pass\n"
    )
    assert init_defaults(source) == {"a": 8 / 3, "b": -2, "c": None, "e": "x"}
    assert init_defaults("class (:") == {}


def test_parameter_free_units_hold_no_parameters() -> None:
    for name, unit in LIBRARY.items():
        holds = "nn.Parameter" in unit.source or "nn.Linear" in unit.source
        assert holds == (name not in PARAMETER_FREE_UNITS | {"ResidualBlock"}), name


def test_dead_parameters_names_a_norm_feeding_zero_mixer() -> None:
    assert dead_parameters(load_seed("mamba2"), LIBRARY) == []
    gpt2 = seed("gpt2")
    gpt2.units["ResidualBlock"].children["channel_mixer"] = "ZeroMixer"
    gpt2.units["ZeroMixer"] = load_seed("mamba2").units["ZeroMixer"]
    assert dead_parameters(gpt2, LIBRARY) == [
        "ResidualBlock.channel_norm (RMSNorm) feeds ZeroMixer, which ignores it"
    ]
    for name in SEEDS:
        assert dead_parameters(load_seed(name), LIBRARY) == []


# ---------------------------------------------------------------- structural hash


def test_structural_hash_ignores_name_metadata_and_requirements() -> None:
    a, b = load_seed("gpt2"), load_seed("gpt2")
    b.name, b.metadata = "other", {"title": "something else"}
    b.units["RMSNorm"].requirements = "different words"
    assert structural_hash(a.to_json()) == structural_hash(b.to_json())


def test_structural_hash_treats_explicit_defaults_as_defaults() -> None:
    a, b = load_seed("gpt2"), load_seed("gpt2")
    b.units["SwiGLUMLP"].hyperparameters["hidden_ratio"] = 8 / 3
    assert structural_hash(a.to_json()) == structural_hash(b.to_json())
    b.units["SwiGLUMLP"].hyperparameters["hidden_ratio"] = 4.0
    assert structural_hash(a.to_json()) != structural_hash(b.to_json())


def test_structural_hash_ignores_unreachable_units() -> None:
    a, b = load_seed("gpt2"), load_seed("gpt2")
    b.units["Spare"] = load_seed("ttt").units["CausalConv"]
    assert structural_hash(a.to_json()) == structural_hash(b.to_json())


@pytest.mark.parametrize("name", list(SEEDS))
def test_structural_hash_changes_after_mutation(name: str) -> None:
    parent = seed(name)
    for value in range(10):
        child, _ = mutate(parent, random.Random(value), LIBRARY)
        assert structural_hash(child.to_json()) != structural_hash(parent.to_json())


def test_seed_hashes_are_distinct() -> None:
    assert len({structural_hash(load_seed(n).to_json()) for n in SEEDS}) == len(SEEDS)


# ---------------------------------------------------------------- mutation


@pytest.mark.parametrize("name", list(SEEDS))
def test_mutation_changes_exactly_one_slot_subtree(name: str) -> None:
    parent = seed(name)
    parent_slots = {slot.path for slot in tree_slots(parent)}
    for value in range(25):
        child, description = mutate(parent, random.Random(value), LIBRARY)
        changed = changed_paths(parent, child)
        top = min(changed, key=len)
        assert top in parent_slots, (description, changed)
        assert all(under(path, top) for path in changed), (description, changed)
        outside = {p: c for p, c in contents(parent).items() if not under(p, top)}
        assert outside == {p: c for p, c in contents(child).items() if not under(p, top)}
        validate_tree(child)
        assert set(child.units) == set(reachable(child)), "unreachable units are removed"
        assert description.endswith(".")
        assert top in description


def test_mutation_reaches_the_nested_conv_slot() -> None:
    parent = seed("ttt")
    kernels = set()
    for value in range(200):
        child, _ = mutate(parent, random.Random(value), LIBRARY)
        if changed_paths(parent, child) == {"seq_mixer.conv"}:
            kernels.add(child.units["CausalConv"].hyperparameters["kernel_size"])
    assert kernels == {3, 6}


def test_mutation_replacing_ttt_removes_its_conv_and_adding_it_installs_one() -> None:
    ttt, gpt2 = seed("ttt"), seed("gpt2")
    replaced = added = False
    for value in range(200):
        child, _ = mutate(ttt, random.Random(value), LIBRARY)
        if child.units["ResidualBlock"].children["seq_mixer"] != "TTTLinear":
            assert "CausalConv" not in child.units
            replaced = True
        child, _ = mutate(gpt2, random.Random(value), LIBRARY)
        if child.units["ResidualBlock"].children["seq_mixer"] == "TTTLinear":
            assert child.units["TTTLinear"].children == {"conv": "CausalConv"}
            assert child.units["CausalConv"].hyperparameters == {}
            added = True
    assert replaced
    assert added


def test_mutation_neighbourhood_of_gpt2_is_complete() -> None:
    # seq_norm, channel_norm: Identity; seq_mixer: 4 mixers + rotary_base 500000;
    # channel_mixer: 3 mixers + hidden_ratio one step from 8/3 (2 and 3, never 4)
    hashes = {tree_hash(mutate(seed("gpt2"), random.Random(v), LIBRARY)[0]) for v in range(600)}
    assert len(hashes) == 12


def test_a_hyperparameter_moves_one_step_along_its_grid() -> None:
    assert grid_steps((16, 32, 64), 32) == [16, 64]
    assert grid_steps((64, 16, 32), 16) == [32]  # the grid is sorted first; an end has one step
    assert grid_steps((16, 32, 64), 24) == [16, 32, 64]  # off the grid: any value
    values = set()
    for v in range(300):
        child, _ = mutate(seed("gpt2"), random.Random(v), LIBRARY)
        mlp = child.units.get("SwiGLUMLP")
        if mlp is not None and "hidden_ratio" in mlp.hyperparameters:
            values.add(mlp.hyperparameters["hidden_ratio"])
    assert values == {2.0, 3.0}


# ---------------------------------------------------------------- crossover


PAIRS = [("gpt2", "mamba2"), ("mamba2", "ttt"), ("retnet", "rwkv6"), ("ttt", "retnet")]


@pytest.mark.parametrize(("a_name", "b_name"), PAIRS, ids=["-x-".join(p) for p in PAIRS])
def test_crossover_takes_one_subtree_from_parent_b(a_name: str, b_name: str) -> None:
    a, b = seed(a_name), seed(b_name)
    grafted = set()
    for value in range(20):
        child, description = crossover(a, b, random.Random(value), LIBRARY)
        changed = changed_paths(a, child)
        top = min(changed, key=len)
        assert all(under(path, top) for path in changed)
        donor = {p: c for p, c in contents(b).items() if under(p, top)}
        assert donor == {p: c for p, c in contents(child).items() if under(p, top)}
        assert tree_hash(child) not in {tree_hash(a), tree_hash(b)}
        assert b.name in description
        validate_tree(child)
        grafted.add(top)
    assert len(grafted) >= 2


def test_crossover_carries_hyperparameters_of_the_grafted_unit() -> None:
    a, b = seed("gpt2"), seed("retnet")
    b.units["RetNetMLP"].hyperparameters["hidden_ratio"] = 3.0
    seen = False
    for value in range(20):
        child, _ = crossover(a, b, random.Random(value), LIBRARY)
        if "RetNetMLP" in child.units:
            assert child.units["RetNetMLP"].hyperparameters == {"hidden_ratio": 3.0}
            seen = True
    assert seen


def test_crossover_skips_a_slot_whose_unit_a_shares_elsewhere() -> None:
    a, b = seed("gpt2"), seed("mamba2")
    a.units["RMSNorm"].hyperparameters["eps"] = 1e-6  # shared by both norm slots of a
    b.units["RMSNorm"].hyperparameters["eps"] = 1e-3
    for value in range(30):
        child, _ = crossover(a, b, random.Random(value), LIBRARY)
        assert child.units["RMSNorm"].hyperparameters == {"eps": 1e-6}
        assert changed_paths(a, child) & {"seq_norm"} == set()


def test_crossover_of_equal_parents_raises() -> None:
    with pytest.raises(ProposalError, match="grafts"):
        crossover(seed("gpt2"), seed("gpt2"), random.Random(0), LIBRARY)


# ---------------------------------------------------------------- scratch


def test_scratch_builds_valid_residual_blocks() -> None:
    mixers = set()
    for value in range(40):
        tree, description = scratch(random.Random(value), LIBRARY)
        parsed = tree_from_json(json.loads(json.dumps(tree.to_json())))
        validate_tree(parsed)
        assert parsed.root == "ResidualBlock"
        assert set(parsed.units) == set(reachable(parsed))
        for slot in tree_slots(parsed):
            assert LIBRARY[slot.unit].kind == SLOT_KINDS[slot.name]
            choices = LIBRARY[slot.unit].hyperparameter_choices
            for parameter, chosen in parsed.units[slot.unit].hyperparameters.items():
                assert chosen in choices[parameter]
        assert not check_design_document(parsed.to_json())
        assert description.startswith("Composed a new ResidualBlock")
        mixers.add(parsed.units["ResidualBlock"].children["seq_mixer"])
    assert len(mixers) == 5


# ---------------------------------------------------------------- propose


def test_propose_writes_document_metadata_and_text() -> None:
    proposal = propose(
        "mutation",
        [seed("rwkv6")],
        rng=random.Random(3),
        library=LIBRARY,
        known_hashes=set(),
        name="d0001",
    )
    document = proposal.document
    tree = tree_from_json(document)
    assert tree.name == "d0001"
    assert document["format"] == "genesys.design/v1"
    assert document["metadata"] == {
        "title": proposal.title,
        "operator": "mutation",
        "parents": ["seed-rwkv6"],
        "proposal": proposal.text,
        "hash": proposal.hash,
    }
    assert proposal.hash == structural_hash(document)
    assert proposal.text.startswith(f"# {proposal.title}\n")
    for heading in ("## What changed", "## Why", "## Unit tree", "d0001: "):
        assert heading in proposal.text


def test_propose_motivation_contrasts_attention_and_recurrence() -> None:
    texts = [
        propose(
            "mutation",
            [seed("gpt2")],
            rng=random.Random(v),
            library=LIBRARY,
            known_hashes=set(),
            name="d",
        ).text
        for v in range(150)
    ]
    assert any("quadratic attention for a linear-time recurrence" in t for t in texts)
    texts = [
        propose(
            "mutation",
            [seed("mamba2")],
            rng=random.Random(v),
            library=LIBRARY,
            known_hashes=set(),
            name="d",
        ).text
        for v in range(150)
    ]
    assert any("linear-time recurrence for exact attention" in t for t in texts)


def test_propose_avoids_known_hashes() -> None:
    parent = seed("gpt2")
    known = {tree_hash(parent)}
    for _ in range(10):  # 12 single mutations, one of them (ZeroMixer after RMSNorm) dead
        proposal = propose(
            "mutation",
            [parent],
            rng=random.Random(0),
            library=LIBRARY,
            known_hashes=known,
            name="d",
            attempts=200,
        )
        assert proposal.hash not in known
        assert "ZeroMixer" not in proposal.document["units"]
        known.add(proposal.hash)
    assert len(known) == 11


def test_propose_raises_when_everything_is_known() -> None:
    parent = seed("gpt2")
    known = {tree_hash(mutate(parent, random.Random(v), LIBRARY)[0]) for v in range(600)}
    with pytest.raises(ProposalError, match="no new mutation candidate in 20 attempts"):
        propose(
            "mutation",
            [parent],
            rng=random.Random(1),
            library=LIBRARY,
            known_hashes=known,
            name="d",
        )


@pytest.mark.parametrize(
    ("operator", "count"), [("mutation", 0), ("crossover", 1), ("scratch", 1), ("splice", 0)]
)
def test_propose_rejects_a_wrong_operator_or_parent_count(operator: str, count: int) -> None:
    with pytest.raises(ValueError, match=operator):
        propose(
            operator,
            [seed("gpt2")] * count,
            rng=random.Random(0),
            library=LIBRARY,
            known_hashes=set(),
            name="d",
        )


def proposal_sequence(seed_value: int, count: int) -> list[Proposal]:
    rng = random.Random(seed_value)
    pool = [seed(name) for name in SEEDS]
    known = {tree_hash(tree) for tree in pool}
    proposals: list[Proposal] = []
    for index in range(count * 3):
        if len(proposals) == count:
            break
        operator = rng.choice(["mutation", "mutation", "mutation", "crossover", "scratch"])
        parents = rng.sample(pool, {"mutation": 1, "crossover": 2, "scratch": 0}[operator])
        try:
            proposal = propose(
                operator,
                parents,
                rng=rng,
                library=LIBRARY,
                known_hashes=known,
                name=f"d{index:04d}",
            )
        except ProposalError:
            continue
        known.add(proposal.hash)
        proposals.append(proposal)
        pool.append(tree_from_json(proposal.document))
    return proposals


def test_propose_is_deterministic_under_the_same_seed() -> None:
    first, again = proposal_sequence(7, 10), proposal_sequence(7, 10)
    assert [p.document for p in first] == [p.document for p in again]
    assert [p.hash for p in first] != [p.hash for p in proposal_sequence(8, 10)]


def test_fifty_proposals_are_unique_and_pass_static_checks() -> None:
    proposals = proposal_sequence(2024, 50)
    assert len(proposals) == 50
    assert len({p.hash for p in proposals}) == 50
    assert not {p.hash for p in proposals} & {tree_hash(load_seed(n)) for n in SEEDS}
    assert {p.operator for p in proposals} == {"mutation", "crossover", "scratch"}
    for proposal in proposals:
        assert check_design_document(proposal.document) == [], proposal.title
        assert dead_parameters(tree_from_json(proposal.document), LIBRARY) == []
        assert structural_hash(proposal.document) == proposal.hash


# ---------------------------------------------------------------- sessions without the sandbox


def test_known_hashes_reads_designs_claims_and_rejections(tmp_path: Path) -> None:
    root = open_store(tmp_path)
    store = root.child("runs/r")
    store.put_text(design_key("seed-gpt2", "design.json"), load_seed("gpt2").dumps())
    store.put_text(design_key("seed-gpt2", "proposal.md"), "not json")
    store.put_text("rejected/d0001-c1.json", json.dumps({"reason": "x", "hash": "abc"}))
    store.put_text("hashes/def.json", json.dumps({"design": "d0002", "session": "s2"}))
    root.put_text("runs/other/rejected/d0001-c1.json", json.dumps({"reason": "x", "hash": "no"}))
    assert known_hashes(store) == {tree_hash(load_seed("gpt2")), "abc", "def"}


def test_session_with_an_outcome_is_returned_unchanged(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    outcome = {
        "schema_version": 1,
        "status": "failed",
        "design": None,
        "reason": "earlier",
        "candidates": 2,
    }
    store.put_text(session_key("s1"), json.dumps(outcome))
    again = run_offline_session(
        store=store,
        session="s1",
        design_id="d0001",
        seq=1,
        operator="scratch",
        parent_ids=[],
        seed=0,
        rung=preset_rung("nano"),
    )
    assert {key: again[key] for key in outcome} == outcome
    assert list(store.list()) == [session_key("s1")]


def test_session_with_a_missing_parent_records_a_failure(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    outcome = run_offline_session(
        store=store,
        session="s1",
        design_id="d0001",
        seq=1,
        operator="mutation",
        parent_ids=["d0404"],
        seed=0,
        rung=preset_rung("nano"),
    )
    assert outcome["status"] == "failed"
    assert "d0404" in outcome["reason"]
    assert json.loads(store.get_text(session_key("s1"))) == outcome


@pytest.mark.parametrize(
    "extra",
    [
        ["--operator", "mutation"],
        ["--operator", "crossover", "--parents", "a"],
        ["--operator", "splice"],
        ["--operator", "scratch", "--config", "no-such-config.json"],
        ["--operator", "scratch", "--mode", "telepathy"],
    ],
    ids=[
        "mutation-without-parent",
        "crossover-one-parent",
        "unknown-operator",
        "missing-config",
        "unknown-mode",
    ],
)
def test_agent_design_bad_arguments_exit_2(tmp_path: Path, extra: list[str]) -> None:
    base = {
        "--store": str(tmp_path / "run"),
        "--config": str(tmp_path / "config.json"),
        "--session": "s",
        "--design-id": "d1",
        "--seq": "1",
        "--seed": "0",
    }
    argv = [item for key, value in base.items() if key not in extra for item in (key, value)]
    assert main([*argv, *extra]) == 2
    assert list(open_store(tmp_path).list()) == []


def test_offline_proposer_never_imports_torch() -> None:
    code = (
        "import sys, genesys.agents.offline as o, genesys.agents.library as l\n"
        "l.build_library()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
