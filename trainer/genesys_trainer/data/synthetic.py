"""Synthetic tasks that separate architectures at tiny scale (Zoology; Based): recall and copying.

Three generators, each a pure function of a ``random.Random``, written in plain text so that any
tokenizer can read them (one character is one token for the byte tokenizer):

- **multi-query associative recall** (``mqar``): key=value pairs, then queries of some keys;
  ``mqar: a=7 k=2 x=9 ; k=2 a=7``;
- **selective copying** (``copy``): content letters scattered among noise dots, then the
  letters in order; ``copy: ..k.x...m. | kxm``;
- **induction heads** (``induction``): a random string in which a bigram repeats; after the
  second occurrence of its first letter, the second follows; ``induction: qzrtu...qz``.

Each also yields multiple-choice items for evaluation (context, choices, label), from a separate
seed, so trained models can be scored against chance (1 / number of choices).

What must stay true: the same seed gives the same text and items, on every machine.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

KEYS = string.ascii_lowercase
VALUES = string.digits
LETTERS = string.ascii_lowercase


@dataclass(frozen=True, slots=True)
class Choice:
    """One multiple-choice item."""

    context: str
    choices: list[str]
    label: int


def mqar_text(rng: random.Random, pairs: int = 8, queries: int = 4) -> str:
    """Key=value pairs, then queried keys with their values."""
    keys = rng.sample(KEYS, pairs)
    values = [rng.choice(VALUES) for _ in keys]
    body = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
    asked = rng.sample(range(pairs), queries)
    tail = " ".join(f"{keys[i]}={values[i]}" for i in asked)
    return f"mqar: {body} ; {tail}"


def mqar_item(rng: random.Random, pairs: int = 8, n_choices: int = 4) -> Choice:
    """Recall the value of one key."""
    keys = rng.sample(KEYS, pairs)
    values = [rng.choice(VALUES) for _ in keys]
    body = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
    target = rng.randrange(pairs)
    answer = values[target]
    distractors = rng.sample([v for v in VALUES if v != answer], n_choices - 1)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return Choice(f"mqar: {body} ; {keys[target]}=", choices, choices.index(answer))


def copy_text(rng: random.Random, length: int = 24, content: int = 4) -> str:
    """Content letters among noise, then the letters in order."""
    letters = [rng.choice(LETTERS) for _ in range(content)]
    slots = sorted(rng.sample(range(length), content))
    noise = ["."] * length
    for slot, letter in zip(slots, letters, strict=True):
        noise[slot] = letter
    return f"copy: {''.join(noise)} | {''.join(letters)}"


def copy_item(rng: random.Random, length: int = 24, content: int = 4, n_choices: int = 4) -> Choice:
    """Copy the next content letter."""
    text = copy_text(rng, length, content)
    head, letters = text.split(" | ")
    known = rng.randrange(content)
    answer = letters[known]
    distractors = rng.sample([c for c in LETTERS if c != answer], n_choices - 1)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return Choice(f"{head} | {letters[:known]}", choices, choices.index(answer))


def induction_text(rng: random.Random, length: int = 32) -> str:
    """A random letter string in which a bigram occurs twice."""
    letters = [rng.choice(LETTERS) for _ in range(length)]
    first = rng.randrange(0, length // 2 - 1)
    second = rng.randrange(length // 2, length - 1)
    letters[second], letters[second + 1] = letters[first], letters[first + 1]
    return f"induction: {''.join(letters)}"


def induction_item(rng: random.Random, length: int = 32, n_choices: int = 4) -> Choice:
    """After a letter seen before, predict the letter that followed it."""
    letters = [rng.choice(LETTERS) for _ in range(length)]
    first = rng.randrange(0, length // 2 - 1)
    trigger, answer = letters[first], letters[first + 1]
    letters = [
        c if c != trigger else rng.choice([x for x in LETTERS if x != trigger]) for c in letters
    ]
    letters[first], letters[first + 1] = trigger, answer
    context = "".join(letters) + trigger
    distractors = rng.sample([c for c in LETTERS if c not in (answer, trigger)], n_choices - 1)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return Choice(f"induction: {context}", choices, choices.index(answer))


TEXT_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "mqar": mqar_text,
    "copy": copy_text,
    "induction": induction_text,
}
ITEM_GENERATORS: dict[str, Callable[[random.Random], Choice]] = {
    "genesys_mqar": mqar_item,
    "genesys_selective_copy": copy_item,
    "genesys_induction": induction_item,
}


def synthetic_documents(seed: int) -> Iterator[str]:
    """An endless, seeded stream of synthetic training texts, cycling the three tasks."""
    rng = random.Random(seed)
    generators = list(TEXT_GENERATORS.values())
    while True:
        yield generators[rng.randrange(len(generators))](rng)


def choice_items(task: str, count: int, seed: int) -> list[Choice]:
    """``count`` evaluation items of one task."""
    rng = random.Random(f"{task}:{seed}")
    return [ITEM_GENERATORS[task](rng) for _ in range(count)]


__all__ = [
    "ITEM_GENERATORS",
    "TEXT_GENERATORS",
    "Choice",
    "choice_items",
    "synthetic_documents",
]
