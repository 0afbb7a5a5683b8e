"""`genesys noise` end to end: one design trained with several seeds, its noise floor stored."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_local_run import SPEC as TINY

from genesys.store import open_store
from genesys.store.archive import load_archive

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SPEC = copy.deepcopy(TINY)  # the tiny run of test_local_run, one rung, a short evaluation
SPEC["metadata"]["name"] = "noisy"
SPEC["spec"]["ladder"] = {
    "rungs": [{"name": "nano", "preset": "nano", "budget": 2, "tokens": 12288}]
}
SPEC["spec"]["verification"]["evalLimit"] = 20


def noise(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "genesys", "noise", str(spec), *args]
    return subprocess.run(
        [*command, "--workdir", str(spec.parent)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )


def write_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "noisy.yaml"
    spec.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    return spec


def test_noise_trains_one_design_per_seed_and_stores_its_floor(
    corpus: None, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path)
    done = noise(spec, "--rung", "nano", "--design", "gpt2", "--repeats", "3", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("training noisy-noise-seed-gpt2-nano-") == 3
    floor = json.loads(done.stdout[done.stdout.index("{") :])
    losses = floor["values"]["val_loss"]
    assert len(set(losses)) == len(losses) == 3  # three seeds, three trainings
    assert floor["std"]["val_loss"] > 0
    assert "genesys_cloze/acc" in floor["values"]
    archive = load_archive(open_store(str(tmp_path / "store" / "runs" / "noisy")))
    assert archive.noise_floor()["val_loss"] == pytest.approx(floor["std"]["val_loss"])

    again = noise(spec, "--rung", "nano", "--repeats", "3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "training " not in again.stdout  # every repeat has its result: nothing retrained
    assert "noise floor of seed-gpt2 at nano: 3 repeat(s)" in again.stdout


def test_noise_refuses_an_unknown_rung_design_or_a_single_repeat(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    rung = noise(spec, "--rung", "giant")
    assert rung.returncode == 2
    assert "--rung 'giant' is not a rung of the spec (nano)" in rung.stderr
    design = noise(spec, "--rung", "nano", "--design", "d0042")
    assert design.returncode == 2
    assert "--design 'd0042' is neither a seed" in design.stderr
    not_a_seed = noise(spec, "--rung", "nano", "--design", "seed-nonesuch")
    assert not_a_seed.returncode == 2
    assert "--design 'seed-nonesuch' is neither a seed" in not_a_seed.stderr
    single = noise(spec, "--rung", "nano", "--repeats", "1")
    assert single.returncode == 2
    assert "--repeats must be at least 2" in single.stderr
