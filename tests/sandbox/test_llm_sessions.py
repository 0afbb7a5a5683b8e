"""LLM design sessions against a scripted OpenAI-compatible server, over real HTTP.

Every candidate unit goes through the real static checks and the real sandbox, so these tests
show the whole loop: proposal, review, plan, code, checks, feedback, observer, design.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from genesys.agents.llm import CallRecord, Ledger, LLMClient
from genesys.agents.session import SessionSettings, run_llm_session
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.runconfig import RunIdentity, resolve_run_config
from genesys.engine.plan import SEED_NAMES
from genesys.sandbox.runner import SandboxLimits
from genesys.store.archive import design_key, session_key
from genesys.store.base import LocalStore, Store
from genesys.store.configs import write_run_config
from genesys_trainer.seeds import load_seed
from support import agent_script as script
from support.scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.slow
RUN = "llm"
REPO = Path(__file__).resolve().parents[2]
FAST_SETTINGS = {  # timing is not what these tests are about: a loaded machine must not fail them
    "time_ratio_error": 1000.0,
    "time_ratio_warning": 500.0,
    "effectiveness_steps": 3,
    "causality_length": 24,
    "complexity_lengths": [32, 64, 128],
    "forward_length": 128,
}


def seeded_store(path: Path) -> LocalStore:
    store = LocalStore(path)
    for seq, name in enumerate(SEED_NAMES):
        document = load_seed(name).to_json()
        document["metadata"].update({"seq": seq, "operator": "seed", "parents": []})
        store.put_text(design_key(f"seed-{name}", "design.json"), json.dumps(document))
    return store


def settings_for(base_url: str, **sessions: Any) -> SessionSettings:
    run = DiscoveryRun.model_validate(script.run_spec(base_url, RUN, **sessions))
    settings = SessionSettings.from_run(run)
    limits = SandboxLimits(timeout_seconds=180, memory_bytes=4 * 1024**3)
    return dataclasses.replace(settings, check_overrides=FAST_SETTINGS, limits=limits)


def no_sleep_client(settings: SessionSettings) -> Callable[..., LLMClient]:
    def factory(ledger: Ledger, trace: Callable[[CallRecord], None]) -> LLMClient:
        return LLMClient(
            settings.agents,
            api_key="test-key",
            ledger=ledger,
            trace=trace,
            sleep=lambda seconds: None,
        )

    return factory


def session(
    store: Store,
    settings: SessionSettings,
    *,
    operator: str = "mutation",
    parents: tuple[str, ...] = ("seed-gpt2",),
    sid: str = "s0001",
    flow: str | None = None,
) -> dict[str, Any]:
    return run_llm_session(
        store=store,
        session=sid,
        design_id=f"d{sid[1:]}",
        seq=5,
        operator=operator,
        parent_ids=parents,
        seed=7,
        settings=settings,
        flow=flow,
        client_factory=no_sleep_client(settings),
    )


def read(store: Store, key: str) -> Any:
    return json.loads(store.get_text(key))


def user_prompt(request: Any) -> str:
    return "\n".join(str(m["content"]) for m in request.body["messages"] if m["role"] == "user")


def coder_prompts(server: ScriptedLLMServer) -> list[str]:
    return [user_prompt(r) for r in server.chat_requests if r.role == "coder"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    return seeded_store(tmp_path / "store")


def test_mutation_unit_failing_causality_gets_the_report_then_passes(store: LocalStore) -> None:
    steps = {
        "proposer": [
            script.queries("gelu mlp", "channel mixer"),
            script.queries(),
            script.proposal(selected="channel_mixer"),
        ],
        "reviewer": [script.verdict(4.5)],
        "planner": [script.plan("SwiGLUMLP")],
        "coder": [
            script.unit(script.LEAKY_MLP, "GeluMLP"),
            script.unit(script.GELU_MLP, "GeluMLP"),
        ],
        "observer": [script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        outcome = session(store, settings_for(server.base_url, searchRounds=3))
        prompts = coder_prompts(server)
        search_prompts = [user_prompt(r) for r in server.chat_requests if r.role == "proposer"]
    assert outcome["status"] == "implemented", outcome
    assert outcome["attempts"] == 2
    assert outcome["calls"] == 8
    assert "previous attempt failed" not in prompts[0]
    assert "previous attempt failed (causality)" in prompts[1]
    assert "LEAKY" not in prompts[1]
    assert "X.mean(dim=1" in prompts[1]
    assert "rotary" in search_prompts[1].lower()  # round 2 sees what round 1 found
    design = read(store, design_key("d0001", "design.json"))
    parent = load_seed("gpt2")
    assert design["units"]["ResidualBlock"]["children"]["channel_mixer"] == "GeluMLP"
    assert "SwiGLUMLP" not in design["units"]
    for name in ("ResidualBlock", "RMSNorm", "RotaryMHA"):  # protected: untouched
        assert design["units"][name]["source"] == parent.units[name].source
    meta = design["metadata"]
    assert meta["operator"] == "mutation"
    assert meta["parents"] == ["seed-gpt2"]
    assert meta["rating"] == 4.5
    assert meta["flow"] == "gau"
    assert meta["cost_usd"] > 0
    assert set(meta["unit_tests"]) == {"GeluMLP"}
    attempts = sorted(store.list("sessions/s0001/attempts/"))
    assert len(attempts) == 2
    first = read(store, attempts[0])
    assert first["check"] == "causality"
    assert not first["passed"]
    calls = sorted(store.list("sessions/s0001/calls/"))
    assert len(calls) == 8
    call = read(store, calls[0])
    assert {"role", "model", "prompt_hash", "prompt_tokens", "cost_usd", "latency_s"} <= set(call)
    checks = read(store, design_key("d0001", "checks", "nano.json"))
    assert all(c["status"] != "fail" for c in checks["checks"])


def test_proposal_rated_2_is_refined_with_the_review_then_accepted(store: LocalStore) -> None:
    steps = {
        "proposer": [script.proposal("A vague idea"), script.proposal("GELU channel mixer v2")],
        "reviewer": [
            script.verdict(2, "Too vague: say which unit changes and why."),
            script.verdict(4, "Now concrete."),
        ],
        "planner": [script.plan("SwiGLUMLP")],
        "coder": [script.unit(script.GELU_MLP, "GeluMLP")],
        "observer": [script.verdict(3.5)],
    }
    with ScriptedLLMServer(steps) as server:
        outcome = session(store, settings_for(server.base_url))
        proposer = [user_prompt(r) for r in server.chat_requests if r.role == "proposer"]
        reviewer = [r for r in server.chat_requests if r.role == "reviewer"]
    assert outcome["status"] == "implemented"
    assert outcome["proposal_attempts"] == 2
    assert "Too vague: say which unit changes and why." in proposer[1]
    for request in reviewer:  # the reviewer is never told the pass mark
        text = json.dumps(request.body["messages"])
        assert "pass" not in text.lower() or "at or above" not in text.lower()
        assert ">= 4" not in text
        assert "threshold" not in text.lower()
    reviews = read(store, design_key("d0001", "review.json"))
    assert [r["rating"] for r in reviews] == [2, 4]
    assert [r["passed"] for r in reviews] == [False, True]
    design = read(store, design_key("d0001", "design.json"))
    assert design["metadata"]["title"] == "GELU channel mixer v2"
    assert design["metadata"]["rating"] == 4


def test_crossover_starts_empty_and_reuses_both_parents_units(store: LocalStore) -> None:
    children = {
        "seq_norm": "RMSNorm",
        "seq_mixer": "RotaryMHA",
        "channel_norm": "RMSNorm",
        "channel_mixer": "RetNetMLP",
    }
    steps = {
        "proposer": [script.proposal("Attention with the RetNet MLP", selected=None)],
        "reviewer": [script.verdict(4)],
        "coder": [script.unit(script.block_source("HybridBlock"), "HybridBlock", children)],
        "observer": [script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        outcome = session(
            store,
            settings_for(server.base_url),
            operator="crossover",
            parents=("seed-gpt2", "seed-retnet"),
        )
    assert outcome["status"] == "implemented", outcome
    design = read(store, design_key("d0001", "design.json"))
    assert design["root"] == "HybridBlock"
    gpt2, retnet = load_seed("gpt2"), load_seed("retnet")
    assert design["units"]["RotaryMHA"]["source"] == gpt2.units["RotaryMHA"].source
    assert design["units"]["RetNetMLP"]["source"] == retnet.units["RetNetMLP"].source
    assert design["metadata"]["parents"] == ["seed-gpt2", "seed-retnet"]


def test_scratch_root_must_have_children_then_grows_unit_by_unit(store: LocalStore) -> None:
    children = {
        "seq_norm": "RMSNorm",
        "seq_mixer": "RotaryMHA",
        "channel_norm": "RMSNorm",
        "channel_mixer": "GeluMLP",
    }
    steps = {
        "proposer": [script.proposal("A block from scratch", selected=None)],
        "reviewer": [script.verdict(5)],
        "planner": [script.plan("GeluMLP")],
        "coder": [
            script.unit(script.block_source("FlatBlock", children=False), "FlatBlock"),
            script.unit(script.block_source("ScratchBlock"), "ScratchBlock", children),
            script.unit(script.GELU_MLP, "GeluMLP"),
        ],
        "observer": [script.verdict(4), script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        outcome = session(store, settings_for(server.base_url), operator="scratch", parents=())
        prompts = coder_prompts(server)
        planner = [user_prompt(r) for r in server.chat_requests if r.role == "planner"]
    assert outcome["status"] == "implemented", outcome
    assert "must declare child units" in prompts[1]
    assert "GeluMLP" in planner[0]  # the declared child is waiting after round 1
    design = read(store, design_key("d0001", "design.json"))
    assert design["root"] == "ScratchBlock"
    assert not design["declarations"]
    assert set(design["units"]) == {"ScratchBlock", "RMSNorm", "RotaryMHA", "GeluMLP"}
    state = read(store, "sessions/s0001/state.json")
    assert [c["unit"] for c in state["committed"]] == ["ScratchBlock", "GeluMLP"]


def test_direct_flow_writes_the_whole_block_with_the_same_checks(store: LocalStore) -> None:
    broken = script.DIRECT_BLOCK.replace("import torch\n", "import os\nimport torch\n")
    steps = {
        "proposer": [script.proposal("Attention block in one file")],
        "reviewer": [script.verdict(4)],
        "coder": [script.block(broken), script.block(script.DIRECT_BLOCK)],
        "observer": [script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        outcome = session(store, settings_for(server.base_url), flow="direct")
        prompts = coder_prompts(server)
    assert outcome["status"] == "implemented", outcome
    assert outcome["flow"] == "direct"
    assert outcome["attempts"] == 2
    assert "imports" in prompts[1]
    assert "'os'" in prompts[1]
    design = read(store, design_key("d0001", "design.json"))
    assert list(design["units"]) == ["DirectBlock"]
    assert design["root"] == "DirectBlock"
    assert design["metadata"]["format"] == "block-file"


def test_a_proposal_that_fails_every_implementation_is_marked_challenging(
    store: LocalStore,
) -> None:
    steps = {
        "proposer": [script.proposal()],
        "reviewer": [script.verdict(4)],
        "planner": [script.plan("SwiGLUMLP"), script.plan("SwiGLUMLP")],
        "coder": [
            script.unit(script.LEAKY_MLP, "GeluMLP"),
            script.unit(script.LEAKY_MLP, "GeluMLP"),
        ],
    }
    with ScriptedLLMServer(steps) as server:
        settings = settings_for(
            server.base_url, maxUnitAttempts=1, maxFailedRounds=0, maxImplementationSessions=1
        )
        outcome = session(store, settings)
    assert outcome["status"] == "failed"
    assert outcome["challenging"]
    assert outcome["reason"].startswith("challenging:")
    assert "causality" in outcome["reason"]
    rejected = sorted(store.list("rejected"))
    assert [Path(key).name for key in rejected] == ["d0001-i0.json", "d0001-i1.json"]
    assert not store.exists(design_key("d0001", "design.json"))


def test_a_crash_mid_implementation_resumes_from_the_last_committed_unit(tmp_path: Path) -> None:
    store = seeded_store(tmp_path / "store")
    children = {
        "seq_norm": "RMSNorm",
        "seq_mixer": "RotaryMHA",
        "channel_norm": "RMSNorm",
        "channel_mixer": "GeluMLP",
    }
    steps = {
        "proposer": [script.proposal("A block from scratch", selected=None)],
        "reviewer": [script.verdict(4)],
        "planner": [{"sleep": 120, "reply": "never sent"}, script.plan("GeluMLP")],
        "coder": [
            script.unit(script.block_source("ScratchBlock"), "ScratchBlock", children),
            script.unit(script.GELU_MLP, "GeluMLP"),
        ],
        "observer": [script.verdict(4), script.verdict(4)],
    }
    with ScriptedLLMServer(steps) as server:
        spec = script.run_spec(server.base_url, RUN)
        spec["spec"]["agents"]["timeoutSeconds"] = 300
        run = DiscoveryRun.model_validate(spec)
        config = resolve_run_config(run, identity=RunIdentity(name=RUN), data_uri="unused")
        command = [
            sys.executable,
            "-m",
            "genesys",
            "agent",
            "design",
            "--store",
            store.uri,
            "--config",
            write_run_config(store, config),
            "--session",
            "s0001",
            "--design-id",
            "d0001",
            "--seq",
            "5",
            "--operator",
            "scratch",
            "--seed",
            "7",
        ]
        env = {**os.environ, "GENESYS_TEST_LLM_KEY": "test-key"}
        state_key = "sessions/s0001/state.json"
        with subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as first:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and first.poll() is None:
                committed = store.exists(state_key) and read(store, state_key)["committed"]
                if committed and any(r.role == "planner" for r in server.chat_requests):
                    break  # committed the root, and is waiting on the planner
                time.sleep(0.2)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            assert first.stdout is not None
            log = first.stdout.read().decode(errors="replace")
        committed = read(store, state_key)["committed"]
        assert [c["unit"] for c in committed] == ["ScratchBlock"], log
        assert not store.exists(session_key("s0001"))
        before = len(server.chat_requests)
        second = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
        )
        resumed = server.chat_requests[before:]
    assert second.returncode == 0, second.stderr[-3000:]
    outcome = json.loads(second.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "implemented", outcome
    assert [r.role for r in resumed] == ["planner", "coder", "observer"]  # no proposal, no root
    state = read(store, state_key)
    assert [c["unit"] for c in state["committed"]] == ["ScratchBlock", "GeluMLP"]
