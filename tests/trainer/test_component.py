"""The TorchX component: builds the AppDef, and a local_cwd launch writes result.json to S3."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import pytest

from genesys_trainer.component import job_name, verify


def test_component_uses_torchrun_only_when_distributed() -> None:
    single = verify("gpt2", "nano", out="/out", data="/data")
    assert single.roles[0].args[:2] == ["-m", "genesys_trainer.train"]
    multi = verify(
        "gpt2",
        "14M",
        out="s3://b/out",
        config="s3://b/runs/r/config/c.json",
        nproc_per_node=8,
        gpus=8,
    )
    role = multi.roles[0]
    assert role.args[:2] == ["-m", "torch.distributed.run"]
    assert "--nproc_per_node" in role.args
    assert role.resource.gpu == 8
    assert "--out" in role.args
    assert role.args[role.args.index("--out") + 1] == "s3://b/out"
    assert role.args[role.args.index("--config") + 1] == "s3://b/runs/r/config/c.json"
    assert "--data" not in role.args  # the run config names the data


def test_job_names_are_deterministic_and_dns_safe() -> None:
    assert job_name("gpt2", "14M") == job_name("gpt2", "14M") == "verify-gpt2-14m-a0"
    assert job_name("My_Design!", "nano", 2) == "verify-my-design-nano-a2"
    long = [job_name("r" * 45 + f"-d000{i}", "nano") for i in (1, 2)]
    assert long[0] != long[1]  # shortened names keep a hash of the whole name
    assert all(len(name) <= 53 for name in long)


@pytest.mark.integration
@pytest.mark.slow
def test_local_cwd_launch_succeeds_and_writes_result_to_s3(
    builtin_data: Path, s3_env: dict[str, str], tmp_path: Path
) -> None:
    from torchx.runner import get_runner

    app = verify(
        "gpt2",
        "nano",
        out="s3://genesys-test/runs/r1/gpt2/nano",
        data=str(builtin_data),
        python=sys.executable,
        env=s3_env,
        extra_args=["--tokens", "65536", "--no-eval"],
    )
    runner = get_runner()
    handle = runner.run(app, scheduler="local_cwd", cfg={"log_dir": str(tmp_path / "logs")})
    deadline = time.monotonic() + 300
    status = runner.status(handle)
    while status is not None and not status.is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
        status = runner.status(handle)
    assert status is not None
    logs = "".join(runner.log_lines(handle, "verify", 0))
    assert status.state.name == "SUCCEEDED", logs[-3000:]
    client = boto3.client("s3", endpoint_url=s3_env["GENESYS_S3_ENDPOINT"], region_name="us-east-1")
    body = client.get_object(Bucket="genesys-test", Key="runs/r1/gpt2/nano/result.json")["Body"]
    result = json.loads(body.read())
    assert result["status"] == "succeeded"
    assert result["design"] == "gpt2"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="genesys-test")["Contents"]}
    assert "runs/r1/gpt2/nano/model.pt" in keys
