"""The sandbox's Anthropic Messages API, driven by the official anthropic SDK over loopback."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import anthropic
import httpx
import pytest

# The sandbox estimates Claude counts with o200k_base, and the test counts
# with an independent implementation of that encoding. bpe-openai warns about
# its own use of importlib.resources when imported.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    O200K = bpe_openai.get_encoding("o200k_base")
MESSAGE_OVERHEAD = 3


def tokens(text: str) -> int:
    return len(O200K.encode(text))


@pytest.fixture
def claude(sandbox_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def async_claude(sandbox_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)


def test_message_usage_and_text(claude: anthropic.Anthropic) -> None:
    question = f"Hello there, {uuid.uuid4().hex[:6]}"
    reply = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": question}]
    )
    assert reply.type == "message"
    assert reply.role == "assistant"
    assert reply.model == "claude-sonnet-4-5"
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.input_tokens == MESSAGE_OVERHEAD + tokens(question)
    assert reply.usage.output_tokens == 10
    assert reply.usage.cache_read_input_tokens == 0
    assert reply.usage.cache_creation_input_tokens == 0
    assert reply.usage.service_tier == "standard"
    block = reply.content[0]
    assert block.type == "text"
    assert block.text.startswith("This is sandbox filler")
    assert tokens(block.text) == 10


def test_system_as_string_or_blocks_counts_the_same(claude: anthropic.Anthropic) -> None:
    messages: Any = [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": [{"type": "text", "text": "An answer"}]},
        {"role": "user", "content": "Second question"},
    ]
    as_string = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=1, system="Be brief.", messages=messages
    )
    as_blocks = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        messages=messages,
    )
    expected_messages = 3 * MESSAGE_OVERHEAD + tokens("First question") + tokens("An answer")
    expected_messages += tokens("Second question")
    assert as_string.usage.input_tokens == tokens("Be brief.") + expected_messages
    assert as_blocks.usage.input_tokens == tokens("Be ") + tokens("brief.") + expected_messages


def test_tools_count_as_their_json(claude: anthropic.Anthropic) -> None:
    tool: Any = {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    reply = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        tools=[tool],
        messages=[{"role": "user", "content": "Weather?"}],
    )
    definition = (
        '{"description":"Get the weather for a city.",'
        '"input_schema":{"properties":{"city":{"type":"string"}},"type":"object"},'
        '"name":"get_weather"}'
    )
    assert reply.usage.input_tokens == tokens(definition) + MESSAGE_OVERHEAD + tokens("Weather?")


async def test_stream_events_and_final_usage(async_claude: anthropic.AsyncAnthropic) -> None:
    question = f"Stream please {uuid.uuid4().hex[:6]}"
    async with async_claude.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=10,
        messages=[{"role": "user", "content": question}],
    ) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert "content_block_delta" in types
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.usage.output_tokens == 10
    assert final.usage.input_tokens == MESSAGE_OVERHEAD + tokens(question)
    assert final.stop_reason == "max_tokens"
    assert tokens(final.content[0].text) == 10  # type: ignore[union-attr]


def test_raw_stream_has_ping_and_event_lines(sandbox_url: str) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 9,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = httpx.post(f"{sandbox_url}/v1/messages", json=body, headers={"x-api-key": "k"})
    names = [
        line.removeprefix("event: ")
        for line in response.text.splitlines()
        if line.startswith("event: ")
    ]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert '"output_tokens":9' in response.text


def test_count_tokens_matches_message_usage(claude: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "Count me"}]
    counted = claude.messages.count_tokens(
        model="claude-sonnet-4-5", system="Sys", messages=messages
    )
    reply = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=1, system="Sys", messages=messages
    )
    assert counted.input_tokens == tokens("Sys") + MESSAGE_OVERHEAD + tokens("Count me")
    assert counted.input_tokens == reply.usage.input_tokens


def test_models_list_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    ids = [model.id for model in claude.models.list()]
    assert "claude-sonnet-4-5" in ids
    assert "gpt-4o" not in ids


def test_missing_max_tokens_is_a_400(sandbox_url: str) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{sandbox_url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_missing_model_is_a_400(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "model: Field required"},
        "request_id": caught.value.response.headers["request-id"],
    }


def test_invalid_role_is_a_400(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=5,
            messages=[{"role": "system", "content": "hi"}],  # type: ignore[misc, list-item]
        )
    assert "messages.0.role" in caught.value.message


def test_missing_key_is_a_401(sandbox_url: str) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = httpx.post(f"{sandbox_url}/v1/messages", json=body)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }


def test_bearer_token_is_accepted(sandbox_url: str) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = httpx.post(
        f"{sandbox_url}/v1/messages", json=body, headers={"authorization": "Bearer token"}
    )
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
