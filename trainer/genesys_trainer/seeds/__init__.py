"""The five seed designs of Genesys as unit trees: GPT-2, Mamba2, RetNet, RWKV6 and TTT.

Every seed shares one top-level shape, :class:`ResidualBlock` with ``seq_norm``, ``seq_mixer``,
``channel_norm`` and ``channel_mixer`` slots, so units move between seeds by mutation and
crossover (Genesys, arXiv 2506.20249, "Seed designs").

What must stay true:
- The seed names are :data:`genesys.api.seeds.SEED_NAMES`, the one list the engine uses too;
  ``SEEDS`` holds each one's tree spec, in that order, and ``SEED_SPECS`` has no other entry
  (``tests/unit/test_seeds_names.py``).
- ``designs/<name>.json`` are generated from ``SEEDS`` and the unit sources in ``units/``
  (``genesys designs sync-seeds``; a test checks they are current).
- Every seed is pure PyTorch, exactly causal, and trains on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from genesys.api.seeds import SEED_NAMES
from genesys_trainer.tree import UnitSpec, UnitTree, tree_from_json


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """How one seed's tree is assembled from unit source files."""

    title: str
    citation: str
    seq_mixer: str
    channel_mixer: str
    seq_norm: str = "RMSNorm"
    channel_norm: str = "RMSNorm"
    extra_children: dict[str, dict[str, str]] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)


# unit name -> source file in units/
UNIT_FILES: dict[str, str] = {
    "ResidualBlock": "residual_block.py",
    "RMSNorm": "rms_norm.py",
    "Identity": "identity.py",
    "ZeroMixer": "zero_mixer.py",
    "SwiGLUMLP": "swiglu_mlp.py",
    "RotaryMHA": "rotary_mha.py",
    "Mamba2Mixer": "mamba2_mixer.py",
    "MultiScaleRetention": "retention.py",
    "RetNetMLP": "retnet_mlp.py",
    "RWKV6TimeMix": "rwkv6_time_mix.py",
    "RWKV6ChannelMix": "rwkv6_channel_mix.py",
    "TTTLinear": "ttt_linear.py",
    "CausalConv": "causal_conv.py",
}

SEED_SPECS: dict[str, SeedSpec] = {
    "gpt2": SeedSpec(
        title="GPT-2 (rotary multi-head attention, SwiGLU MLP, RMSNorm)",
        citation="Radford et al. 2019; Su et al. 2021 (rotary); Shazeer 2020 (GLU variants)",
        seq_mixer="RotaryMHA",
        channel_mixer="SwiGLUMLP",
    ),
    "mamba2": SeedSpec(
        title="Mamba2 (selective state-space model, SSD)",
        citation="Dao and Gu 2024, Transformers are SSMs",
        seq_mixer="Mamba2Mixer",
        channel_mixer="ZeroMixer",
        channel_norm="Identity",
    ),
    "retnet": SeedSpec(
        title="RetNet (multi-scale retention, RetNet MLP)",
        citation="Sun et al. 2023, Retentive Network",
        seq_mixer="MultiScaleRetention",
        channel_mixer="RetNetMLP",
    ),
    "rwkv6": SeedSpec(
        title="RWKV6 (Finch time-mix with data-dependent decay, channel-mix)",
        citation="Peng et al. 2024, Eagle and Finch",
        seq_mixer="RWKV6TimeMix",
        channel_mixer="RWKV6ChannelMix",
    ),
    "ttt": SeedSpec(
        title="TTT-Linear (test-time training layer, causal conv, SwiGLU, rotary)",
        citation="Sun et al. 2024, Learning to (Learn at Test Time)",
        seq_mixer="TTTLinear",
        channel_mixer="SwiGLUMLP",
        extra_children={"TTTLinear": {"conv": "CausalConv"}},
    ),
}
# The seeds, by name, in the order of SEED_NAMES (a name without a spec fails here, at import).
SEEDS: dict[str, SeedSpec] = {name: SEED_SPECS[name] for name in SEED_NAMES}

REQUIREMENTS = {
    "ResidualBlock": "the block: two pre-norm residual branches, sequence mixing then channels",
    "RMSNorm": "normalise each position's channels",
    "Identity": "pass X through",
    "ZeroMixer": "add nothing to the residual stream",
}


def unit_source(unit: str) -> str:
    """Source text of a seed unit."""
    return resources.files(__name__).joinpath("units", UNIT_FILES[unit]).read_text("utf-8")


def build_seed_tree(name: str) -> UnitTree:
    """Assemble a seed's unit tree from the unit source files."""
    seed = SEEDS[name]
    root_children = {
        "seq_norm": seed.seq_norm,
        "seq_mixer": seed.seq_mixer,
        "channel_norm": seed.channel_norm,
        "channel_mixer": seed.channel_mixer,
    }
    children: dict[str, dict[str, str]] = {"ResidualBlock": root_children, **seed.extra_children}
    used = ["ResidualBlock"]
    for unit in [
        *root_children.values(),
        *(c for m in seed.extra_children.values() for c in m.values()),
    ]:
        if unit not in used:
            used.append(unit)
    units = {
        unit: UnitSpec(
            source=unit_source(unit),
            children=dict(children.get(unit, {})),
            hyperparameters=dict(seed.hyperparameters.get(unit, {})),
            requirements=REQUIREMENTS.get(unit, f"the {name} seed's {unit}"),
        )
        for unit in used
    }
    return UnitTree(
        name=name,
        root="ResidualBlock",
        units=units,
        metadata={
            "title": seed.title,
            "citation": seed.citation,
            "operator": "seed",
            "parents": [],
            "source": "Genesys (arXiv 2506.20249), seed designs",
        },
    )


def seed_json_text(name: str) -> str:
    """The ``design.json`` text of a seed, as shipped."""
    return build_seed_tree(name).dumps()


def load_seed(name: str) -> UnitTree:
    """A seed's unit tree, from its shipped ``design.json``."""
    if name not in SEEDS:
        raise KeyError(f"unknown seed {name!r}; seeds: {', '.join(SEEDS)}")
    text = resources.files(__name__).joinpath("designs", f"{name}.json").read_text("utf-8")
    return tree_from_json(json.loads(text))


__all__ = [
    "SEEDS",
    "SEED_SPECS",
    "SeedSpec",
    "build_seed_tree",
    "load_seed",
    "seed_json_text",
    "unit_source",
]
