"""Run a pod's container as a podman container, as a kubelet would run it.

:func:`run_arguments` turns one container of a pod spec (and its resolved environment) into the
``podman run`` command line that does what the kubelet does with it:

- ``command`` replaces the image's entrypoint and ``args`` its command;
- only the container's own environment (Secret references already resolved by the caller);
- ``resources.limits``: ``memory`` and ``cpu`` become ``--memory`` and ``--cpus``;
- the pod's and the container's ``securityContext``: ``runAsUser``/``runAsGroup`` as
  ``--user``, ``readOnlyRootFilesystem`` as ``--read-only``, dropped capabilities as
  ``--cap-drop``, ``allowPrivilegeEscalation: false`` as ``no-new-privileges``;
- every ``emptyDir`` mount as a tmpfs of its size limit, writable by anyone (an emptyDir is
  created world-writable);
- the host's network (``--network host``): a Service is played on loopback by the fake
  kubelet, as for local processes.

:class:`PodmanRuntime` runs them and removes them (``podman rm -f``) when the pod goes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genesys.quantities import cpus, memory_bytes

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / ".cache" / "containers" / "containers.conf"


def podman_binary() -> str | None:
    """podman on the PATH, or None."""
    return shutil.which("podman")


def podman_env() -> dict[str, str]:
    """The environment podman itself runs with (this project's containers.conf when present)."""
    env = dict(os.environ)
    if CONTAINERS_CONF.exists():
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def _security(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext") or {}
    context = container.get("securityContext") or {}
    user = context.get("runAsUser", pod_context.get("runAsUser"))
    group = context.get("runAsGroup", pod_context.get("runAsGroup"))
    args: list[str] = []
    if user is not None:
        args += ["--user", f"{user}:{group if group is not None else user}"]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in (context.get("capabilities") or {}).get("drop") or []:
        args += ["--cap-drop", str(capability)]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    return args


def _empty_dirs(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
    args: list[str] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        if "emptyDir" not in volume:
            raise ValueError(f"volume {mount['name']}: only emptyDir volumes are played here")
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        options = "rw,mode=1777" + (f",size={memory_bytes(size)}" if size else "")
        args += ["--tmpfs", f"{mount['mountPath']}:{options}"]
    return args


def _limits(container: Mapping[str, Any]) -> list[str]:
    limits = (container.get("resources") or {}).get("limits") or {}
    args: list[str] = []
    if "memory" in limits:
        args += ["--memory", str(memory_bytes(limits["memory"]))]
    if "cpu" in limits:
        args += ["--cpus", f"{cpus(limits['cpu']):g}"]
    return args


def run_arguments(
    name: str,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str],
    args: Sequence[str] | None = None,
    read_only_files: Mapping[str, Path] | None = None,
) -> list[str]:
    """The ``podman run`` arguments (after ``podman``) of ``container`` of ``pod``.

    ``args`` replaces the container's ``args`` (the fake kubelet rewrites listen addresses);
    ``read_only_files`` maps paths in the container to host files bound there read-only (what
    a projected volume would hold).
    """
    command = list(container.get("command") or [])
    arguments = list(container.get("args") or []) if args is None else list(args)
    line = ["run", "--rm", "--name", name, "--network", "host", "--pull", "never"]
    line += _security(pod, container) + _empty_dirs(pod, container) + _limits(container)
    for target, source in (read_only_files or {}).items():
        line += ["--volume", f"{source}:{target}:ro"]
    if container.get("workingDir"):
        line += ["--workdir", str(container["workingDir"])]
    for key, value in env.items():
        line += ["--env", f"{key}={value}"]
    if command:
        line += ["--entrypoint", json.dumps(command)]
    return [*line, str(container["image"]), *arguments]


@dataclass
class PodmanRuntime:
    """Starts and removes the podman containers of the fake kubelet's pods."""

    podman: str
    names: set[str] = field(default_factory=set)

    def start(
        self,
        name: str,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        env: Mapping[str, str],
        args: Sequence[str],
        log: Path,
        read_only_files: Mapping[str, Path] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``podman run`` the container in the foreground; its output goes to ``log``."""
        self.remove(name)  # a container of an earlier attempt with the same name
        self.names.add(name)
        line = [self.podman, *run_arguments(name, pod, container, env, args, read_only_files)]
        with log.open("wb") as sink:
            return subprocess.Popen(
                line,
                env=podman_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def remove(self, name: str) -> None:
        """Stop and remove the container (nothing when it is gone)."""
        subprocess.run(
            [self.podman, "rm", "-f", "-t", "2", name],
            env=podman_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        self.names.discard(name)

    def remove_all(self) -> None:
        """Remove every container this runtime started."""
        for name in list(self.names):
            self.remove(name)


__all__ = ["PodmanRuntime", "podman_binary", "podman_env", "run_arguments"]
