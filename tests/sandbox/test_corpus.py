"""The design corpus: every design is classified by its expected check, in the real sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from genesys.api.ladder import preset_rung
from genesys.sandbox.runner import GIB, SandboxLimits, check_design
from genesys_trainer.seeds import SEEDS, load_seed
from genesys_trainer.tree import load_tree

pytestmark = pytest.mark.slow

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "designs").iterdir())
NANO = preset_rung("nano", vocab_size=256)


def expectation(path: Path) -> tuple[str, float, int]:
    """(expected first failing check, timeout seconds, memory GiB) from the file's header."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)["metadata"]["expect"], 120.0, 4
    expect = re.search(r"^# expect: (\S+)", text, re.M)
    timeout = re.search(r"^# timeout: (\d+)", text, re.M)
    memory = re.search(r"^# memory-gib: (\d+)", text, re.M)
    assert expect, f"{path.name} needs a '# expect: CHECK' line"
    return (
        expect.group(1),
        float(timeout.group(1)) if timeout else 120.0,
        int(memory.group(1)) if memory else 4,
    )


def test_corpus_has_at_least_25_designs() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_design_is_rejected_by_its_expected_check(path: Path) -> None:
    expected, timeout, memory = expectation(path)
    report = check_design(
        load_tree(path).to_json(),
        rung=NANO,
        limits=SandboxLimits(timeout_seconds=timeout, memory_bytes=memory * GIB),
    )
    failures = report.failed()
    assert not report.passed
    assert failures[0].name == expected, [f.render() for f in failures]
    assert failures[0].message


@pytest.mark.parametrize("seed", list(SEEDS))
def test_seed_passes_every_check(seed: str) -> None:
    report = check_design(
        load_seed(seed).to_json(),
        rung=NANO,
        limits=SandboxLimits(timeout_seconds=300, memory_bytes=4 * GIB),
    )
    assert report.passed, report.render()
    names = [finding.name for finding in report.checks]
    for check in (
        "format",
        "imports",
        "forbidden",
        "compose",
        "param_fit",
        "forward",
        "batch_independence",
        "causality",
        "differentiability",
        "complexity",
        "effectiveness",
    ):
        assert check in names, names
    assert report.info["fit"]["within"] is True
    assert set(report.info["effectiveness"]["ratios"]) == {"time", "memory", "flops", "loss"}
