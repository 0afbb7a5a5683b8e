"""The seed names have one home (genesys.api.seeds); the trainer's seeds and files follow it."""

from __future__ import annotations

import json
from importlib import resources

import genesys_trainer.seeds as trainer_seeds
from genesys.api.seeds import SEED_NAMES
from genesys.engine import plan


def test_the_seed_names_are_the_papers_five_in_order() -> None:
    assert SEED_NAMES == ("gpt2", "mamba2", "retnet", "rwkv6", "ttt")


def test_the_trainer_seeds_follow_the_api_names_in_order() -> None:
    assert tuple(trainer_seeds.SEEDS) == SEED_NAMES
    assert set(trainer_seeds.SEED_SPECS) == set(SEED_NAMES)  # no spec without a name


def test_the_engine_uses_the_api_names() -> None:
    assert plan.SEED_NAMES is SEED_NAMES


def test_the_shipped_seed_files_match_the_names() -> None:
    folder = resources.files(trainer_seeds.__name__).joinpath("designs")
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert files == sorted(f"{name}.json" for name in SEED_NAMES)
    for name in SEED_NAMES:
        document = json.loads(folder.joinpath(f"{name}.json").read_text("utf-8"))
        assert document["name"] == name
