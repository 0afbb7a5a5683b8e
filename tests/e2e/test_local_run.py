"""`genesys run` end to end on one machine: a tiny discovery, killed mid-run and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genesys.api.validation import parse_discovery_run
from genesys.evolution.ranking import fitness
from genesys.report import headline
from genesys.store import open_store
from genesys.store.archive import load_archive

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "apiVersion": "genesys.dev/v1alpha1",
    "kind": "DiscoveryRun",
    "metadata": {"name": "tiny"},
    "spec": {
        "seed": 3,
        "ladder": {
            "rungs": [
                {"name": "nano", "preset": "nano", "budget": 2, "tokens": 24576},
                {"name": "micro", "preset": "micro", "budget": 1, "tokens": 24576},
            ]
        },
        "sessions": {"parallel": 1},
        "agents": {"offline": True},
        "checks": {"forwardLength": 128, "causalityLength": 24, "effectivenessSteps": 3},
        "verification": {
            "scheduler": "local",
            "maxParallelJobsPerRung": 2,
            "evalTasks": ["genesys_cloze"],
            "evalLimit": 400,
            "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
            "resources": {"gpus": 0, "cpu": "1", "memory": "4Gi"},
        },
        "storage": {"local": {"path": "store"}},
    },
}


def genesys(*args: str, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "genesys", *args, "--workdir", str(workdir)]


def test_run_killed_mid_run_resumes_without_duplicates(corpus: None, tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    command = genesys("run", str(spec), workdir=tmp_path)
    store_dir = tmp_path / "store"
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        start_new_session=True,
    ) as first:
        deadline = time.monotonic() + 240
        killed = False
        while time.monotonic() < deadline and first.poll() is None:
            designs = store_dir / "runs" / "tiny" / "designs"
            if designs.exists() and any(p.name.startswith("d") for p in designs.iterdir()):
                os.kill(first.pid, signal.SIGKILL)  # the driver only; its children live on
                killed = True
                break
            time.sleep(0.5)
        first.wait()
        assert first.stdout is not None
        first.stdout.read()
    assert killed, "the driver finished before a design appeared"
    second = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "finished:" in second.stdout
    assert "seed-gpt2" in second.stdout  # the leaderboard

    archive = load_archive(open_store(store_dir / "runs" / "tiny"))
    designs = [d for d in archive.designs.values() if not d.is_seed]
    assert len({d.id for d in designs}) == len(designs) == 2  # no duplicates, none lost
    for design in archive.designs.values():
        assert "nano" in design.verifications, design.id
    assert sum(1 for d in archive.designs.values() if "micro" in d.verifications) == 1
    implemented = [s for s in archive.sessions.values() if s.status == "implemented"]
    assert sorted(str(s.design) for s in implemented) == sorted(d.id for d in designs)
    assert (store_dir / "runs" / "tiny" / "report.html").exists()
    summary = json.loads((store_dir / "runs" / "tiny" / "summary.json").read_text())
    assert summary["reason"] == "BudgetsSpent"

    status = subprocess.run(
        [sys.executable, "-m", "genesys", "status", str(store_dir / "runs" / "tiny")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "rung nano: 2/2 verified" in status.stdout
    run = parse_discovery_run(SPEC)
    expected = headline(archive, fitness(archive, run.spec.selection), ["nano", "micro"])
    assert status.stdout.rstrip().endswith(expected.text())
    assert expected.text() in second.stdout  # genesys run ends with the same headline
    report = tmp_path / "r.html"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "genesys",
            "report",
            str(store_dir / "runs" / "tiny"),
            "-o",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert report.read_text().count("data:image/png;base64,") == 4


def test_run_with_an_invalid_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(SPEC))
    bad["spec"]["ladder"]["rungs"][0]["budget"] = 0
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(bad), encoding="utf-8")
    done = subprocess.run(
        genesys("run", str(spec), workdir=tmp_path),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 2
    assert "spec.ladder.rungs[0].budget" in done.stderr
