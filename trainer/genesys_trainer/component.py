"""The TorchX component of one verification: train (and evaluate) one design at one rung.

``verify(...)`` returns the ``AppDef``: the trainer image, a ``torchrun`` entrypoint when more
than one process per node (or node) is asked for, resources, environment and the output URI.
The same AppDef runs under TorchX's ``local_cwd`` scheduler (the embedded default), the
project's ``kubernetes_job`` scheduler and upstream's Volcano ``kubernetes`` scheduler.

What must stay true: the component is a pure function of its arguments (no I/O), so the
operator can build, dry-run and name jobs deterministically.
"""

from __future__ import annotations

import hashlib
import math
import re

from torchx import specs

DEFAULT_IMAGE = "genesys-trainer:0.1.0"
MAX_STEM = 50


def job_name(design: str, rung: str, attempt: int = 0) -> str:
    """A deterministic, DNS-safe name for (design, rung, attempt).

    Long names are shortened with a hash of the whole, so two long names never collide.
    """
    stem = re.sub(r"[^a-z0-9]+", "-", f"verify-{design}-{rung}".lower()).strip("-")
    if len(stem) > MAX_STEM:
        digest = hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]
        stem = f"{stem[: MAX_STEM - 9].rstrip('-')}-{digest}"
    return f"{stem}-a{attempt}"


def verify(
    design: str,
    rung: str,
    out: str,
    config: str = "",
    data: str = "",
    image: str = DEFAULT_IMAGE,
    nproc_per_node: int = 1,
    nnodes: int = 1,
    gpus: int = 0,
    cpu: float = 2,
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
        rung: with config, a rung of the run config; else a preset name (nano, ... 350M)
        out: output prefix, a path or store URI (result.json lands there)
        config: the run config's URI (a run's Jobs); everything else of the run comes from it
        data: prepared data, a path or store URI (default: the run config's)
        image: trainer container image (ignored by local_cwd)
        nproc_per_node: processes (GPUs) per node
        nnodes: nodes
        gpus: GPUs per node requested from the scheduler
        cpu: CPUs per node (fractions allowed)
        memMB: memory per node in MiB
        python: the interpreter to run (local_cwd: this venv's python)
        attempt: attempt number, part of the job name
        max_retries: scheduler-level retries
        env: extra environment variables (store endpoint, credentials via secrets, ...)
        extra_args: more ``genesys train`` arguments
        name: the job's identity for its name, e.g. run and design (default: the design)

    """
    train_args = ["--design", design, "--rung", rung, "--out", out]
    if config:
        train_args += ["--config", config]
    if data:
        train_args += ["--data", data]
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
    threads = max(1, math.ceil(cpu) // nproc_per_node)
    role = specs.Role(
        name="verify",
        image=image,
        entrypoint=python,
        args=args,
        env={"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), **(env or {})},
        num_replicas=nnodes,
        max_retries=max_retries,
        resource=specs.Resource(cpu=cpu, gpu=gpus, memMB=memMB),
    )
    return specs.AppDef(name=job_name(name or design, rung, attempt), roles=[role])


__all__ = ["DEFAULT_IMAGE", "job_name", "verify"]
