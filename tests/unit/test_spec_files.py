"""Spec files that cannot be read as one YAML document: one line on stderr, exit 2.

Covers what ``genesys validate`` and ``genesys run`` do with files that are not UTF-8, alias
bombs, oversized files, duplicate keys and multi-document streams, and the loader in
:mod:`genesys.api.yamlio` underneath them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genesys.api.yamlio import (
    MAX_EXPANDED_NODES,
    MAX_SPEC_BYTES,
    SpecFileError,
    YAMLError,
    load_all,
    load_spec_bytes,
)
from genesys.cli import main

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = (REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8")

# "Billion laughs": nine levels of nine aliases each expand to 9**9 (387 million) scalars.
ALIAS_BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["apiVersion: genesys.dev/v1alpha1", "kind: DiscoveryRun", "metadata: {name: bomb}"]
    + ["spec: {seed: *a8}", ""]
)


def write(tmp_path: Path, data: bytes | str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status of ``genesys validate PATH`` and its only stderr line."""
    code = main(["validate", str(path)])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return code, lines[0]


# ------------------------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        pytest.param(b"\xff\xfeapiVersion: x", 0, id="utf16-bom"),
        pytest.param(
            "kind: DiscoveryRun\nmetadata: {name: caf\xe9}\n".encode("latin-1"), 39, id="latin1"
        ),
    ],
)
def test_validate_non_utf8_file_names_the_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, offset: int
) -> None:
    path = write(tmp_path, data)
    code, line = validate(path, capsys)
    assert code == 2
    assert line.startswith(f"{path}: not UTF-8: ")
    assert f"at byte offset {offset}" in line
    assert "must be UTF-8" in line


def test_validate_non_utf8_file_has_no_traceback_in_a_subprocess(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xff\xfeapiVersion: x")
    result = subprocess.run(
        [sys.executable, "-m", "genesys", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: not UTF-8: byte 0xff at byte offset 0 (line 1); a spec file must be UTF-8"
    ]


def test_validate_utf8_bom_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + QUICKSTART.encode("utf-8"))
    assert main(["validate", str(path)]) == 0
    assert "valid DiscoveryRun/quickstart" in capsys.readouterr().out


def test_load_spec_bytes_offset_counts_the_bom() -> None:
    with pytest.raises(SpecFileError, match=r"byte 0xe9 at byte offset 11 \(line 2\)"):
        load_spec_bytes(b"\xef\xbb\xbfa: 1\nb: \xe9", source="s.yaml")


# --------------------------------------------------------------------------------- size limits


@pytest.mark.timeout(10)
def test_validate_alias_bomb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ALIAS_BOMB)
    code, line = validate(path, capsys)
    assert code == 2
    assert line == (
        f"{path}: too many YAML nodes: more than {MAX_EXPANDED_NODES}, counting each alias as "
        "all the nodes it stands for"
    )


@pytest.mark.timeout(10)
def test_run_alias_bomb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ALIAS_BOMB)
    assert main(["run", str(path), "--workdir", str(tmp_path / "work")]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{path}: too many YAML nodes: more than {MAX_EXPANDED_NODES}, counting each alias as "
        "all the nodes it stands for"
    ]
    assert not (tmp_path / "work").exists()


@pytest.mark.timeout(10)
def test_load_all_refuses_an_alias_bomb_as_a_yaml_error() -> None:
    with pytest.raises(YAMLError, match="too many YAML nodes"):
        load_all(ALIAS_BOMB)


def test_load_spec_bytes_accepts_aliases_under_the_cap() -> None:
    text = "base: &base {cpu: '1', memory: 4Gi}\nrungs:\n  - <<: *base\n    gpus: 0\n  - *base\n"
    document = load_spec_bytes(text.encode("utf-8"), source="s.yaml")
    assert document["rungs"] == [
        {"cpu": "1", "memory": "4Gi", "gpus": 0},
        {"cpu": "1", "memory": "4Gi"},
    ]


def aliased_list(n: int) -> bytes:
    """A list of n items written once and referred to by 9 aliases: 14 + 10 n nodes expanded.

    The mapping, its two keys and the list of aliases are 4; the anchored list and its items
    are 1 + n, counted once where written and 9 times where aliased.
    """
    items = ", ".join(["x"] * n)
    return f"a: &a [{items}]\nb: [{', '.join(['*a'] * 9)}]\n".encode()


def test_load_spec_bytes_accepts_exactly_the_node_cap() -> None:
    n = (MAX_EXPANDED_NODES - 14) // 10
    document = load_spec_bytes(aliased_list(n), source="s.yaml")
    assert [len(items) for items in document["b"]] == [n] * 9


def test_load_spec_bytes_refuses_one_alias_expansion_over_the_node_cap() -> None:
    n = (MAX_EXPANDED_NODES - 14) // 10 + 1
    with pytest.raises(SpecFileError, match="too many YAML nodes: more than"):
        load_spec_bytes(aliased_list(n), source="s.yaml")


@pytest.mark.timeout(10)
def test_load_spec_bytes_refuses_too_many_written_nodes() -> None:
    data = ("[" + "1, " * MAX_EXPANDED_NODES + "1]\n").encode()
    assert len(data) < MAX_SPEC_BYTES
    with pytest.raises(SpecFileError, match="too many YAML nodes: more than"):
        load_spec_bytes(data, source="s.yaml")


def test_validate_recursive_alias_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "kind: DiscoveryRun\nspec: &loop\n  seed: [*loop]\n")
    code, line = validate(path, capsys)
    assert code == 2
    assert (
        line
        == f"{path}: line 2, column 7: recursive alias: the node anchored here contains an alias to itself"
    )


def test_validate_file_over_the_size_cap_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    padding = "# " + "x" * 97 + "\n"
    text = QUICKSTART + padding * (MAX_SPEC_BYTES // len(padding))
    assert len(text) > MAX_SPEC_BYTES
    path = write(tmp_path, text)
    code, line = validate(path, capsys)
    assert code == 2
    assert line == (
        f"{path}: larger than {MAX_SPEC_BYTES} bytes (1 MiB), the limit for a spec file"
    )


def test_validate_file_at_the_size_cap_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, QUICKSTART + "#" * (MAX_SPEC_BYTES - len(QUICKSTART) - 1) + "\n")
    assert path.stat().st_size == MAX_SPEC_BYTES
    assert main(["validate", str(path)]) == 0
    assert "valid DiscoveryRun/quickstart" in capsys.readouterr().out


# ------------------------------------------------------------------------------ duplicate keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            QUICKSTART + "spec:\n  seed: 1\n",
            f"line {QUICKSTART.count(chr(10)) + 1}, column 1: duplicate key 'spec' "
            "(first on line 8)",
            id="spec",
        ),
        pytest.param(
            QUICKSTART.replace("budget: 10\n", "budget: 10\n        budget: 1\n"),
            "line 17, column 9: duplicate key 'budget' (first on line 16)",
            id="rung-budget",
        ),
        pytest.param(
            QUICKSTART.replace("seed: 0\n", "seed: 0\n  'seed': 0\n"),
            "line 10, column 3: duplicate key 'seed' (first on line 9)",
            id="quoted",
        ),
        pytest.param(
            "a: 1\n01: x\n1: y\n",
            "line 3, column 1: duplicate key 1 (first on line 2)",
            id="same-int",
        ),
    ],
)
def test_validate_duplicate_key_names_key_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    code, line = validate(path, capsys)
    assert code == 2
    assert line == f"{path}: {expected}"


def test_load_spec_bytes_keys_of_different_types_are_not_duplicates() -> None:
    assert load_spec_bytes(b"1: int\n'1': str\n", source="s.yaml") == {1: "int", "1": "str"}


def test_load_all_refuses_duplicate_keys() -> None:
    with pytest.raises(SpecFileError, match="duplicate key 'a'"):
        load_all("---\nb: 1\n---\na: 1\na: 2\n")


# ---------------------------------------------------------------------------- document count


def test_validate_multi_document_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, QUICKSTART + "\n---\n" + QUICKSTART)
    code, line = validate(path, capsys)
    assert code == 2
    assert line == f"{path}: expected one document per file, found 2"


def test_run_multi_document_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, QUICKSTART + "\n---\n" + QUICKSTART)
    assert main(["run", str(path), "--workdir", str(tmp_path / "work")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: expected one document per file, found 2"
    ]
    assert not (tmp_path / "work").exists()


def test_validate_empty_documents_do_not_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "---\n" + QUICKSTART + "---\n")
    assert main(["validate", str(path)]) == 0
    assert "valid DiscoveryRun/quickstart" in capsys.readouterr().out


def test_validate_file_with_no_document_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "# nothing\n---\n")
    code, line = validate(path, capsys)
    assert code == 2
    assert line == f"{path}: expected one document per file, found none"


def test_load_all_still_reads_every_document() -> None:
    assert load_all("a: 1\n---\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]


# ------------------------------------------------------------------------- syntax and loading


def test_validate_yaml_syntax_error_is_one_line_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "kind: DiscoveryRun\nspec: [unclosed\n")
    code, line = validate(path, capsys)
    assert code == 2
    assert line == (
        f"{path}: line 3, column 1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence on line 2)"
    )


def test_load_spec_bytes_keeps_timestamps_as_strings() -> None:
    document = load_spec_bytes(b"deadline: 2026-12-01T00:00:00Z\nday: 2026-12-01\n", source="s")
    assert document == {"deadline": "2026-12-01T00:00:00Z", "day": "2026-12-01"}


def test_load_spec_bytes_builds_no_python_objects() -> None:
    with pytest.raises(SpecFileError, match="invalid YAML: could not determine a constructor"):
        load_spec_bytes(b"a: !!python/object:os.system ls\n", source="s.yaml")


def test_spec_file_error_renders_source_and_message() -> None:
    error = SpecFileError("expected one document per file, found 2", source="x.yaml")
    assert str(error) == "x.yaml: expected one document per file, found 2"
    assert error.message == "expected one document per file, found 2"
    assert isinstance(error, ValueError)
