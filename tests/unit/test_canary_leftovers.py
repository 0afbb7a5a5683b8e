"""Canary files an interrupted red-team run planted are removed; real files never are."""

from __future__ import annotations

from pathlib import Path

from support.canaries import LEFTOVER, is_planted, remove_leftover_canaries


def test_only_planted_canaries_are_removed(tmp_path: Path) -> None:
    planted = tmp_path / "secrets" / "token"
    planted.parent.mkdir()
    planted.write_text(f"{LEFTOVER}var-run-secrets-token-0123\n")
    real = tmp_path / "credentials"
    real.write_text("[default]\naws_secret_access_key = a-real-secret\n")
    missing = tmp_path / "absent"

    removed = remove_leftover_canaries((planted, real, missing))

    assert removed == [planted]
    assert not planted.exists()
    assert real.read_text().startswith("[default]")
    assert not is_planted(real)
    assert not is_planted(missing)
