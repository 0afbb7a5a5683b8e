"""Training: a full nano run, resume after SIGKILL, 2-rank gloo DDP, guards, and lm-eval."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genesys_trainer.compose import compose
from genesys_trainer.data.tokenizer import ByteTokenizer
from genesys_trainer.evaluate import evaluate
from genesys_trainer.model import LanguageModel, ModelConfig
from genesys_trainer.seeds import load_seed

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def train_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "genesys",
        "train",
        "--design",
        "gpt2",
        "--rung",
        "nano",
        "--data",
        str(data),
        "--out",
        str(out),
        *extra,
    ]


def result_of(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "result.json").read_text())


@pytest.fixture(scope="module")
def full_run(builtin_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The GPT-2 seed trained at nano to its full token budget, with evaluation."""
    out = tmp_path_factory.mktemp("runs") / "full"
    done = subprocess.run(
        train_command(builtin_data, out, "--eval-limit", "200"),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out, done.stdout


def test_full_nano_run_learns_well_below_unigram_entropy(full_run: tuple[Path, str]) -> None:
    out, stdout = full_run
    result = result_of(out)
    assert result["status"] == "succeeded"
    assert result["steps"] == result["planned_steps"]
    assert result["tokens"] >= result["params"] * 20  # nano: 20 tokens per parameter
    assert result["val_loss"] < 0.85 * result["unigram_entropy"], result
    assert {"n_embd", "n_layer", "n_head"} <= set(result["shape"])
    assert result["tokens_per_second"] > 0
    assert "step 1" in stdout
    assert "tok/s" in stdout
    assert "ETA" in stdout
    for name in ("model.pt", "config.json", "log.jsonl"):
        assert (out / name).exists()
    assert "genesys_cloze" in result["eval"]
    assert set(result["eval"]["genesys_cloze"]) >= {"acc", "acc_norm"}


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    builtin_data: Path, full_run: tuple[Path, str], tmp_path: Path
) -> None:
    reference = result_of(full_run[0])
    out = tmp_path / "resumed"
    command = train_command(
        builtin_data, out, "--checkpoint-every-steps", "20", "--no-eval", "--log-every", "1"
    )
    half = reference["planned_steps"] // 2
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= half:
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert (out / "checkpoint.pt").exists()
    assert not (out / "result.json").exists()
    rerun = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert "resuming from step" in rerun.stdout
    result = result_of(out)
    assert result["resumed_from"] is not None
    assert 0 < result["resumed_from"] <= half
    assert result["steps"] == reference["steps"]
    assert result["tokens"] == reference["tokens"]
    assert abs(result["val_loss"] - reference["val_loss"]) <= 0.02 * reference["val_loss"]


def test_two_rank_gloo_ddp_trains_the_same_tokens(builtin_data: Path, tmp_path: Path) -> None:
    common = ["--tokens", "65536", "--no-eval", "--device", "cpu"]
    single = subprocess.run(
        train_command(builtin_data, tmp_path / "one", *common),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert single.returncode == 0, single.stdout[-2000:]
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "genesys_trainer.train",
            "--design",
            "gpt2",
            "--rung",
            "nano",
            "--data",
            str(builtin_data),
            "--out",
            str(tmp_path / "two"),
            *common,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one, two = result_of(tmp_path / "one"), result_of(tmp_path / "two")
    assert two["world_size"] == 2
    assert two["tokens"] == one["tokens"]
    assert two["steps"] == one["steps"]
    assert abs(two["val_loss"] - one["val_loss"]) < 0.05 * one["val_loss"]


def test_guard_stops_a_nan_design_with_a_recorded_reason(
    builtin_data: Path, tmp_path: Path
) -> None:
    design = REPO / "tests" / "data" / "designs" / "nan-output.py"
    command = train_command(
        builtin_data, tmp_path / "nan", "--tokens", "65536", "--no-eval", "--no-slowdown-guard"
    )
    command[command.index("gpt2")] = str(design)
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = result_of(tmp_path / "nan")
    assert result["status"] == "failed"
    assert "loss nan outside" in result["reason"]
    assert result["steps"] == 1


def test_lm_eval_random_model_near_chance_trained_above(
    builtin_data: Path, full_run: tuple[Path, str]
) -> None:
    torch.manual_seed(0)
    config = ModelConfig(**json.loads((full_run[0] / "config.json").read_text())["model"])
    model = LanguageModel(compose(load_seed("gpt2")), config)
    random_scores = evaluate(
        model,
        ByteTokenizer(),
        data_dir=builtin_data,
        tasks=["genesys_cloze", "genesys_mqar"],
        limit=300,
    )
    model.load_state_dict(torch.load(full_run[0] / "model.pt", map_location="cpu"))
    trained_scores = evaluate(
        model,
        ByteTokenizer(),
        data_dir=builtin_data,
        tasks=["genesys_cloze", "genesys_mqar"],
        limit=300,
    )
    chance = 0.25
    assert abs(random_scores["genesys_mqar"]["acc"] - chance) < 0.08
    assert abs(random_scores["genesys_cloze"]["acc_norm"] - chance) < 0.12
    assert trained_scores["genesys_cloze"]["acc_norm"] > chance + 0.04
    assert trained_scores["genesys_cloze"]["acc_norm"] > random_scores["genesys_cloze"]["acc_norm"]
    for task, scores in trained_scores.items():  # the standard error of a mean of 300 0/1 items
        for metric in ("acc", "acc_norm"):
            p = scores[metric]
            assert scores[f"{metric}_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 299)), task


def test_sigterm_checkpoints_to_s3_and_the_rerun_ends_as_an_uninterrupted_run(
    builtin_data: Path, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    import boto3

    from genesys_trainer.train import EXIT_PREEMPTED

    common = ["--tokens", "65536", "--no-eval", "--log-every", "1", "--device", "cpu"]
    environ = {**os.environ, **s3_env}
    uninterrupted = subprocess.run(
        train_command(builtin_data, tmp_path / "whole", *common),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=environ,
    )
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-2000:]
    reference = result_of(tmp_path / "whole")
    out = "s3://genesys-test/preempted"
    command = train_command(builtin_data, Path("unused"), *common)
    command[command.index("unused")] = out
    half = reference["planned_steps"] // 2
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=environ
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= half:
                process.send_signal(signal.SIGTERM)
                break
        lines.extend(process.stdout)
        process.wait()
    assert process.returncode == EXIT_PREEMPTED, "".join(lines)[-2000:]
    s3 = boto3.client("s3", endpoint_url=s3_env["GENESYS_S3_ENDPOINT"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="genesys-test")["Contents"]}
    assert {"preempted/checkpoint.pt", "preempted/preemptions.jsonl"} <= keys
    assert "preempted/result.json" not in keys
    body = s3.get_object(Bucket="genesys-test", Key="preempted/preemptions.jsonl")["Body"]
    stopped = json.loads(body.read().decode().splitlines()[0])["step"]
    assert half <= stopped < reference["planned_steps"]
    rerun = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=REPO, env=environ
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert f"resuming from step {stopped}/" in rerun.stdout
    result = json.loads(
        s3.get_object(Bucket="genesys-test", Key="preempted/result.json")["Body"].read()
    )
    assert result["resumed_from"] == stopped
    assert result["steps"] == reference["steps"]
    assert result["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-5)
    assert result["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)
