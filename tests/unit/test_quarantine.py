"""Quarantine: the leak guard's results and implausibly low losses never rank, climb or parent."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from genesys.api.discoveryrun import DiscoveryRunSpec, Selection
from genesys.engine.actions import StartVerification
from genesys.engine.plan import Observed, plan
from genesys.evolution.ranking import fitness
from genesys.evolution.selection import select_parents
from genesys.report import leaderboard, render_html, render_text
from genesys.store.archive import (
    Archive,
    DesignRecord,
    Verification,
    load_archive,
    quarantine_implausible,
)
from genesys.store.base import LocalStore
from genesys.store.documents import (
    DesignDocument,
    DesignMetadata,
    UnitEntry,
    VerificationResult,
    write_document,
)
from genesys.store.quarantine import (
    MIN_PERPLEXITY_RATIO,
    QUARANTINED,
    best_seed_losses,
    implausible_loss,
    leak_guard_reason,
    perplexity_ratio,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)
LEAK = "leak guard: not causal in eval mode on real validation data at length 256"


def ok(rung: str, loss: float, cloze: float = 0.4) -> Verification:
    return Verification(
        rung=rung, status="succeeded", val_loss=loss, metrics={"genesys_cloze": {"acc_norm": cloze}}
    )


def record(design_id: str, seq: int, *verifications: Verification) -> DesignRecord:
    operator = "seed" if design_id.startswith("seed-") else "mutation"
    parents = [] if operator == "seed" else ["seed-gpt2"]
    return DesignRecord(
        design_id,
        design_id,
        operator,
        parents,
        seq,
        verifications={v.rung: v for v in verifications},
    )


def make_archive() -> Archive:
    archive = Archive("r")
    for item in [
        record("seed-gpt2", 0, ok("nano", 2.34, 0.32)),
        record("seed-mamba2", 1, ok("nano", 1.45, 0.50)),
        record("seed-rwkv6", 2, Verification("nano", "failed", reason="too slow")),
        record("d0000", 5, ok("nano", 1.30, 0.45)),  # better, plausibly
        record("d0001", 6, ok("nano", 0.20, 0.99)),  # far better than any seed: a leak
        record("d0002", 7, ok("micro", 0.10)),  # no seed at micro: no reference
    ]:
        archive.designs[item.id] = item
    return archive


# ------------------------------------------------------------------------ pure rules


def test_the_margin_is_a_perplexity_ratio_of_one_half() -> None:
    assert MIN_PERPLEXITY_RATIO == 0.5
    assert perplexity_ratio(1.0, 1.0) == 1.0
    assert perplexity_ratio(1.0 - math.log(2), 1.0) == pytest.approx(0.5)
    gap = math.log(2)  # nats below the best seed where quarantine starts
    assert implausible_loss("nano", 1.45 - gap + 1e-6, 1.45) is None
    reason = implausible_loss("nano", 1.45 - gap - 1e-6, 1.45)
    assert reason is not None
    assert reason.startswith("implausible validation loss at nano: 0.7569 against")
    assert "perplexity ratio 0.500 < 0.5" in reason
    assert implausible_loss("nano", 0.2, 1.45, min_ratio=0.1) is None


@pytest.mark.parametrize(
    ("loss", "seed"),
    [(None, 2.0), (0.1, None), (math.nan, 2.0), (0.1, math.inf), (-math.inf, 2.0)],
)
def test_unknown_losses_are_never_quarantined(loss: float | None, seed: float | None) -> None:
    assert implausible_loss("nano", loss, seed) is None


def test_best_seed_losses_take_the_lowest_success_per_rung() -> None:
    best = best_seed_losses(
        [
            ("nano", "succeeded", 2.3),
            ("nano", "succeeded", 1.4),
            ("nano", "failed", 0.1),
            ("nano", "succeeded", math.nan),
            ("micro", "quarantined", 0.5),
            ("mini", "succeeded", None),
            ("micro", "succeeded", 2.0),
        ]
    )
    assert best == {"nano": 1.4, "micro": 2.0}


def test_result_documents_stay_backward_compatible() -> None:
    old = VerificationResult.model_validate_json(
        '{"schema_version": 1, "design": "d", "rung": "nano", "status": "succeeded", '
        '"val_loss": 2.0}'
    )
    assert old.quarantine is None
    assert leak_guard_reason(old) is None
    assert Verification.from_result("nano", old).status == "succeeded"


def test_a_leak_guard_result_reads_as_quarantined_with_its_reason() -> None:
    result = VerificationResult(
        design="d", rung="nano", status="failed", reason=LEAK, val_loss=0.05, quarantine=LEAK
    )
    verification = Verification.from_result("nano", result)
    assert verification.status == QUARANTINED
    assert verification.quarantined
    assert verification.reason == LEAK
    assert verification.val_loss == 0.05


# --------------------------------------------------------------------- the archive


def test_implausible_successes_are_quarantined_and_seeds_never() -> None:
    archive = make_archive()
    assert quarantine_implausible(archive) == [("d0001", "nano")]
    designs = archive.designs
    assert designs["d0001"].verifications["nano"].status == QUARANTINED
    assert designs["d0001"].quarantine is not None
    assert designs["d0001"].quarantine.startswith("nano: implausible validation loss at nano")
    assert "1.4500" in designs["d0001"].quarantine  # against the best seed, mamba2
    assert designs["d0000"].quarantine is None
    assert designs["d0002"].quarantine is None
    assert quarantine_implausible(archive) == []  # idempotent
    archive.designs["seed-gpt2"].verifications["nano"].val_loss = 0.01
    assert quarantine_implausible(archive) == []


def test_load_archive_applies_both_rules(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    results = {
        "seed-gpt2": VerificationResult(
            design="gpt2", rung="nano", status="succeeded", val_loss=2.3
        ),
        "d0000": VerificationResult(design="a", rung="nano", status="succeeded", val_loss=0.3),
        "d0001": VerificationResult(
            design="b", rung="nano", status="failed", reason=LEAK, val_loss=2.0, quarantine=LEAK
        ),
        "d0002": VerificationResult(design="c", rung="nano", status="succeeded", val_loss=2.1),
    }
    for seq, (design_id, result) in enumerate(results.items()):
        metadata = DesignMetadata(
            operator="seed" if design_id.startswith("seed-") else "mutation", seq=seq
        )
        document = DesignDocument(
            name=design_id,
            root="Block",
            units={"Block": UnitEntry(source="pass")},
            metadata=metadata,
        )
        write_document(store, f"designs/{design_id}/design.json", document)
        write_document(store, f"designs/{design_id}/verifications/nano/result.json", result)
    archive = load_archive(store, "r")
    assert archive.problems == []
    quarantined = {d.id: d.quarantine for d in archive.designs.values() if d.quarantine}
    assert set(quarantined) == {"d0000", "d0001"}
    assert "implausible validation loss" in quarantined["d0000"]
    assert quarantined["d0001"] == f"nano: {LEAK}"
    assert set(fitness(archive)) == {"seed-gpt2", "d0002"}


# ------------------------------------------------------- ranking, parents, promotion


def test_quarantined_designs_are_never_ranked() -> None:
    archive = make_archive()
    quarantine_implausible(archive)
    assert "d0001" not in fitness(archive)
    assert {"seed-gpt2", "seed-mamba2", "d0000", "d0002"} <= set(fitness(archive))


def test_quarantined_designs_are_never_parents_even_as_a_fallback() -> None:
    archive = Archive("r")
    archive.designs["seed-gpt2"] = record("seed-gpt2", 0, ok("nano", 2.3))
    bad = Verification("nano", QUARANTINED, val_loss=0.1, reason=LEAK)
    for index in range(4):
        archive.designs[f"d{index:04d}"] = record(f"d{index:04d}", 5 + index, bad)
    noisy = Selection(noise=1.0, seed_warmup=0, restart_probability=0.0)
    scores = {"seed-gpt2": 0.0, "d0000": 9.0}  # even a stale fitness cannot bring one back
    picks = set()
    for seed in range(50):
        rng = random.Random(seed)
        picks.update(select_parents(rng, archive.ordered(), scores, {}, 2, noisy))
    assert picks == {"seed-gpt2"}


def test_quarantined_designs_never_climb() -> None:
    spec = DiscoveryRunSpec.model_validate(
        {
            "ladder": {
                "rungs": [
                    {"name": "nano", "preset": "nano", "budget": 2},
                    {"name": "micro", "preset": "micro", "budget": 9},
                    {"name": "mini", "preset": "mini", "budget": 1},
                ]
            },
            "agents": {"offline": True},
            "sessions": {"maxDesigns": 2},
            "verification": {
                "maxParallelJobsPerRung": 9,
                "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
            },
        }
    )
    archive = Archive("r")
    for seq, name in enumerate(("gpt2", "mamba2", "retnet", "rwkv6", "ttt")):
        archive.designs[f"seed-{name}"] = record(f"seed-{name}", seq, ok("nano", 2.3))
    leaked = Verification("mini", QUARANTINED, val_loss=0.1, reason=LEAK)
    archive.designs["d0000"] = record("d0000", 5, ok("nano", 2.0, 0.6), leaked)
    archive.designs["d0001"] = record("d0001", 6, ok("nano", 2.2, 0.3))
    result = plan(spec, Observed(archive), NOW)
    starts = {(a.design_id, a.rung) for a in result.actions if isinstance(a, StartVerification)}
    assert ("d0001", "micro") in starts
    assert ("d0000", "micro") not in starts
    assert result.best != "d0000"


# ------------------------------------------------------------------------- the report


def test_the_report_shows_quarantined_designs_last_with_their_reason() -> None:
    archive = make_archive()
    quarantine_implausible(archive)
    scores = {**fitness(archive), "d0001": 99.0}  # a stale fitness still never wins
    rows = leaderboard(archive, scores, ["nano", "micro"])
    assert rows[-1].id == "d0001"
    assert rows[-1].fitness is None
    assert rows[-1].quarantine is not None
    assert rows[0].id != "d0001"
    text = render_text(rows)
    assert "d0001" in text.splitlines()[-2]
    assert QUARANTINED in text.splitlines()[-2]
    assert text.splitlines()[-1].startswith("quarantined d0001: nano: implausible validation")
    html_text = render_html(
        archive, scores, ["nano", "micro"], {"nano": 4, "micro": 2}, title="run"
    )
    assert "<h2>Quarantined</h2>" in html_text
    assert "<dt>quarantined designs</dt><dd>1</dd>" in html_text
    assert "<dt>best design</dt><dd>d0001" not in html_text
    assert "nano: implausible validation loss at nano: 0.2000 against" in html_text


def test_the_report_without_quarantine_reads_as_before() -> None:
    archive = make_archive()
    del archive.designs["d0001"]
    text = render_text(leaderboard(archive, fitness(archive), ["nano", "micro"]))
    assert QUARANTINED not in text
    html_text = render_html(archive, fitness(archive), ["nano"], {"nano": 4}, title="run")
    assert "No quarantined designs." in html_text
