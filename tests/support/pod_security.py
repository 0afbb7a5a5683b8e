"""Pod Security Standards, profile "restricted", as the admission controller reads a pod spec.

:func:`restricted_violations` lists every rule of the "baseline" and "restricted" profiles
(Kubernetes 1.35) that a pod spec breaks, in the controller's words, so a test can assert that
what the operator creates would be admitted by a namespace labelled
``pod-security.kubernetes.io/enforce: restricted``:

- baseline: no host namespaces, ports or paths, nothing privileged, only the baseline
  capabilities added, no ``Unconfined`` seccomp, AppArmor or ``/proc`` mount changes, SELinux
  type and user left alone, safe sysctls only;
- restricted: volumes of the restricted types only, ``allowPrivilegeEscalation: false``,
  ``runAsNonRoot: true`` and no uid 0, seccomp ``RuntimeDefault`` or ``Localhost``, every
  capability dropped (``ALL``) and none added but ``NET_BIND_SERVICE``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SECCOMP_ALLOWED = ("RuntimeDefault", "Localhost")


def containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every container of the pod: init, ephemeral and regular."""
    for key in ("initContainers", "ephemeralContainers", "containers"):
        yield from pod.get(key) or []


def _baseline(pod: Mapping[str, Any]) -> Iterator[str]:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            yield f"{key}=true"
    pod_context = pod.get("securityContext") or {}
    if (pod_context.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield "pod seccompProfile Unconfined"
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"forbidden sysctl {sysctl.get('name')}"
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            yield f"hostPath volume {volume.get('name')}"
    for container in containers(pod):
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("privileged"):
            yield f"container {name} is privileged"
        added = set((context.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            yield f"container {name} adds {sorted(added - BASELINE_CAPABILITIES)}"
        if any(port.get("hostPort") for port in container.get("ports") or []):
            yield f"container {name} uses a hostPort"
        if context.get("procMount") not in (None, "Default"):
            yield f"container {name} procMount {context.get('procMount')}"
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield f"container {name} seccompProfile Unconfined"
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            yield f"container {name} is a Windows host process"
        selinux = context.get("seLinuxOptions") or {}
        if selinux.get("user") or selinux.get("role"):
            yield f"container {name} sets an SELinux user or role"


def _restricted(pod: Mapping[str, Any]) -> Iterator[str]:
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            yield f"volume {volume.get('name')} of type {sorted(kinds)}"
    pod_context = pod.get("securityContext") or {}
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_context.get("runAsUser") == 0:
        yield "pod runAsUser=0"
    for container in containers(pod):
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"container {name} must set allowPrivilegeEscalation=false"
        non_root = context.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            yield f"container {name} must run as non-root (runAsNonRoot=true)"
        if context.get("runAsUser") == 0:
            yield f"container {name} runAsUser=0"
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in SECCOMP_ALLOWED:
            yield f"container {name} must set seccompProfile RuntimeDefault or Localhost"
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"container {name} must drop ALL capabilities"
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            yield f"container {name} may add only NET_BIND_SERVICE, not {sorted(added)}"


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """The rules of Pod Security "restricted" that the pod spec breaks (empty: admitted)."""
    return [*_baseline(pod), *_restricted(pod)]


def read_only_root_violations(pod: Mapping[str, Any]) -> list[str]:
    """Containers whose root file system is writable (not a PSS rule; this project's own)."""
    return [
        f"container {container.get('name')} has a writable root file system"
        for container in containers(pod)
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True
    ]
