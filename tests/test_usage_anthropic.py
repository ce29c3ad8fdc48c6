"""Anthropic Messages usage mapped into Usage."""

from __future__ import annotations

import copy
import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Usage as AnthropicUsage

from tests.provider_responses import (
    ANTHROPIC_MESSAGE,
    ANTHROPIC_THINKING_SEARCH,
    assert_sdk_fields,
)
from thrifty.errors import UsageError
from thrifty.usage import Usage, usage_from_anthropic


def test_fixtures_use_sdk_field_names() -> None:
    assert_sdk_fields(ANTHROPIC_MESSAGE["usage"], AnthropicUsage)
    assert_sdk_fields(ANTHROPIC_THINKING_SEARCH["usage"], AnthropicUsage)


def test_input_adds_cache_reads_and_writes() -> None:
    usage = usage_from_anthropic(ANTHROPIC_MESSAGE)

    assert usage.input_tokens == 50 + 8000 + 1500
    assert usage.cache_read_tokens == 8000
    assert usage.cache_write_tokens == 1500
    assert usage.cache_write_1h_tokens == 500
    assert usage.cache_write_5m_tokens == 1000
    assert usage.uncached_input_tokens == 50
    assert usage.output_tokens == 400


def test_writes_without_split_are_5_minute() -> None:
    body = copy.deepcopy(ANTHROPIC_MESSAGE)
    del body["usage"]["cache_creation"]

    usage = usage_from_anthropic(body)

    assert usage.cache_write_tokens == 1500
    assert usage.cache_write_1h_tokens == 0
    assert usage.cache_write_5m_tokens == 1500


def test_split_without_total_sums_lifetimes() -> None:
    body = copy.deepcopy(ANTHROPIC_MESSAGE)
    del body["usage"]["cache_creation_input_tokens"]

    usage = usage_from_anthropic(body)

    assert usage.cache_write_tokens == 1500
    assert usage.cache_write_1h_tokens == 500


def test_thinking_tokens_and_web_searches() -> None:
    usage = usage_from_anthropic(ANTHROPIC_THINKING_SEARCH)

    assert usage == Usage(
        input_tokens=12000, output_tokens=2000, reasoning_tokens=1500, web_search_requests=3
    )


def test_without_output_details_reasoning_is_zero() -> None:
    usage = usage_from_anthropic(ANTHROPIC_MESSAGE)

    assert usage.reasoning_tokens == 0


def test_minimal_usage_has_no_cache() -> None:
    body = {"usage": {"input_tokens": 25, "output_tokens": 7}}

    assert usage_from_anthropic(body) == Usage(input_tokens=25, output_tokens=7)


def test_split_disagreeing_with_total_raises() -> None:
    body = copy.deepcopy(ANTHROPIC_MESSAGE)
    body["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] = 600

    with pytest.raises(UsageError) as raised:
        usage_from_anthropic(body)

    assert raised.value.field == "usage.cache_creation"
    assert "1500" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("input_tokens", 50.0),
        ("output_tokens", "400"),
        ("cache_read_input_tokens", -1),
        ("cache_creation_input_tokens", True),
    ],
)
def test_invalid_count_names_field(key: str, value: object) -> None:
    body = copy.deepcopy(ANTHROPIC_MESSAGE)
    body["usage"][key] = value

    with pytest.raises(UsageError) as raised:
        usage_from_anthropic(body)

    assert raised.value.field == f"usage.{key}"


def test_thinking_above_output_raises() -> None:
    body = copy.deepcopy(ANTHROPIC_THINKING_SEARCH)
    body["usage"]["output_tokens_details"]["thinking_tokens"] = 2001

    with pytest.raises(UsageError) as raised:
        usage_from_anthropic(body)

    assert raised.value.field == "usage.output_tokens_details.thinking_tokens"


def test_missing_usage_names_usage() -> None:
    body = {key: value for key, value in ANTHROPIC_MESSAGE.items() if key != "usage"}

    with pytest.raises(UsageError) as raised:
        usage_from_anthropic(body)

    assert raised.value.field == "usage"


def test_missing_output_tokens_names_field() -> None:
    body = {"usage": {"input_tokens": 25}}

    with pytest.raises(UsageError) as raised:
        usage_from_anthropic(body)

    assert raised.value.field == "usage.output_tokens"


def test_usage_of_sdk_message() -> None:
    """The official client parses the body; its serialized message maps the same way."""
    requests: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(json.loads(request.content))
        return httpx2.Response(200, json=ANTHROPIC_MESSAGE)

    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://127.0.0.1:9",
        # anthropic 2.x is built on httpx2, so its client takes httpx2's transport.
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    message = client.messages.create(
        model="claude-3-5-sonnet-20241022",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Summarize the contract."}],
    )

    usage = usage_from_anthropic(message.model_dump(mode="json"))

    assert requests[0]["max_tokens"] == 1024
    assert usage == usage_from_anthropic(ANTHROPIC_MESSAGE)
    assert usage.input_tokens == 9550
