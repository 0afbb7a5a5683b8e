"""The genesys command line: exit codes and messages of validate and crds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genesys.api.discoveryrun import FinishReason
from genesys.cli import main, run_exit_code

REPO = Path(__file__).resolve().parents[2]


def test_validate_examples_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.yaml"))
    assert main(["validate", *examples]) == 0
    out = capsys.readouterr().out
    assert "DiscoveryRun/quickstart: ladder nano:10 -> micro:3" in out
    assert "14M:256 -> 31M:64 -> 70M:16 -> 125M:4 -> 350M:1" in out


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_validate_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n", encoding="utf-8")
    assert main(["validate", str(bad)]) == 2
    assert "invalid YAML" in capsys.readouterr().err


def test_validate_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    assert main(["validate", str(empty)]) == 2
    assert "found none" in capsys.readouterr().err


def test_validate_multi_document_file_is_refused_before_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    bad = good.replace("seed: 0", "seed: -1")
    stream = tmp_path / "two.yaml"
    stream.write_text(good + "\n---\n" + bad, encoding="utf-8")
    assert main(["validate", str(stream)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"{stream}: expected one document per file, found 2\n"
    assert captured.out == ""


def test_validate_reports_valid_and_invalid_files_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = REPO / "examples" / "quickstart.yaml"
    bad = REPO / "tests" / "fixtures" / "invalid" / "seed-negative.yaml"
    assert main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert "quickstart.yaml: valid" in captured.out
    assert "seed-negative.yaml: spec.seed" in captured.err


def test_crds_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--check", "--dir", str(REPO / "crds")]) == 0
    assert "current" in capsys.readouterr().out


def test_crds_check_fails_when_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "crds", tmp_path / "crds")
    target = next((tmp_path / "crds").glob("*discoveryruns.yaml"))
    target.write_text(target.read_text(encoding="utf-8").replace("Lifecycle", "Life"), "utf-8")
    assert main(["crds", "--check", "--dir", str(tmp_path / "crds")]) == 1
    assert "stale CRDs" in capsys.readouterr().err


def test_crds_check_fails_when_missing(tmp_path: Path) -> None:
    assert main(["crds", "--check", "--dir", str(tmp_path)]) == 1


def test_crds_write_then_check(tmp_path: Path) -> None:
    assert main(["crds", "--dir", str(tmp_path / "out")]) == 0
    assert main(["crds", "--check", "--dir", str(tmp_path / "out")]) == 0


def test_console_script_runs_in_a_subprocess() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "genesys",
            "validate",
            "-q",
            str(REPO / "examples" / "quickstart.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_unknown_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


@pytest.mark.parametrize("reason", list(FinishReason), ids=lambda r: r.value)
def test_run_exit_code_fails_only_a_run_without_result(reason: FinishReason) -> None:
    expected = 1 if reason in (FinishReason.ERROR, FinishReason.SESSIONS_FAILED) else 0
    assert run_exit_code(reason.value) == expected
