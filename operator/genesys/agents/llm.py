"""The LLM client layer of the design-session agents: model draws, budgets, retries, parsing.

A design session draws one model per role (:func:`draw_models`, the paper's hybrid setting) and
talks to an OpenAI-compatible endpoint through :class:`LLMClient`, which owns the retry policy,
the USD accounting (:class:`Ledger`) and the per-call trace (:class:`CallRecord`). Each request
is shaped by the model's options (:func:`request_options`: the token-limit field, temperature,
reasoning effort, extra body fields). Replies are turned into data by :func:`extract_json`,
:func:`parse_last` and :func:`extract_code`.

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
  succeeded, failed or was refused by the budget; ``attempt_count`` counts HTTP attempts;
- reasoning is never the answer: ``<think>``/``<thinking>``/``<reasoning>`` blocks (closed,
  opened only, or closed only) and a message's ``reasoning_content``/``reasoning`` field go to
  the record's ``reasoning`` (:func:`split_reasoning`); of what is left, the *last* complete
  JSON value that the role's schema accepts is the answer (:func:`parse_last`), and a value
  cut short after it is an error, never a reason to take an earlier draft;
- no cost is lost: missing or null usage is estimated at :data:`CHARS_PER_TOKEN_ESTIMATE`
  characters a token and the record marked ``estimated``; an attempt that timed out is charged
  its prompt and ``max_tokens``, one whose connection dropped or whose body was unreadable its
  prompt; the budget is checked again before every retry;
- a 200 with no choice, a null content, or reasoning and no answer is a malformed reply,
  retried like a 5xx; ``timeoutSeconds`` bounds each attempt from first byte to last
  (:meth:`LLMClient._create`); a reply cut at its token limit that does not parse is re-asked
  once with twice the limit, and the failure says it was cut.
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
import threading
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
from genesys.api.discoveryrun import (
    REASONING_MODEL_PATTERN,
    Agents,
    ModelOptions,
    Price,
    WeightedModel,
)
from genesys.telemetry import genai

ROLES = ("proposer", "reviewer", "planner", "coder", "observer")

BACKOFF_BASE_S = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_S = 20.0
BACKOFF_JITTER = 0.25  # up to this fraction of the delay is added at random
RETRY_AFTER_CAP_S = 60.0
MAX_TOKENS_CAP = 32768
"""The largest token limit a re-ask after a cut reply raises ``max_tokens`` to."""
"""The longest wait a server's ``Retry-After`` gets; a longer one is cut to this."""
CHARS_PER_TOKEN = 4

Messages = list[dict[str, str]]
T = TypeVar("T")

CHARS_PER_TOKEN_ESTIMATE = 3
"""Characters per token when a reply carries no usage: fewer than English text averages (about
4), so an estimate charges a little more than the endpoint would, never less."""


class CallDeadlineError(TimeoutError):
    """One HTTP attempt passed ``timeoutSeconds`` from its first byte to its last."""


class MalformedReplyError(ValueError):
    """A 200 reply with no choice, no content, or reasoning and no answer: retried."""


# ValueError: a body that is not JSON (e.g. a gateway's error page), as transient as a 502, and a
# malformed reply (MalformedReplyError).
_RETRYABLE: tuple[type[Exception], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    CallDeadlineError,
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


def estimate_tokens(chars: int) -> int:
    """Tokens of ``chars`` characters by :data:`CHARS_PER_TOKEN_ESTIMATE` (rounded up)."""
    return -(-chars // CHARS_PER_TOKEN_ESTIMATE)


_THINK_BLOCK_RE = re.compile(
    r"<(think|thinking|reasoning)>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE
)
_THINK_OPEN_RE = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</(think|thinking|reasoning)\s*>", re.IGNORECASE)


def split_reasoning(text: str, field: str = "") -> tuple[str, str]:
    """(answer, reasoning) of a reply: think blocks are reasoning, never part of the answer.

    ``<think>``, ``<thinking>`` and ``<reasoning>`` blocks are removed from the answer. A
    closing tag with no opening one (a server that strips the opening tag) makes everything
    before it reasoning; an opening tag never closed (a reply cut while thinking) everything
    after it. ``field`` is a reasoning field of the message (``reasoning_content``,
    ``reasoning``), kept first.
    """
    reasoning = [field.strip()] if field.strip() else []
    reasoning += [match.group(2).strip() for match in _THINK_BLOCK_RE.finditer(text)]
    answer = _THINK_BLOCK_RE.sub("", text)
    close = _THINK_CLOSE_RE.search(answer)
    if close is not None:
        reasoning.append(answer[: close.start()].strip())
        answer = answer[close.end() :]
    opened = _THINK_OPEN_RE.search(answer)
    if opened is not None:
        reasoning.append(answer[opened.end() :].strip())
        answer = answer[: opened.start()]
    return answer.strip(), "\n\n".join(part for part in reasoning if part)


def _reasoning_field(message: Any) -> str:
    """The reasoning a server returns beside the content (vLLM, DeepSeek, Ollama, OpenRouter)."""
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def request_options(
    agents: Agents, model: str, max_tokens: int, temperature: float
) -> dict[str, Any]:
    """The request fields a model gets: its token limit, temperature, reasoning effort, extras.

    From ``spec.agents.modelOptions[model]``; unset options follow the model's kind
    (:data:`~genesys.api.discoveryrun.REASONING_MODEL_PATTERN`): OpenAI's reasoning models get
    ``max_completion_tokens`` and no temperature, every other model ``max_tokens`` and one.
    """
    options = agents.model_options.get(model) or ModelOptions()
    reasoning = re.search(REASONING_MODEL_PATTERN, model) is not None
    limit = options.token_limit or ("max_completion_tokens" if reasoning else "max_tokens")
    fields: dict[str, Any] = {}
    if limit != "none":
        fields[limit] = max_tokens
    if options.temperature if options.temperature is not None else not reasoning:
        fields["temperature"] = temperature
    if options.reasoning_effort is not None:
        fields["reasoning_effort"] = options.reasoning_effort
    if options.extra_body:
        fields["extra_body"] = dict(options.extra_body)
    return fields


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
    estimated: bool = False  # some of the tokens are estimates (no usage, or a failed attempt)
    truncated: bool = False  # the reply stopped at its token limit (finish_reason "length")
    reasoning: str = ""  # the model's reasoning (think blocks, reasoning_content), not the answer


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


class CutShortError(ValueError):
    """The reply's last JSON value is not complete (the reply was cut, e.g. by its token limit)."""


def json_candidates(text: str) -> list[Any]:
    """Every complete JSON value of ``text``, in order: its ```json blocks, else its bare values.

    A bare value is a balanced ``{...}`` or ``[...]`` (strings respected) that parses; one
    nested in another counts once, as part of the outer one. Raises :class:`CutShortError`
    when a value opened after the last complete one never closes: the answer was cut, and an
    earlier value is a draft, not the answer.
    """
    fenced = []
    for language, body in _fenced_blocks(text):
        if language in _LANGUAGE_ALIASES["json"]:
            with contextlib.suppress(ValueError):
                fenced.append(json.loads(body))
    if fenced:
        return fenced
    values: list[Any] = []
    index = 0
    while True:
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            return values
        start = min(starts)
        end = _balanced_end(text, start)
        if end is None:
            raise CutShortError(f"the reply's JSON starting at character {start} is cut short")
        try:
            values.append(json.loads(text[start:end]))
            index = end
        except ValueError:  # balanced but not JSON (prose in braces): look inside it
            index = start + 1


def _no_json_reason(text: str) -> str:
    for language, body in _fenced_blocks(text):
        if language in _LANGUAGE_ALIASES["json"]:
            try:
                json.loads(body)
            except ValueError as error:
                return f"the ```json block is not valid JSON: {error}"
    return "no JSON object or array in the reply"


def extract_json(text: str) -> Any:
    """The last JSON value of ``text`` (:func:`json_candidates`): a reply's final answer.

    Raises ValueError naming why when there is none (none at all, cut short, an invalid block).
    """
    candidates = json_candidates(text)
    if not candidates:
        raise ValueError(_no_json_reason(text))
    return candidates[-1]


def parse_last(text: str, convert: Callable[[Any], T]) -> T:
    """The last JSON value of ``text`` that ``convert`` accepts (a draft before it is skipped).

    Raises ValueError: no JSON at all, or the conversion's error for the last value.
    """
    candidates = json_candidates(text)
    if not candidates:
        raise ValueError(_no_json_reason(text))
    error: ValueError | None = None
    for candidate in reversed(candidates):
        try:
            return convert(candidate)
        except ValueError as exc:
            error = error or exc
    assert error is not None
    raise error


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
        self._api_key = key
        self._client = self._new_client()
        self.last_truncated = False  # the last reply stopped at its token limit

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
                completion = self._create(record.model, messages, max_tokens, temperature)
                return self._account(record, messages, completion)
            except _RETRYABLE as error:
                self._charge_failed(record, messages, error, max_tokens)
                reason = _describe(error)
                if attempt + 1 >= attempts:
                    raise LLMError(f"{reason} (gave up after {attempts} attempts)") from error
                self.ledger.check(
                    estimate_cost(self.agents.prices, record.model, messages, max_tokens)
                )  # the failed attempt was charged: a retry must fit the caps too
                self._sleep(self.retry_delay_s(error, attempt))
            except openai.OpenAIError as error:
                raise LLMError(_describe(error)) from error
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _create(
        self, model: str, messages: Messages, max_tokens: int, temperature: float
    ) -> ChatCompletion:
        """One HTTP attempt, bounded from first byte to last by ``timeoutSeconds``.

        The HTTP client's own timeout bounds each read only, so a server that trickles bytes
        could hold a call for ever: the request runs in a worker thread, and past the deadline
        the client is closed under it (which aborts the read) and a fresh one replaces it.
        """
        outcome: dict[str, Any] = {}

        def request() -> None:
            try:
                outcome["completion"] = self._client.chat.completions.create(
                    model=model,
                    messages=cast("list[ChatCompletionMessageParam]", messages),
                    **request_options(self.agents, model, max_tokens, temperature),
                )
            except BaseException as error:  # handed to the caller's thread
                outcome["error"] = error

        worker = threading.Thread(target=request, name="llm-call", daemon=True)
        worker.start()
        worker.join(self.agents.timeout_seconds)
        if worker.is_alive():
            self._client.close()
            self._client = self._new_client()
            worker.join(5.0)
            raise CallDeadlineError(
                f"no complete reply within {self.agents.timeout_seconds:g} s "
                "(spec.agents.timeoutSeconds, first byte to last)"
            )
        if "error" in outcome:
            raise outcome["error"]
        return cast("ChatCompletion", outcome["completion"])

    def _charge_failed(
        self, record: CallRecord, messages: Messages, error: Exception, max_tokens: int
    ) -> None:
        """Charge an attempt that failed after the endpoint may have worked on it (estimated).

        A timed-out attempt is charged its prompt and ``max_tokens`` of completion (the most
        the endpoint could have generated), a dropped connection or an unreadable body its
        prompt; a refusal (429, 5xx) nothing; a malformed reply was charged by its usage.
        """
        if isinstance(
            error, openai.RateLimitError | openai.InternalServerError | MalformedReplyError
        ):
            return
        prompt = estimate_tokens(_messages_chars(messages))
        timed_out = isinstance(error, openai.APITimeoutError | CallDeadlineError)
        self._charge(record, prompt, max_tokens if timed_out else 0, estimated=True)

    def _charge(
        self, record: CallRecord, prompt_tokens: int, completion_tokens: int, *, estimated: bool
    ) -> None:
        cost = cost_usd(self.agents.prices, record.model, prompt_tokens, completion_tokens)
        record.prompt_tokens += prompt_tokens
        record.completion_tokens += completion_tokens
        record.cost_usd += cost
        record.estimated = record.estimated or estimated
        self.ledger.add(cost)

    def _account(self, record: CallRecord, messages: Messages, completion: ChatCompletion) -> str:
        """Charge a completion by its usage (estimated where it has none), then its answer.

        Raises :class:`MalformedReplyError` (retried) for a reply with no choice or no content.
        """
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice is not None else None
        text = (message.content if message is not None else None) or ""
        answer, reasoning = split_reasoning(text, _reasoning_field(message))
        usage = completion.usage
        prompt = usage.prompt_tokens if usage is not None else None
        completion_tokens = usage.completion_tokens if usage is not None else None
        estimated = prompt is None or completion_tokens is None
        self._charge(
            record,
            prompt if prompt is not None else estimate_tokens(_messages_chars(messages)),
            completion_tokens
            if completion_tokens is not None
            else estimate_tokens(len(text) + len(reasoning)),
            estimated=estimated,
        )
        record.reasoning = reasoning
        if choice is None:
            raise MalformedReplyError("the completion has no choices")
        if message is None or message.content is None:
            raise MalformedReplyError("the completion's message has no content")
        record.truncated = self.last_truncated = choice.finish_reason == "length"
        if not answer and reasoning and not record.truncated:  # (cut while thinking: re-asked)
            raise MalformedReplyError("the reply holds reasoning only, no answer after it")
        return answer

    def _new_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.agents.timeout_seconds,
            max_retries=0,  # retries are ours: see _send()
        )

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

        A reply cut at its token limit (``finish_reason: length``) that does not parse is
        re-asked once with twice the limit (at most :data:`MAX_TOKENS_CAP`), and the error says
        it was cut. Raises ReplyError when no reply parses (and whatever :meth:`chat` raises).
        """
        conversation = list(messages)
        for attempt in range(reasks + 1):
            text = self.chat(
                role, model, conversation, max_tokens=max_tokens, temperature=temperature
            )
            try:
                return parse(text)
            except ValueError as error:
                reason = str(error)
                if self.last_truncated:
                    reason = f"the reply was cut at its limit of {max_tokens} tokens ({error})"
                    max_tokens = min(2 * max_tokens, MAX_TOKENS_CAP)
                if attempt >= reasks:
                    raise ReplyError(
                        f"the {role} gave no usable reply in {reasks + 1} tries; last: {reason}"
                    ) from error
                conversation = [
                    *conversation,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"Your reply could not be used ({reason}). {hint}"},
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
    if isinstance(error, CallDeadlineError):
        return f"the LLM call timed out: {error}"
    if isinstance(error, openai.APIConnectionError):
        return f"cannot reach the LLM endpoint: {error}"
    if isinstance(error, ValueError):
        return f"the LLM endpoint sent a malformed body: {error}"
    return f"{type(error).__name__}: {error}"
