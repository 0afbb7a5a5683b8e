"""The LLM client against answers shaped as real servers send them (vLLM, Ollama, llama.cpp,
OpenAI, reasoning models), on a scripted OpenAI-compatible server on loopback.

Each shape is handled: the answer is used when its substance is usable, otherwise the failure
names the real cause; no crash, no call past its deadline, no cost lost.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_llm_client import PROMPT, Harness

from genesys.agents import roles
from genesys.agents.llm import (
    CHARS_PER_TOKEN_ESTIMATE,
    BudgetExhaustedError,
    CallRecord,
    LLMError,
    ReplyError,
    extract_json,
    json_candidates,
    split_reasoning,
)
from support.scripted_llm import ScriptedLLMServer

RATING = roles.json_parser(roles.Rating.from_json)


def verdict(rating: float) -> str:
    return json.dumps({"rating": rating, "review": "ok", "suggestions": "none"})


def ask(h: Harness, **options: Any) -> roles.Rating:
    rating: roles.Rating = h.client.ask("reviewer", "m1", PROMPT, RATING, **options)
    return rating


# --------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize(
    ("content", "reasoning", "wanted"),
    [
        pytest.param(
            f"<think>a draft: {verdict(1)}; cite [1]</think>\n{verdict(4)}", "", 4.0, id="think"
        ),
        pytest.param(f"<thinking>{verdict(0)}</thinking>{verdict(3)}", "", 3.0, id="thinking"),
        pytest.param(f"draft {verdict(1)}</think>\n{verdict(5)}", "", 5.0, id="lone-close"),
        pytest.param(verdict(2), f"first thought {verdict(0)}", 2.0, id="reasoning-field"),
        pytest.param(f"Draft: {verdict(1)}\nFinal: {verdict(4)}", "", 4.0, id="last-wins"),
        pytest.param(
            f"{verdict(4)}\n<think>on reflection {verdict(1)}</think>", "", 4.0, id="think-after"
        ),
    ],
)
def test_reasoning_never_becomes_the_answer(content: str, reasoning: str, wanted: float) -> None:
    step: dict[str, Any] = {"reply": content}
    if reasoning:
        step["reasoning"] = reasoning
    with ScriptedLLMServer([step]) as server, Harness(server) as h:
        assert ask(h).rating == wanted
    (record,) = h.records
    if "think" in content or reasoning:
        assert record.reasoning  # kept in the call record, out of the answer


def test_a_reply_cut_while_thinking_is_re_asked_with_a_larger_limit() -> None:
    steps = [
        {"reply": f"<think>maybe {verdict(1)}, let me check", "finish_reason": "length"},
        {"reply": f"<think>short</think>{verdict(4)}"},
    ]
    with ScriptedLLMServer(steps) as server, Harness(server) as h:
        assert ask(h, max_tokens=100).rating == 4.0
        limits = [r.body["max_tokens"] for r in server.chat_requests]
    assert limits == [100, 200]
    assert h.records[0].truncated


def test_split_reasoning_keeps_answer_and_reasoning_apart() -> None:
    assert split_reasoning("<think>a</think> b <think>c</think>") == ("b", "a\n\nc")
    assert split_reasoning("x</think>y") == ("y", "x")
    assert split_reasoning("y <think>cut") == ("y", "cut")
    assert split_reasoning("plain", "field") == ("plain", "field")


def test_the_last_complete_json_is_the_answer_and_a_cut_one_is_an_error() -> None:
    assert json_candidates('a {"x": 1} b [1] c') == [{"x": 1}, [1]]
    assert extract_json('draft {"x": 1} final {"x": 2}') == {"x": 2}
    with pytest.raises(ValueError, match="cut short"):
        extract_json('draft {"x": 1} final {"x": 2, "y": "cu')


def test_the_last_unit_block_wins_over_a_draft() -> None:
    draft = "class Draft(Unit):\n    pass\n"
    final = "class GeluMLP(Unit):\n    pass\n"
    text = f"```python\n{draft}```\nBetter:\n```python\n{final}```\n"
    assert roles.split_code(text)[0] == final


# ------------------------------------------------------------------------------- usage


def cost_of(record: CallRecord, h: Harness) -> float:
    price = h.agents.prices["m1"]
    return (
        record.prompt_tokens * price.input_per_m_tokens
        + record.completion_tokens * price.output_per_m_tokens
    ) / 1e6


@pytest.mark.parametrize(
    "usage",
    [
        pytest.param(None, id="no-usage"),
        pytest.param({"prompt_tokens": 12, "completion_tokens": None}, id="null-completion"),
        pytest.param({"prompt_tokens": None, "completion_tokens": 5}, id="null-prompt"),
    ],
)
def test_missing_or_partial_usage_is_estimated_and_charged(usage: dict[str, Any] | None) -> None:
    reply = verdict(4)
    with ScriptedLLMServer([{"reply": reply, "usage": usage}]) as server, Harness(server) as h:
        assert ask(h).rating == 4.0
    (record,) = h.records
    assert record.estimated
    assert record.error is None
    if usage is None or usage["completion_tokens"] is None:
        assert record.completion_tokens == -(-len(reply) // CHARS_PER_TOKEN_ESTIMATE)
    if usage is not None and usage["prompt_tokens"] is not None:
        assert record.prompt_tokens == 12
    assert record.cost_usd == pytest.approx(cost_of(record, h))
    assert h.ledger.session_spent_usd == pytest.approx(record.cost_usd)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"reply": "x", "no_choices": True}, id="empty-choices"),
        pytest.param({"reply": "x", "content_null": True}, id="null-content"),
        pytest.param(
            {"reply": "", "reasoning": "I thought but never answered"}, id="reasoning-only"
        ),
    ],
)
def test_malformed_replies_are_retried_and_their_usage_kept(bad: dict[str, Any]) -> None:
    with ScriptedLLMServer([bad, {"reply": verdict(4)}]) as server, Harness(server) as h:
        assert ask(h).rating == 4.0
        requests = len(server.chat_requests)
    assert requests == 2
    (record,) = h.records
    assert record.attempt_count == 2
    assert h.sleeps  # a retry, after a backoff
    assert record.cost_usd == pytest.approx(cost_of(record, h))
    assert h.ledger.session_spent_usd == pytest.approx(record.cost_usd)


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline() -> None:
    steps = [{"reply": verdict(4), "trickle": 0.3}] * 2
    with ScriptedLLMServer(steps) as server, Harness(server, maxRetries=1) as h:
        started = time.monotonic()
        with pytest.raises(LLMError, match=r"timed out: no complete reply within 0\.5 s"):
            ask(h)
        elapsed = time.monotonic() - started
    assert elapsed < 2 * 0.5 + 2.0  # two attempts of 0.5 s, not 8 pieces x 0.3 s each
    (record,) = h.records
    assert record.estimated  # the endpoint worked on it: charged by an estimate
    assert record.cost_usd > 0
    assert h.ledger.session_spent_usd == pytest.approx(record.cost_usd)


def test_a_cut_reply_that_stays_cut_fails_saying_so() -> None:
    cut = {"reply": '{"rating": 4, "review": "it is go', "finish_reason": "length"}
    with ScriptedLLMServer([cut] * 3) as server, Harness(server) as h:
        with pytest.raises(ReplyError, match="cut at its limit"):
            ask(h, max_tokens=100)
        limits = [r.body["max_tokens"] for r in server.chat_requests]
    assert limits == [100, 200, 400]
    assert all(record.truncated for record in h.records)


# ------------------------------------------------------------------------- model options


def test_openai_reasoning_models_get_max_completion_tokens_and_no_temperature() -> None:
    step = {"reply": verdict(4), "refuse": ["max_tokens", "temperature"]}
    with ScriptedLLMServer([step]) as server, Harness(server) as h:
        rating = h.client.ask("reviewer", "openai/o3-mini", PROMPT, RATING, max_tokens=300)
        (request,) = server.chat_requests
    assert rating.rating == 4.0
    assert request.body["max_completion_tokens"] == 300
    assert "max_tokens" not in request.body
    assert "temperature" not in request.body


def test_model_options_shape_each_request() -> None:
    options = {
        "m1": {
            "tokenLimit": "none",
            "temperature": False,
            "reasoningEffort": "low",
            "extraBody": {"chat_template_kwargs": {"enable_thinking": False}},
        }
    }
    with ScriptedLLMServer([{"reply": verdict(4)}, {"reply": verdict(4)}]) as server:
        with Harness(server, modelOptions=options) as h:
            ask(h)
        with Harness(server) as plain:
            ask(plain)
        shaped, default = (r.body for r in server.chat_requests)
    assert "max_tokens" not in shaped
    assert "max_completion_tokens" not in shaped
    assert "temperature" not in shaped
    assert shaped["reasoning_effort"] == "low"
    assert shaped["chat_template_kwargs"] == {"enable_thinking": False}
    assert default["max_tokens"] == 2048
    assert default["temperature"] == 0.7
    assert "reasoning_effort" not in default


def test_retries_of_charged_attempts_stay_within_the_cap() -> None:
    steps = [{"reply": verdict(4), "sleep": 2}] * 3
    with ScriptedLLMServer(steps) as server, Harness(server, maxUsdPerSession=0.006) as h:
        with pytest.raises(BudgetExhaustedError, match="session budget"):
            ask(h)
        requests = len(server.chat_requests)
    assert requests == 1  # the timed-out attempt was charged; a second would pass the cap
    assert 0 < h.ledger.session_spent_usd <= 0.006
    (record,) = h.records
    assert record.cost_usd == pytest.approx(h.ledger.session_spent_usd)
