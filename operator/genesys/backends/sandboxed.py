"""Training jobs of the local backend behind the operating-system boundary (bubblewrap).

A verification trains design code, so on one machine (``genesys run``) its process starts under
``bwrap`` (:func:`genesys.sandbox.boundary.bwrap_command`) like the design checks do: its own
user, pid, network, IPC, UTS and mount namespaces, ``nobody`` with no capabilities, the seccomp
filter, a cleared environment. :func:`confine` turns the shared verification AppDef
(:func:`genesys.backends.common.verification_app`) into the one TorchX ``local_cwd`` starts:

- the entrypoint is the trusted launcher (``python -I -m genesys.sandbox.launch``), which execs
  ``bwrap`` in place (TorchX holds bwrap's process id: cancelling the job at its deadline, or
  the crash cleanup's ``killpg``, kills bwrap, and ``--die-with-parent`` with the pid namespace
  takes every process of the sandbox with it); TorchX cannot pass a descriptor, so the launcher
  opens the seccomp filter itself;
- what the trainer reads is bound read-only at its own path (:func:`training_binds`): the
  design's ``design.json``, the run config and the prepared data directory, plus the Hugging
  Face hub cache when it exists (evaluation is offline; the ``token`` file beside the cache is
  not bound, and the datasets cache is rebuilt in the scratch directory, see
  :func:`huggingface_caches`);
- the only writable bind is the verification's output prefix
  (``designs/<id>/verifications/<rung>`` of the run's store), created first; the job's scratch
  directory is ``/sandbox`` (its working directory and ``HOME``), ``/tmp`` is private;
- the environment is :func:`~genesys.sandbox.env.scrubbed_env` of the driver's (no secrets), with
  the AppDef's ``OMP_NUM_THREADS``;
- with ``resources.gpus > 0`` the ``/dev/nvidia*`` devices are bound (``--dev-bind``) and the
  launcher passes TorchX's ``CUDA_VISIBLE_DEVICES`` in. (CUDA in the sandbox is untested here:
  the driver libraries come with the ``/usr`` bind; anything else a driver needs is not bound.)
  A distributed command (``torch.distributed.run``, more than one GPU) rendezvouses over the
  sandbox's own loopback, so its seccomp filter allows IPv4/IPv6 sockets; the network namespace
  stays private.

A run whose store or data is remote (``s3://``) cannot train without the network: then the
sandbox shares the host's network (``--share-net``) and the launcher copies in only the store
variables (:data:`STORE_VARIABLES`): the job's store grant (``GENESYS_STORE_GRANT``, issued by
the local backend when it starts the job, :mod:`genesys.store.grant`) and the endpoint
settings, never a credential; the seccomp filter then allows IPv4 and IPv6 sockets too. The
grant's presigned URLs read the job's inputs and write the fixed trainer keys under its output
prefix, until they expire. That mode is weaker: design code can reach the network, and it can
use (or leak) the grant, whose reach is its own output keys. Everything else (namespaces, binds,
the rest of the seccomp filter, no secret) stays the same.

What must stay true: the AppDef's inner command is the shared one, to the letter; nothing
writable is bound but the output prefix and the scratch directory; no credential is in the
sandbox's environment in either mode (the grant is an expiring right to the job's own keys), and
nothing the launcher passes, the grant included, is on any command line (the launcher hands
values to bwrap through an anonymous file).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genesys.backends.common import RunHandle
from genesys.engine.actions import StartVerification
from genesys.sandbox.boundary import SANDBOX_DIR, Boundary, bwrap_command
from genesys.sandbox.env import scrubbed_env
from genesys.store.archive import design_key, verification_prefix
from genesys.store.grant import GRANT_VARIABLE

#: The variables a remote store needs (its grant, no credential); copied into the sandbox only
#: when its network is shared.
STORE_VARIABLES = (
    GRANT_VARIABLE,
    "GENESYS_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
#: Set by TorchX for a replica that asked for GPUs; always copied in when present.
DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES",)
LAUNCHER = ("-I", "-m", "genesys.sandbox.launch")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class TrainingBinds:
    """What one training job's sandbox sees of the machine."""

    readonly: tuple[str, ...]  # files and folders the trainer reads
    writable: tuple[str, ...]  # the output prefix (a local store only)
    devices: tuple[str, ...] = ()  # /dev/nvidia* when the job asks for GPUs
    network: bool = False  # a remote store or data: share the host's network (weaker)
    env: tuple[tuple[str, str], ...] = ()  # non-secret variables the binds need (caches)


def is_local(uri: str) -> bool:
    """True for a path or ``file://`` URI, False for a remote store (``s3://``)."""
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> str:
    """The absolute, resolved path of a local URI."""
    return str(Path(uri.removeprefix("file://")).expanduser().resolve())


def gpu_devices(dev: Path = Path("/dev")) -> list[str]:
    """The NVIDIA device nodes (and ``nvidia-caps``) present on this machine."""
    return sorted(str(path) for path in dev.glob("nvidia*"))


def huggingface_caches(environ: Mapping[str, str]) -> dict[str, str]:
    """``HF_HUB_CACHE`` of the host's Hugging Face hub cache, when it exists (never the token).

    Only the hub cache (downloaded tokenizers, models and dataset files) is bound, read-only.
    The datasets cache is not: ``datasets`` takes file locks in it even offline, and a writable
    bind would let design code alter what other designs are evaluated on; it stays under the
    sandbox's ``HOME``, rebuilt per job from the hub cache or the prepared local tasks.
    """
    home = environ.get("HF_HOME") or str(
        Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    hub = environ.get("HF_HUB_CACHE") or str(Path(home) / "hub")
    return {"HF_HUB_CACHE": local_path(hub)} if Path(hub).is_dir() else {}


def training_binds(
    handle: RunHandle, action: StartVerification, environ: Mapping[str, str] | None = None
) -> TrainingBinds:
    """The binds of one verification: its inputs read-only, its output prefix writable."""
    source = os.environ if environ is None else environ
    design = handle.uri(design_key(action.design_id, "design.json"))
    out = handle.uri(verification_prefix(action.design_id, action.rung))
    inputs = (design, handle.config_uri, handle.config.data.uri)
    caches = huggingface_caches(source)
    readonly = [local_path(uri) for uri in inputs if is_local(uri)] + list(caches.values())
    gpus = handle.run.spec.verification.resources.gpus
    return TrainingBinds(
        readonly=tuple(readonly),
        writable=(local_path(out),) if is_local(out) else (),
        devices=tuple(gpu_devices()) if gpus > 0 else (),
        network=not all(is_local(uri) for uri in (*inputs, out)),
        env=tuple(sorted(caches.items())),
    )


def sandbox_env(
    role_env: Mapping[str, str], binds: TrainingBinds, environ: Mapping[str, str]
) -> dict[str, str]:
    """The trainer's environment inside the sandbox: the allow-list, nothing secret."""
    extra = {
        "HOME": SANDBOX_DIR,
        "TMPDIR": "/tmp",
        "PATH": SANDBOX_PATH,
        "PYTHONUNBUFFERED": "1",
        "GENESYS_SANDBOX_BOUNDARY": Boundary.BUBBLEWRAP.value,
        **dict(binds.env),
    }
    for name in ("OMP_NUM_THREADS", "TRACEPARENT", "TRACESTATE"):  # threads; the trace context
        if name in role_env:
            extra[name] = role_env[name]
    env = scrubbed_env(environ, extra)
    for name in DEVICE_VARIABLES:  # TorchX sets it per replica: the launcher copies it in
        env.pop(name, None)
    return env


def _escaped(arg: str) -> str:
    """``arg`` as TorchX's macro substitution (``string.Template``) gives it back."""
    return arg.replace("$", "$$")


def confine(
    app: Any,
    binds: TrainingBinds,
    *,
    scratch: Path,
    python: str,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """A copy of ``app`` whose every role runs its command under bubblewrap with ``binds``."""
    source = os.environ if environ is None else environ
    confined = copy.deepcopy(app)
    for role in confined.roles:
        inner: Sequence[str] = [role.entrypoint, *role.args]
        argv = bwrap_command(
            inner,
            scratch=scratch,
            env=sandbox_env(role.env, binds, source),
            seccomp_fd=None,  # the launcher adds --seccomp: TorchX cannot pass a descriptor
            readonly=binds.readonly,
            writable=binds.writable,
            devices=binds.devices,
            share_network=binds.network,
        )
        wrapper = [_escaped(arg) for arg in argv[: len(argv) - len(inner)]]
        passed = [*DEVICE_VARIABLES, *(STORE_VARIABLES if binds.network else ())]
        # IPv4/IPv6 sockets: a remote store, or torchrun's rendezvous on the private loopback
        sockets = binds.network or list(role.args[:2]) == ["-m", "torch.distributed.run"]
        role.entrypoint = python
        options = ["--seccomp", *(["--network"] if sockets else [])]
        options += [f"--pass-env={name}" for name in passed]
        role.args = [*LAUNCHER, *options, "--", *wrapper, *argv[len(argv) - len(inner) :]]
    return confined


__all__ = [
    "STORE_VARIABLES",
    "TrainingBinds",
    "confine",
    "gpu_devices",
    "huggingface_caches",
    "is_local",
    "sandbox_env",
    "training_binds",
]
