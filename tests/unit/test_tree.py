"""Design formats: design.json and block files, their errors, and composition isolation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import genesys_trainer
from genesys_trainer.compose import compose
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import (
    DesignError,
    UnitSpec,
    UnitTree,
    load_block_file,
    load_tree,
    tree_from_json,
)

SCALE = '''
from torch import Tensor
from genesys_trainer.units import Unit


def helper(x: Tensor) -> Tensor:
    return x * {factor}


class Mixer(Unit):
    """Scales X."""

    def _forward(self, X: Tensor) -> Tensor:
        return helper(X)
'''


def gpt2_json() -> dict[str, Any]:
    return copy.deepcopy(load_seed("gpt2").to_json())


def test_design_json_round_trips() -> None:
    tree = load_seed("gpt2")
    again = tree_from_json(json.loads(tree.dumps()))
    assert again == tree


def test_missing_root_is_an_error() -> None:
    document = gpt2_json()
    del document["root"]
    with pytest.raises(DesignError, match="design 'gpt2': missing 'root'"):
        tree_from_json(document)


def test_root_not_among_units_is_an_error() -> None:
    document = gpt2_json()
    document["root"] = "Nowhere"
    with pytest.raises(DesignError, match="root 'Nowhere' is not among the units"):
        tree_from_json(document)


def test_unknown_child_is_an_error_naming_the_unit() -> None:
    document = gpt2_json()
    document["units"]["ResidualBlock"]["children"]["seq_mixer"] = "Ghost"
    with pytest.raises(
        DesignError,
        match=r"unit 'ResidualBlock': child 'seq_mixer' is bound to unknown unit 'Ghost'",
    ):
        tree_from_json(document)


def test_child_cycle_is_an_error_naming_the_unit() -> None:
    document = gpt2_json()
    document["units"]["RMSNorm"]["children"] = {"loop": "ResidualBlock"}
    with pytest.raises(
        DesignError, match=r"child cycle .*ResidualBlock -> RMSNorm -> ResidualBlock"
    ):
        tree_from_json(document)


def test_syntax_error_in_a_unit_names_the_unit() -> None:
    document = gpt2_json()
    document["units"]["SwiGLUMLP"]["source"] += "\ndef broken(:\n"
    tree = tree_from_json(document)
    with pytest.raises(DesignError, match=r"unit 'SwiGLUMLP': syntax error at line \d+"):
        compose(tree)


def test_exception_while_loading_a_unit_names_the_unit() -> None:
    document = gpt2_json()
    document["units"]["RMSNorm"]["source"] += "\nraise RuntimeError('boom')\n"
    with pytest.raises(DesignError, match=r"unit 'RMSNorm': RuntimeError while loading: boom"):
        compose(tree_from_json(document))


def test_unit_source_with_a_different_class_name_is_an_error() -> None:
    document = gpt2_json()
    document["units"]["RMSNorm"]["source"] = SCALE.format(factor=2)
    with pytest.raises(
        DesignError,
        match=r"unit 'RMSNorm': source must define exactly one Unit subclass named 'RMSNorm', found \['Mixer'\]",
    ):
        compose(tree_from_json(document))


def test_binding_a_slot_the_unit_does_not_declare_is_an_error() -> None:
    document = gpt2_json()
    document["units"]["ResidualBlock"]["children"]["extra"] = "RMSNorm"
    with pytest.raises(
        DesignError, match=r"unit 'ResidualBlock': the tree binds children \['extra'\]"
    ):
        compose(tree_from_json(document))


def test_declared_slot_left_unbound_is_an_error() -> None:
    document = gpt2_json()
    del document["units"]["ResidualBlock"]["children"]["channel_mixer"]
    with pytest.raises(
        DesignError, match=r"declares children \['channel_mixer'\] that the tree does not bind"
    ):
        compose(tree_from_json(document))


def test_bad_hyperparameter_names_the_unit() -> None:
    document = gpt2_json()
    document["units"]["SwiGLUMLP"]["hyperparameters"] = {"nonsense": 1}
    with pytest.raises(DesignError, match=r"unit 'SwiGLUMLP': TypeError in __init__"):
        compose(tree_from_json(document)).block(16, n_head=2)


def test_reserved_hyperparameter_name_is_an_error() -> None:
    document = gpt2_json()
    document["units"]["RotaryMHA"]["hyperparameters"] = {"n_head": 8}
    with pytest.raises(
        DesignError, match=r"unit 'RotaryMHA': hyper-parameters \['n_head'\] are reserved"
    ):
        tree_from_json(document)


def test_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "design.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DesignError, match="is not valid JSON"):
        load_tree(path)


def one_unit_tree(name: str, factor: int) -> UnitTree:
    return UnitTree(
        name=name, root="Mixer", units={"Mixer": UnitSpec(source=SCALE.format(factor=factor))}
    )


def test_two_designs_with_same_names_compose_without_interfering() -> None:
    first, second = compose(one_unit_tree("first", 2)), compose(one_unit_tree("second", 3))
    X = torch.ones(1, 2, 4)
    assert torch.equal(first.block(4)(X)[0], 2 * X)
    assert torch.equal(second.block(4)(X)[0], 3 * X)
    assert first.module is not second.module
    assert first.root_class is not second.root_class
    assert torch.equal(first.block(4)(X)[0], 2 * X)  # still its own helper


def test_two_seeds_compose_in_one_process_without_interfering() -> None:
    torch.manual_seed(0)
    gpt2 = compose(load_seed("gpt2"))
    retnet = compose(load_seed("retnet"))
    torch.manual_seed(1)
    block_a = gpt2.block(32, n_head=2)
    X = torch.randn(2, 16, 32)
    before = block_a(X)[0]
    torch.manual_seed(1)
    _ = retnet.block(32, n_head=2)(X)
    assert torch.equal(block_a(X)[0], before)
    assert gpt2.classes["RMSNorm"] is not retnet.classes["RMSNorm"]


def test_block_file_loads_as_a_one_unit_tree(tmp_path: Path) -> None:
    path = tmp_path / "block.py"
    path.write_text(SCALE.format(factor=5), encoding="utf-8")
    tree = load_tree(path)
    assert (tree.name, tree.root, list(tree.units)) == ("block", "Mixer", ["Mixer"])
    X = torch.ones(1, 1, 2)
    assert torch.equal(compose(tree).block(2)(X)[0], 5 * X)


def test_block_file_with_two_unit_classes_is_an_error() -> None:
    source = SCALE.format(factor=1) + "\n\nclass Another(Unit):\n    pass\n"
    with pytest.raises(DesignError, match="exactly one Unit subclass, found 2"):
        load_block_file(source, name="two")


def test_render_shows_slots_and_placeholders() -> None:
    text = load_seed("ttt").render()
    assert "  seq_mixer: TTTLinear" in text
    assert "    conv: CausalConv" in text


def test_interface_documentation_example_composes() -> None:
    doc = genesys_trainer.interface_documentation()
    assert "## Writing a unit" in doc
    example = doc.split("```python\n", 1)[1].split("```", 1)[0]
    seed = load_seed("gpt2")
    tree = UnitTree(
        name="doc-example",
        root="GatedMixer",
        units={
            "GatedMixer": UnitSpec(
                source=example, children={"norm": "RMSNorm", "mixer": "RotaryMHA"}
            ),
            "RMSNorm": seed.units["RMSNorm"],
            "RotaryMHA": seed.units["RotaryMHA"],
        },
    )
    X = torch.randn(2, 8, 16)
    Y, _ = compose(tree).block(16, n_head=2)(X)
    assert Y.shape == X.shape
