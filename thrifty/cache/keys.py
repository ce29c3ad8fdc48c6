"""Cache keys: what makes two requests the same request.

The exact key is a hash of the normalized request: the namespace, provider,
endpoint and model, the messages, tools and every parameter that can change
the output. Parameters that only change delivery, billing or attribution
(``stream``, ``service_tier``, ``user``, ``metadata``, ``prompt_cache_key``,
``cache_control`` markers...) are left out, so a streamed and a buffered
request share an entry.

The semantic cache compares the meaning of the last user message only, and
only among requests whose everything-else is equal: the partition key hashes
the same fields as the exact key except that message, so it covers the
system prompt, tools, parameters and every earlier turn of the conversation.
A follow-up such as "What are its types?" therefore never matches an entry
from another conversation.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.tokens import message_text

# Endpoints whose answers are cached; embeddings are cheap and never sampled,
# so caching them saves little.
CACHEABLE_ENDPOINTS = frozenset({"chat.completions", "responses", "messages"})

# Body fields that change how or to whom an answer is delivered or billed,
# never the answer itself.
_DELIVERY_FIELDS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "service_tier",
        "store",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
    }
)

# Fields whose answer depends on state the provider keeps, which the gateway
# cannot see; requests with them are never cached.
_PROVIDER_STATE_FIELDS = ("previous_response_id", "conversation")

# Both OpenAI and Anthropic sample at temperature 1 when a request sets none.
DEFAULT_TEMPERATURE = 1.0

KEY_VERSION = 1


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The keys of one cacheable request.

    ``entry_id`` is the exact key. ``partition`` groups requests that differ
    at most in their last user message, and ``query_text`` is that message's
    normalized text, or None when the request does not end with a user text
    message (the semantic cache then skips it).
    """

    namespace: str
    entry_id: str
    partition: str
    query_text: str | None
    sampled: bool


@dataclass(frozen=True, slots=True)
class Uncacheable:
    """Why a request is never cached."""

    reason: str


def request_key(
    *, namespace: str, provider: str, endpoint: str, model: str, body: Mapping[str, Any]
) -> RequestKey | Uncacheable:
    """Build the keys of a request, or say why it cannot be cached."""
    if endpoint not in CACHEABLE_ENDPOINTS:
        return Uncacheable(f"the {endpoint} endpoint is not cached")
    for name in _PROVIDER_STATE_FIELDS:
        if body.get(name):
            return Uncacheable(f"'{name}' refers to state kept by the provider")
    if body.get("background") is True:
        return Uncacheable("background responses are fetched later, not answered")

    params = _without_cache_control(
        {
            name: value
            for name, value in body.items()
            if name not in _DELIVERY_FIELDS and name not in ("model", "messages", "input")
        }
    )
    turns = _conversation(endpoint, body)
    query, context = _split_query(endpoint, turns)
    scope = {
        "v": KEY_VERSION,
        "namespace": namespace,
        "provider": provider,
        "endpoint": endpoint,
        "model": model,
        "params": params,
    }
    return RequestKey(
        namespace=namespace,
        entry_id=_digest({**scope, "turns": turns}),
        partition=_digest({**scope, "context": context}),
        query_text=None if query is None else normalize_text(query),
        sampled=_is_sampled(body),
    )


def normalize_text(text: str) -> str:
    """Return text in NFKC form with runs of whitespace collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _conversation(endpoint: str, body: Mapping[str, Any]) -> list[Any]:
    """Return the request's turns in order, without ``cache_control`` markers."""
    if endpoint == "responses":
        prompt = body.get("input")
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    else:
        turns = body.get("messages")
    if not isinstance(turns, list):
        return []
    stripped = _without_cache_control(turns)
    assert isinstance(stripped, list)
    return stripped


def _split_query(endpoint: str, turns: list[Any]) -> tuple[str | None, list[Any]]:
    """Split off the final user text message: the query the semantic cache embeds."""
    if not turns:
        return None, turns
    last = turns[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return None, turns
    if endpoint == "responses" and last.get("type", "message") != "message":
        return None, turns
    text = _text_only(last.get("content"))
    if not text or not text.strip():
        return None, turns
    return text, turns[:-1]


def _text_only(content: Any) -> str | None:
    """Return a message's text when all its parts are text, else None."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") not in ("text", "input_text"):
            return None
    return message_text(content)


def _is_sampled(body: Mapping[str, Any]) -> bool:
    temperature = body.get("temperature", DEFAULT_TEMPERATURE)
    if temperature is None:
        temperature = DEFAULT_TEMPERATURE
    return not isinstance(temperature, int | float) or temperature > 0


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: _without_cache_control(item)
            for key, item in value.items()
            if key != "cache_control"
        }
    if isinstance(value, list):
        return [_without_cache_control(item) for item in value]
    return value


def _digest(value: Any) -> str:
    canonical = orjson.dumps(_canonical(value), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _canonical(value: Any) -> Any:
    """Make equal JSON values serialize equally: 0.0 and 0 become the same number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value
