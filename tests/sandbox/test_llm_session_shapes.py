"""Whole LLM sessions (both flows) against replies shaped as real servers send them.

Every call of these sessions gets a different real-world shape: reasoning in ``<think>`` blocks
or in ``reasoning_content`` with a draft answer inside, usage missing or null, an empty
``choices`` list, a null content, a reply cut at its token limit, a body that trickles in; and
the endpoint refuses ``max_tokens`` and ``temperature``, as OpenAI's reasoning models do, so
the model's options must say so. The substance is usable, so each session must implement its
design through the real checks, and the spend recorded call by call must add up to the
session's.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from test_llm_sessions import read, seeded_store, session, settings_for

from genesys.agents.llm import Ledger, LLMClient
from genesys.agents.session import SessionSettings, run_llm_session
from genesys.api.discoveryrun import ModelOptions
from genesys.store.archive import design_key
from genesys.store.base import LocalStore
from support import agent_script as script
from support.scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.slow

CUT_UNIT = {
    "reply": "```python\nclass GeluMLP(Unit):\n    def __init__(",
    "finish_reason": "length",
}


def thinking(step: dict[str, Any], draft: str) -> dict[str, Any]:
    """The step's reply after a think block that holds a draft answer."""
    return {**step, "reply": f"<think>First try:\n{draft}\nNo, better:</think>\n{step['reply']}"}


def reasoning_model_settings(base_url: str) -> SessionSettings:
    """The tests' session settings, with m1 shaped like an OpenAI reasoning model's requests."""
    settings = settings_for(base_url)
    options = ModelOptions(token_limit="max_completion_tokens", temperature=False)
    agents = settings.agents.model_copy(update={"model_options": {"m1": options}})
    return dataclasses.replace(settings, agents=agents)


def refusing(steps: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every step refuses the fields OpenAI's reasoning models refuse."""
    refused = ["max_tokens", "temperature"]
    return {role: [{**step, "refuse": refused} for step in list_] for role, list_ in steps.items()}


def shaped_steps(flow: str) -> dict[str, list[dict[str, Any]]]:
    draft_verdict = script.verdict(1)["reply"]
    steps: dict[str, list[dict[str, Any]]] = {
        "proposer": [
            {"reply": "x", "no_choices": True},
            {
                **thinking(script.proposal(), script.proposal("A draft idea")["reply"]),
                "usage": {"prompt_tokens": 900, "completion_tokens": None},
            },
        ],
        "reviewer": [
            {"reply": f"<think>Maybe {draft_verdict} but", "finish_reason": "length"},
            {**script.verdict(4), "reasoning": draft_verdict, "usage": None},
        ],
        "observer": [{**script.verdict(4), "trickle": 0.05}],
    }
    if flow == "gau":
        steps["planner"] = [
            {"reply": "x", "content_null": True},
            {"reply": f"Thinking...</think>\n{script.plan('the channel mixer')['reply']}"},
        ]
        broken = script.unit(script.LEAKY_MLP, "GeluMLP")["reply"]
        steps["coder"] = [CUT_UNIT, thinking(script.unit(script.GELU_MLP, "GeluMLP"), broken)]
    else:
        broken = script.block(
            script.DIRECT_BLOCK.replace("import torch\n", "import os\nimport torch\n")
        )
        steps["coder"] = [
            {**CUT_UNIT, "reply": "```python\nclass DirectBlock(Unit):\n    def __ini"},
            thinking(script.block(script.DIRECT_BLOCK), broken["reply"]),
        ]
    return steps


@pytest.mark.parametrize("flow", ["gau", "direct"])
def test_every_reply_shape_still_implements_the_design_and_loses_no_cost(
    tmp_path: Any, flow: str
) -> None:
    store: LocalStore = seeded_store(tmp_path / "store")
    with ScriptedLLMServer(refusing(shaped_steps(flow))) as server:
        outcome = session(store, reasoning_model_settings(server.base_url), flow=flow)
        coder_limits = [
            r.body["max_completion_tokens"] for r in server.chat_requests if r.role == "coder"
        ]
    assert outcome["status"] == "implemented", outcome
    design = read(store, design_key("d0001", "design.json"))
    source = json.dumps(design["units"])
    assert "LEAKY" not in source  # the draft in the think block never became the unit
    assert "import os" not in source
    assert design["metadata"]["title"] == "GELU channel mixer"  # not the draft's title
    assert coder_limits[1] == 2 * coder_limits[0]  # the cut reply was re-asked with more room
    calls = [read(store, key) for key in sorted(store.list("sessions/s0001/calls/"))]
    state = read(store, "sessions/s0001/state.json")
    assert sum(c["cost_usd"] for c in calls) == pytest.approx(state["spent_usd"])
    assert state["spent_usd"] > 0
    by_role = {c["role"]: c for c in calls}  # the last call of each role
    reviews = [c for c in calls if c["role"] == "reviewer"]
    assert reviews[0]["truncated"]  # cut while thinking: its draft was not taken as the verdict
    assert by_role["reviewer"]["estimated"]  # no usage: estimated, and charged
    assert "rating" in by_role["reviewer"]["reasoning"]  # the reasoning is kept, apart
    assert by_role["proposer"]["attempt_count"] == 2  # the empty choices were retried
    assert by_role["proposer"]["estimated"]
    assert any(c["truncated"] for c in calls if c["role"] == "coder")


class BrokenReviewer(LLMClient):
    """A client with a bug: asking the reviewer raises something no handler expects."""

    def ask(self, role: str, *args: Any, **kwargs: Any) -> Any:
        if role == "reviewer":
            raise KeyError("a bug in the reviewer's parsing")
        return super().ask(role, *args, **kwargs)


def test_an_unexpected_error_is_a_recorded_failure_with_its_spend(tmp_path: Any) -> None:
    store: LocalStore = seeded_store(tmp_path / "store")
    steps = {"proposer": [script.proposal()], "reviewer": [script.verdict(4)]}
    with ScriptedLLMServer(steps) as server:
        settings = settings_for(server.base_url)

        def factory(ledger: Ledger, trace: Any) -> LLMClient:
            return BrokenReviewer(settings.agents, api_key="k", ledger=ledger, trace=trace)

        outcome = run_llm_session(
            store=store,
            session="s0001",
            design_id="d0001",
            seq=5,
            operator="mutation",
            parent_ids=["seed-gpt2"],
            seed=7,
            settings=settings,
            client_factory=factory,
        )
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith("unexpected KeyError")
    calls = [read(store, key) for key in sorted(store.list("sessions/s0001/calls/"))]
    state = read(store, "sessions/s0001/state.json")
    assert len(calls) == 1
    assert calls[0]["cost_usd"] == pytest.approx(state["spent_usd"])
    assert state["spent_usd"] > 0
