"""Cross-provider calls through the gateway: each official SDK served by the other provider.

The sandbox is the upstream for both providers. It replies to a forced tool
choice with a tool call, so tool calls are translated end to end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.ledger.record import RequestRecord
from thrifty.routing import parse_routing_config

MILLION = Decimal(1_000_000)
# List prices per million tokens (genai-prices data).
HAIKU_INPUT = Decimal(1)
HAIKU_CACHE_READ = Decimal("0.1")
HAIKU_CACHE_WRITE = Decimal("1.25")
HAIKU_OUTPUT = Decimal(5)
MINI_INPUT = Decimal("0.4")
MINI_CACHED = Decimal("0.1")
MINI_OUTPUT = Decimal("1.6")

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER: Any = {"type": "function", "function": {"name": "get_weather"}}
QUESTION: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    routing = parse_routing_config(
        {
            "routes": {
                "support-bot": {
                    "models": ["gpt-4.1-mini", "anthropic/claude-haiku-4-5"],
                    "policy": "rules",
                    "rules": [
                        {"when": {"feature": ["hard"]}, "model": "anthropic/claude-haiku-4-5"}
                    ],
                    "otherwise": "gpt-4.1-mini",
                }
            }
        }
    )
    with running_gateway(
        tmp_path_factory.mktemp("translation"), sections={"routing": routing}
    ) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test", max_retries=0)


def haiku_cost(record: RequestRecord) -> Decimal:
    uncached = record.input_tokens - record.cache_read_tokens - record.cache_write_tokens
    return (
        uncached * HAIKU_INPUT
        + record.cache_read_tokens * HAIKU_CACHE_READ
        + record.cache_write_tokens * HAIKU_CACHE_WRITE
        + record.output_tokens * HAIKU_OUTPUT
    ) / MILLION


def mini_cost(record: RequestRecord) -> Decimal:
    uncached = record.input_tokens - record.cache_read_tokens
    return (
        uncached * MINI_INPUT
        + record.cache_read_tokens * MINI_CACHED
        + record.output_tokens * MINI_OUTPUT
    ) / MILLION


def assert_served_by_anthropic(record: RequestRecord) -> None:
    assert record.provider == "anthropic"
    assert record.endpoint == "chat.completions"
    assert record.model_served == "claude-haiku-4-5"
    assert record.details["translation"] == {"from": "openai.chat", "to": "anthropic.messages"}
    assert record.unpriced is False
    assert record.usage_estimated is False
    assert record.cost_usd == haiku_cost(record)


def test_openai_sdk_to_anthropic(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-haiku-4-5",
        messages=[{"role": "system", "content": "Be brief."}, *QUESTION],
        max_tokens=16,
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    assert reply.model == "claude-haiku-4-5"
    assert reply.id.startswith("msg_")
    assert reply.object == "chat.completion"
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 16
    assert reply.usage.prompt_tokens == record.input_tokens
    assert record.output_tokens == 16
    assert record.input_tokens > 0
    assert record.model_requested == "anthropic/claude-haiku-4-5"
    assert_served_by_anthropic(record)
    assert raw.headers["x-thrifty-model"] == "claude-haiku-4-5"
    assert Decimal(raw.headers["x-thrifty-cost-usd"]) == record.cost_usd


def test_openai_sdk_tool_call_via_anthropic(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-haiku-4-5",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("toolu_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sandbox", "days": 1}
    assert reply.usage is not None
    assert reply.usage.completion_tokens == record.output_tokens
    assert_served_by_anthropic(record)


def test_openai_sdk_streamed_tool_call_via_anthropic(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="anthropic/claude-haiku-4-5",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        chunks = list(response.parse())
    record = gateway.record(request_id)

    arguments = ""
    names = []
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "sandbox", "days": 1}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == record.input_tokens
    assert chunks[-1].usage.completion_tokens == record.output_tokens
    assert record.streamed is True
    assert_served_by_anthropic(record)


def test_openai_sdk_streamed_text_via_anthropic(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="anthropic/claude-haiku-4-5",
        messages=QUESTION,
        max_tokens=12,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_anthropic_sdk_to_openai(gateway: RunningGateway, claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(
        model="openai/gpt-4.1-mini",
        system="Be brief.",
        messages=QUESTION,
        max_tokens=14,
    )
    message = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    assert message.type == "message"
    assert message.model == "gpt-4.1-mini"
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.usage.output_tokens == 14
    assert message.usage.input_tokens == record.input_tokens - record.cache_read_tokens
    assert record.provider == "openai"
    assert record.endpoint == "messages"
    assert record.model_served == "gpt-4.1-mini"
    assert record.output_tokens == 14
    assert record.details["translation"] == {"from": "anthropic.messages", "to": "openai.chat"}
    assert record.cost_usd == mini_cost(record)
    assert raw.headers["x-thrifty-model"] == "gpt-4.1-mini"


def test_anthropic_sdk_streamed_via_openai(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model="openai/gpt-4.1-mini",
        messages=QUESTION,
        max_tokens=9,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)

    assert text
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 9
    assert final.usage.input_tokens == record.input_tokens - record.cache_read_tokens
    assert record.streamed is True
    assert record.usage_estimated is False
    assert record.output_tokens == 9
    assert record.provider == "openai"
    assert record.details["translation"] == {"from": "anthropic.messages", "to": "openai.chat"}
    assert record.cost_usd == mini_cost(record)


JSON_SCHEMA_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "weather", "schema": WEATHER_TOOL["function"]["parameters"]},
}


def test_json_mode_via_anthropic(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-haiku-4-5",
        messages=QUESTION,
        response_format=JSON_SCHEMA_FORMAT,
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert choice.message.content is not None
    assert json.loads(choice.message.content) == {"city": "sandbox", "days": 1}
    assert_served_by_anthropic(record)


def test_streamed_json_mode_via_anthropic(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="anthropic/claude-haiku-4-5",
        messages=QUESTION,
        response_format=JSON_SCHEMA_FORMAT,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "sandbox", "days": 1}
    assert all(not c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


CLAUDE_WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


def test_anthropic_sdk_tool_use_via_openai(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="openai/gpt-4.1-mini",
        messages=QUESTION,
        max_tokens=50,
        tools=[CLAUDE_WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    message = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "sandbox", "days": 1}
    assert block.id.startswith("call_")
    assert message.usage.output_tokens == record.output_tokens
    assert record.cost_usd == mini_cost(record)


def test_anthropic_sdk_streamed_tool_use_via_openai(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model="openai/gpt-4.1-mini",
        messages=QUESTION,
        max_tokens=50,
        tools=[CLAUDE_WEATHER_TOOL],
        tool_choice={"type": "any"},
    ) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)

    assert final.stop_reason == "tool_use"
    assert len(final.content) == 1
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "sandbox", "days": 1}
    assert final.usage.output_tokens == record.output_tokens
    assert final.usage.input_tokens == record.input_tokens - record.cache_read_tokens
    assert record.streamed is True
    assert record.usage_estimated is False
    assert record.cost_usd == mini_cost(record)


def test_route_candidate_of_other_provider(gateway: RunningGateway, client: openai.OpenAI) -> None:
    hard = client.chat.completions.with_raw_response.create(
        model="thrifty/support-bot",
        messages=QUESTION,
        max_tokens=5,
        extra_headers={"X-Thrifty-Feature": "hard"},
    )
    easy = client.chat.completions.with_raw_response.create(
        model="thrifty/support-bot",
        messages=QUESTION,
        max_tokens=5,
    )
    hard_record = gateway.record(hard.headers["x-thrifty-request-id"])
    easy_record = gateway.record(easy.headers["x-thrifty-request-id"])

    assert hard.parse().model == "claude-haiku-4-5"
    assert hard.headers["x-thrifty-model"] == "claude-haiku-4-5"
    assert_served_by_anthropic(hard_record)
    assert hard_record.model_requested == "thrifty/support-bot"
    assert easy.headers["x-thrifty-model"] == "gpt-4.1-mini"
    assert easy_record.provider == "openai"
    assert "translation" not in easy_record.details


def test_untranslatable_parameter_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="anthropic/claude-haiku-4-5",
            messages=QUESTION,
            n=3,
        )
    assert caught.value.status_code == 400
    assert "'n' cannot be translated to the Anthropic Messages API" in caught.value.message


def test_responses_endpoint_cannot_be_translated(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic/claude-haiku-4-5", input="hi")
    assert "cannot be translated" in caught.value.message


def test_upstream_error_in_client_format(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="openai/gpt-4.1-mini",
            messages=[],
            max_tokens=5,
        )
    assert caught.value.status_code == 400
    assert "messages" in caught.value.message
