"""Gemini as an upstream: chat requests translated to generateContent, and back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.config import ProviderConfig
from thrifty.errors import RequestError
from thrifty.translation import GeminiToChatStream, chat_to_gemini, gemini_to_chat_completion
from thrifty.translation.chat_to_gemini import gemini_path

MILLION = Decimal(1_000_000)
# gemini-2.5-flash list prices per million tokens (genai-prices data); thinking
# is billed at the output rate.
FLASH_INPUT = Decimal("0.3")
FLASH_OUTPUT = Decimal("2.5")

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
QUESTION: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]
GEMINI_USAGE = {
    "promptTokenCount": 40,
    "candidatesTokenCount": 12,
    "thoughtsTokenCount": 30,
    "totalTokenCount": 82,
}


def test_chat_to_gemini_request() -> None:
    body = chat_to_gemini(
        {
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_7",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_7", "content": '{"degrees": 4}'},
                {"role": "tool", "tool_call_id": "call_7", "content": "rain"},
            ],
            "max_completion_tokens": 100,
            "temperature": 0.2,
            "stop": ["END"],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": {"type": "json_object"},
            "user": "u1",
        }
    )
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather here?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                ],
            },
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"degrees": 4}}},
                    {"functionResponse": {"name": "get_weather", "response": {"result": "rain"}}},
                ],
            },
        ],
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather in a city.",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
    ],
)
def test_chat_to_gemini_rejects(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        chat_to_gemini({"model": "m", "messages": QUESTION, **extra})
    assert caught.value.param == param


def test_chat_to_gemini_rejects_image_address() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with pytest.raises(RequestError) as caught:
        chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert caught.value.param == "messages[0].content[0].image_url.url"


@pytest.mark.parametrize("model", ["../files/x", "gemini-2.5-flash?key=k", "a/b", ""])
def test_gemini_path_rejects_unsafe_model(model: str) -> None:
    with pytest.raises(RequestError) as caught:
        gemini_path(model, stream=False)
    assert caught.value.param == "model"


def test_gemini_paths() -> None:
    assert gemini_path("gemini-2.5-flash", stream=False) == (
        "/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert gemini_path("gemini-2.5-flash", stream=True) == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )


def test_gemini_response_to_completion() -> None:
    completion = gemini_to_chat_completion(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {"text": "Sunny."},
                            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": GEMINI_USAGE,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-1",
        }
    )
    assert isinstance(completion.pop("created"), int)
    assert completion == {
        "id": "resp-1",
        "object": "chat.completion",
        "model": "gemini-2.5-flash",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sunny.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_0",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        # Thoughts are outside candidatesTokenCount; OpenAI counts them in completion_tokens.
        "usage": {
            "prompt_tokens": 40,
            "completion_tokens": 42,
            "total_tokens": 82,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 30},
        },
    }


def test_gemini_stream_to_chunks() -> None:
    chunks: list[dict[str, Any]] = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r2",
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "lo"}]},
                    "finishReason": "MAX_TOKENS",
                    "index": 0,
                }
            ],
            "usageMetadata": GEMINI_USAGE,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r2",
        },
    ]
    translator = GeminiToChatStream(include_usage=True)
    out = translator.feed(chunks[0])
    assert translator.finished is False
    out += translator.feed(chunks[1])
    assert translator.finished is True
    out += translator.finish()

    assert out[-1] == b"data: [DONE]\n\n"
    payloads = [orjson.loads(event[len(b"data: ") : -2]) for event in out[:-1]]
    deltas = [(p["choices"][0]["delta"], p["choices"][0]["finish_reason"]) for p in payloads[:-1]]
    assert deltas == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({}, "length"),
    ]
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["completion_tokens"] == 42
    assert payloads[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 30}
    assert all(p["id"] == "r2" for p in payloads)


def test_sandbox_gemini_usage_rules(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": "test"},
        json={
            "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
            "generationConfig": {"maxOutputTokens": 20},
        },
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    usage = body["usageMetadata"]
    # reasoning_share 0.5 of the 20-token limit is thinking, outside the candidates.
    assert usage["thoughtsTokenCount"] == 10
    assert usage["candidatesTokenCount"] == 10
    assert usage["promptTokenCount"] == 2
    assert usage["totalTokenCount"] == 22
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert body["modelVersion"] == "gemini-2.5-flash"


def test_sandbox_gemini_requires_key(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sandbox_url: str) -> Iterator[RunningGateway]:
    gemini = ProviderConfig("gemini", "gemini", sandbox_url)
    with running_gateway(
        tmp_path_factory.mktemp("gemini"), extra_providers={"gemini": gemini}
    ) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)


def flash_cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * FLASH_INPUT + output_tokens * FLASH_OUTPUT) / MILLION


def test_openai_sdk_to_gemini(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemini/gemini-2.5-flash", messages=QUESTION, max_tokens=16
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    assert reply.model == "gemini-2.5-flash"
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 16
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 8
    assert record.provider == "gemini"
    assert record.model_served == "gemini-2.5-flash"
    assert record.input_tokens == reply.usage.prompt_tokens
    assert record.output_tokens == 16
    assert record.reasoning_tokens == 8
    assert record.details["translation"] == {"from": "openai.chat", "to": "gemini.generate"}
    assert record.cost_usd == flash_cost(record.input_tokens, 16)
    assert raw.headers["x-thrifty-model"] == "gemini-2.5-flash"


def test_openai_sdk_streams_from_gemini(gateway: RunningGateway, client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gemini/gemini-2.5-flash",
        messages=QUESTION,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        chunks = list(response.parse())
    record = gateway.record(request_id)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == record.input_tokens
    assert record.streamed is True
    assert record.usage_estimated is False
    assert record.error_type is None
    assert record.output_tokens == 12
    assert record.reasoning_tokens == 6
    assert record.cost_usd == flash_cost(record.input_tokens, 12)


def test_openai_sdk_tool_call_from_gemini(gateway: RunningGateway, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "sandbox"}  # type: ignore[union-attr]
