"""Design-session plumbing without the sandbox: prompts, reply parsing, tree edits, failures.

Endpoint failures and budgets are exercised against the scripted OpenAI-compatible server over
real HTTP; the sessions here end before any design code would be checked.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from genesys.agents import roles
from genesys.agents.llm import Ledger, LLMClient
from genesys.agents.session import SessionSettings, run_llm_session
from genesys.agents.treeops import (
    TreeEditError,
    WrittenUnit,
    apply_unit,
    declared_children,
    pending_units,
    protected_units,
    resolve_selection,
)
from genesys.api.discoveryrun import DiscoveryRun
from genesys.api.validation import parse_discovery_run
from genesys.store.archive import design_key, session_key
from genesys.store.base import LocalStore
from genesys.store.documents import SessionState, write_document
from genesys_trainer.seeds import load_seed
from support import agent_script as script
from support.scripted_llm import ScriptedLLMServer

RUN = "llm"


# ------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize("name", ["proposer", "reviewer", "planner", "coder", "observer", "direct"])
def test_every_prompt_file_has_a_system_section_naming_its_role(name: str) -> None:
    sections = roles.prompt_sections(name)
    assert "system" in sections
    assert len(sections) >= 2
    role = "coder" if name == "direct" else name
    assert sections["system"].startswith(f"ROLE: {role}\n")


def test_prompts_never_state_the_pass_thresholds() -> None:
    text = "\n".join(
        body.lower()
        for name in ("reviewer", "observer")
        for body in roles.prompt_sections(name).values()
    )
    assert "threshold" not in text
    assert "pass" not in text
    assert "accept" not in text


def test_a_missing_placeholder_is_an_error_not_a_silent_blank() -> None:
    with pytest.raises(KeyError):
        roles.render("observer", "observe", proposal="p")


# ------------------------------------------------------------------------------------ replies


def test_unit_reply_gives_source_tests_and_bindings() -> None:
    step = script.unit(script.block_source("B"), "B", {"seq_norm": "RMSNorm"})
    written = roles.parse_unit_reply(step["reply"])
    assert written.name == "B"
    assert written.children == {"seq_norm": "RMSNorm"}
    assert written.source.startswith("from typing")
    assert "def test_shape_is_kept" in written.tests


def test_unit_reply_without_code_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no ```python block"):
        roles.parse_unit_reply("I would write a unit here.")


def test_proposal_needs_every_field_and_a_selection_in_mutation() -> None:
    body = json.loads(script.proposal()["reply"].split("```json\n")[1].split("```")[0])
    assert roles.ProposalDoc.from_json(body, needs_selection=True).selected_unit == "channel_mixer"
    with pytest.raises(ValueError, match="selected_unit"):
        roles.ProposalDoc.from_json({**body, "selected_unit": ""}, needs_selection=True)
    with pytest.raises(ValueError, match="analysis"):
        roles.ProposalDoc.from_json({**body, "analysis": " "})


@pytest.mark.parametrize("rating", [-1, 5.5, "high", None])
def test_ratings_outside_0_to_5_are_refused(rating: Any) -> None:
    with pytest.raises(ValueError, match="rating"):
        roles.Rating.from_json({"rating": rating, "review": "ok"})


def test_plan_must_name_a_waiting_unit_unless_there_is_only_one() -> None:
    assert roles.PlanStep.from_json({"unit": "Typo"}, pending=["Only"]).unit == "Only"
    with pytest.raises(ValueError, match="waiting units"):
        roles.PlanStep.from_json({"unit": "C"}, pending=["A", "B"])


# --------------------------------------------------------------------------------- tree edits


def test_selection_by_unit_name_or_slot_path() -> None:
    tree = load_seed("gpt2")
    by_slot = resolve_selection(tree, "channel_mixer")
    assert (by_slot.owner, by_slot.slot, by_slot.unit) == (
        "ResidualBlock",
        "channel_mixer",
        "SwiGLUMLP",
    )
    assert resolve_selection(tree, "SwiGLUMLP") == by_slot
    assert resolve_selection(tree, "block").owner is None
    with pytest.raises(TreeEditError, match="not in the parent"):
        resolve_selection(tree, "Mamba2Mixer")


def test_mutation_protects_every_unit_outside_the_selected_subtree() -> None:
    tree = load_seed("gpt2")
    selection = resolve_selection(tree, "block.seq_norm")  # RMSNorm, also the channel norm
    protected = protected_units(tree, selection)
    assert protected == {"ResidualBlock", "RMSNorm", "RotaryMHA", "SwiGLUMLP"}
    rewrite = WrittenUnit("RMSNorm", "class RMSNorm(Unit):\n    pass\n")
    with pytest.raises(TreeEditError, match="protected"):
        apply_unit(tree, rewrite, target="RMSNorm", selection=selection, protected=protected)
    renamed = WrittenUnit("ScaledNorm", "class ScaledNorm(Unit):\n    pass\n")
    new = apply_unit(tree, renamed, target="RMSNorm", selection=selection, protected=protected)
    assert new.units["ResidualBlock"].children["seq_norm"] == "ScaledNorm"
    assert new.units["ResidualBlock"].children["channel_norm"] == "RMSNorm"
    assert tree.units["ResidualBlock"].children["seq_norm"] == "RMSNorm"  # input untouched


def test_new_children_become_declarations_and_must_all_be_bound() -> None:
    source = script.block_source("Root")
    assert [slot.name for slot in declared_children(source)] == [
        "seq_norm",
        "seq_mixer",
        "channel_norm",
        "channel_mixer",
    ]
    partial = WrittenUnit("Root", source, {"seq_norm": "RMSNorm"})
    with pytest.raises(TreeEditError, match="'seq_mixer' is not bound"):
        apply_unit(None, partial, target="Root")
    bindings = {
        "seq_norm": "NewNorm",
        "seq_mixer": "NewMixer",
        "channel_norm": "NewNorm",
        "channel_mixer": "NewMLP",
    }
    tree = apply_unit(None, WrittenUnit("Root", source, bindings), target="Root")
    assert pending_units(tree) == ["NewNorm", "NewMixer", "NewMLP"]
    assert tree.declarations["NewMixer"].requirements == "causal sequence mixer"
    wrong = WrittenUnit("Other", "class Other(Unit):\n    pass\n")
    with pytest.raises(TreeEditError, match="must be named 'NewNorm'"):
        apply_unit(tree, wrong, target="NewNorm")


# ------------------------------------------------------------------------ endpoint failures


def seeded_store(path: Path) -> LocalStore:
    store = LocalStore(path)
    document = load_seed("gpt2").to_json()
    document["metadata"].update({"seq": 0, "operator": "seed", "parents": []})
    store.put_text(design_key("seed-gpt2", "design.json"), json.dumps(document))
    return store


def run_session(store: LocalStore, base_url: str, sid: str = "s0001", **agents: Any) -> Any:
    spec = script.run_spec(base_url, RUN)
    spec["spec"]["agents"].update(agents)
    settings = SessionSettings.from_run(DiscoveryRun.model_validate(spec))

    def factory(ledger: Ledger, trace: Any) -> LLMClient:
        return LLMClient(
            settings.agents, api_key="k", ledger=ledger, trace=trace, sleep=lambda seconds: None
        )

    return run_llm_session(
        store=store,
        session=sid,
        design_id=f"d{sid[1:]}",
        seq=1,
        operator="mutation",
        parent_ids=["seed-gpt2"],
        seed=0,
        settings=settings,
        client_factory=factory,
    )


def calls(store: LocalStore, sid: str = "s0001") -> list[dict[str, Any]]:
    prefix = f"sessions/{sid}/calls/"
    return [json.loads(store.get_text(key)) for key in sorted(store.list(prefix))]


def test_garbage_429_and_500_are_retried_then_recorded_as_a_failure(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    steps = [{"garbage": True}, {"status": 429}, {"status": 500}, *[script.proposal()] * 3]
    with ScriptedLLMServer(steps) as server:
        outcome = run_session(store, server.base_url, maxRetries=2)
        requests = len(server.chat_requests)
    assert requests == 3  # 1 try + 2 retries, then no more
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith("LLMError: HTTP 500")
    assert "3 attempts" in outcome["reason"]
    [call] = calls(store)
    assert call["attempt_count"] == 3
    assert call["error"]
    assert call["role"] == "proposer"
    assert json.loads(store.get_text(session_key("s0001"))) == outcome


def test_timeouts_are_retried_then_recorded(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    steps = [{"sleep": 3, "reply": "late"}, {"sleep": 3, "reply": "late"}]
    with ScriptedLLMServer(steps) as server:
        outcome = run_session(store, server.base_url, maxRetries=1, timeoutSeconds=0.3)
    assert outcome["status"] == "failed"
    assert "timed out" in outcome["reason"]
    assert calls(store)[0]["attempt_count"] == 2


def test_truncated_json_is_re_asked_a_bounded_number_of_times(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    with ScriptedLLMServer([{"truncated_json": True}] * 5) as server:
        outcome = run_session(store, server.base_url)
        asked = [r.body["messages"] for r in server.chat_requests]
    assert len(asked) == 3  # the reply, then two re-asks
    assert "could not be used" in asked[1][-1]["content"]
    assert outcome["status"] == "failed"
    assert "no usable reply in 3 tries" in outcome["reason"]


def test_budget_cap_mid_session_stops_with_budget_exhausted(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    steps = {"proposer": [script.proposal()] * 10, "reviewer": [script.verdict(2)] * 10}
    cap = 0.03
    with ScriptedLLMServer(steps) as server:
        outcome = run_session(store, server.base_url, maxUsdPerSession=cap)
        sent = len(server.chat_requests)
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith("BudgetExhausted")
    records = calls(store)
    assert 2 <= sent < 20
    assert records[-1]["error"].startswith("BudgetExhausted")
    spent = sum(record["cost_usd"] for record in records)
    assert spent == pytest.approx(outcome["cost_usd"], abs=1e-6)
    assert spent <= cap + max(record["cost_usd"] for record in records)
    assert outcome["proposal_attempts"] >= 1  # it got some way before the cap


def test_run_budget_counts_the_other_sessions_spend(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    other = "sessions/s0000/state.json"
    state = SessionState(
        session="s0000",
        design_id="d0000",
        seq=0,
        operator="scratch",
        parents=[],
        flow="gau",
        seed=0,
        models={},
        spent_usd=0.999,
    )
    write_document(store, other, state)
    with ScriptedLLMServer([script.proposal()]) as server:
        outcome = run_session(store, server.base_url, maxUsdPerRun=1.0)
        sent = len(server.chat_requests)
    assert sent == 0
    assert outcome["reason"].startswith("BudgetExhausted: run budget")


def test_a_recorded_session_is_not_run_again(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    recorded = {"status": "failed", "design": None, "reason": "earlier"}
    store.put_text(session_key("s0001"), json.dumps(recorded))
    with ScriptedLLMServer([]) as server:
        outcome = run_session(store, server.base_url)
        assert {key: outcome[key] for key in recorded} == recorded
        assert not server.chat_requests


def test_paper_search_without_network_is_noted_and_the_session_goes_on(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    steps = {"proposer": [script.queries("linear attention")]}
    with ScriptedLLMServer(steps) as server:
        spec = script.run_spec(server.base_url, RUN, searchRounds=1)
        spec["spec"]["agents"].update({"paperSearch": "arxiv", "paperSearchUrl": closed})
        settings = SessionSettings.from_run(DiscoveryRun.model_validate(spec))

        def factory(ledger: Ledger, trace: Any) -> LLMClient:
            return LLMClient(settings.agents, api_key="k", ledger=ledger, trace=trace)

        outcome = run_llm_session(
            store=store,
            session="s0001",
            design_id="d0001",
            seq=1,
            operator="mutation",
            parent_ids=["seed-gpt2"],
            seed=0,
            settings=settings,
            client_factory=factory,
        )
    state = json.loads(store.get_text("sessions/s0001/state.json"))
    [note] = state["searches"][0]["papers"]
    assert "paper search at arxiv" in note
    assert "paperSearch: off" in note
    assert "script exhausted" in outcome["reason"]  # it went on to write the proposal


def test_the_quickstarts_commented_llm_block_is_a_valid_spec(repo_root: Path) -> None:
    text = (repo_root / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    text = text.replace("offline: true", "offline: false")
    uncommented = re.sub(r"\n    # ((?:  )?[a-zA-Z]+:)", r"\n    \1", text)  # keys only
    assert uncommented.count("\n    baseUrl:") == 1
    run = parse_discovery_run(yaml.safe_load(uncommented))  # raises on any spec error
    assert not run.spec.agents.offline
    assert run.spec.agents.models.coder[0].model == "my-model"
