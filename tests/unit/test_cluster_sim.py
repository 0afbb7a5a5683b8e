"""The cluster simulator (benchmarks/cluster_sim.py): scheduler, autoscaler, preemptions, a pin.

The last tests pin whole simulated runs of a small ladder (paper-ladder.yaml cut to 14M x 8 on
one GPU per pod and 31M x 2 on eight, one-minute checkpoints) on an autoscaled and an unlimited
cluster: makespan, GPU-hours used and idle, peak nodes and verifications. The real ``plan()``
decides every start, so a change of the planner that starts work later, starts more of it or
leaves nodes waiting shows there. After a deliberate change of the planner (or of the
simulator), print the new figures with::

    python -c "from tests.unit.test_cluster_sim import print_pins; print_pins()"

from the repository root, check that the change explains them, and paste them into ``PINS``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` does not put the repository root on the path
    sys.path.insert(0, str(REPO))

from benchmarks import cluster_sim as sim  # noqa: E402

from genesys.api.discoveryrun import DiscoveryRunSpec  # noqa: E402
from genesys.api.ladder import preset_rung  # noqa: E402
from genesys.api.validation import parse_discovery_run  # noqa: E402
from genesys.api.yamlio import load_spec_bytes  # noqa: E402
from genesys.engine.actions import StartVerification  # noqa: E402
from genesys.engine.plan import SEED_NAMES  # noqa: E402

PAPER = REPO / "examples" / "paper-ladder.yaml"
GIB = 2**30
GPU_TAINT = sim.Taint("nvidia.com/gpu", "present", "NoSchedule")
GPU_TOLERATION = sim.Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule")
P5 = {"node.kubernetes.io/instance-type": "p5.48xlarge"}
SEED = f"seed-{SEED_NAMES[0]}"
SMALL_RESULTS = len(SEED_NAMES) + 8 + 2  # the seeds at 14M, then both budgets


def small_document(**verification: Any) -> dict[str, Any]:
    document: dict[str, Any] = load_spec_bytes(PAPER.read_bytes(), source=str(PAPER))
    spec = document["spec"]
    spec["ladder"] = {
        "rungs": [
            {
                "name": "14M",
                "preset": "14M",
                "budget": 8,
                "resources": {"gpus": 1, "cpu": "8", "memory": "64Gi"},
            },
            {"name": "31M", "preset": "31M", "budget": 2},
        ]
    }
    spec["sessions"]["parallel"] = 4
    spec["verification"]["maxParallelJobsPerRung"] = 4
    spec["verification"]["training"] = {"checkpointEveryMinutes": 1}
    spec["verification"].update(verification)
    return document


def small_spec(**verification: Any) -> DiscoveryRunSpec:
    return parse_discovery_run(small_document(**verification)).spec


def gpu_group(**changes: Any) -> sim.NodeGroup:
    group = sim.NodeGroup(
        "gpu",
        "H100",
        gpus=8,
        cpu=192.0,
        memory=2000 * GIB,
        max_nodes=4,
        scale_up_delay=300.0,
        price_per_hour=55.0,
        taints=(GPU_TAINT,),
        labels=P5,
    )
    return replace(group, **changes)


def gpu_pod(gpus: int = 8, **changes: Any) -> sim.PodSpec:
    pod = sim.PodSpec(sim.Requests(gpus, 64.0, 512 * GIB), (GPU_TOLERATION,), P5)
    return replace(pod, **changes)


def cluster(*groups: sim.NodeGroup, **changes: Any) -> sim.ClusterConfig:
    return replace(sim.ClusterConfig("test", groups), **changes)


def simulation(config: sim.ClusterConfig, **sim_config: Any) -> sim.Simulation:
    """A simulation with the seeds in its archive and the planner kept out (tests drive it)."""
    world = sim.Simulation(small_spec(), config, sim.SimConfig(**sim_config))
    world.init_seeds()
    world.dirty = False
    return world


def start(world: sim.Simulation, design: str = SEED, rung: str = "14M") -> sim.Pod:
    world.create_pod(StartVerification(design, rung, 0))
    return world.pods[(design, rung)]


# ------------------------------------------------------------------------ the scheduler


def test_training_pods_are_what_the_operator_renders_for_each_rung() -> None:
    spec = sim.load_spec(PAPER)
    small = sim.training_pod(spec, "14M")  # the rung's own resources
    assert small.requests == sim.Requests(1, 8.0, 64 * GIB)
    large = sim.training_pod(spec, "350M")  # verification's
    assert large.requests == sim.Requests(8, 64.0, 512 * GIB)
    for pod in (small, large):
        assert pod.tolerations == (GPU_TOLERATION,)
        assert dict(pod.node_selector) == P5
    # the operator adds the GPU toleration to a pod that asks for GPUs and names none
    bare = small_document()
    bare["spec"]["verification"].pop("tolerations")
    assert sim.training_pod(parse_discovery_run(bare).spec, "31M").tolerations == (GPU_TOLERATION,)


def test_resources_must_fit_the_free_part_of_the_node() -> None:
    group = gpu_group()
    assert sim.schedulable(gpu_pod(), group, group.capacity)
    assert not sim.schedulable(gpu_pod(gpus=9), group, group.capacity)
    assert not sim.schedulable(gpu_pod(gpus=4), group, sim.Requests(3, 192.0, 2000 * GIB))
    assert not sim.schedulable(gpu_pod(gpus=1), group, sim.Requests(8, 63.5, 2000 * GIB))
    assert not sim.schedulable(gpu_pod(gpus=1), group, sim.Requests(8, 192.0, 511 * GIB))


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        (GPU_TOLERATION, True),
        (sim.Toleration("nvidia.com/gpu", "Exists"), True),  # every effect
        (sim.Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"), True),
        (sim.Toleration("nvidia.com/gpu", "Equal", "absent", "NoSchedule"), False),
        (sim.Toleration("nvidia.com/gpu", "Exists", "", "NoExecute"), False),
        (sim.Toleration("other", "Exists"), False),
        (sim.Toleration("", "Exists"), True),  # an empty key with Exists tolerates everything
    ],
)
def test_a_gpu_taint_needs_a_matching_toleration(
    toleration: sim.Toleration, tolerated: bool
) -> None:
    group = gpu_group()
    assert sim.schedulable(gpu_pod(tolerations=(toleration,)), group, group.capacity) is tolerated


def test_only_blocking_taints_keep_pods_away() -> None:
    untolerated = gpu_pod(tolerations=())
    assert not sim.schedulable(untolerated, gpu_group(), gpu_group().capacity)
    soft = gpu_group(taints=(sim.Taint("nvidia.com/gpu", "present", "PreferNoSchedule"),))
    assert sim.schedulable(untolerated, soft, soft.capacity)
    assert sim.schedulable(untolerated, gpu_group(taints=()), gpu_group().capacity)


def test_the_node_selector_must_match_the_node_labels() -> None:
    group = gpu_group()
    assert sim.schedulable(gpu_pod(node_selector={}), group, group.capacity)
    other = {"node.kubernetes.io/instance-type": "p4d.24xlarge"}
    assert not sim.schedulable(gpu_pod(node_selector=other), group, group.capacity)
    missing = {**P5, "zone": "a"}
    assert not sim.schedulable(gpu_pod(node_selector=missing), group, group.capacity)


def test_first_fit_binds_to_the_first_ready_node_that_takes_the_pod() -> None:
    world = simulation(cluster(gpu_group(), gpu_group(name="cpu", gpus=0, taints=())))
    cpu_node = sim.Node("cpu-1", world.cluster.groups[1], 0.0, 0.0)
    launching = sim.Node("gpu-1", world.cluster.groups[0], 0.0, 100.0)
    ready = sim.Node("gpu-2", world.cluster.groups[0], 0.0, 0.0)
    assert sim.first_fit(gpu_pod(), [cpu_node, launching, ready], now=0.0) is ready
    assert sim.first_fit(gpu_pod(), [cpu_node, launching, ready], now=100.0) is launching


def test_one_gpu_pods_share_a_node() -> None:
    world = simulation(cluster(gpu_group(scale_up_delay=0.0)))
    pods = [start(world, f"seed-{name}") for name in SEED_NAMES]
    world.autoscale()
    assert world.bind()
    assert len(world.nodes) == 1
    assert {pod.node for pod in pods} == {world.nodes[0]}
    assert world.nodes[0].used_gpus() == len(SEED_NAMES)


# ------------------------------------------------------------------------ the autoscaler


def test_scale_up_picks_a_group_whose_node_takes_the_pod_and_packs_pods() -> None:
    cpu = gpu_group(name="cpu", gpus=0, taints=())
    gpu = gpu_group()
    assert sim.scale_up([gpu_pod()], [cpu, gpu], [], {}) == [gpu]
    assert sim.scale_up([gpu_pod(4), gpu_pod(4), gpu_pod(4)], [gpu], [], {}) == [gpu, gpu]
    # a node already launching takes the pod: nothing new
    assert sim.scale_up([gpu_pod()], [gpu], [(gpu, gpu.capacity)], {"gpu": 1}) == []
    assert sim.scale_up([gpu_pod(gpus=16)], [gpu], [], {}) == []  # fits no node


def test_scale_up_respects_max() -> None:
    gpu = gpu_group(max_nodes=2)
    assert sim.scale_up([gpu_pod()] * 3, [gpu], [], {}) == [gpu, gpu]
    assert sim.scale_up([gpu_pod()] * 3, [gpu], [], {"gpu": 2}) == []
    world = simulation(cluster(gpu))
    for name in SEED_NAMES[:3]:
        start(world, f"seed-{name}", "31M")  # eight GPUs each: a node each
    world.autoscale()
    assert len(world.nodes) == 2
    world.advance(world.now + 600)
    world.bind()
    world.autoscale()
    assert len(world.nodes) == 2
    assert len(world.pending) == 1


def test_a_pending_pod_gets_a_node_after_the_scale_up_delay() -> None:
    world = simulation(cluster(gpu_group(scale_up_delay=300.0)))
    pod = start(world)
    assert world.autoscale()
    assert not world.bind()
    assert world.next_event() == 300.0
    world.advance(299.0)
    assert not world.bind()
    world.advance(300.0)
    assert world.bind()
    assert pod.node is world.nodes[0]
    assert pod.started == 300.0
    assert pod.ends == 300.0 + sim.training_seconds(world.rungs["14M"], 1)


def test_an_idle_node_goes_after_the_scale_down_period_but_never_below_min() -> None:
    world = simulation(cluster(gpu_group(), scale_down_after=600.0))
    world.launch(world.cluster.groups[0], delay=0.0)
    assert world.next_event() == 600.0
    world.advance(599.0)
    assert not world.autoscale()
    assert len(world.nodes) == 1
    world.advance(600.0)
    assert world.autoscale()
    assert world.nodes == []

    kept = simulation(cluster(gpu_group(min_nodes=1), scale_down_after=600.0))
    assert len(kept.nodes) == 1
    assert kept.nodes[0].ready(0.0)  # the min is up when the run starts
    kept.advance(10_000.0)
    assert not kept.autoscale()
    assert len(kept.nodes) == 1
    assert kept.next_event() is None


def test_a_busy_node_is_not_scaled_down() -> None:
    world = simulation(cluster(gpu_group(scale_up_delay=0.0), scale_down_after=0.0))
    start(world)
    world.autoscale()
    assert world.bind()
    world.advance(60.0)
    assert not world.autoscale()
    assert len(world.nodes) == 1


# ------------------------------------------------------------------------ waiting for capacity


def test_pending_pods_are_shown_to_the_planner_as_waiting_for_capacity() -> None:
    world = simulation(cluster(gpu_group()))
    world.advance(30.0)
    start(world)
    world.advance(90.0)
    waiting = world.observed().waiting_jobs[(SEED, "14M")]
    assert waiting.for_capacity
    assert waiting.since == sim.START + timedelta(seconds=30)
    world.autoscale()
    world.advance(400.0)
    world.bind()
    assert world.observed().waiting_jobs == {}
    assert (SEED, "14M") in world.observed().running_jobs


def test_no_more_than_max_pending_jobs_wait_at_once() -> None:
    spec = small_spec(maxPendingJobs=2)
    world = sim.Simulation(spec, cluster(gpu_group(max_nodes=1)), sim.SimConfig())
    most = 0

    def watch(at: sim.Simulation) -> None:
        nonlocal most
        most = max(most, len(at.pending))

    outcome = world.run(watch)
    assert most == 2
    assert outcome.verifications == SMALL_RESULTS


def test_a_job_that_waits_past_the_capacity_timeout_is_cancelled() -> None:
    spec = small_spec(capacityTimeoutSeconds=600)
    fixed = cluster(gpu_group(min_nodes=1, max_nodes=1))  # one node: 31M pods queue behind
    world = sim.Simulation(spec, fixed, sim.SimConfig())
    outcome = world.run()
    assert outcome.cancelled >= 1
    assert outcome.verifications + outcome.cancelled == SMALL_RESULTS
    errors = [
        v.reason
        for d in world.archive.designs.values()
        for v in d.verifications.values()
        if v.status == "error"
    ]
    assert len(errors) == outcome.cancelled
    assert all("capacityTimeoutSeconds=600" in reason for reason in errors)


# ------------------------------------------------------------------------ preemptions


def test_a_preempted_pod_is_recreated_and_resumes_where_it_stopped() -> None:
    world = simulation(cluster(gpu_group(scale_up_delay=0.0)))
    job = (SEED, "14M")
    total = sim.training_seconds(world.rungs["14M"], 1)
    start(world)
    world.autoscale()
    world.bind()
    world.advance(150.0)
    world.preempt(world.nodes[0])
    assert world.failed == {}  # not a failed attempt
    again = world.pods[job]
    assert again.attempt == 0
    assert again.node is None
    assert again in world.pending
    assert again.work == pytest.approx(total - 150.0)  # the SIGTERM checkpoint keeps it all
    assert world.meter.pods_preempted == 1
    world.autoscale()
    world.bind()
    world.advance(again.ends)
    world.end_due()
    assert world.archive.designs[SEED].verifications["14M"].status in ("succeeded", "failed")
    assert world.meter.gpu_seconds_preempted == world.meter.gpu_seconds_resumed == 150.0


def test_a_failed_attempt_is_retried_from_its_checkpoint_then_given_up() -> None:
    world = simulation(cluster(gpu_group(scale_up_delay=0.0)), preempted_pods="failed")
    job = (SEED, "14M")
    total = sim.training_seconds(world.rungs["14M"], 1)
    start(world)
    world.autoscale()
    world.bind()
    world.advance(150.0)  # 2.5 minutes in; checkpoints every minute
    world.preempt(world.nodes[0])
    assert world.failed == {job: 1}
    assert job not in world.pods
    assert world.nodes == []
    assert world.progress[job] == 120.0
    assert world.meter.pods_preempted == 1
    assert world.meter.preemptions == 1
    # the real planner retries it with the next attempt, which resumes from the checkpoint
    world.replan()
    retry = world.pods[job]
    assert retry.attempt == 1
    assert retry.work == pytest.approx(total - 120.0)
    world.autoscale()
    world.bind()
    world.advance(retry.ends)
    world.end_due()
    assert "14M" in world.archive.designs[SEED].verifications
    assert world.meter.gpu_seconds_resumed == pytest.approx(120.0)
    # had every retry failed too, the planner would give it up: a job lost
    del world.archive.designs[SEED].verifications["14M"]
    world.pods.clear()
    world.pending.clear()
    world.failed[job] = world.spec.verification.max_retries + 1
    world.replan()
    assert world.meter.jobs_lost == 1
    assert world.archive.designs[SEED].verifications["14M"].status == "error"
    assert job not in world.pods


def used_by_results(world: sim.Simulation) -> float:
    """GPU-hours of every result's whole training."""
    return sum(
        sim.training_seconds(world.rungs[rung], world.pod_specs[rung].requests.gpus)
        * world.pod_specs[rung].requests.gpus
        / 3600
        for design in world.archive.designs.values()
        for rung, verification in design.verifications.items()
        if verification.status != "error"
    )


def test_failed_attempts_over_a_whole_run() -> None:
    spec = small_spec()
    config = cluster(gpu_group(max_nodes=3), preemption_rate=6.0)
    world = sim.Simulation(spec, config, sim.SimConfig(seed=1, preempted_pods="failed"))
    outcome = world.run()
    retries = spec.verification.max_retries
    assert outcome.pods_preempted > 0
    assert outcome.jobs_lost >= 1  # with this seed a verification loses every attempt
    assert outcome.pods_preempted >= (retries + 1) * outcome.jobs_lost + outcome.abandoned
    # every place of every budget (and each seed) ends with exactly one final result
    assert outcome.verifications + outcome.jobs_lost == SMALL_RESULTS
    assert outcome.finish == "BudgetsSpent"
    # GPU time used = every result's whole training + the preempted time no pod resumed
    assert outcome.gpu_hours_lost > 0
    assert outcome.gpu_hours_used == pytest.approx(used_by_results(world) + outcome.gpu_hours_lost)


def test_recreated_pods_lose_no_job_and_no_training() -> None:
    config = cluster(gpu_group(max_nodes=3), preemption_rate=6.0)
    world = sim.Simulation(small_spec(), config, sim.SimConfig(seed=1))
    outcome = world.run()
    assert outcome.pods_preempted > 0
    assert outcome.jobs_lost == outcome.abandoned == 0
    assert outcome.verifications == SMALL_RESULTS
    assert outcome.gpu_hours_lost == pytest.approx(0.0, abs=1e-9)
    assert outcome.gpu_hours_used == pytest.approx(used_by_results(world))


def test_nodes_are_preempted_at_the_rate_per_ready_node_hour() -> None:
    world = simulation(cluster(gpu_group(max_nodes=None), preemption_rate=0.5))
    for _ in range(400):
        world.launch(world.cluster.groups[0])
    lifetimes = [node.preempt_at - node.ready_at for node in world.nodes]
    assert sum(lifetimes) / len(lifetimes) == pytest.approx(2 * 3600.0, rel=0.1)
    calm = sim.simulate(small_spec(), cluster(gpu_group()), sim.SimConfig())
    assert calm.preemptions == calm.pods_preempted == calm.jobs_lost == 0
    assert calm.gpu_hours_lost == 0.0


# ------------------------------------------------------------------------ time and the CLI


def test_training_time_passes_through_the_paper_anchors() -> None:
    assert sim.training_seconds(preset_rung("14M"), 8) == pytest.approx(180.0)
    assert sim.training_seconds(preset_rung("350M"), 8) == pytest.approx(17 * 3600.0)
    assert sim.training_seconds(preset_rung("14M"), 4) == pytest.approx(360.0)
    middle = [sim.training_seconds(preset_rung(n), 8) for n in ("31M", "70M", "125M")]
    assert 180.0 < middle[0] < middle[1] < middle[2] < 17 * 3600.0


def test_the_planner_sees_the_deadline_on_the_simulated_clock() -> None:
    document = small_document()
    document["spec"]["deadline"] = (sim.START + timedelta(minutes=30)).isoformat()
    config = cluster(gpu_group(scale_up_delay=0.0))
    outcome = sim.simulate(parse_discovery_run(document).spec, config)
    assert outcome.finish == "DeadlinePassed"
    # 4 jobs at a time, 24 minutes each at 14M: 4 seeds from 0, then the fifth seed and 3 of the
    # first sessions' 4 designs from 24 to 48; nothing starts after 30 minutes
    assert outcome.makespan_hours == pytest.approx(48 / 60)
    assert outcome.verifications == len(SEED_NAMES) + 3


def test_the_same_seed_gives_the_same_run() -> None:
    spec = small_spec()
    config = cluster(gpu_group(max_nodes=3), preemption_rate=2.0)
    first = sim.simulate(spec, config, sim.SimConfig(seed=5))
    assert sim.simulate(spec, config, sim.SimConfig(seed=5)) == first
    assert sim.simulate(spec, config, sim.SimConfig(seed=6)) != first


def test_the_cli_prints_the_three_clusters_and_the_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_document()), encoding="utf-8")
    assert sim.main(["--spec", str(path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "| | fixed | autoscaled | unlimited |" in out
    assert "| nodes (min-max) | 4-4 | 0-8 | 0-inf |" in out
    assert "14M 8 x 1 GPU 24.0 min, 31M 2 x 8 GPU 10.3 min" in out
    targets = [line for line in out.splitlines() if line.startswith("target (autoscaled)")]
    assert len(targets) == 3
    assert all(line.endswith(("-> met", "-> NOT met")) for line in targets)


# ------------------------------------------------------------------------ the pinned runs

# (makespan h, GPU-hours used, GPU-hours idle, peak nodes, verifications), rounded to 4 places
PINS = {
    "autoscaled": (1.9389, 7.9555, 8.2667, 2, 15),
    "unlimited": (1.7722, 7.9555, 7.6, 2, 15),
}


def pinned_clusters() -> dict[str, sim.ClusterConfig]:
    spec = small_spec()
    report = sim.ReportConfig(preemption_rate=0.0)
    return {c.name: c for c in sim.clusters(spec, report) if c.name in PINS}


def figures(outcome: sim.Outcome) -> tuple[float, float, float, int, int]:
    return (
        round(outcome.makespan_hours, 4),
        round(outcome.gpu_hours_used, 4),
        round(outcome.gpu_hours_idle, 4),
        outcome.peak_nodes,
        outcome.verifications,
    )


def print_pins() -> None:
    """Print the figures PINS should hold (see the module docstring)."""
    spec = small_spec()
    for name, config in pinned_clusters().items():
        print(f"{name!r}: {figures(sim.simulate(spec, config))},")


@pytest.mark.parametrize("name", sorted(PINS))
def test_a_small_ladder_takes_the_pinned_time_and_gpu_hours(name: str) -> None:
    outcome = sim.simulate(small_spec(), pinned_clusters()[name])
    assert outcome.finish == "BudgetsSpent"
    assert figures(outcome) == PINS[name], "see the module docstring to update a pin"
