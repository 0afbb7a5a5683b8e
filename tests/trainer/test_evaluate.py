"""Scoring multiple-choice requests: shared forward passes give the scores of separate ones."""

from __future__ import annotations

import math
import random

import pytest
import torch

from genesys_trainer.compose import compose
from genesys_trainer.data.tokenizer import ByteTokenizer
from genesys_trainer.evaluate import GenesysLM, accuracy_stderrs
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import load_seed

CONTEXT_LENGTH = 64


@pytest.fixture(scope="module")
def lm() -> GenesysLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=256, n_embd=32, n_layer=2, n_head=4, block_size=CONTEXT_LENGTH)
    return GenesysLM(
        LanguageModel(compose(load_seed("gpt2")), config), ByteTokenizer(), batch_size=8
    )


def items(seed: int) -> list[tuple[list[int], list[int]]]:
    """Four choices per context: mostly one token, some three; some contexts past the limit."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(30):
        context = [rng.randrange(256) for _ in range(rng.randrange(1, 2 * CONTEXT_LENGTH))]
        width = 1 if rng.random() < 0.7 else 3
        pairs += [(context, [rng.randrange(256) for _ in range(width)]) for _ in range(4)]
    return pairs


def test_one_token_choices_of_one_context_share_one_forward_pass(lm: GenesysLM) -> None:
    pairs = [([1, 2, 3], [4]), ([1, 2, 3], [5]), ([1, 2, 3], [6, 7]), ([9], [4]), ([1, 2, 3], [8])]
    rows = lm._rows(pairs)
    assert [inputs for inputs, _ in rows] == [[1, 2, 3], [1, 2, 3, 6], [9]]
    assert rows[0][1] == [(0, 2, 3), (1, 2, 3), (4, 2, 3)]  # every choice at the last position
    assert rows[1][1] == [(2, 2, 4)]  # a longer continuation keeps its own row
    long_context = list(range(200))  # cut to the context length from the left, like the model
    assert lm._rows([(long_context, [7])])[0][0] == long_context[-CONTEXT_LENGTH:]


def test_shared_passes_score_like_one_request_at_a_time(lm: GenesysLM) -> None:
    pairs = items(0)
    together = lm._score(pairs)
    alone = [lm._score([pair])[0] for pair in pairs]
    assert len(lm._rows(pairs)) < len(pairs)  # the sharing happened
    for (score, greedy), (expected, expected_greedy) in zip(together, alone, strict=True):
        assert score == pytest.approx(expected, abs=1e-4)
        assert greedy == expected_greedy


def test_accuracy_standard_errors_are_those_of_a_mean_of_0_1_items() -> None:
    errors = accuracy_stderrs({"acc": 0.25, "acc_norm": 0.5, "other": 3.0}, 1201)
    assert errors == {
        "acc_stderr": pytest.approx(math.sqrt(0.25 * 0.75 / 1200)),
        "acc_norm_stderr": pytest.approx(math.sqrt(0.25 / 1200)),
    }
    assert accuracy_stderrs({"acc": 0.25}, None) == {}
    assert accuracy_stderrs({"acc": 0.25}, 1) == {}
