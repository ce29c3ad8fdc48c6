"""usage_from_response and served_from_response, chosen by endpoint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.provider_responses import (
    ANTHROPIC_MESSAGE,
    ANTHROPIC_THINKING_SEARCH,
    GEMINI_THINKING,
    OPENAI_CHAT_CACHED,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSE,
)
from thrifty.errors import ThriftyError
from thrifty.usage import (
    ENDPOINTS,
    ServedInfo,
    Usage,
    served_from_response,
    usage_from_anthropic,
    usage_from_gemini,
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
    usage_from_response,
)


def test_endpoint_names() -> None:
    assert ENDPOINTS == (
        "chat.completions",
        "responses",
        "embeddings",
        "messages",
        "gemini",
        "converse",
        "images",
    )


@pytest.mark.parametrize(
    ("endpoint", "body", "parser"),
    [
        ("chat.completions", OPENAI_CHAT_CACHED, usage_from_openai_chat),
        ("responses", OPENAI_RESPONSE, usage_from_openai_responses),
        ("embeddings", OPENAI_EMBEDDINGS, usage_from_openai_embeddings),
        ("messages", ANTHROPIC_MESSAGE, usage_from_anthropic),
        ("gemini", GEMINI_THINKING, usage_from_gemini),
    ],
)
def test_dispatch_matches_parser(
    endpoint: str, body: Mapping[str, Any], parser: Callable[[Mapping[str, Any]], Usage]
) -> None:
    assert usage_from_response(endpoint, body) == parser(body)


def test_unknown_endpoint_raises() -> None:
    with pytest.raises(ThriftyError, match="unknown endpoint 'completions'"):
        usage_from_response("completions", OPENAI_CHAT_CACHED)


def test_served_openai_chat() -> None:
    served = served_from_response("chat.completions", OPENAI_CHAT_CACHED)

    assert served == ServedInfo(model="gpt-4o-2024-08-06", service_tier="default")


def test_served_responses_event() -> None:
    event = {"type": "response.completed", "response": OPENAI_RESPONSE}

    served = served_from_response("responses", event)

    assert served == ServedInfo(model="o4-mini-2025-04-16", service_tier="default")


def test_served_anthropic_tier_and_speed() -> None:
    body = {**ANTHROPIC_MESSAGE, "usage": {**ANTHROPIC_MESSAGE["usage"], "speed": "fast"}}

    served = served_from_response("messages", body)

    assert served == ServedInfo(
        model="claude-3-5-sonnet-20241022", service_tier="standard", speed="fast"
    )
    assert served_from_response("messages", ANTHROPIC_THINKING_SEARCH).service_tier == "batch"


def test_served_gemini_model_version() -> None:
    served = served_from_response("gemini", GEMINI_THINKING)

    assert served == ServedInfo(model="gemini-2.5-flash")


def test_served_ignores_non_string_fields() -> None:
    served = served_from_response("chat.completions", {"model": 4, "service_tier": None})

    assert served == ServedInfo()
