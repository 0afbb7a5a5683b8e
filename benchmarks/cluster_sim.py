"""Cluster simulator: a whole discovery run, decided by the real planner, on a simulated cluster.

A deterministic (seeded) discrete-event simulation of one DiscoveryRun on a Kubernetes cluster
whose GPU nodes are fixed or scale with demand. The real :func:`genesys.engine.plan.plan` decides
every action; the simulator plays the backend and the cluster and prints, side by side for a
fixed, an autoscaled and an unlimited cluster: makespan, GPU-hours used and idle, peak nodes,
cost, preemptions and jobs lost, with ratios against the unlimited cluster measured in the same
run.

What it models:

- **Node groups** (:class:`NodeGroup`): GPU type, GPUs, CPU and memory per node (allocatable),
  min/max nodes, scale-up delay (launch to Ready), price per node-hour, taints and labels.
- **Training pods** (:func:`training_pod`), one per training Job, as the operator renders them
  for their rung: the rung's placement over ``verification``'s (``rung_placement``): requests =
  limits of ``nvidia.com/gpu``, CPU and memory (whole MiB), the tolerations plus the GPU
  toleration the operator adds to pods that ask for GPUs, the nodeSelector. A pending pod binds
  to the first Ready node (in launch order) where :func:`schedulable` holds: the requests fit
  the node's free resources, every ``NoSchedule``/``NoExecute`` taint is tolerated, the
  nodeSelector matches the node's labels. Pending pods bind in creation order, and the planner
  sees them as waiting for capacity (``Observed.waiting_jobs``, ``Unschedulable``, since the pod
  was created), so ``verification.maxPendingJobs`` holds new starts back and
  ``verification.capacityTimeoutSeconds`` cancels a pod that waited too long
  (``CancelVerification``, an ``error`` result).
- **A cluster autoscaler** (:func:`scale_up`, :func:`scale_down`): pods that stay pending are
  first packed onto nodes already launching, then onto new nodes of the first group whose node
  would take them and that is under its max; a new node is Ready after its group's delay. A
  Ready node with no pod for ``scale_down_after`` seconds (default 10 minutes) is removed, never
  below the group's min (a node with a pod never is: the operator marks training pods
  not-to-evict). A group's min nodes are Ready when the run starts; a group below its min (a
  preempted node of a fixed group) launches replacements, as a cloud node group keeps its size.
- **Preemptions**: every Ready node is taken away after an exponential time, at
  ``preemption_rate`` per Ready node-hour (``0.05``: one node in twenty per hour). Its pods are
  by default **recreated** (``preempted_pods``), as the operator's training Jobs do: their
  ``podFailurePolicy`` ignores a pod failure with the ``DisruptionTarget`` condition, the Job
  makes a new pod without counting a failure, and it resumes from the checkpoint the trainer
  wrote on SIGTERM (the whole training so far is kept: the grace period covers one step and one
  checkpoint). With ``preempted_pods="failed"`` (Jobs without that policy) a preempted pod is a
  failed attempt (``Observed.failed_attempts``): the planner may start that verification again
  with the next attempt number, resumed from the last periodic checkpoint
  (``verification.training.checkpointEveryMinutes``), until ``verification.maxRetries`` retries
  have failed, then gives it up (``RecordFailure``, an ``error`` result): a **job lost**; at a
  promotion rung it chooses anew by selection and may never start a failed verification again
  (*never started again*). The GPU time of preempted pods that no later pod resumed is *lost to
  preemptions*.
- **Training time**: the paper's wall times on 8 GPUs anchor the ladder, 3 minutes at 14M and
  17 hours at 350M; a rung's time is a power law in its compute, ``params x tokens`` (reference
  params of the rung's shape, and its training tokens), through those two points (exponent
  about 0.79: small models use GPUs less well), scaled by ``8 / gpus`` for pods with other GPU
  counts (linear scaling), plus ``startup_seconds`` per pod (0 by default: the paper's times are
  whole jobs). On 8 GPUs: 14M 3 min, 31M 10 min, 70M 40 min, 125M 2.9 h, 350M 17 h.
- **Design sessions** run off the GPU nodes (CPU pods, not simulated as pods), each for
  ``session_seconds`` (20 minutes), and always implement a design.
- **Results**, as ``tests/support/plan_trace.py`` draws them: a design's quality from its
  parents' plus noise; a verification fails its guard with probability ``guard_stop``, else
  succeeds with a validation loss and accuracies drawn from the quality (``random.Random``
  seeded by the simulation seed and the job's id, never by ``hash()``).

The planner is called only when something it observes changed (a session or a job ended, a pod
was preempted, seeds or an error result were recorded, ``spec.deadline`` or a capacity timeout
came: the simulated clock starts at :data:`START`), with the simulated time as ``now``; the
simulation then advances to its next event (a session or pod ending, a node becoming Ready, a
preemption, an idle node due for scale-down, a time the planner must look again).

Metrics: *used* GPU-hours are GPUs held by bound pods; *idle* GPU-hours are GPUs of Ready nodes
held by no pod; cost is node-hours from launch (not Ready) to removal, times the group's price;
accounting stops when the run finishes. The *unlimited* cluster is the baseline: no node limit,
no scale-up delay, nodes removed as soon as they are idle, no preemptions; the planner alone
sets its makespan.

What it does not model: Kueue quotas and admission (Jobs are created at once and their pods wait
Pending), affinity, pod priorities and scheduler preemption, scoring (first-fit instead of the
default scheduler's spreading), activeDeadlineSeconds (training times stay far below the rungs'
deadlines), image pulls and data loading (see ``startup_seconds``), network and storage, the
session pods' CPU nodes, LLM cost (``spend_usd`` stays 0, so ``agents.maxUsdPerRun`` never stops
a run), interruptions of nodes still launching, preemptions without SIGTERM (a node that
vanishes at once), and the spread of training times between designs (every design trains a
rung in the rung's time, so which designs climb changes nothing of the demand).

Run: ``.venv/bin/python -m benchmarks.cluster_sim [--spec examples/paper-ladder.yaml] [--seed N]
[--preemption-rate 0.05] [--fixed-nodes N] [--max-nodes N] ...`` (``--help`` lists them).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from genesys.api.discoveryrun import DiscoveryRunSpec
from genesys.api.ladder import RungConfig, preset_rung, resolve_ladder
from genesys.api.placement import rung_placement
from genesys.api.validation import parse_discovery_run
from genesys.api.yamlio import load_spec_bytes
from genesys.backends.manifests import training_tolerations
from genesys.engine.actions import (
    Action,
    CancelVerification,
    Finish,
    InitSeeds,
    RecordFailure,
    StartSession,
    StartVerification,
)
from genesys.engine.plan import SEED_NAMES, Observed, plan
from genesys.engine.state import Waiting
from genesys.quantities import MIB, cpus, memory_mib
from genesys.store.archive import Archive, DesignRecord, Verification
from genesys.store.documents import SessionOutcome

REPO = Path(__file__).resolve().parents[1]
PAPER_LADDER_SPEC = REPO / "examples" / "paper-ladder.yaml"
START = datetime(2026, 11, 26, tzinfo=UTC)
HOUR = 3600.0
GIB = 2**30
GPU_TAINT = "nvidia.com/gpu"
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})  # PreferNoSchedule only prefers
MAX_ROUNDS = 100  # settling rounds at one instant before the simulation calls itself stuck
MAX_EVENTS = 1_000_000

# ------------------------------------------------------------------------------- training time

PAPER_GPUS = 8
PAPER_SECONDS = {"14M": 3 * 60.0, "350M": 17 * HOUR}  # one training on 8 GPUs, from the paper


def compute(rung: RungConfig) -> float:
    """A rung's training compute in ``params x tokens`` (its reference shape's params)."""
    params = rung.reference_params
    return float(params) * float(rung.training_tokens(params))


def _time_law() -> tuple[float, float, float]:
    """(seconds, compute) of the small anchor, and the exponent through both paper anchors."""
    (small, small_s), (large, large_s) = PAPER_SECONDS.items()
    small_c, large_c = compute(preset_rung(small)), compute(preset_rung(large))
    return small_s, small_c, math.log(large_s / small_s) / math.log(large_c / small_c)


ANCHOR_SECONDS, ANCHOR_COMPUTE, TIME_EXPONENT = _time_law()


def training_seconds(rung: RungConfig, gpus: int) -> float:
    """Wall seconds of one training at ``rung`` on a pod of ``gpus`` GPUs (module docstring)."""
    on_paper_gpus: float = ANCHOR_SECONDS * (compute(rung) / ANCHOR_COMPUTE) ** TIME_EXPONENT
    return on_paper_gpus * PAPER_GPUS / max(1, gpus)


# ----------------------------------------------------------------------------- pods and nodes


@dataclass(frozen=True, slots=True)
class Requests:
    """Resources a pod requests, or a node has free (memory in bytes)."""

    gpus: int = 0
    cpu: float = 0.0
    memory: int = 0

    def fits_in(self, free: Requests) -> bool:
        """True when these requests fit in ``free``."""
        return self.gpus <= free.gpus and self.cpu <= free.cpu + 1e-9 and self.memory <= free.memory

    def minus(self, other: Requests) -> Requests:
        """What is left of these resources once ``other`` is taken."""
        return Requests(self.gpus - other.gpus, self.cpu - other.cpu, self.memory - other.memory)


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration (Kubernetes semantics: an empty key with Exists tolerates every taint)."""

    key: str = ""
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # empty: every effect


@dataclass(frozen=True, slots=True)
class PodSpec:
    """What the scheduler reads of a training pod."""

    requests: Requests
    tolerations: tuple[Toleration, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """A group of identical nodes (a node pool); ``max_nodes`` None: no limit."""

    name: str
    gpu_type: str
    gpus: int
    cpu: float
    memory: int  # bytes, allocatable
    min_nodes: int = 0
    max_nodes: int | None = None
    scale_up_delay: float = 300.0  # seconds from launch to Ready
    price_per_hour: float = 0.0  # USD per node-hour
    taints: tuple[Taint, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def capacity(self) -> Requests:
        """One node's allocatable resources."""
        return Requests(self.gpus, self.cpu, self.memory)

    def has_room(self, nodes: int) -> bool:
        """True when a group of ``nodes`` nodes may launch one more."""
        return self.max_nodes is None or nodes < self.max_nodes


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """True when ``toleration`` tolerates ``taint``."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if not toleration.key:
        return toleration.operator == "Exists"
    if toleration.key != taint.key:
        return False
    return toleration.operator == "Exists" or toleration.value == taint.value


def taints_tolerated(tolerations: Sequence[Toleration], taints: Sequence[Taint]) -> bool:
    """True when every blocking taint (NoSchedule, NoExecute) is tolerated."""
    return all(
        any(tolerates(t, taint) for t in tolerations)
        for taint in taints
        if taint.effect in BLOCKING_EFFECTS
    )


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when the node's labels carry every key and value of the nodeSelector."""
    return all(labels.get(key) == value for key, value in selector.items())


def schedulable(pod: PodSpec, group: NodeGroup, free: Requests) -> bool:
    """The scheduler's predicate: requests fit ``free``, taints tolerated, nodeSelector matches."""
    return (
        pod.requests.fits_in(free)
        and taints_tolerated(pod.tolerations, group.taints)
        and selector_matches(pod.node_selector, group.labels)
    )


def toleration(rendered: Mapping[str, Any]) -> Toleration:
    """A toleration as the operator renders it into the pod (a dict of the pod spec)."""
    return Toleration(
        str(rendered.get("key") or ""),
        str(rendered.get("operator") or "Equal"),
        str(rendered.get("value") or ""),
        str(rendered.get("effect") or ""),
    )


def training_pod(spec: DiscoveryRunSpec, rung: str) -> PodSpec:
    """A training pod of ``rung``, as the operator renders it (requests = limits).

    The rung's placement (its own fields over ``verification``'s), and the GPU toleration the
    operator adds to every pod that asks for GPUs.
    """
    placement = rung_placement(spec, rung)
    resources = placement.resources
    given = [t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations]
    return PodSpec(
        Requests(resources.gpus, cpus(resources.cpu), memory_mib(resources.memory) * MIB),
        tuple(toleration(t) for t in training_tolerations(given, resources.gpus)),
        dict(placement.node_selector),
    )


# ------------------------------------------------------------------------ the cluster's state

Job = tuple[str, str]  # (design id, rung name)


@dataclass(slots=True, eq=False)
class Pod:
    """The pod of one training Job (one attempt; a recreated pod keeps the attempt)."""

    job: Job
    attempt: int
    spec: PodSpec
    work: float  # training seconds this pod has left (after the checkpoint it resumes)
    pending_since: float  # when it was created (a recreated pod: when it was recreated)
    node: Node | None = None
    started: float = 0.0  # when it was bound
    ends: float = math.inf  # when its training ends (bound pods)


@dataclass(slots=True, eq=False)
class Node:
    """One node, launching or Ready."""

    name: str
    group: NodeGroup
    launched: float
    ready_at: float
    preempt_at: float = math.inf
    pods: list[Pod] = field(default_factory=list)
    idle_since: float = 0.0

    def ready(self, now: float) -> bool:
        """True once the node is Ready."""
        return self.ready_at <= now

    def free(self) -> Requests:
        """Allocatable resources no pod requests."""
        free = self.group.capacity
        for pod in self.pods:
            free = free.minus(pod.spec.requests)
        return free

    def used_gpus(self) -> int:
        """GPUs held by the node's pods."""
        return sum(pod.spec.requests.gpus for pod in self.pods)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A cluster: its node groups, the autoscaler's idle period and the preemption rate."""

    name: str
    groups: tuple[NodeGroup, ...]
    scale_down_after: float = 600.0  # seconds a Ready node stays idle before removal
    preemption_rate: float = 0.0  # preemptions per Ready node-hour


def first_fit(pod: PodSpec, nodes: Sequence[Node], now: float) -> Node | None:
    """The first Ready node (in launch order) the scheduler would bind ``pod`` to."""
    for node in nodes:
        if node.ready(now) and schedulable(pod, node.group, node.free()):
            return node
    return None


@dataclass(slots=True)
class _Slot:
    group: NodeGroup
    free: Requests


def _slot_for(
    pod: PodSpec, slots: list[_Slot], groups: Sequence[NodeGroup], counts: Counter[str]
) -> _Slot | None:
    """A launching node that takes ``pod``, else a new one of the first group that fits."""
    for slot in slots:
        if schedulable(pod, slot.group, slot.free):
            return slot
    for group in groups:
        if schedulable(pod, group, group.capacity) and group.has_room(counts[group.name]):
            counts[group.name] += 1
            slot = _Slot(group, group.capacity)
            slots.append(slot)
            return slot
    return None


def scale_up(
    pending: Sequence[PodSpec],
    groups: Sequence[NodeGroup],
    launching: Sequence[tuple[NodeGroup, Requests]],
    counts: Mapping[str, int],
) -> list[NodeGroup]:
    """The nodes to launch for pods no Ready node takes (cluster-autoscaler's scale-up).

    ``launching``: the nodes not Ready yet and their free resources; ``counts``: the nodes of each
    group (launching or Ready). Pods are packed first-fit onto launching nodes, then onto new
    nodes of the first group whose node would take them and that is under its max.
    """
    slots = [_Slot(group, free) for group, free in launching]
    known = len(slots)
    nodes = Counter(counts)
    for pod in pending:
        slot = _slot_for(pod, slots, groups, nodes)
        if slot is not None:
            slot.free = slot.free.minus(pod.requests)
    return [slot.group for slot in slots[known:]]


def below_min(groups: Sequence[NodeGroup], counts: Mapping[str, int]) -> list[NodeGroup]:
    """Nodes to launch so every group has at least its min."""
    return [g for g in groups for _ in range(max(0, g.min_nodes - counts.get(g.name, 0)))]


def scale_down(nodes: Sequence[Node], now: float, after: float) -> list[Node]:
    """Ready nodes idle for ``after`` seconds, removable without going below their group's min."""
    counts = Counter(node.group.name for node in nodes)
    removed = []
    for node in nodes:
        idle = node.ready(now) and not node.pods and now - node.idle_since >= after
        if idle and counts[node.group.name] > node.group.min_nodes:
            counts[node.group.name] -= 1
            removed.append(node)
    return removed


# ------------------------------------------------------------------------- the run's results


PreemptedPods = Literal["recreated", "failed"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What the simulated backend does, besides the cluster."""

    seed: int = 0  # of the simulated outcomes and preemptions, not the run's spec.seed
    session_seconds: float = 20 * 60.0
    guard_stop: float = 0.05  # a verification stopped by a guard: a ``failed`` result
    startup_seconds: float = 0.0  # per pod, before training starts (0: the paper's times)
    # what becomes of a pod whose node is preempted: "recreated" by its Job (the operator's
    # podFailurePolicy; it resumes from the checkpoint written on SIGTERM), or "failed" (a failed
    # attempt, resumed from the last periodic checkpoint: Jobs without that policy)
    preempted_pods: PreemptedPods = "recreated"


def seeded(seed: int, *parts: object) -> random.Random:
    """A generator seeded by the simulation seed and a place (never by hash())."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def design_quality(parents: Sequence[float], rng: random.Random) -> float:
    """A new design's quality: its parents' mean plus a small drift (no parent: 0.35)."""
    base = sum(parents) / len(parents) if parents else 0.35
    return round(base + rng.gauss(0.01, 0.04), 4)


def succeeded(
    rung: RungConfig, quality: float, tasks: Sequence[str], rng: random.Random
) -> Verification:
    """A successful verification: a loss and accuracies drawn around the design's quality."""
    level = quality + 0.03 * rung.index
    metrics = {
        task: {"acc_norm": round(min(1.0, max(0.0, level + rng.gauss(0, 0.03))), 4)}
        for task in tasks
    }
    return Verification(
        rung.name,
        "succeeded",
        val_loss=round(3.6 - 2 * level + rng.gauss(0, 0.03), 4),
        train_loss=round(3.5 - 2 * level, 4),
        params=rung.reference_params,
        tokens=rung.training_tokens(rung.reference_params),
        metrics=metrics,
    )


# ---------------------------------------------------------------------------------- outcome


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one simulated run measured."""

    cluster: str
    finish: str
    makespan_hours: float
    gpu_hours_used: float
    gpu_hours_idle: float
    gpu_hours_lost: float  # GPU time of preempted pods that no later pod resumed
    node_hours: float
    cost_usd: float
    peak_nodes: int
    preemptions: int  # nodes taken away
    pods_preempted: int  # training pods on them
    jobs_lost: int  # verifications given up (error results) after failed attempts
    abandoned: int  # verifications with a failed attempt the planner never started again
    cancelled: int  # verifications cancelled after waiting capacityTimeoutSeconds
    verifications: int  # verifications that ended with a result from a pod
    sessions: int
    plan_calls: int

    @property
    def idle_ratio(self) -> float:
        """Idle GPU-hours per used GPU-hour (inf when no GPU was used)."""
        return self.gpu_hours_idle / self.gpu_hours_used if self.gpu_hours_used else math.inf


@dataclass(slots=True)
class Meter:
    """Running totals of a simulation."""

    gpu_seconds_used: float = 0.0
    gpu_seconds_idle: float = 0.0
    gpu_seconds_preempted: float = 0.0  # GPU time of preempted pods
    gpu_seconds_resumed: float = 0.0  # the part of it later pods resumed from checkpoints
    node_seconds: float = 0.0
    cost_usd: float = 0.0
    peak_nodes: int = 0
    preemptions: int = 0
    pods_preempted: int = 0
    jobs_lost: int = 0
    cancelled: int = 0
    verifications: int = 0
    plan_calls: int = 0


class SimulationStuckError(RuntimeError):
    """Nothing will ever happen again, yet the run has not finished (a pod fits no node)."""


# ------------------------------------------------------------------------------- simulation


class Simulation:
    """One run of ``plan()`` on one simulated cluster, from an empty archive to Finish."""

    def __init__(self, spec: DiscoveryRunSpec, cluster: ClusterConfig, config: SimConfig) -> None:
        self.spec = spec
        self.cluster = cluster
        self.config = config
        vocab = spec.verification.data.vocab_size
        self.rungs = {r.name: r for r in resolve_ladder(spec.ladder, vocab_size=vocab)}
        self.pod_specs = {name: training_pod(spec, name) for name in self.rungs}
        self.checkpoint_seconds = spec.verification.training.checkpoint_every_minutes * 60
        self.capacity_timeout = spec.verification.capacity_timeout_seconds
        self.tasks = list(spec.verification.eval_tasks)
        self.now = 0.0
        self.archive = Archive("cluster-sim")
        self.quality: dict[str, float] = {}
        self.sessions: dict[str, tuple[float, StartSession]] = {}
        self.pods: dict[Job, Pod] = {}  # every training Job that exists, pending or bound
        self.pending: list[Pod] = []  # in creation order
        self.failed: dict[Job, int] = {}
        self.progress: dict[Job, float] = {}  # training seconds checkpointed
        self.nodes: list[Node] = []  # in launch order
        self.launches = 0
        self.meter = Meter()
        self.dirty = True  # something the planner observes changed
        self.finish: str | None = None
        self.wakeups: list[float] = []  # times the planner must look again (deadline, timeouts)
        if spec.deadline is not None:
            self.wakeups.append((spec.deadline - START).total_seconds())
        for group in below_min(cluster.groups, {}):
            self.launch(group, delay=0.0)  # a group's min nodes are up when the run starts

    # ----------------------------------------------------------------------- the planner

    def observed(self) -> Observed:
        """What the backend shows the planner: pending pods wait, Unschedulable."""
        waiting = {
            pod.job: Waiting(START + timedelta(seconds=pod.pending_since), "Unschedulable")
            for pod in self.pending
        }
        return Observed(
            archive=self.archive,
            running_sessions=frozenset(self.sessions),
            running_jobs=frozenset(self.pods),
            failed_attempts=dict(self.failed),
            waiting_jobs=waiting,
        )

    def replan(self) -> bool:
        """Call ``plan()`` and apply its actions; True when it did anything."""
        self.dirty = False
        result = plan(self.spec, self.observed(), START + timedelta(seconds=self.now))
        self.meter.plan_calls += 1
        for action in result.actions:
            self.apply(action)
        return bool(result.actions)

    def apply(self, action: Action) -> None:
        """Execute one action, as a backend would."""
        if isinstance(action, InitSeeds):
            self.init_seeds()
        elif isinstance(action, StartSession):
            self.sessions[action.session] = (self.now + self.config.session_seconds, action)
        elif isinstance(action, StartVerification):
            self.create_pod(action)
        elif isinstance(action, RecordFailure | CancelVerification):
            self.record_error(action)
        elif isinstance(action, Finish):
            self.finish = action.reason.value

    def init_seeds(self) -> None:
        for seq, name in enumerate(SEED_NAMES):
            design = f"seed-{name}"
            self.archive.designs[design] = DesignRecord(design, name, "seed", [], seq)
            quality = seeded(self.config.seed, "quality", design).uniform(0.3, 0.45)
            self.quality[design] = round(quality, 4)
        self.dirty = True

    def record_error(self, action: RecordFailure | CancelVerification) -> None:
        """A verification given up (retries spent) or cancelled (no capacity): an error result."""
        job = (action.design_id, action.rung)
        pod = self.pods.pop(job, None)
        if pod is not None and pod in self.pending:
            self.pending.remove(pod)  # a cancelled job's pod waits; a given-up one has none
        record = self.archive.designs[action.design_id]
        record.verifications[action.rung] = Verification(action.rung, "error", reason=action.reason)
        if isinstance(action, CancelVerification):
            self.meter.cancelled += 1
        else:
            self.meter.jobs_lost += 1  # every failed attempt here is a preempted pod
        self.dirty = True  # an error result holds the top rung closed for one more plan

    def create_pod(self, action: StartVerification) -> None:
        job = (action.design_id, action.rung)
        spec = self.pod_specs[action.rung]
        total = training_seconds(self.rungs[action.rung], spec.requests.gpus)
        self.queue(Pod(job, action.attempt, spec, total - self.progress.get(job, 0.0), self.now))

    def queue(self, pod: Pod) -> None:
        """A new pod: pending, and due to be cancelled once it waited the capacity timeout."""
        self.pods[pod.job] = pod
        self.pending.append(pod)
        if self.capacity_timeout is not None:
            self.wakeups.append(self.now + self.capacity_timeout + 1.0)  # the planner's `>`

    # ----------------------------------------------------------------------- work that ends

    def end_session(self, action: StartSession) -> None:
        rng = seeded(self.config.seed, "session", action.session)
        rating = round(rng.uniform(2.5, 5.0), 1)
        parents = [self.quality.get(p, 0.35) for p in action.parents]
        self.quality[action.design_id] = design_quality(parents, rng)
        self.archive.designs[action.design_id] = DesignRecord(
            action.design_id,
            f"design {action.design_id}",
            action.operator,
            list(action.parents),
            action.seq,
            session=action.session,
            proposal_rating=rating,
        )
        self.archive.sessions[action.session] = SessionOutcome(
            status="implemented", design=action.design_id, reason="implemented", rating=rating
        )

    def end_pod(self, pod: Pod) -> None:
        """The pod's training finished: its result enters the archive."""
        self.unbind(pod)
        del self.pods[pod.job]
        resumed = self.progress.pop(pod.job, 0.0)
        self.meter.gpu_seconds_resumed += resumed * pod.spec.requests.gpus
        design, rung = pod.job
        rng = seeded(self.config.seed, "job", design, rung, pod.attempt)
        record = self.archive.designs[design]
        if rng.random() < self.config.guard_stop:
            record.verifications[rung] = Verification(rung, "failed", reason="loss above maxLoss")
        else:
            record.verifications[rung] = succeeded(
                self.rungs[rung], self.quality[design], self.tasks, rng
            )
        self.meter.verifications += 1

    def unbind(self, pod: Pod) -> None:
        """The pod leaves its node (idle from now when it was the last)."""
        node = pod.node
        if node is not None:
            node.pods.remove(pod)
            if not node.pods:
                node.idle_since = self.now
        self.dirty = True

    def preempt(self, node: Node) -> None:
        """The node is taken away; each of its pods is recreated or fails its attempt."""
        self.meter.preemptions += 1
        for pod in list(node.pods):
            self.meter.pods_preempted += 1
            self.meter.gpu_seconds_preempted += (self.now - pod.started) * pod.spec.requests.gpus
            self.unbind(pod)
            trained = max(0.0, self.now - pod.started - self.config.startup_seconds)
            if self.config.preempted_pods == "recreated":
                self.recreate(pod, trained)
            else:
                self.fail(pod, trained)
        self.nodes.remove(node)

    def recreate(self, pod: Pod, trained: float) -> None:
        """The Job makes a new pod (no failure counted); it resumes where SIGTERM stopped."""
        kept = min(trained, pod.work)
        self.progress[pod.job] = self.progress.get(pod.job, 0.0) + kept
        self.queue(Pod(pod.job, pod.attempt, pod.spec, pod.work - kept, self.now))

    def fail(self, pod: Pod, trained: float) -> None:
        """The attempt failed; the last periodic checkpoint stays for a later attempt."""
        kept = math.floor(trained / self.checkpoint_seconds) * self.checkpoint_seconds
        self.progress[pod.job] = self.progress.get(pod.job, 0.0) + min(kept, pod.work)
        self.failed[pod.job] = self.failed.get(pod.job, 0) + 1
        del self.pods[pod.job]

    def end_due(self) -> bool:
        """Pods, sessions, nodes and wake-ups whose time has come; True when any did."""
        ended = sorted(
            (p for p in self.pods.values() if p.ends <= self.now), key=lambda p: (p.ends, p.job)
        )
        for pod in ended:
            self.end_pod(pod)
        sessions = sorted(s for s, (ends, _) in self.sessions.items() if ends <= self.now)
        for session in sessions:
            self.end_session(self.sessions.pop(session)[1])
            self.dirty = True
        preempted = [n for n in self.nodes if n.preempt_at <= self.now]
        for node in preempted:
            self.preempt(node)
        if any(t <= self.now for t in self.wakeups):
            self.wakeups = [t for t in self.wakeups if t > self.now]
            self.dirty = True
        return bool(ended or sessions or preempted)

    # ----------------------------------------------------------------------- the cluster

    def bind(self) -> bool:
        """Bind pending pods first-fit, in creation order; True when any was bound."""
        bound = False
        for pod in list(self.pending):
            node = first_fit(pod.spec, self.nodes, self.now)
            if node is None:
                continue
            self.pending.remove(pod)
            node.pods.append(pod)
            pod.node, pod.started = node, self.now
            pod.ends = self.now + self.config.startup_seconds + pod.work
            bound = True
        return bound

    def launch(self, group: NodeGroup, delay: float | None = None) -> None:
        """A new node of ``group``, Ready after ``delay`` (default: the group's)."""
        self.launches += 1
        name = f"{group.name}-{self.launches}"
        ready = self.now + (group.scale_up_delay if delay is None else delay)
        node = Node(name, group, self.now, ready, idle_since=ready)
        rate = self.cluster.preemption_rate
        if rate > 0:
            node.preempt_at = ready + seeded(self.config.seed, "preempt", name).expovariate(
                rate / HOUR
            )
        self.nodes.append(node)

    def autoscale(self) -> bool:
        """Launch nodes for the min and for pending pods, remove idle ones; True on a change."""
        groups = self.cluster.groups
        # idle nodes first: a pod that fits a Ready node is bound already (bind runs first)
        removed = scale_down(self.nodes, self.now, self.cluster.scale_down_after)
        for node in removed:
            self.nodes.remove(node)
        counts = Counter(node.group.name for node in self.nodes)
        launching = [(n.group, n.free()) for n in self.nodes if not n.ready(self.now)]
        wanted = below_min(groups, counts)
        counts.update(g.name for g in wanted)
        wanted += scale_up([p.spec for p in self.pending], groups, launching, counts)
        for group in wanted:
            self.launch(group)
        return bool(wanted or removed)

    # ----------------------------------------------------------------------- time

    def settle(self) -> None:
        """Everything that happens at ``now``, until nothing more does."""
        for _ in range(MAX_ROUNDS):
            changed = self.end_due()
            if self.dirty and self.finish is None:
                changed = self.replan() or changed
            changed = self.bind() or changed
            changed = self.autoscale() or changed
            self.meter.peak_nodes = max(self.meter.peak_nodes, len(self.nodes))
            if not changed or self.finish is not None:
                return
        raise SimulationStuckError(f"no steady state at {self.now:.0f} s")

    def next_event(self) -> float | None:
        """The time of the next event after ``now``, or None when none will come."""
        times = [*self.wakeups, *(ends for ends, _ in self.sessions.values())]
        times += [p.ends for p in self.pods.values()]
        times += [n.ready_at for n in self.nodes if n.ready_at > self.now]
        times += [n.preempt_at for n in self.nodes]
        counts = Counter(n.group.name for n in self.nodes)
        after = self.cluster.scale_down_after
        times += [
            n.idle_since + after
            for n in self.nodes
            if not n.pods and n.ready(self.now) and counts[n.group.name] > n.group.min_nodes
        ]
        future = [t for t in times if self.now < t < math.inf]
        return min(future) if future else None

    def advance(self, until: float) -> None:
        """Account GPU and node time up to ``until``, then move there."""
        seconds = until - self.now
        meter = self.meter
        for node in self.nodes:
            meter.node_seconds += seconds
            meter.cost_usd += node.group.price_per_hour * seconds / HOUR
            if node.ready(self.now):
                used = node.used_gpus()
                meter.gpu_seconds_used += used * seconds
                meter.gpu_seconds_idle += (node.group.gpus - used) * seconds
        self.now = until

    def run(self, progress: Callable[[Simulation], None] | None = None) -> Outcome:
        """Simulate until the planner finishes the run."""
        for _ in range(MAX_EVENTS):
            self.settle()
            if self.finish is not None:
                return self.outcome()
            until = self.next_event()
            if until is None:
                raise SimulationStuckError(self.stuck_message())
            self.advance(until)
            if progress is not None:
                progress(self)
        raise SimulationStuckError(f"more than {MAX_EVENTS} events")

    def stuck_message(self) -> str:
        pods = ", ".join(f"{d}@{r}" for d, r in sorted(p.job for p in self.pending)[:5])
        return f"pods that no node group can take: {pods or 'none'}; nothing else will happen"

    def outcome(self) -> Outcome:
        m = self.meter
        return Outcome(
            cluster=self.cluster.name,
            finish=self.finish or "",
            makespan_hours=self.now / HOUR,
            gpu_hours_used=m.gpu_seconds_used / HOUR,
            gpu_hours_idle=m.gpu_seconds_idle / HOUR,
            gpu_hours_lost=(m.gpu_seconds_preempted - m.gpu_seconds_resumed) / HOUR,
            node_hours=m.node_seconds / HOUR,
            cost_usd=m.cost_usd,
            peak_nodes=m.peak_nodes,
            preemptions=m.preemptions,
            pods_preempted=m.pods_preempted,
            jobs_lost=m.jobs_lost,
            abandoned=sum(
                1
                for design, rung in self.failed
                if rung not in self.archive.designs[design].verifications
            ),
            cancelled=m.cancelled,
            verifications=m.verifications,
            sessions=len(self.archive.sessions),
            plan_calls=m.plan_calls,
        )


def simulate(
    spec: DiscoveryRunSpec,
    cluster: ClusterConfig,
    config: SimConfig | None = None,
    progress: Callable[[Simulation], None] | None = None,
) -> Outcome:
    """One whole run of ``spec`` on ``cluster``."""
    return Simulation(spec, cluster, config or SimConfig()).run(progress)


# ------------------------------------------------------------------------------- the clusters


@dataclass(frozen=True, slots=True)
class NodeShape:
    """The node every cluster of the report is made of."""

    gpu_type: str = "H100"
    gpus: int = 8
    cpu: float = 192.0
    memory: int = 2000 * GIB
    instance_type: str = "p5.48xlarge"
    price_per_hour: float = 55.0  # an illustrative on-demand price; pass your own
    scale_up_delay: float = 300.0


def node_group(spec: DiscoveryRunSpec, shape: NodeShape, name: str = "gpu") -> NodeGroup:
    """The group the run targets: labelled to match its rungs' nodeSelectors, GPU nodes tainted.

    A group without GPUs (for a spec whose pods ask for none) has no taint.
    """
    selectors = [rung_placement(spec, rung.name).node_selector for rung in spec.ladder.rungs]
    labels = {
        "node.kubernetes.io/instance-type": shape.instance_type,
        **({"nvidia.com/gpu.product": shape.gpu_type} if shape.gpus else {}),
        **{key: value for selector in selectors for key, value in selector.items()},
    }
    taints = (Taint(GPU_TAINT, "present", "NoSchedule"),) if shape.gpus else ()
    return NodeGroup(
        name,
        shape.gpu_type if shape.gpus else "none",
        shape.gpus,
        shape.cpu,
        shape.memory,
        scale_up_delay=shape.scale_up_delay,
        price_per_hour=shape.price_per_hour,
        taints=taints,
        labels=labels,
    )


def pods_per_node(pod: Requests, group: NodeGroup) -> int:
    """How many such pods one node of ``group`` holds."""
    return min(
        group.gpus // pod.gpus if pod.gpus else sys.maxsize,
        int(group.cpu // pod.cpu) if pod.cpu else sys.maxsize,
        group.memory // pod.memory if pod.memory else sys.maxsize,
    )


def rung_nodes(spec: DiscoveryRunSpec, group: NodeGroup) -> int:
    """Nodes that run any one rung's ``maxParallelJobsPerRung`` training pods at once."""
    parallel = spec.verification.max_parallel_jobs_per_rung
    return max(
        math.ceil(parallel / max(1, pods_per_node(training_pod(spec, r.name).requests, group)))
        for r in spec.ladder.rungs
    )


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """The three clusters of the report."""

    shape: NodeShape = NodeShape()
    fixed_nodes: int | None = None  # None: one rung at full parallelism (rung_nodes)
    max_nodes: int | None = None  # None: twice that
    scale_down_after: float = 600.0
    preemption_rate: float = 0.05


def clusters(spec: DiscoveryRunSpec, report: ReportConfig) -> list[ClusterConfig]:
    """Fixed, autoscaled and unlimited clusters of the same node."""
    group = node_group(spec, report.shape)
    fixed = report.fixed_nodes if report.fixed_nodes is not None else rung_nodes(spec, group)
    most = report.max_nodes if report.max_nodes is not None else 2 * rung_nodes(spec, group)
    rate, after = report.preemption_rate, report.scale_down_after
    return [
        ClusterConfig("fixed", (replace(group, min_nodes=fixed, max_nodes=fixed),), after, rate),
        ClusterConfig("autoscaled", (replace(group, min_nodes=0, max_nodes=most),), after, rate),
        ClusterConfig("unlimited", (replace(group, max_nodes=None, scale_up_delay=0.0),), 0.0, 0.0),
    ]


# ---------------------------------------------------------------------------------- the report


def _hours(value: float) -> str:
    return f"{value:,.1f}"


def _ratio(value: float) -> str:
    return "n/a" if math.isinf(value) or math.isnan(value) else f"{value:.2f}x"


def _percent(value: float) -> str:
    return "n/a" if math.isinf(value) or math.isnan(value) else f"{100 * value:.1f}%"


def _nodes(cluster: ClusterConfig) -> str:
    group = cluster.groups[0]
    most = "inf" if group.max_nodes is None else str(group.max_nodes)
    return f"{group.min_nodes}-{most}"


def table(cluster_list: Sequence[ClusterConfig], outcomes: Sequence[Outcome]) -> list[str]:
    """The side-by-side table: one column per cluster, the last one the baseline."""
    base = outcomes[-1]
    rows: list[tuple[str, list[str]]] = [
        ("nodes (min-max)", [_nodes(c) for c in cluster_list]),
        ("finish", [o.finish for o in outcomes]),
        ("makespan (h)", [_hours(o.makespan_hours) for o in outcomes]),
        (
            "makespan / unlimited",
            [_ratio(o.makespan_hours / base.makespan_hours) for o in outcomes],
        ),
        ("GPU-hours used", [_hours(o.gpu_hours_used) for o in outcomes]),
        ("GPU-hours idle", [_hours(o.gpu_hours_idle) for o in outcomes]),
        ("idle / used", [_percent(o.idle_ratio) for o in outcomes]),
        ("GPU-hours lost to preemptions", [_hours(o.gpu_hours_lost) for o in outcomes]),
        ("node-hours", [_hours(o.node_hours) for o in outcomes]),
        ("cost (USD)", [f"{o.cost_usd:,.0f}" for o in outcomes]),
        ("peak nodes", [str(o.peak_nodes) for o in outcomes]),
        ("preemptions (nodes)", [str(o.preemptions) for o in outcomes]),
        ("pods preempted", [str(o.pods_preempted) for o in outcomes]),
        ("jobs lost (given up)", [str(o.jobs_lost) for o in outcomes]),
        ("failed, never started again", [str(o.abandoned) for o in outcomes]),
        ("cancelled (no capacity)", [str(o.cancelled) for o in outcomes]),
        ("verifications", [str(o.verifications) for o in outcomes]),
        ("design sessions", [str(o.sessions) for o in outcomes]),
        ("plan() calls", [str(o.plan_calls) for o in outcomes]),
    ]
    header = "| | " + " | ".join(c.name for c in cluster_list) + " |"
    lines = [header, "|---" + "|---:" * len(cluster_list) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return lines


def targets(auto: Outcome, base: Outcome, preemption_rate: float) -> list[str]:
    """The targets, judged on the autoscaled cluster against the unlimited one."""
    idle = auto.idle_ratio
    makespan = auto.makespan_hours / base.makespan_hours
    checks = [
        (f"idle GPU-hours under 10% of used: {_percent(idle)}", idle < 0.10),
        (f"makespan within 1.2x of the unlimited cluster: {_ratio(makespan)}", makespan <= 1.2),
        (
            f"no job lost at {preemption_rate:g} preemptions per node-hour: {auto.jobs_lost} given"
            f" up, {auto.abandoned} never started again",
            auto.jobs_lost + auto.abandoned == 0,
        ),
    ]
    return [f"target (autoscaled): {text} -> {'met' if ok else 'NOT met'}" for text, ok in checks]


def load_spec(path: Path) -> DiscoveryRunSpec:
    """A spec file, validated with the repository's loader."""
    document = load_spec_bytes(path.read_bytes(), source=str(path))
    return parse_discovery_run(document).spec


def ladder_line(spec: DiscoveryRunSpec) -> str:
    """Each rung's budget, GPUs per pod and simulated training time."""
    rungs = resolve_ladder(spec.ladder, vocab_size=spec.verification.data.vocab_size)
    parts = []
    for rung in rungs:
        gpus = training_pod(spec, rung.name).requests.gpus
        minutes = training_seconds(rung, gpus) / 60
        parts.append(f"{rung.name} {rung.budget} x {gpus} GPU {minutes:,.1f} min")
    return "rungs (budget x GPUs per pod, training time): " + ", ".join(parts)


class ProgressPrinter:
    """Progress on stderr, at most every ``every`` seconds of wall time."""

    def __init__(self, out: TextIO, every: float = 2.0) -> None:
        self.out, self.every = out, every
        self.last = time.monotonic()

    def __call__(self, sim: Simulation) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            designs = len(sim.archive.designs) - len(SEED_NAMES)
            print(
                f"  {sim.cluster.name}: {sim.now / HOUR:,.1f} simulated hours, {designs} designs,"
                f" {sim.meter.verifications} verifications",
                file=self.out,
                flush=True,
            )


def report(
    spec: DiscoveryRunSpec, config: SimConfig, report_config: ReportConfig, err: TextIO
) -> list[str]:
    """Simulate the three clusters and return the report's lines."""
    cluster_list = clusters(spec, report_config)
    outcomes = []
    for cluster in cluster_list:
        started = time.monotonic()
        outcomes.append(simulate(spec, cluster, config, ProgressPrinter(err)))
        print(f"{cluster.name}: simulated in {time.monotonic() - started:.1f} s", file=err)
    shape = report_config.shape
    return [
        f"node: {shape.instance_type}, {shape.gpus} x {shape.gpu_type}, {shape.cpu:g} CPU,"
        f" {shape.memory / 2**30:,.0f} GiB, USD {shape.price_per_hour:g}/h, Ready"
        f" {shape.scale_up_delay / 60:g} min after launch; idle nodes removed after"
        f" {report_config.scale_down_after / 60:g} min; preemptions"
        f" {report_config.preemption_rate:g} per node-hour, their pods {config.preempted_pods};"
        f" seed {config.seed}",
        ladder_line(spec),
        "",
        *table(cluster_list, outcomes),
        "",
        *targets(outcomes[1], outcomes[-1], report_config.preemption_rate),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster_sim", description=summary)
    parser.add_argument("--spec", type=Path, default=PAPER_LADDER_SPEC, help="DiscoveryRun YAML")
    parser.add_argument("--seed", type=int, default=0, help="seed of outcomes and preemptions")
    parser.add_argument("--preemption-rate", type=float, default=0.05, help="per node-hour")
    parser.add_argument("--fixed-nodes", type=int, help="default: one rung at full parallelism")
    parser.add_argument("--max-nodes", type=int, help="autoscaled max; default: 2x fixed")
    parser.add_argument("--scale-up-delay", type=float, default=300.0, help="seconds to Ready")
    parser.add_argument("--scale-down-after", type=float, default=600.0, help="idle seconds")
    parser.add_argument("--session-minutes", type=float, default=20.0)
    parser.add_argument("--startup-seconds", type=float, default=0.0, help="per pod")
    parser.add_argument(
        "--preempted-pods",
        choices=["recreated", "failed"],
        default="recreated",
        help="recreated by the Job (the operator's podFailurePolicy, resumed from the SIGTERM"
        " checkpoint) or failed (a failed attempt, resumed from the last periodic checkpoint)",
    )
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--gpu-type", default="H100")
    parser.add_argument("--price-per-node-hour", type=float, default=55.0, help="USD")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_spec(args.spec)
    config = SimConfig(
        seed=args.seed,
        session_seconds=args.session_minutes * 60,
        startup_seconds=args.startup_seconds,
        preempted_pods=args.preempted_pods,
    )
    shape = NodeShape(
        gpu_type=args.gpu_type,
        gpus=args.gpus_per_node,
        price_per_hour=args.price_per_node_hour,
        scale_up_delay=args.scale_up_delay,
    )
    report_config = ReportConfig(
        shape=shape,
        fixed_nodes=args.fixed_nodes,
        max_nodes=args.max_nodes,
        scale_down_after=args.scale_down_after,
        preemption_rate=args.preemption_rate,
    )
    path = args.spec.resolve()
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"cluster simulator: {shown}")
    for line in report(spec, config, report_config, sys.stderr):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
