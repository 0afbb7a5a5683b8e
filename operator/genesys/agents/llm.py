"""The LLM client layer of the design-session agents: model draws, budgets, retries, parsing.

A design session draws one model per role (:func:`draw_models`, the paper's hybrid setting) and
talks to an OpenAI-compatible endpoint through :class:`LLMClient`, which owns the retry policy,
the USD accounting (:class:`Ledger`) and the per-call trace (:class:`CallRecord`). Replies are
turned into data by :func:`extract_json` and :func:`extract_code`.

What must stay true:

- no torch import here (the layer runs in the control plane and in agent pods);
- the budget is checked *before* every call, with a pessimistic estimate (prompt characters / 4
  plus ``max_tokens`` of completion); a call that would cross a cap raises
  :class:`BudgetExhaustedError` and sends nothing, so spend can pass a cap by at most the
  difference between one call's estimate and its real usage;
- a model missing from the price table costs 0 USD (e.g. a local vLLM);
- the ``openai`` client never retries on its own (``max_retries=0``): retries happen here (so
  that a malformed body is retried too, every wait goes through the injected ``sleep`` and
  ``attempt_count`` counts HTTP attempts), on rate limits, timeouts, connection errors, 5xx and
  malformed bodies only; any other API error fails at once;
- the wait before a retry is what the server asked for when its error reply says
  (``retry-after-ms``, else ``Retry-After`` in seconds or as an HTTP date), capped at
  :data:`RETRY_AFTER_CAP_S`; otherwise capped exponential backoff with jitter from the injected
  ``rng``;
- every :meth:`LLMClient.chat` emits exactly one :class:`CallRecord` to ``trace``, whether it
  succeeded, failed or was refused by the budget; ``attempt_count`` counts HTTP attempts.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Any, TypeVar, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from opentelemetry.trace import SpanKind, StatusCode

from genesys import telemetry
from genesys.api.discoveryrun import Agents, Price, WeightedModel
from genesys.telemetry import genai

ROLES = ("proposer", "reviewer", "planner", "coder", "observer")

BACKOFF_BASE_S = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_S = 20.0
BACKOFF_JITTER = 0.25  # up to this fraction of the delay is added at random
RETRY_AFTER_CAP_S = 60.0
"""The longest wait a server's ``Retry-After`` gets; a longer one is cut to this."""
CHARS_PER_TOKEN = 4

Messages = list[dict[str, str]]
T = TypeVar("T")

# ValueError: a body that is not JSON (e.g. a gateway's error page), as transient as a 502.
_RETRYABLE: tuple[type[Exception], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    ValueError,
)


class BudgetExhaustedError(RuntimeError):
    """A call would take the session's or the run's spend past its USD cap."""

    reason = "BudgetExhausted"


class LLMError(RuntimeError):
    """An LLM call failed for good (after its retries), or its reply could not be used."""

    reason = "LLMError"


class ReplyError(LLMError):
    """No reply could be used after the re-asks (the endpoint works; the model did not)."""


# ---------------------------------------------------------------------------------- model draws


def _draw_one(choices: list[WeightedModel], rng: random.Random) -> str:
    weights = [choice.weight for choice in choices]
    if sum(weights) <= 0:  # every weight is 0: draw uniformly rather than fail
        return rng.choice(choices).model
    return rng.choices([choice.model for choice in choices], weights=weights, k=1)[0]


def draw_models(agents: Agents, rng: random.Random) -> dict[str, str]:
    """Draw one model per role, each by its weight; the same seed gives the same draw."""
    models = agents.models
    return {
        role: _draw_one(cast("list[WeightedModel]", getattr(models, role)), rng) for role in ROLES
    }


# ------------------------------------------------------------------------------------- accounting


def _messages_chars(messages: Messages) -> int:
    return sum(len(message.get("content", "")) for message in messages)


def prompt_hash(messages: Messages) -> str:
    """The first 16 hex digits of the SHA-256 of the messages as canonical JSON."""
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cost_usd(
    prices: dict[str, Price], model: str, prompt_tokens: float, completion_tokens: float
) -> float:
    """USD cost of a call at the model's price; 0 for a model with no price."""
    price = prices.get(model)
    if price is None:
        return 0.0
    return (
        prompt_tokens * price.input_per_m_tokens + completion_tokens * price.output_per_m_tokens
    ) / 1e6


def estimate_cost(
    prices: dict[str, Price], model: str, messages: Messages, max_tokens: int
) -> float:
    """Pessimistic USD cost of a call before it is made: prompt chars / 4 plus ``max_tokens``."""
    return cost_usd(prices, model, _messages_chars(messages) / CHARS_PER_TOKEN, max_tokens)


@dataclass
class CallRecord:
    """The trace of one :meth:`LLMClient.chat` call."""

    role: str
    model: str
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    attempt_count: int
    error: str | None = None


class Ledger:
    """USD spend of one session, and of the run so far, against their caps (None: no cap)."""

    def __init__(
        self,
        *,
        max_usd_per_session: float | None = None,
        max_usd_per_run: float | None = None,
        run_spent_usd: float = 0.0,
    ) -> None:
        self.max_usd_per_session = max_usd_per_session
        self.max_usd_per_run = max_usd_per_run
        self.session_spent_usd = 0.0
        self.run_spent_usd = run_spent_usd

    @classmethod
    def for_session(cls, agents: Agents, *, run_spent_usd: float = 0.0) -> Ledger:
        """A fresh session ledger with the caps of ``agents`` and the run's spend so far."""
        return cls(
            max_usd_per_session=agents.max_usd_per_session,
            max_usd_per_run=agents.max_usd_per_run,
            run_spent_usd=run_spent_usd,
        )

    def check(self, estimate: float) -> None:
        """Raise :class:`BudgetExhaustedError` if spending ``estimate`` more would pass a cap."""
        caps = (
            ("session", self.session_spent_usd, self.max_usd_per_session),
            ("run", self.run_spent_usd, self.max_usd_per_run),
        )
        for scope, spent, cap in caps:
            if cap is not None and spent + estimate > cap:
                raise BudgetExhaustedError(
                    f"{scope} budget: spent ${spent:.6f} + estimated ${estimate:.6f} "
                    f"> cap ${cap:.6f}"
                )

    def add(self, cost: float) -> None:
        """Record the real cost of a finished call."""
        self.session_spent_usd += cost
        self.run_spent_usd += cost


# ---------------------------------------------------------------------------------------- parsing

_FENCE_RE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_LANGUAGE_ALIASES = {"python": {"python", "py", "python3"}, "json": {"json", "jsonc"}}
_CLOSERS = {"{": "}", "[": "]"}


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(text)]


def _string_end(text: str, start: int) -> int:
    """Index after the quote closing the string opened at ``start`` (``len(text)`` if none)."""
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return index + 1
        index += 2 if char == "\\" else 1  # an escape hides the character after it
    return len(text)


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket closing the one at ``start`` (strings respected), or None."""
    stack: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == '"':
            index = _string_end(text, index)
            continue
        if char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return index + 1
        index += 1
    return None


def extract_json(text: str) -> Any:
    """Parse the first ```json block of ``text``, else its first balanced ``{...}``/``[...]``.

    Raises ValueError when there is none, when the first candidate is cut short, or when the
    ```json block is not valid JSON.
    """
    for language, body in _fenced_blocks(text):
        if language in _LANGUAGE_ALIASES["json"]:
            try:
                return json.loads(body)
            except ValueError as error:
                raise ValueError(f"the ```json block is not valid JSON: {error}") from error
    index = 0
    while True:
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            raise ValueError("no JSON object or array in the reply")
        start = min(starts)
        end = _balanced_end(text, start)
        if end is None:
            raise ValueError(f"unterminated JSON starting at character {start}")
        try:
            return json.loads(text[start:end])
        except ValueError:
            index = end  # balanced but not JSON (prose in braces): look further on


def extract_code(text: str, language: str = "python") -> str:
    """The first fenced block of ``language`` in ``text``, else its first fenced block.

    Raises ValueError when the text has no complete fenced block.
    """
    blocks = _fenced_blocks(text)
    if not blocks:
        raise ValueError("no fenced code block in the reply")
    wanted = _LANGUAGE_ALIASES.get(language.lower(), {language.lower()})
    for block_language, body in blocks:
        if block_language in wanted:
            return body
    return blocks[0][1]


# ------------------------------------------------------------------------------------ retry-after


def _seconds(value: str | None) -> float | None:
    """``value`` as a finite number, or None."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _seconds_until(date: str, now: float) -> float | None:
    """Seconds from ``now`` until an HTTP date, or None when ``date`` is not one."""
    try:
        moment = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # HTTP dates are in GMT
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() - now


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait an error reply asks for, in seconds; None when it asks for none (or for <= 0).

    ``retry-after-ms`` (milliseconds) comes first, then ``Retry-After`` in seconds or as an
    HTTP date (counted from ``now``, by default the current time). ``headers`` must look names
    up without regard to case, as ``httpx.Headers`` do.
    """
    milliseconds = _seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        seconds: float | None = milliseconds / 1000.0
    else:
        value = headers.get("retry-after")
        seconds = _seconds(value)
        if seconds is None and value:
            seconds = _seconds_until(value, time.time() if now is None else now)
    return seconds if seconds is not None and seconds > 0 else None


def _asked_wait_s(error: Exception) -> float | None:
    """The wait the endpoint asked for in its error reply, if it did."""
    if not isinstance(error, openai.APIStatusError):
        return None
    return retry_after_s(error.response.headers)


# ----------------------------------------------------------------------------------------- client


class LLMClient:
    """A synchronous OpenAI-compatible chat client with budget, retries and tracing."""

    def __init__(
        self,
        agents: Agents,
        *,
        api_key: str | None = None,
        ledger: Ledger,
        trace: Callable[[CallRecord], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        key = api_key or os.environ.get(agents.api_key_env)
        if not key:
            raise LLMError(
                f"no API key: pass api_key or set the environment variable {agents.api_key_env}"
            )
        self.agents = agents
        self.ledger = ledger
        self._trace = trace
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self.base_url = agents.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=agents.timeout_seconds,
            max_retries=0,  # retries are ours: see _send()
        )

    def close(self) -> None:
        """Close the HTTP connections of the underlying client."""
        self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def backoff_s(self, retry: int) -> float:
        """Delay before retry number ``retry`` (0-based): exponential, jittered, capped."""
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * BACKOFF_FACTOR**retry)
        return min(BACKOFF_CAP_S, delay * (1.0 + BACKOFF_JITTER * self._rng.random()))

    def retry_delay_s(self, error: Exception, retry: int) -> float:
        """Delay before retry number ``retry`` after ``error``: the server's ask, else backoff."""
        asked = _asked_wait_s(error)
        return min(asked, RETRY_AFTER_CAP_S) if asked is not None else self.backoff_s(retry)

    def chat(
        self,
        role: str,
        model: str,
        messages: Messages,
        *,
        max_tokens: int = 2048,
        temperature: float = 0.7,
    ) -> str:
        """Send one chat completion and return the reply text.

        Raises BudgetExhaustedError before sending when the estimate would pass a cap, and
        LLMError when the call fails for good.
        """
        record = CallRecord(role, model, prompt_hash(messages), 0, 0, 0.0, 0.0, 0)
        with self._traced(record, "chat", max_tokens):
            self.ledger.check(estimate_cost(self.agents.prices, model, messages, max_tokens))
            return self._send(record, messages, max_tokens=max_tokens, temperature=temperature)

    @contextlib.contextmanager
    def _traced(
        self, record: CallRecord, operation: str, max_tokens: int | None = None
    ) -> Iterator[None]:
        """Time the call, note its failure in ``record``, and emit the record exactly once.

        The call is also an OpenTelemetry span with the GenAI conventions' attributes
        (:mod:`genesys.telemetry.genai`).
        """
        started = time.monotonic()
        attributes = genai.call_attributes(
            operation, record.model, role=record.role, base_url=self.base_url, max_tokens=max_tokens
        )
        span = telemetry.current().tracer.start_span(
            genai.span_name(operation, record.model), kind=SpanKind.CLIENT, attributes=attributes
        )
        try:
            yield
        except BudgetExhaustedError as error:
            record.error = f"{BudgetExhaustedError.reason}: {error}"
            span.set_attribute(genai.ERROR_TYPE, BudgetExhaustedError.__name__)
            raise
        except LLMError as error:
            record.error = str(error)
            span.set_attribute(genai.ERROR_TYPE, _error_type(error))
            span.set_status(StatusCode.ERROR, str(error)[:500])
            raise
        finally:
            record.latency_s = time.monotonic() - started
            span.set_attributes(
                {
                    genai.INPUT_TOKENS: record.prompt_tokens,
                    genai.OUTPUT_TOKENS: record.completion_tokens,
                    genai.COST_USD: record.cost_usd,
                    genai.ATTEMPTS: record.attempt_count,
                }
            )
            span.end()
            if self._trace is not None:
                self._trace(record)

    def _send(
        self, record: CallRecord, messages: Messages, *, max_tokens: int, temperature: float
    ) -> str:
        attempts = self.agents.max_retries + 1
        for attempt in range(attempts):
            record.attempt_count = attempt + 1
            try:
                completion = self._client.chat.completions.create(
                    model=record.model,
                    messages=cast("list[ChatCompletionMessageParam]", messages),
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
            except _RETRYABLE as error:
                reason = _describe(error)
                if attempt + 1 >= attempts:
                    raise LLMError(f"{reason} (gave up after {attempts} attempts)") from error
                self._sleep(self.retry_delay_s(error, attempt))
                continue
            except openai.OpenAIError as error:
                raise LLMError(_describe(error)) from error
            return self._account(record, messages, completion)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _account(self, record: CallRecord, messages: Messages, completion: ChatCompletion) -> str:
        if not completion.choices:
            raise LLMError("the completion has no choices")
        text = completion.choices[0].message.content or ""
        usage = completion.usage
        if usage is not None:
            record.prompt_tokens = usage.prompt_tokens
            record.completion_tokens = usage.completion_tokens
        else:  # some servers omit usage: count characters, as the estimate does
            record.prompt_tokens = _messages_chars(messages) // CHARS_PER_TOKEN
            record.completion_tokens = len(text) // CHARS_PER_TOKEN
        record.cost_usd = cost_usd(
            self.agents.prices, record.model, record.prompt_tokens, record.completion_tokens
        )
        self.ledger.add(record.cost_usd)
        return text

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` (one call, traced as role ``embeddings``, budget checked).

        Raises BudgetExhaustedError or LLMError like :meth:`chat`.
        """
        text = "\n".join(texts)
        record = CallRecord(
            "embeddings", model, prompt_hash([{"content": text}]), 0, 0, 0.0, 0.0, 1
        )
        with self._traced(record, "embeddings"):
            self.ledger.check(cost_usd(self.agents.prices, model, len(text) / CHARS_PER_TOKEN, 0))
            try:
                response = self._client.embeddings.create(model=model, input=texts)
            except (openai.OpenAIError, ValueError) as error:
                raise LLMError(_describe(error)) from error
            record.prompt_tokens = response.usage.prompt_tokens if response.usage else 0
            record.cost_usd = cost_usd(self.agents.prices, model, record.prompt_tokens, 0)
            self.ledger.add(record.cost_usd)
            return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def ask(
        self,
        role: str,
        model: str,
        messages: Messages,
        parse: Callable[[str], T],
        *,
        reasks: int = 2,
        hint: str = "Reply again in the requested format.",
        max_tokens: int = 2048,
        temperature: float = 0.7,
    ) -> T:
        """Chat and ``parse`` the reply, re-asking with the parse error up to ``reasks`` times.

        Raises ReplyError when no reply parses (and whatever :meth:`chat` raises).
        """
        conversation = list(messages)
        for attempt in range(reasks + 1):
            text = self.chat(
                role, model, conversation, max_tokens=max_tokens, temperature=temperature
            )
            try:
                return parse(text)
            except ValueError as error:
                if attempt >= reasks:
                    raise ReplyError(
                        f"the {role} gave no usable reply in {reasks + 1} tries; last: {error}"
                    ) from error
                conversation = [
                    *conversation,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"Your reply could not be used ({error}). {hint}"},
                ]
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def chat_json(
        self,
        role: str,
        model: str,
        messages: Messages,
        *,
        schema_hint: str,
        reasks: int = 2,
        max_tokens: int = 2048,
        temperature: float = 0.7,
    ) -> Any:
        """Chat and parse the reply as JSON, re-asking up to ``reasks`` times on a bad reply.

        Raises ReplyError (an LLMError) when no reply parses.
        """
        return self.ask(
            role,
            model,
            messages,
            extract_json,
            reasks=reasks,
            hint=f"Reply with only a JSON object matching: {schema_hint}",
            max_tokens=max_tokens,
            temperature=temperature,
        )


def _error_type(error: LLMError) -> str:
    """``error.type`` of a failed call: the HTTP status, or the class of what failed."""
    cause = error.__cause__
    if isinstance(cause, openai.APIStatusError):
        return str(cause.status_code)
    return type(cause or error).__name__


def _describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} from the LLM endpoint: {error.message}"
    if isinstance(error, openai.APITimeoutError):
        return "the LLM call timed out"
    if isinstance(error, openai.APIConnectionError):
        return f"cannot reach the LLM endpoint: {error}"
    if isinstance(error, ValueError):
        return f"the LLM endpoint sent a malformed body: {error}"
    return f"{type(error).__name__}: {error}"
