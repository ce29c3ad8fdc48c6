"""Stream translators fed realistic event sequences, checked event by event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.translation import ChatToMessagesStream, MessagesToChatStream, StreamTranslator

# An Anthropic stream with text, then a tool call, as the Messages API sends it.
ANTHROPIC_TOOL_STREAM: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 30,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 2000,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 25},
    },
    {"type": "message_stop"},
]

# An OpenAI stream with a tool call and the final usage chunk.
OPENAI_TOOL_STREAM: list[dict[str, Any]] = [
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [{"index": 0, "delta": {"content": "On it."}, "finish_reason": None}],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
                "finish_reason": None,
            }
        ],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
                "finish_reason": None,
            }
        ],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "usage": None,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
    },
    {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [],
        "usage": {
            "prompt_tokens": 1500,
            "completion_tokens": 18,
            "total_tokens": 1518,
            "prompt_tokens_details": {"cached_tokens": 1280},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    },
]


def run(translator: StreamTranslator, events: list[dict[str, Any]]) -> list[bytes]:
    out: list[bytes] = []
    for event in events:
        out += translator.feed(event)
    return out + translator.finish()


def openai_payloads(raw: list[bytes]) -> list[Any]:
    payloads: list[Any] = []
    for event in raw:
        assert event.startswith(b"data: ")
        assert event.endswith(b"\n\n")
        data = event[len(b"data: ") : -2]
        payloads.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return payloads


def anthropic_payloads(raw: list[bytes]) -> list[Mapping[str, Any]]:
    payloads: list[Mapping[str, Any]] = []
    for event in raw:
        name_line, data_line, *_ = event.split(b"\n")
        payload = orjson.loads(data_line[len(b"data: ") :])
        assert name_line == b"event: " + payload["type"].encode()
        payloads.append(payload)
    return payloads


def deltas(payloads: list[Any]) -> list[Any]:
    return [(p["choices"][0]["delta"], p["choices"][0]["finish_reason"]) for p in payloads]


def test_anthropic_stream_to_openai_chunks() -> None:
    payloads = openai_payloads(run(MessagesToChatStream(include_usage=True), ANTHROPIC_TOOL_STREAM))
    assert payloads[-1] == "[DONE]"
    usage_chunk = payloads[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 2030,
        "completion_tokens": 25,
        "total_tokens": 2055,
        "prompt_tokens_details": {"cached_tokens": 2000},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    chunks = payloads[:-2]
    assert all(chunk["id"] == "msg_01" for chunk in chunks)
    assert all(chunk["model"] == "claude-haiku-4-5" for chunk in chunks)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["usage"] is None for chunk in chunks)
    assert deltas(chunks) == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": "Let me "}, None),
        ({"content": "check."}, None),
        (
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
            None,
        ),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}, None),
        ({}, "tool_calls"),
    ]


def test_anthropic_stream_without_usage_option() -> None:
    payloads = openai_payloads(
        run(MessagesToChatStream(include_usage=False), ANTHROPIC_TOOL_STREAM)
    )
    assert payloads[-1] == "[DONE]"
    assert all(p == "[DONE]" or p["choices"] for p in payloads)
    assert all("usage" not in p for p in payloads[:-1])


def test_anthropic_json_tool_streams_as_content() -> None:
    events = [
        ANTHROPIC_TOOL_STREAM[0],
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    payloads = openai_payloads(
        run(MessagesToChatStream(include_usage=False, json_tool="weather"), events)
    )
    assert deltas(payloads[:-1]) == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": '{"city": "Oslo"}'}, None),
        ({}, "stop"),
    ]


def test_anthropic_error_event_to_openai() -> None:
    translator = MessagesToChatStream(include_usage=False)
    out = translator.feed(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert openai_payloads(out) == [
        {
            "error": {
                "message": "Overloaded",
                "type": "overloaded_error",
                "param": None,
                "code": None,
            }
        }
    ]


def test_openai_stream_to_anthropic_events() -> None:
    payloads = anthropic_payloads(run(ChatToMessagesStream(), OPENAI_TOOL_STREAM))
    assert payloads == [
        {
            "type": "message_start",
            "message": {
                "id": "chatcmpl-1",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4.1-mini-2025-04-14",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "On it."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            # prompt_tokens 1500 include the 1280 cached ones, which Anthropic counts apart.
            "usage": {
                "input_tokens": 220,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1280,
                "output_tokens": 18,
            },
        },
        {"type": "message_stop"},
    ]


def test_openai_stream_text_only() -> None:
    events = [
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        {"id": "c2", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {
            "id": "c2",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        },
    ]
    payloads = anthropic_payloads(run(ChatToMessagesStream(), events))
    types = [p["type"] for p in payloads]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[4]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    # No usage chunk arrived, so only the output count (0) is reported.
    assert payloads[4]["usage"] == {"output_tokens": 0}


def test_openai_error_chunk_to_anthropic() -> None:
    translator = ChatToMessagesStream()
    out = translator.feed({"error": {"message": "server overloaded", "type": "server_error"}})
    assert anthropic_payloads(out) == [
        {"type": "error", "error": {"type": "api_error", "message": "server overloaded"}}
    ]
