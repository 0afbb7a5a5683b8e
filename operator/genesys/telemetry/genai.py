"""Attributes of LLM calls by OpenTelemetry's GenAI semantic conventions.

A call's span is named ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (``chat gpt-4o``)
and carries ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.request.max_tokens``, ``server.address``, then ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens`` and ``error.type`` once known, plus ``genesys.role``,
``genesys.llm.cost_usd`` and ``genesys.llm.attempts``.

What must stay true: attribute values are plain strings and numbers (no prompt text: prompts
live in the store, not in traces).
"""

from __future__ import annotations

from urllib.parse import urlparse

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
ROLE = "genesys.role"
COST_USD = "genesys.llm.cost_usd"
ATTEMPTS = "genesys.llm.attempts"

PROVIDER_OPENAI = "openai"


def server_address(base_url: str | None) -> str:
    """The host an OpenAI-compatible client talks to."""
    return urlparse(base_url).hostname or "" if base_url else "api.openai.com"


def call_attributes(
    operation: str, model: str, *, role: str, base_url: str | None, max_tokens: int | None = None
) -> dict[str, str | int]:
    """The attributes an LLM call's span starts with."""
    attributes: dict[str, str | int] = {
        OPERATION: operation,
        PROVIDER: PROVIDER_OPENAI,  # the API spoken; server.address says who served it
        REQUEST_MODEL: model,
        SERVER_ADDRESS: server_address(base_url),
        ROLE: role,
    }
    if max_tokens is not None:
        attributes[REQUEST_MAX_TOKENS] = max_tokens
    return attributes


def span_name(operation: str, model: str) -> str:
    """The conventions' span name of a call."""
    return f"{operation} {model}"


__all__ = [
    "ATTEMPTS",
    "COST_USD",
    "ERROR_TYPE",
    "INPUT_TOKENS",
    "OPERATION",
    "OUTPUT_TOKENS",
    "PROVIDER",
    "PROVIDER_OPENAI",
    "REQUEST_MAX_TOKENS",
    "REQUEST_MODEL",
    "ROLE",
    "SERVER_ADDRESS",
    "TOKEN_TYPE",
    "call_attributes",
    "server_address",
    "span_name",
]
