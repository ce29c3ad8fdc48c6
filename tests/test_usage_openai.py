"""OpenAI chat, Responses and embeddings usage mapped into Usage."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types import CompletionUsage, CreateEmbeddingResponse
from openai.types.responses import ResponseUsage

from tests.provider_responses import (
    OPENAI_CHAT_CACHED,
    OPENAI_CHAT_REASONING,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSE,
    assert_sdk_fields,
)
from thrifty.errors import UsageError
from thrifty.usage import (
    Usage,
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
)


def test_fixtures_use_sdk_field_names() -> None:
    assert_sdk_fields(OPENAI_CHAT_CACHED["usage"], CompletionUsage)
    assert_sdk_fields(OPENAI_CHAT_REASONING["usage"], CompletionUsage)
    assert_sdk_fields(OPENAI_RESPONSE["usage"], ResponseUsage)
    assert_sdk_fields(OPENAI_EMBEDDINGS, CreateEmbeddingResponse)


def test_chat_cached_tokens_are_subset_of_prompt() -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    assert usage.input_tokens == 2006
    assert usage.cache_read_tokens == 1920
    assert usage.uncached_input_tokens == 86
    assert usage.output_tokens == 300
    assert usage.reasoning_tokens == 0


def test_chat_reasoning_tokens_are_subset_of_completion() -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_REASONING)

    assert usage.output_tokens == 1500
    assert usage.reasoning_tokens == 1280
    assert usage.input_tokens == 1200
    assert usage.cache_read_tokens == 1024


def test_chat_audio_and_cache_writes() -> None:
    body = {
        "usage": {
            "prompt_tokens": 5000,
            "completion_tokens": 700,
            "total_tokens": 5700,
            "prompt_tokens_details": {
                "cached_tokens": 1024,
                "cache_write_tokens": 2048,
                "audio_tokens": 600,
            },
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 500},
        }
    }
    assert_sdk_fields(body["usage"], CompletionUsage)

    usage = usage_from_openai_chat(body)

    assert usage == Usage(
        input_tokens=5000,
        output_tokens=700,
        cache_read_tokens=1024,
        cache_write_tokens=2048,
        input_audio_tokens=600,
        output_audio_tokens=500,
    )


def test_chat_missing_details_are_zero() -> None:
    body = {"usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}}
    null_details = {
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": None},
        }
    }

    assert usage_from_openai_chat(body) == Usage(input_tokens=19, output_tokens=10)
    assert usage_from_openai_chat(null_details) == Usage(input_tokens=19, output_tokens=10)


@pytest.mark.parametrize("usage_value", [None, "missing"])
def test_chat_without_usage_names_usage(usage_value: str | None) -> None:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    if usage_value is None:
        body["usage"] = None

    with pytest.raises(UsageError) as raised:
        usage_from_openai_chat(body)

    assert raised.value.field == "usage"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("prompt_tokens",), 3.0),
        (("prompt_tokens",), "2006"),
        (("prompt_tokens",), True),
        (("completion_tokens",), -1),
        (("prompt_tokens_details", "cached_tokens"), 1920.5),
        (("completion_tokens_details", "reasoning_tokens"), False),
        (("prompt_tokens_details", "audio_tokens"), -5),
    ],
)
def test_chat_invalid_count_names_field(path: tuple[str, ...], value: object) -> None:
    body = copy.deepcopy(OPENAI_CHAT_CACHED)
    target = body["usage"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    with pytest.raises(UsageError) as raised:
        usage_from_openai_chat(body)

    assert raised.value.field == "usage." + ".".join(path)


def test_chat_missing_prompt_tokens_names_field() -> None:
    body = {"usage": {"completion_tokens": 10}}

    with pytest.raises(UsageError) as raised:
        usage_from_openai_chat(body)

    assert raised.value.field == "usage.prompt_tokens"


def test_chat_cached_above_prompt_raises() -> None:
    body = copy.deepcopy(OPENAI_CHAT_CACHED)
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 2007

    with pytest.raises(UsageError) as raised:
        usage_from_openai_chat(body)

    assert raised.value.field == "usage.prompt_tokens_details.cached_tokens"
    assert "2007" in str(raised.value)
    assert "2006" in str(raised.value)


def test_chat_reasoning_above_completion_raises() -> None:
    body = copy.deepcopy(OPENAI_CHAT_REASONING)
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 1501

    with pytest.raises(UsageError) as raised:
        usage_from_openai_chat(body)

    assert raised.value.field == "usage.completion_tokens_details.reasoning_tokens"


def test_responses_maps_cached_and_reasoning() -> None:
    usage = usage_from_openai_responses(OPENAI_RESPONSE)

    assert usage == Usage(
        input_tokens=3000, output_tokens=900, cache_read_tokens=2048, reasoning_tokens=640
    )


def test_responses_accepts_completed_event() -> None:
    event = {"type": "response.completed", "sequence_number": 12, "response": OPENAI_RESPONSE}

    assert usage_from_openai_responses(event) == usage_from_openai_responses(OPENAI_RESPONSE)


def test_responses_cached_above_input_raises() -> None:
    body = copy.deepcopy(OPENAI_RESPONSE)
    body["usage"]["input_tokens_details"]["cached_tokens"] = 3001

    with pytest.raises(UsageError) as raised:
        usage_from_openai_responses(body)

    assert raised.value.field == "usage.input_tokens_details.cached_tokens"


def test_responses_in_progress_without_usage_raises() -> None:
    body = copy.deepcopy(OPENAI_RESPONSE)
    body["status"] = "in_progress"
    body["usage"] = None

    with pytest.raises(UsageError) as raised:
        usage_from_openai_responses(body)

    assert raised.value.field == "usage"


def test_embeddings_have_no_output() -> None:
    usage = usage_from_openai_embeddings(OPENAI_EMBEDDINGS)

    assert usage == Usage(input_tokens=8)


def test_chat_usage_of_sdk_completion() -> None:
    """The official client parses the body; its serialized object maps the same way."""
    requests: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        return httpx.Response(200, json=OPENAI_CHAT_CACHED)

    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://127.0.0.1:9/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        max_retries=0,
    )
    completion = client.chat.completions.create(
        model="gpt-4o-2024-08-06", messages=[{"role": "user", "content": "Total?"}]
    )

    usage = usage_from_openai_chat(completion.model_dump(mode="json"))

    assert requests[0]["model"] == "gpt-4o-2024-08-06"
    assert usage == usage_from_openai_chat(OPENAI_CHAT_CACHED)
    assert usage.cache_read_tokens == 1920
