"""The TorchX component of one verification: train (and evaluate) one design at one rung.

``verify(...)`` returns the ``AppDef``: the trainer image, a ``torchrun`` entrypoint when more
than one process per node (or node) is asked for, resources, environment and the output URI.
The same AppDef runs under TorchX's ``local_cwd`` scheduler (the embedded default), the
project's ``kubernetes_job`` scheduler and upstream's Volcano ``kubernetes`` scheduler.

What must stay true: the component is a pure function of its arguments (no I/O), so the
operator can build, dry-run and name jobs deterministically.
"""

from __future__ import annotations

import re

from torchx import specs

DEFAULT_IMAGE = "genesys-trainer:0.1.0"


def job_name(design: str, rung: str, attempt: int = 0) -> str:
    """A deterministic, DNS-safe name for (design, rung, attempt)."""
    stem = re.sub(r"[^a-z0-9]+", "-", f"verify-{design}-{rung}".lower()).strip("-")
    return f"{stem[:50].rstrip('-')}-a{attempt}"


def verify(
    design: str,
    rung: str,
    data: str,
    out: str,
    image: str = DEFAULT_IMAGE,
    tokens: int = 0,
    nproc_per_node: int = 1,
    nnodes: int = 1,
    gpus: int = 0,
    cpu: int = 2,
    memMB: int = 4096,
    python: str = "python",
    attempt: int = 0,
    max_retries: int = 0,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    name: str = "",
) -> specs.AppDef:
    """Verify one design at one rung: ``genesys_trainer.train`` under torchrun when distributed.

    Args:
        design: seed name, design.json path or store URI
        rung: rung preset name (nano, micro, mini, 14M, ... 350M)
        data: prepared data, a path or store URI
        out: output prefix, a path or store URI (result.json lands there)
        image: trainer container image (ignored by local_cwd)
        tokens: training tokens; 0 means params x the rung's tokens-per-param
        nproc_per_node: processes (GPUs) per node
        nnodes: nodes
        gpus: GPUs per node requested from the scheduler
        cpu: CPUs per node
        memMB: memory per node in MiB
        python: the interpreter to run (local_cwd: this venv's python)
        attempt: attempt number, part of the job name
        max_retries: scheduler-level retries
        env: extra environment variables (store endpoint, credentials via secrets, ...)
        extra_args: more ``genesys train`` arguments
        name: the design's short name for the job name (default: the design argument)

    """
    train_args = ["--design", design, "--rung", rung, "--data", data, "--out", out]
    if tokens:
        train_args += ["--tokens", str(tokens)]
    train_args += list(extra_args or [])
    if nproc_per_node * nnodes > 1:
        launcher = [
            "-m",
            "torch.distributed.run",
            "--nnodes",
            str(nnodes),
            "--nproc_per_node",
            str(nproc_per_node),
        ]
        if nnodes == 1:
            launcher.append("--standalone")
        else:
            # replica 0's host, from the env var the scheduler names (kubelet expands $(VAR))
            endpoint = f"$$({specs.macros.rank0_env}):29500"
            launcher += ["--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint]
        args = [*launcher, "-m", "genesys_trainer.train", *train_args]
    else:
        args = ["-m", "genesys_trainer.train", *train_args]
    role = specs.Role(
        name="verify",
        image=image,
        entrypoint=python,
        args=args,
        env={
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(max(1, cpu // nproc_per_node)),
            **(env or {}),
        },
        num_replicas=nnodes,
        max_retries=max_retries,
        resource=specs.Resource(cpu=cpu, gpu=gpus, memMB=memMB),
    )
    return specs.AppDef(name=job_name(name or design, rung, attempt), roles=[role])


__all__ = ["DEFAULT_IMAGE", "job_name", "verify"]
