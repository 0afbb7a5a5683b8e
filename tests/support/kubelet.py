"""A fake Job controller for operator tests: it plays the kubelet and the Job controller.

kmock is an API server without controllers, so nothing would ever run a Job. ``FakeKubelet``
watches Jobs (by polling the API over HTTP, like any client) and, for each new one that is not
suspended, either

- **runs its container for real**: the pod's ``command``/``args`` as a local process (``genesys``
  and ``python`` mapped to this interpreter), with the Job's environment, Secret references
  resolved from the API's Secrets, in a fresh working directory; or, with a ``runtime``
  (:class:`~support.podman.PodmanRuntime`), as a podman container from the pod's image, with
  its security context, limits and ``emptyDir`` mounts (:mod:`support.podman`); or
- **fakes a training** (``fake_training=True``): writes a plausible trainer ``result.json``
  (deterministic losses and scores from the design id) to the Job's ``--out`` store prefix,
  so scenarios about the control plane need not wait for real training.

A pod that listens (its container's ``0.0.0.0:PORT`` argument) gets, instead, a loopback port
that stands for its address: ``HOST.SUBDOMAIN`` for a pod with a ``hostname`` and a
``subdomain`` naming a Service that selects it (a headless Service's pod record), else the
Service selecting it. A ``HOST.SUBDOMAIN.NAMESPACE.svc:PORT`` or ``SERVICE.NAMESPACE.svc:PORT``
address in another pod's environment becomes that same loopback port: the part of the
cluster's DNS and kube-proxy this needs (a session's agent reaching its check pod).
NetworkPolicies are not enforced here; their manifests are tested as manifests.

It then sets the Job's status the way the Job controller does: ``active``, ``startTime``, and at
the end ``succeeded`` or ``failed`` with a ``Complete`` or ``Failed`` condition and a
``completionTime``. With ``gpu_capacity`` set (the GPUs of the cluster's nodes, all together), a
Job whose pod asks for more ``nvidia.com/gpu`` than are free is not started: its pod stays
``Pending`` with ``PodScheduled=False``, reason ``Unschedulable`` and the scheduler's message,
until enough GPUs are free (raise ``gpu_capacity`` to play a scale-up). ``fail_first`` makes the first N runs of Jobs whose name contains a key fail
without running (as an evicted or crashed pod would). A deleted Job's process is killed; a
suspended Job is not started, and a running one that gets suspended loses its process, until it
is resumed (as the Job controller deletes a suspended Job's pods).

What must stay true: it talks to the API only over HTTP through the official client; it never
reaches into the operator's process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from support.podman import PodmanRuntime


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gpus_of(job: Mapping[str, Any]) -> int:
    """The ``nvidia.com/gpu`` its pod's containers ask for (limits, as the scheduler reads them)."""
    containers = job["spec"]["template"]["spec"].get("containers") or []
    return sum(
        int(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        for c in containers
    )


def _is_training(container: Mapping[str, Any]) -> bool:
    """True for a training pod's container (it runs the trainer)."""
    return "genesys_trainer.train" in " ".join(container.get("args") or [])


@dataclass
class Started:
    """A Job the kubelet is running."""

    name: str
    namespace: str
    process: subprocess.Popen[bytes] | None
    log: Path
    outcome: int | None = None
    pod: str = ""
    container: str = ""  # the podman container, with a runtime
    gpus: int = 0  # what its pod asked for


@dataclass
class FakeKubelet:
    """See the module docstring; use it as a context manager."""

    api_client: Any
    namespace: str = "default"
    fake_training: bool = False
    fail_first: dict[str, int] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kubelet-")))
    base_env: Mapping[str, str] = field(default_factory=dict)
    poll_seconds: float = 0.2
    on_start: Callable[[str], None] | None = None
    pod_log_sink: Callable[[str, str, str], None] | None = None  # (namespace, pod, text)
    started: dict[str, Started] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # job name -> times started
    service_ports: dict[str, int] = field(default_factory=dict)  # Service -> loopback port
    runtime: PodmanRuntime | None = None  # run pods as podman containers from their images
    gpu_capacity: int | None = None  # GPUs of all nodes together; None: no limit
    unschedulable: dict[str, str] = field(default_factory=dict)  # job name -> its pending pod
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.batch = k8s.BatchV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeKubelet:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for started in self.started.values():
            self._kill(started)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # keep playing; a test sees the effect, not a crash
                print(f"fake kubelet: {exc!r}", file=sys.stderr)
            self._stop.wait(self.poll_seconds)

    # ---------------------------------------------------------------------------------- step

    def step(self) -> None:
        """One pass: start new Jobs, finish ended ones, kill deleted ones."""
        jobs = {job["metadata"]["name"]: job for job in self._list_jobs()}
        for name, started in list(self.started.items()):
            if name not in jobs:
                self._kill(started)
                del self.started[name]
        for name, pod in list(self.unschedulable.items()):
            if name not in jobs:  # deleted while it waited: its pending pod goes with it
                self.core.delete_namespaced_pod(pod, self.namespace)
                del self.unschedulable[name]
        for name, job in jobs.items():
            status = job.get("status") or {}
            ended = any(
                c.get("type") in ("Complete", "Failed") for c in status.get("conditions") or []
            )
            if ended:
                continue
            suspended = bool((job.get("spec") or {}).get("suspend"))
            if name in self.started and suspended:
                self._evict(name)  # the Job controller deletes a suspended Job's pods
            elif name in self.started:
                self._check(job, self.started[name])
            elif not suspended:
                self._start(job)

    def _list_jobs(self) -> list[dict[str, Any]]:
        response = self.batch.list_namespaced_job(self.namespace, _preload_content=False)
        data = json.loads(response.data)
        return list(data.get("items") or [])

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        body = {"status": status}
        try:
            self.batch.patch_namespaced_job_status(name, self.namespace, body)
        except ApiException as exc:
            if exc.status not in (404, 405):
                raise
            self.batch.patch_namespaced_job(name, self.namespace, body)

    def _gpus_free(self) -> int | None:
        if self.gpu_capacity is None:
            return None
        busy = sum(s.gpus for s in self.started.values())  # an ended pod gives its GPUs back
        return self.gpu_capacity - busy

    def _hold(self, job: dict[str, Any], gpus: int, free: int) -> None:
        """Leave the Job's pod Pending and unschedulable, as the scheduler does (once)."""
        name = job["metadata"]["name"]
        if name in self.unschedulable:
            return
        message = f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu ({gpus} > {free})."
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": _now(),
        }
        pod = f"{name}-unscheduled"[-63:]
        self._put_pod(job, pod, {"phase": "Pending", "conditions": [condition]})
        self.unschedulable[name] = pod
        self._patch_status(name, {"active": 1, "startTime": _now()})

    def _start(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        gpus = _gpus_of(job)
        free = self._gpus_free()
        if free is not None and gpus > free:
            self._hold(job, gpus, free)
            return
        held = self.unschedulable.pop(name, None)
        if held is not None:
            self.core.delete_namespaced_pod(held, self.namespace)
        self.runs[name] = self.runs.get(name, 0) + 1
        log = self.workdir / f"{name}.{self.runs[name]}.log"
        for key, count in self.fail_first.items():
            if key in name and count > 0:
                self.fail_first[key] = count - 1
                started = Started(name, self.namespace, None, log, outcome=1)
                self.started[name] = started
                self._patch_status(name, {"active": 1, "startTime": _now()})
                return
        container = job["spec"]["template"]["spec"]["containers"][0]
        if self.fake_training and _is_training(container):
            self._fake_training(container)
            self.started[name] = Started(name, self.namespace, None, log, outcome=0)
        else:
            template = job["spec"]["template"]
            labels = (template.get("metadata") or {}).get("labels") or {}
            pod_name = f"{name}-{self.runs[name]:05d}"[-63:]
            process = self._run(container, log, labels, template["spec"], pod_name)
            self.started[name] = Started(name, self.namespace, process, log)
            self.started[name].container = pod_name if self.runtime is not None else ""
        self.started[name].pod = self._create_pod(job)
        self.started[name].gpus = gpus
        self._patch_status(name, {"active": 1, "startTime": _now()})
        if self.on_start is not None:
            self.on_start(name)

    def _kill(self, started: Started) -> None:
        """Kill a pod's process (and its container, with a runtime)."""
        if started.process is not None and started.process.poll() is None:
            started.process.kill()
            started.process.wait()
        if self.runtime is not None and started.container:
            self.runtime.remove(started.container)

    def _evict(self, name: str) -> None:
        started = self.started.pop(name)
        self._kill(started)
        self._patch_status(name, {"active": 0})

    def _check(self, job: dict[str, Any], started: Started) -> None:
        if started.process is not None and started.outcome is None:
            code = started.process.poll()
            if code is None:
                return
            started.outcome = code
        if started.outcome is None:
            return
        name = job["metadata"]["name"]
        ok = started.outcome == 0
        condition = {
            "type": "Complete" if ok else "Failed",
            "status": "True",
            "reason": "Completed" if ok else "BackoffLimitExceeded",
            "message": "" if ok else f"pod exited with status {started.outcome}",
            "lastTransitionTime": _now(),
        }
        status = {
            "active": 0,
            "conditions": [condition],
            "completionTime": _now(),
            "succeeded" if ok else "failed": 1,
        }
        self._finish_pod(started, ok)
        started.gpus = 0
        self._patch_status(name, status)

    # -------------------------------------------------------------------------------- pods

    def _create_pod(self, job: dict[str, Any]) -> str:
        """A running Pod object for the Job, labelled as the Job controller labels its pods."""
        name = f"{job['metadata']['name']}-{self.runs[job['metadata']['name']]:05d}"[-63:]
        scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}
        self._put_pod(job, name, {"phase": "Running", "conditions": [scheduled]})
        return name

    def _put_pod(self, job: dict[str, Any], name: str, status: dict[str, Any]) -> None:
        """Create a Pod of the Job with ``status`` (a name taken already is left as it is)."""
        template = job["spec"]["template"]
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            "job-name": job["metadata"]["name"],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": template["spec"],
            "status": status,
        }
        try:
            self.core.create_namespaced_pod(self.namespace, pod)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _finish_pod(self, started: Started, ok: bool) -> None:
        if not started.pod:
            return
        phase = "Succeeded" if ok else "Failed"
        self.core.patch_namespaced_pod(started.pod, self.namespace, {"status": {"phase": phase}})
        if self.pod_log_sink is not None:
            text = started.log.read_text(errors="replace") if started.log.exists() else ""
            self.pod_log_sink(self.namespace, started.pod, text)

    # ----------------------------------------------------------------------------- running

    def _env(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's environment: a few host basics, ``base_env``, the Job's own values.

        A training pod inherits no ``AWS_*`` variable from the host or ``base_env``, and the
        host's AWS credential files are hidden from it (a real pod has none): what it may reach
        in the store comes from its Job alone (its store grant).
        """
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update(self.base_env)
        if _is_training(container):
            env = {name: value for name, value in env.items() if not name.startswith("AWS_")}
            nowhere = str(self.workdir / "no-aws-files")
            env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = nowhere
        env.update(self._container_env(container))
        return env

    def _container_env(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's own variables, Secret references resolved from the API."""
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "secretKeyRef" in (item.get("valueFrom") or {}):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self.core.read_namespaced_secret(ref["name"], self.namespace)
                env[item["name"]] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
        return env

    def _command(self, container: Mapping[str, Any]) -> list[str]:
        command = list(container.get("command") or []) + list(container.get("args") or [])
        if command and command[0] == "genesys":
            return [sys.executable, "-m", "genesys", *command[1:]]
        if command and Path(command[0]).name.startswith("python"):
            return [sys.executable, *command[1:]]
        return command

    # ------------------------------------------------------------- the pod network, played

    def _service_port(self, service: str) -> int:
        """The loopback port that stands for a Service (chosen once, before or after its pod)."""
        if service not in self.service_ports:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.service_ports[service] = probe.getsockname()[1]
        return self.service_ports[service]

    def _services_selecting(self, labels: Mapping[str, str]) -> list[str]:
        listed = self.core.list_namespaced_service(self.namespace, _preload_content=False)
        names = []
        for service in json.loads(listed.data).get("items") or []:
            selector = (service.get("spec") or {}).get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                names.append(service["metadata"]["name"])
        return names

    def _listen_on_loopback(
        self, command: list[str], labels: Mapping[str, str], pod: Mapping[str, Any]
    ) -> list[str]:
        """A pod's ``0.0.0.0:PORT`` argument becomes the loopback port of its address."""
        services = self._services_selecting(labels)
        if not services:
            return command
        host, subdomain = pod.get("hostname"), pod.get("subdomain")
        address = f"{host}.{subdomain}" if host and subdomain in services else services[0]
        port = self._service_port(address)
        return [re.sub(r"^0\.0\.0\.0:\d+$", f"127.0.0.1:{port}", arg) for arg in command]

    def _resolve_services(self, env: dict[str, str]) -> dict[str, str]:
        """``HOST.SUBDOMAIN.NAMESPACE.svc:PORT`` (a pod under a headless Service) or
        ``SERVICE.NAMESPACE.svc:PORT`` in a value becomes that address's loopback port (the
        part the cluster's DNS and kube-proxy play)."""
        pattern = re.compile(
            r"\b([a-z0-9-]+)(?:\.([a-z0-9-]+))?\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:\d+"
        )

        def loopback(match: re.Match[str]) -> str:
            first, second, namespace = match.groups()
            if namespace != self.namespace:
                return match.group(0)
            address = f"{first}.{second}" if second else first
            return f"127.0.0.1:{self._service_port(address)}"

        return {name: pattern.sub(loopback, value) for name, value in env.items()}

    def _run(
        self,
        container: Mapping[str, Any],
        log: Path,
        labels: Mapping[str, str],
        pod: Mapping[str, Any],
        pod_name: str,
    ) -> subprocess.Popen[bytes]:
        if self.runtime is not None:  # the image's own command, the Job's own environment
            args = self._listen_on_loopback(list(container.get("args") or []), labels, pod)
            env = self._resolve_services(self._container_env(container))
            return self.runtime.start(pod_name, pod, container, env, args, log)
        directory = Path(tempfile.mkdtemp(dir=self.workdir))
        command = self._listen_on_loopback(self._command(container), labels, pod)
        env = self._resolve_services(self._env(container))
        with log.open("wb") as sink:
            return subprocess.Popen(
                command,
                env=env,
                cwd=directory,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _fake_training(self, container: Mapping[str, Any]) -> None:
        """Write the result as the trainer would: through the store grant in the pod's env."""
        from genesys.store.grant import GrantStore, environment_grant

        args = list(container.get("args") or [])
        out = args[args.index("--out") + 1]
        rung = args[args.index("--rung") + 1]
        design = args[args.index("--design") + 1].rstrip("/").split("/")[-2]
        grant = environment_grant(self._env(container))
        if grant is None:
            raise RuntimeError(f"training pod for {out} has no store grant in its environment")
        store = GrantStore(grant, out)
        salt = sum(ord(c) for c in design) % 97 / 97
        result = {
            "design": design,
            "rung": rung,
            "status": "succeeded",
            "reason": "",
            "params": 100_000 + int(salt * 10_000),
            "tokens": 24_576,
            "train_loss": 3.0 + salt,
            "val_loss": 3.1 + salt,
            "eval": {"genesys_cloze": {"acc": 0.3 + 0.4 * (1 - salt)}},
            "finished": datetime.now(UTC).isoformat(),
        }
        store.put_text("result.json", json.dumps(result))

    # ------------------------------------------------------------------------------ helpers

    def started_logs(self, name: str) -> str:
        """The output of every run of Job ``name`` so far (its pods' logs, in order)."""
        logs = [self.workdir / f"{name}.{run}.log" for run in range(1, self.runs.get(name, 0) + 1)]
        return "".join(log.read_text(errors="replace") for log in logs if log.exists())
