"""Fixtures of the end-to-end runs: the built-in corpus they train on."""

from __future__ import annotations

import pytest

from genesys_trainer.data.sources import SourceError, builtin_corpus_dir


@pytest.fixture(scope="module")
def corpus() -> None:
    try:
        builtin_corpus_dir()
    except SourceError as exc:
        pytest.skip(f"built-in corpus not installed: {exc}")
