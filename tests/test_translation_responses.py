"""Whole-response translation between Anthropic messages and OpenAI chat completions."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.errors import TranslationError
from thrifty.translation import chat_completion_to_message, message_to_chat_completion

ANTHROPIC_USAGE = {
    "input_tokens": 20,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 1000,
    "output_tokens": 40,
}
TOOL_MESSAGE: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}
TOOL_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4.1-mini-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "total_tokens": 1230,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def test_message_to_completion_with_tool_call() -> None:
    completion = message_to_chat_completion(TOOL_MESSAGE)
    assert isinstance(completion.pop("created"), int)
    assert completion == {
        "id": "msg_01",
        "object": "chat.completion",
        "model": "claude-haiku-4-5",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        # Anthropic input excludes cache reads and writes; OpenAI's prompt_tokens include them.
        "usage": {
            "prompt_tokens": 1120,
            "completion_tokens": 40,
            "total_tokens": 1160,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_completion_to_message_with_tool_call() -> None:
    assert chat_completion_to_message(TOOL_COMPLETION) == {
        "id": "chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4.1-mini-2025-04-14",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        # OpenAI prompt_tokens include the cached tokens; Anthropic input_tokens exclude them.
        "usage": {
            "input_tokens": 176,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 30,
        },
    }


def test_tool_call_round_trip() -> None:
    message = chat_completion_to_message(message_to_chat_completion(TOOL_MESSAGE))
    assert message["content"] == TOOL_MESSAGE["content"]
    assert message["stop_reason"] == "tool_use"
    # OpenAI chat usage has no cache-write count, so the 100 written tokens come back
    # as uncached input (20 + 100).
    assert message["usage"]["input_tokens"] == 120
    assert message["usage"]["cache_read_input_tokens"] == 1000
    assert message["usage"]["cache_creation_input_tokens"] == 0


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: str, finish_reason: str) -> None:
    message = {
        **TOOL_MESSAGE,
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
    }
    completion = message_to_chat_completion(message)
    assert completion["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reason_to_stop_reason(finish_reason: str, stop_reason: str) -> None:
    choice = {**TOOL_COMPLETION["choices"][0], "finish_reason": finish_reason}
    message = chat_completion_to_message({**TOOL_COMPLETION, "choices": [choice]})
    assert message["stop_reason"] == stop_reason


def test_json_tool_answer_becomes_text() -> None:
    message = {
        **TOOL_MESSAGE,
        "content": [
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Oslo"}}
        ],
    }
    completion = message_to_chat_completion(message, json_tool="weather")
    choice = completion["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": '{"city":"Oslo"}', "refusal": None}
    assert choice["finish_reason"] == "stop"


def test_text_completion_to_message() -> None:
    completion = {
        **TOOL_COMPLETION,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello.", "refusal": None},
                "finish_reason": "stop",
            }
        ],
    }
    message = chat_completion_to_message(completion)
    assert message["content"] == [{"type": "text", "text": "Hello."}]
    assert message["stop_reason"] == "end_turn"


def test_bad_tool_arguments_raise() -> None:
    choice = TOOL_COMPLETION["choices"][0]
    call = {**choice["message"]["tool_calls"][0], "function": {"name": "f", "arguments": "{oops"}}
    broken = {**choice, "message": {**choice["message"], "tool_calls": [call]}}
    with pytest.raises(TranslationError, match="not valid JSON"):
        chat_completion_to_message({**TOOL_COMPLETION, "choices": [broken]})


def test_completion_without_choices_raises() -> None:
    with pytest.raises(TranslationError, match="no choices"):
        chat_completion_to_message({**TOOL_COMPLETION, "choices": []})
