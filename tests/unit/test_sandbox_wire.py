"""The sandbox's messages, probes and seccomp program, as pure functions (no process started)."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from genesys.sandbox.boundary import (
    Boundary,
    SandboxUnavailableError,
    bubblewrap_problem,
    bwrap_command,
    requested_boundary,
    resolve_boundary,
)
from genesys.sandbox.probes import REPEATS, plan_probes, replace_after, verdicts
from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.seccomp import DENIED, UnsupportedArchitectureError, filter_program
from genesys.sandbox.wire import (
    MAGIC,
    ProbeShape,
    WireError,
    encode_frame,
    hidden_digests,
    parse_sandbox_report,
    read_frame,
)

pytestmark = pytest.mark.unit

NONCE = "ab" * 16


def passing_report() -> dict[str, object]:
    report = Report()
    report.add(Finding("compose", Status.PASS, "1 unit"))
    return report.to_json()


# ----------------------------------------------------------------------------------- wire


def test_a_frame_round_trips() -> None:
    blob = np.arange(12, dtype=np.float32).tobytes()
    result = {
        "stage": "probes",
        "report": passing_report(),
        "probes": [{"name": "p", "rows": 1, "length": 3, "width": 4, "offset": 0}],
    }
    frame = read_frame(io.BytesIO(encode_frame(result, blob)))
    assert frame is not None
    decoded, data = frame
    assert decoded.stage == "probes"
    assert data == blob
    assert read_frame(io.BytesIO(b"")) is None


@pytest.mark.parametrize(
    "data",
    [
        b"not a frame at all",
        MAGIC + struct.pack("<Q", 100) + b"{}",  # truncated
        MAGIC + struct.pack("<Q", 2**40),  # absurd length
        encode_frame({"stage": "final", "report": {"passed": True}}, b""),  # no checks
        encode_frame({"stage": "final", "report": passing_report(), "extra": 1}, b""),
        encode_frame({"stage": "done", "report": passing_report()}, b""),
    ],
    ids=["garbage", "truncated", "huge", "schema", "extra-field", "stage"],
)
def test_a_malformed_frame_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(WireError) as error:
        read_frame(io.BytesIO(data))
    assert str(error.value)


def test_a_report_whose_passed_flag_lies_is_refused() -> None:
    report = Report([Finding("causality", Status.FAIL, "leaks")])
    document = {**report.to_json(), "passed": True}
    message = json.dumps({"nonce": NONCE, "stage": "final", "report": document}).encode()
    parsed = parse_sandbox_report(message, NONCE)
    with pytest.raises(WireError, match="disagrees"):
        parsed.report.to_report()


def test_a_report_without_this_checks_nonce_is_forged() -> None:
    message = json.dumps({"nonce": "cd" * 16, "stage": "final", "report": passing_report()})
    with pytest.raises(WireError, match="forged"):
        parse_sandbox_report(message.encode(), NONCE)
    with pytest.raises(WireError, match="no report"):
        parse_sandbox_report(b"", NONCE)
    with pytest.raises(WireError, match="malformed"):
        parse_sandbox_report(b'{"nonce": 1}', NONCE)


def test_digests_are_per_position_and_bounded_by_the_blob() -> None:
    hidden = np.zeros((2, 3, 4), dtype=np.float32)
    hidden[1, 2, 0] = 1.0
    shape = ProbeShape(name="p", rows=2, length=3, width=4, offset=0)
    table = hidden_digests(hidden.tobytes(), shape)
    assert table[0] == [table[0][0]] * 3
    assert table[1][:2] == table[0][:2]
    assert table[1][2] != table[0][2]
    with pytest.raises(WireError):
        hidden_digests(hidden.tobytes()[:-4], shape)


# --------------------------------------------------------------------------------- probes


def digests_of(tokens: np.ndarray, block) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Digests of a toy 'block' applied row by row to token ids."""
    return [[str(v) for v in block(row)] for row in tokens]


@pytest.mark.parametrize("longest", [2, 24, 100, 128, 300])
def test_the_short_probe_length_follows_causality_length(longest: int) -> None:
    lengths = set()
    for seed in range(40):
        plan = plan_probes(context_length=512, vocab_size=256, seed=seed, longest_short=longest)
        short = next(p for p in plan.probes if p.name == "short-eval")
        lengths.add(short.reference.shape[1])
    assert min(lengths) >= max(2, (longest + 1) // 2)
    assert max(lengths) <= longest
    assert len(lengths) > 1 or longest == 2  # drawn at random, so a design cannot rely on it


def test_the_short_probe_never_exceeds_the_context() -> None:
    plan = plan_probes(context_length=48, vocab_size=256, seed=3, longest_short=128)
    short = next(p for p in plan.probes if p.name == "short-eval")
    assert short.reference.shape[1] == 48


def test_the_plan_covers_every_short_cut_and_the_full_context() -> None:
    plan = plan_probes(context_length=512, vocab_size=256, seed=7)
    names = {probe.name for probe in plan.probes}
    repeats = {f"repeat{i}-{'train' if i % 2 else 'eval'}" for i in range(REPEATS)}
    assert names == {
        "batch-eval",
        "batch-train",
        "short-eval",
        "short-train",
        "full-eval",
        "full-train",
        *repeats,
    }
    seeds = [probe.forward_seed for probe in plan.probes]
    assert len(set(seeds)) == len(seeds)  # a leak drawn from the shared random state is redrawn
    short = next(p for p in plan.probes if p.name == "short-eval")
    assert sorted(short.cuts) == list(range(short.reference.shape[1]))
    full = next(p for p in plan.probes if p.name == "full-eval")
    assert full.reference.shape[1] == 512
    assert min(full.cuts) < 256
    other = plan_probes(context_length=512, vocab_size=256, seed=8)
    assert other.model_seed != plan.model_seed


def test_replacement_changes_every_future_token_and_nothing_before() -> None:
    rng = np.random.default_rng(0)
    row = rng.integers(0, 5, size=50)
    changed = replace_after(rng, row, 20, 5)
    assert (changed[:21] == row[:21]).all()
    assert (changed[21:] != row[21:]).all()


def test_a_causal_block_passes_and_a_look_ahead_block_fails() -> None:
    plan = plan_probes(context_length=300, vocab_size=50, seed=3)

    def prefix_sum(row: np.ndarray) -> np.ndarray:
        return np.cumsum(row)

    def peek_ahead(row: np.ndarray, distance: int = 128) -> np.ndarray:
        ahead = np.concatenate([row, np.zeros(distance, dtype=row.dtype)])[distance:]
        return row + ahead

    for block, expected in ((prefix_sum, Status.PASS), (peek_ahead, Status.FAIL)):
        reference = {p.name: digests_of(p.reference, block) for p in plan.probes}
        perturbed = {p.name: digests_of(p.perturbed, block) for p in plan.probes}
        decided = verdicts(plan, reference, perturbed)
        assert decided[-1].name == "causality", decided
        assert decided[-1].status == expected, decided


def test_squaring_the_next_position_is_caught_by_random_replacement() -> None:
    plan = plan_probes(context_length=128, vocab_size=50, seed=5)

    def square_next(row: np.ndarray) -> np.ndarray:
        centred = row - 25
        return np.concatenate([centred[1:] ** 2, [0]])

    reference = {p.name: digests_of(p.reference, square_next) for p in plan.probes}
    perturbed = {p.name: digests_of(p.perturbed, square_next) for p in plan.probes}
    assert verdicts(plan, reference, perturbed)[-1].status == Status.FAIL


def test_batch_mixing_and_constant_output_fail() -> None:
    plan = plan_probes(context_length=64, vocab_size=50, seed=9)
    reference = {p.name: digests_of(p.reference, np.cumsum) for p in plan.probes}
    perturbed = {p.name: digests_of(p.perturbed, np.cumsum) for p in plan.probes}
    batch = next(p for p in plan.probes if p.kind == "batch")
    mixed = dict(perturbed)
    mixed[batch.name] = [["changed"] * len(row) for row in perturbed[batch.name]]
    decided = verdicts(plan, reference, mixed)
    assert [f.name for f in decided] == ["batch_independence"]
    constant = {name: [["0"] * len(row) for row in rows] for name, rows in reference.items()}
    decided = verdicts(plan, constant, constant)
    assert decided[-1].status == Status.FAIL
    assert "does not depend" in decided[-1].message


def test_missing_or_misshapen_probe_outputs_fail() -> None:
    plan = plan_probes(context_length=64, vocab_size=50, seed=1)
    reference = {p.name: digests_of(p.reference, np.cumsum) for p in plan.probes}
    truncated = {name: rows[:-1] for name, rows in reference.items()}
    assert verdicts(plan, reference, truncated)[0].status == Status.FAIL
    assert verdicts(plan, reference, {})[0].status == Status.FAIL


# -------------------------------------------------------------------------------- seccomp


def test_the_seccomp_program_is_whole_instructions_for_each_known_architecture() -> None:
    for arch in DENIED:
        program = filter_program(arch)
        assert len(program) % 8 == 0
        assert len(program) // 8 > len(DENIED[arch])
    with pytest.raises(UnsupportedArchitectureError):
        filter_program("sparc")


# ------------------------------------------------------------------------------- boundary


def test_the_boundary_comes_from_the_flag_then_the_environment() -> None:
    assert requested_boundary(None, {}) is Boundary.BUBBLEWRAP
    assert requested_boundary(None, {"GENESYS_SANDBOX": "unconfined"}) is Boundary.UNCONFINED
    assert requested_boundary("container", {"GENESYS_SANDBOX": "unconfined"}) is Boundary.CONTAINER
    with pytest.raises(SandboxUnavailableError, match="not one of"):
        requested_boundary("chroot", {})


def test_bubblewrap_is_refused_with_advice_where_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    bubblewrap_problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError, match="unconfined"):
            resolve_boundary(Boundary.BUBBLEWRAP)
        assert resolve_boundary(Boundary.UNCONFINED) is Boundary.UNCONFINED
    finally:
        monkeypatch.undo()
        bubblewrap_problem.cache_clear()


def test_the_bwrap_command_isolates_and_clears_the_environment(tmp_path: object) -> None:
    from pathlib import Path

    argv = bwrap_command(
        ["python", "-c", "pass"],
        scratch=Path(str(tmp_path)),
        env={"HOME": "/sandbox"},
        seccomp_fd=9,
    )
    text = " ".join(argv)
    for flag in (
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop ALL",
        "--uid 65534",
        "--seccomp 9",
        "--tmpfs /tmp",
        "--proc /proc",
    ):
        assert flag in text
    assert "--share-net" not in text
    assert argv[-4:] == ["--", "python", "-c", "pass"]
    assert f"--bind {tmp_path} /sandbox" in text
    assert "--bind / " not in text
    assert "--ro-bind / /" not in text


def test_verdicts_stay_when_a_later_check_fails() -> None:
    from genesys.sandbox.report import Finding, Report, Status
    from genesys.sandbox.runner import with_verdicts

    def report(*checks: tuple[str, Status]) -> Report:
        return Report(checks=[Finding(name, status, "-") for name, status in checks])

    verdicts = [
        Finding("batch_independence", Status.PASS, "-"),
        Finding("causality", Status.PASS, "-"),
    ]
    late = report(
        ("forward", Status.PASS), ("unit_tests", Status.PASS), ("effectiveness", Status.FAIL)
    )
    names = [f.name for f in with_verdicts(late, list(verdicts)).checks]
    assert names == ["forward", "unit_tests", "batch_independence", "causality", "effectiveness"]
    early = report(("forward", Status.FAIL), ("unit_tests", Status.PASS))
    assert [f.name for f in with_verdicts(early, list(verdicts)).checks] == [
        "forward",
        "unit_tests",
    ]
