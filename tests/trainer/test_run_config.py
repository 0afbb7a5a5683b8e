"""The trainer reads a run's resolved config: the rung (free name), the recipe and the guards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity, config_digest, resolve_run_config
from genesys.store import open_store
from genesys.store.configs import write_run_config
from genesys.store.documents import VerificationResult, read_document
from genesys_trainer.train import parse_args, record_result

REPO = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = {
    "ladder": {
        "rungs": [
            {
                "name": "small",
                "preset": "nano",
                "budget": 2,
                "lr": 5e-4,
                "contextLength": 128,
                "batchTokens": 4096,
                "tokens": 8192,
                "slowdownTolerance": 9.0,
                "deadlineSeconds": 900,
            },
            {"name": "bigger", "preset": "micro", "budget": 1},
        ]
    },
    "verification": {
        "scheduler": "local",
        "evalTasks": ["genesys_cloze"],
        "evalLimit": 7,
        "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
        "training": {
            "minLrRatio": 0.3,
            "warmupFraction": 0.1,
            "weightDecay": 0.05,
            "gradClip": 0.5,
            "maxLoss": 50.0,
            "maxGradNorm": 100.0,
            "checkpointEveryMinutes": 3.0,
        },
    },
    "seed": 7,
}


def stored_config(root: Path, data: str) -> tuple[str, Any]:
    run = DiscoveryRun.model_validate({"metadata": {"name": "r"}, "spec": SPEC})
    config = resolve_run_config(run, identity=RunIdentity(name="r"), data_uri=data)
    return write_run_config(open_store(root).child("runs/r"), config), config


def test_trainer_takes_rung_recipe_and_guards_from_the_run_config(tmp_path: Path) -> None:
    uri, config = stored_config(tmp_path, "/prepared")
    cfg = parse_args(["--design", "gpt2", "--rung", "small", "--config", uri, "--out", "/o"])
    rung = cfg.rung
    assert (rung.name, rung.n_embd, rung.n_layer) == ("small", 64, 2)  # the nano preset's shape
    assert (rung.lr, rung.context_length, rung.batch_tokens, rung.tokens) == (5e-4, 128, 4096, 8192)
    assert (rung.slowdown_tolerance, rung.deadline_seconds) == (9.0, 900)
    training = cfg.training
    assert (training.min_lr_ratio, training.warmup_fraction, training.weight_decay) == (
        0.3,
        0.1,
        0.05,
    )
    assert (training.grad_clip, training.max_loss, training.max_grad_norm) == (0.5, 50.0, 100.0)
    assert training.checkpoint_every_minutes == 3.0
    assert (cfg.seed, cfg.eval_tasks, cfg.eval_limit, cfg.data) == (
        7,
        ["genesys_cloze"],
        7,
        "/prepared",
    )
    assert cfg.config_digest == config_digest(config)
    other = parse_args(["--design", "gpt2", "--rung", "bigger", "--config", uri, "--out", "/o"])
    assert (other.rung.name, other.rung.n_embd, other.rung.lr) == ("bigger", 96, 2e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rung", "nano"], "no rung 'nano' in the run config"),
        (["--rung", "small", "--lr", "0.1"], "--lr: the run config fixes these"),
        (["--rung", "small", "--tokens", "9"], "--tokens: the run config fixes these"),
    ],
    ids=["unknown-rung", "lr-with-config", "tokens-with-config"],
)
def test_trainer_refuses_what_the_run_config_fixes(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = stored_config(tmp_path, "/prepared")
    with pytest.raises(SystemExit) as exited:
        parse_args(["--design", "gpt2", "--config", uri, "--out", "/o", *extra])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_trainer_refuses_a_run_config_that_does_not_match_its_digest(tmp_path: Path) -> None:
    uri, _ = stored_config(tmp_path, "/prepared")
    path = Path(uri)
    path.write_text(path.read_text().replace('"seed": 7', '"seed": 8'), encoding="utf-8")
    with pytest.raises(SystemExit):
        parse_args(["--design", "gpt2", "--rung", "small", "--config", uri, "--out", "/o"])


@pytest.mark.slow
def test_a_config_driven_training_uses_the_rungs_context_and_tokens(
    builtin_data: Path, tmp_path: Path
) -> None:
    uri, config = stored_config(tmp_path / "store", str(builtin_data))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "genesys",
        "train",
        "--design",
        "gpt2",
        "--rung",
        "small",
        "--config",
        uri,
        "--out",
        str(out),
        "--no-eval",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "succeeded"
    assert result["shape"]["block_size"] == 128  # the rung's contextLength, not nano's 256
    assert result["planned_tokens"] == 8192  # the rung's tokens, in steps of 4096
    assert result["planned_steps"] == 2
    assert result["config_digest"] == config_digest(config)
    saved = json.loads((out / "config.json").read_text())["train"]
    assert saved["rung"]["lr"] == 5e-4
    assert saved["training"]["warmup_fraction"] == 0.1


def test_a_final_result_is_never_replaced_by_another_attempt(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    def result(status: str, reason: str) -> VerificationResult:
        return VerificationResult.model_validate(
            {"design": "d1", "rung": "small", "status": status, "reason": reason}
        )

    assert record_result(store, result("error", "first crash"))
    assert not record_result(store, result("error", "second crash"))  # first crash stays
    assert record_result(store, result("succeeded", "a"))  # a final result beats a crash
    assert not record_result(store, result("failed", "b"))  # the first final result stands
    assert not record_result(store, result("error", "late crash"))
    kept = read_document(store, "result.json", VerificationResult)
    assert kept is not None
    assert (kept.status, kept.reason) == ("succeeded", "a")
