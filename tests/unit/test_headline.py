"""The headline: best discovered design against best seed, and never noise called a win."""

from __future__ import annotations

import pytest
from test_report import FITNESS, RUNGS, make_archive

from genesys.report.headline import headline, verdict
from genesys.store.archive import Archive, Verification
from genesys.store.noise import NoiseFloor


def with_noise(archive: Archive, losses: list[float]) -> Archive:
    floor = NoiseFloor(design="seed-gpt2", rung="micro", values={"val_loss": losses})
    archive.noise["noise/micro/seed-gpt2.json"] = floor
    return archive


def test_the_best_discovered_design_meets_the_best_seed_at_their_highest_common_rung() -> None:
    result = headline(make_archive(), FITNESS, RUNGS)
    assert (result.discovered, result.seed, result.rung) == ("d-005", "seed-gpt2", "micro")
    assert result.margin == pytest.approx(0.1)  # 2.8 - 2.7: the discovered design is better
    assert result.interval is None
    assert result.verdict == "unmeasured-win"
    assert "a win that may be noise" in result.text()


def test_a_margin_beyond_the_noise_floor_is_a_win() -> None:
    archive = with_noise(make_archive(), [2.80, 2.81, 2.79])  # sigma 0.01
    result = headline(archive, FITNESS, RUNGS)
    assert result.interval == pytest.approx(2 * 0.01 * 2**0.5)
    assert result.verdict == "beats"
    assert result.text().endswith("a discovered design beats the seeds beyond the noise floor")
    assert "+0.100 +- 0.028" in result.text()


def test_a_margin_inside_the_noise_floor_is_no_win() -> None:
    archive = with_noise(make_archive(), [2.7, 2.9, 2.8])  # sigma 0.1: +-0.28 swallows 0.1
    result = headline(archive, FITNESS, RUNGS)
    assert result.verdict == "ties"
    assert "no discovered design clearly beats the seeds" in result.text()


def test_when_a_seed_is_best_the_headline_says_no_discovered_design_beats_the_seeds() -> None:
    archive = make_archive()
    archive.designs["d-005"].verifications["micro"] = Verification("micro", "succeeded", 3.5)
    result = headline(archive, FITNESS, RUNGS)
    assert result.verdict == "loses"
    assert result.margin == pytest.approx(-0.7)
    assert result.text().endswith("no discovered design beats the seeds")
    measured = headline(with_noise(archive, [2.80, 2.81, 2.79]), FITNESS, RUNGS)
    assert measured.verdict == "loses"
    assert measured.text().endswith("no discovered design beats the seeds")


def test_quarantined_and_unverified_designs_never_headline() -> None:
    archive = make_archive()
    archive.designs["d-005"].verifications["micro"].status = "quarantined"
    archive.designs["d-005"].verifications["nano"].status = "quarantined"
    result = headline(archive, FITNESS, RUNGS)
    assert result.discovered != "d-005"
    assert result.rung == "nano"  # d-007 and d-009 verified nano only
    empty = headline(Archive("empty"), {}, RUNGS)
    assert empty.verdict == "none"
    assert empty.text().startswith("no discovered design has been verified")


@pytest.mark.parametrize(
    ("margin", "interval", "expected"),
    [
        (0.3, 0.2, "beats"),
        (0.2, 0.2, "ties"),
        (-0.2, 0.2, "ties"),
        (-0.3, 0.2, "loses"),
        (0.01, None, "unmeasured-win"),
        (0.0, None, "loses"),
    ],
)
def test_verdicts(margin: float, interval: float | None, expected: str) -> None:
    assert verdict(margin, interval) == expected
