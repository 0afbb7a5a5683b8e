"""Tests of the LLM client layer against a real scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest

from genesys.agents.llm import (
    BACKOFF_CAP_S,
    RETRY_AFTER_CAP_S,
    ROLES,
    BudgetExhaustedError,
    CallRecord,
    Ledger,
    LLMClient,
    LLMError,
    draw_models,
    extract_code,
    extract_json,
    prompt_hash,
    retry_after_s,
)
from genesys.api.discoveryrun import Agents
from support.scripted_llm import TRUNCATED_JSON, ScriptedLLMServer

PROMPT = [{"role": "system", "content": "ROLE: proposer"}, {"role": "user", "content": "x" * 36}]


def make_agents(base_url: str | None, **overrides: Any) -> Agents:
    spec: dict[str, Any] = {
        "offline": False,
        "baseUrl": base_url,
        "apiKeySecret": {"name": "llm", "key": "api-key"},
        "models": {"proposer": [{"model": "m1"}]},
        "prices": {"m1": {"inputPerMTokens": 1.0, "outputPerMTokens": 2.0}},
        "maxUsdPerSession": 1.0,
        "timeoutSeconds": 0.5,
        "maxRetries": 2,
    }
    spec.update(overrides)
    return Agents.model_validate(spec)


class Harness:
    """A client wired to a server, with its trace and the backoff delays it asked for."""

    def __init__(self, server: ScriptedLLMServer, **overrides: Any) -> None:
        self.agents = make_agents(server.base_url, **overrides)
        self.records: list[CallRecord] = []
        self.sleeps: list[float] = []
        self.ledger = Ledger.for_session(self.agents)
        self.client = LLMClient(
            self.agents,
            api_key="sk-test",
            ledger=self.ledger,
            trace=self.records.append,
            sleep=self.sleeps.append,
            rng=random.Random(0),
        )

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def test_chat_success_costs_by_price_table_and_traces() -> None:
    reply = "y" * 400  # 100 completion tokens
    with ScriptedLLMServer([{"reply": reply}]) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT, max_tokens=300) == reply
    prompt_tokens = len("ROLE: proposer\n" + "x" * 36) // 4
    expected = (prompt_tokens * 1.0 + 100 * 2.0) / 1e6
    (record,) = h.records
    assert record == CallRecord(
        role="proposer",
        model="m1",
        prompt_hash=prompt_hash(PROMPT),
        prompt_tokens=prompt_tokens,
        completion_tokens=100,
        cost_usd=record.cost_usd,
        latency_s=record.latency_s,
        attempt_count=1,
        error=None,
    )
    assert record.cost_usd == pytest.approx(expected)
    assert 0 < record.latency_s < 5
    assert len(h.records[0].prompt_hash) == 16
    assert h.ledger.session_spent_usd == pytest.approx(expected)
    body = server.chat_requests[0].body
    assert body["model"] == "m1"
    assert body["max_tokens"] == 300
    assert server.chat_requests[0].headers["authorization"] == "Bearer sk-test"
    assert server.chat_requests[0].role == "proposer"


def test_chat_unpriced_model_costs_nothing() -> None:
    with ScriptedLLMServer([{"reply": "ok"}]) as server, Harness(server) as h:
        assert h.client.chat("coder", "local-vllm", PROMPT) == "ok"
    assert h.records[0].cost_usd == 0.0
    assert h.records[0].completion_tokens == 0
    assert h.ledger.session_spent_usd == 0.0


def test_chat_retries_after_429_and_records_one_call() -> None:
    with ScriptedLLMServer([{"status": 429}, {"reply": "done"}]) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT) == "done"
    assert len(server.chat_requests) == 2
    assert [(r.attempt_count, r.error) for r in h.records] == [(2, None)]
    assert len(h.sleeps) == 1
    assert 0.5 <= h.sleeps[0] <= 0.5 * 1.25


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        pytest.param(429, {"Retry-After": "3"}, 3.0, id="seconds"),
        pytest.param(429, {"Retry-After": "0.25"}, 0.25, id="fraction"),
        pytest.param(429, {"retry-after-ms": "1500"}, 1.5, id="milliseconds"),
        pytest.param(429, {"retry-after-ms": "250", "Retry-After": "9"}, 0.25, id="ms-first"),
        pytest.param(503, {"Retry-After": "7"}, 7.0, id="503"),
        pytest.param(429, {"Retry-After": "3600"}, RETRY_AFTER_CAP_S, id="capped"),
    ],
)
def test_chat_waits_as_long_as_retry_after_asks(
    status: int, headers: dict[str, str], expected: float
) -> None:
    script = [{"status": status, "headers": headers}, {"reply": "done"}]
    with ScriptedLLMServer(script) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT) == "done"
    assert len(server.chat_requests) == 2
    assert h.sleeps == [pytest.approx(expected)]
    assert [(r.attempt_count, r.error) for r in h.records] == [(2, None)]


def test_chat_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    script = [{"status": 429, "headers": {"Retry-After": later}}, {"reply": "done"}]
    with ScriptedLLMServer(script) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT) == "done"
    (slept,) = h.sleeps
    assert 27 < slept <= 30


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", ""])
def test_chat_retry_after_that_asks_for_nothing_gets_the_backoff(value: str) -> None:
    script = [{"status": 429, "headers": {"Retry-After": value}}, {"reply": "done"}]
    with ScriptedLLMServer(script) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT) == "done"
    assert len(h.sleeps) == 1
    assert 0.5 <= h.sleeps[0] <= 0.5 * 1.25


def test_chat_waits_what_retry_after_asks_between_attempts_only() -> None:
    script = [{"status": 429, "headers": {"Retry-After": "2"}}] * 3
    with (
        ScriptedLLMServer(script) as server,
        Harness(server, maxRetries=2) as h,
        pytest.raises(LLMError, match="HTTP 429"),
    ):
        h.client.chat("proposer", "m1", PROMPT)
    assert len(server.chat_requests) == 3
    assert h.sleeps == [2.0, 2.0]  # no wait after the last attempt


def test_retry_after_s_reads_http_dates_against_now() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert retry_after_s({"retry-after": date}, now=now) == pytest.approx(12.0)
    assert (
        retry_after_s({"retry-after": email.utils.formatdate(now - 5, usegmt=True)}, now=now)
        is None
    )
    assert retry_after_s({}, now=now) is None
    assert retry_after_s({"retry-after-ms": "junk", "retry-after": "4"}, now=now) == 4.0


def test_chat_gives_up_after_repeated_500() -> None:
    script = [{"status": 500}] * 3
    with (
        ScriptedLLMServer(script) as server,
        Harness(server, maxRetries=2) as h,
        pytest.raises(LLMError, match="HTTP 500"),
    ):
        h.client.chat("proposer", "m1", PROMPT)
    assert len(server.chat_requests) == 3
    assert len(h.sleeps) == 2
    assert h.sleeps[1] > h.sleeps[0]  # exponential: about 0.5 s then about 1 s
    assert h.records[0].attempt_count == 3
    assert h.records[0].error is not None
    assert "HTTP 500" in h.records[0].error
    assert h.ledger.session_spent_usd == 0.0


def test_chat_slow_reply_times_out_then_fails() -> None:
    script = [{"sleep": 3, "reply": "late"}] * 2
    with (
        ScriptedLLMServer(script) as server,
        Harness(server, maxRetries=1) as h,
        pytest.raises(LLMError, match="timed out"),
    ):
        h.client.chat("proposer", "m1", PROMPT)
    assert len(server.chat_requests) == 2
    assert h.records[0].attempt_count == 2
    assert h.records[0].latency_s < 2.5


def test_chat_garbage_body_is_retried_a_bounded_number_of_times() -> None:
    script = [{"garbage": True}] * 5
    with (
        ScriptedLLMServer(script) as server,
        Harness(server, maxRetries=2) as h,
        pytest.raises(LLMError, match="malformed body"),
    ):
        h.client.chat("proposer", "m1", PROMPT)
    assert len(server.chat_requests) == 3


def test_chat_client_error_is_not_retried() -> None:
    with (
        ScriptedLLMServer([{"status": 400}, {"reply": "never"}]) as server,
        Harness(server) as h,
        pytest.raises(LLMError, match="HTTP 400"),
    ):
        h.client.chat("proposer", "m1", PROMPT)
    assert len(server.chat_requests) == 1
    assert h.sleeps == []


def test_backoff_is_capped() -> None:
    with ScriptedLLMServer([]) as server, Harness(server) as h:
        delays = [h.client.backoff_s(retry) for retry in range(12)]
    assert delays[0] >= 0.5
    assert max(delays) == BACKOFF_CAP_S


def test_chat_json_reasks_after_truncated_json() -> None:
    script = [{"truncated_json": True}, {"reply": 'Here:\n```json\n{"name": "d1"}\n```'}]
    with ScriptedLLMServer(script) as server, Harness(server) as h:
        result = h.client.chat_json("proposer", "m1", PROMPT, schema_hint='{"name": str}')
    assert result == {"name": "d1"}
    second = server.chat_requests[1].body["messages"]
    assert second[: len(PROMPT)] == PROMPT
    assert second[-2] == {"role": "assistant", "content": TRUNCATED_JSON}
    assert second[-1]["role"] == "user"
    assert 'Reply with only a JSON object matching: {"name": str}' in second[-1]["content"]
    assert len(h.records) == 2


def test_chat_json_gives_up_after_reasks() -> None:
    script = [{"truncated_json": True}] * 3 + [{"reply": '{"late": 1}'}]
    with (
        ScriptedLLMServer(script) as server,
        Harness(server) as h,
        pytest.raises(LLMError, match="no usable reply in 2 tries"),
    ):
        h.client.chat_json("proposer", "m1", PROMPT, schema_hint="{}", reasks=1)
    assert len(server.chat_requests) == 2


def test_budget_refuses_second_call_before_sending() -> None:
    reply = "y" * 400  # 100 completion tokens = $0.0002 at $2/M
    script = [{"reply": reply}, {"reply": reply}]
    cap = 3e-4  # the first estimate (about $0.000212) fits; spent + second estimate does not
    with ScriptedLLMServer(script) as server, Harness(server, maxUsdPerSession=cap) as h:
        h.client.chat("proposer", "m1", PROMPT, max_tokens=100)
        with pytest.raises(BudgetExhaustedError, match="session budget"):
            h.client.chat("proposer", "m1", PROMPT, max_tokens=100)
    assert len(server.chat_requests) == 1
    first_cost = h.records[0].cost_usd
    assert first_cost > 0
    assert h.ledger.session_spent_usd <= cap + first_cost
    assert h.records[1].attempt_count == 0
    assert h.records[1].error is not None
    assert h.records[1].error.startswith("BudgetExhausted")
    assert BudgetExhaustedError.reason == "BudgetExhausted"


def test_ledger_run_cap_counts_spend_before_the_session() -> None:
    ledger = Ledger(max_usd_per_session=None, max_usd_per_run=1.0, run_spent_usd=0.9)
    ledger.check(0.1)
    with pytest.raises(BudgetExhaustedError, match="run budget"):
        ledger.check(0.2)
    ledger.add(0.05)
    assert ledger.session_spent_usd == pytest.approx(0.05)
    assert ledger.run_spent_usd == pytest.approx(0.95)


def test_draw_models_follows_weights_and_seed() -> None:
    agents = make_agents(
        None,
        models={
            "proposer": [{"model": "a", "weight": 3.0}, {"model": "b", "weight": 1.0}],
            "coder": [{"model": "c", "weight": 0.0}, {"model": "d", "weight": 2.0}],
        },
    )
    rng = random.Random(7)
    draws = [draw_models(agents, rng) for _ in range(10_000)]
    assert all(set(draw) == set(ROLES) for draw in draws)
    proposers = Counter(draw["proposer"] for draw in draws)
    assert abs(proposers["a"] / 10_000 - 0.75) < 0.02
    assert {draw["coder"] for draw in draws} == {"d"}
    assert {draw["reviewer"] for draw in draws} == {"gpt-4o"}  # the default list
    assert draw_models(agents, random.Random(7)) == draws[0]
    assert [draw_models(agents, random.Random(s)) for s in range(20)] == [
        draw_models(agents, random.Random(s)) for s in range(20)
    ]


def test_api_key_from_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_TEST_LLM_KEY", "sk-from-env")
    with ScriptedLLMServer([{"reply": "hi"}]) as server:
        agents = make_agents(server.base_url, apiKeyEnv="GENESYS_TEST_LLM_KEY")
        with LLMClient(agents, ledger=Ledger.for_session(agents), sleep=lambda _: None) as client:
            assert client.chat("proposer", "m1", PROMPT) == "hi"
    assert server.chat_requests[0].headers["authorization"] == "Bearer sk-from-env"


def test_missing_api_key_is_an_llm_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENESYS_TEST_NO_KEY", raising=False)
    agents = make_agents("http://127.0.0.1:9/v1", apiKeyEnv="GENESYS_TEST_NO_KEY")
    with pytest.raises(LLMError, match="GENESYS_TEST_NO_KEY"):
        LLMClient(agents, ledger=Ledger.for_session(agents))


def test_base_url_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    agents = make_agents(None)
    with LLMClient(agents, api_key="k", ledger=Ledger.for_session(agents)) as client:
        assert client.base_url == "http://127.0.0.1:9/v1"


def test_server_routes_steps_by_role_and_lists_models() -> None:
    script = {"reviewer": [{"reply": "r"}], "*": [{"reply": "p"}]}
    reviewer = [{"role": "system", "content": "You judge. ROLE: reviewer"}]
    with ScriptedLLMServer(script, models=("m1", "m2")) as server, Harness(server) as h:
        assert h.client.chat("proposer", "m1", PROMPT) == "p"
        assert h.client.chat("reviewer", "m1", reviewer) == "r"
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as response:
            listed = json.load(response)
    assert [m["id"] for m in listed["data"]] == ["m1", "m2"]
    assert [r.role for r in server.chat_requests] == ["proposer", "reviewer"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('```json\n{"a": 1}\n```', {"a": 1}, id="json-fence"),
        pytest.param('x {"b": [1, 2]} y', {"b": [1, 2]}, id="bare-object"),
        pytest.param("list: [1, 2, 3].", [1, 2, 3], id="bare-array"),
        pytest.param('{not json} then {"c": "}"}', {"c": "}"}, id="skip-prose-braces"),
        pytest.param("```python\nx = {}\n```\n```json\n[true]\n```", [True], id="json-fence-wins"),
    ],
)
def test_extract_json_finds_value(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("no json here", id="none"),
        pytest.param(TRUNCATED_JSON, id="truncated-fence"),
        pytest.param('{"a": [1, 2], "b": "cut', id="truncated-bare"),
        pytest.param("```json\n{'a': 1}\n```", id="invalid-fence"),
    ],
)
def test_extract_json_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="JSON"):
        extract_json(text)


def test_extract_code_prefers_language_then_first_block() -> None:
    text = "```text\nnotes\n```\nthen\n```python\nprint(1)\n```"
    assert extract_code(text) == "print(1)\n"
    assert extract_code("```py\nx = 1\n```") == "x = 1\n"
    assert extract_code(text, language="rust") == "notes\n"
    with pytest.raises(ValueError, match="no fenced code block"):
        extract_code("```python\nprint(1)\n")
