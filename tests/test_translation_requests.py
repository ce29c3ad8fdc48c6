"""Request translation between OpenAI chat completions and Anthropic messages, exact dicts."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.errors import RequestError
from thrifty.translation import (
    DEFAULT_MAX_TOKENS,
    chat_to_messages,
    messages_to_chat,
    translation_between,
)

PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mN"
    "k+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": WEATHER_SCHEMA,
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": WEATHER_SCHEMA,
}

# One conversation with a system prompt, an image, a tool call and its result,
# written in each format.
OPENAI_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather in Oslo?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ],
    },
    {
        "role": "assistant",
        "content": "A cat. Checking the weather.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees, rain"},
    {"role": "user", "content": "Thanks."},
]
ANTHROPIC_CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather in Oslo?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA},
            },
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "A cat. Checking the weather."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "4 degrees, rain"},
            {"type": "text", "text": "Thanks."},
        ],
    },
]


def test_chat_to_messages_conversation() -> None:
    translated = chat_to_messages(
        {
            "model": "claude-haiku-4-5",
            "messages": OPENAI_CONVERSATION,
            "max_completion_tokens": 300,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "tools": [OPENAI_TOOL],
            "tool_choice": "auto",
            "user": "user-42",
            "metadata": {"feature": "support"},
        }
    )
    assert translated.body == {
        "model": "claude-haiku-4-5",
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": ANTHROPIC_CONVERSATION,
        "max_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [ANTHROPIC_TOOL],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "user-42"},
    }
    assert translated.json_tool is None
    assert translated.include_usage is False


def test_messages_to_chat_conversation() -> None:
    chat = messages_to_chat(
        {
            "model": "gpt-4.1-mini",
            "system": "You are terse.",
            "messages": ANTHROPIC_CONVERSATION,
            "max_tokens": 300,
            "temperature": 0.5,
            "stop_sequences": ["END"],
            "tools": [ANTHROPIC_TOOL],
            "tool_choice": {"type": "auto"},
            "metadata": {"user_id": "user-42"},
        }
    )
    expected_messages = [
        *OPENAI_CONVERSATION[:2],
        {**OPENAI_CONVERSATION[2], "tool_calls": OPENAI_CONVERSATION[2]["tool_calls"]},
        *OPENAI_CONVERSATION[3:],
    ]
    assert chat == {
        "model": "gpt-4.1-mini",
        "messages": expected_messages,
        "max_completion_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "tools": [OPENAI_TOOL],
        "tool_choice": "auto",
        "user": "user-42",
    }


def test_tool_conversation_round_trip() -> None:
    request = {"model": "m", "messages": OPENAI_CONVERSATION[1:], "max_tokens": 64}
    there = chat_to_messages(request).body
    back = messages_to_chat(there)
    assert back["messages"] == OPENAI_CONVERSATION[1:]
    assert back["max_completion_tokens"] == 64


def test_chat_to_messages_default_max_tokens() -> None:
    body = chat_to_messages({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).body
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    assert DEFAULT_MAX_TOKENS == 4096


def test_chat_to_messages_developer_and_parallel() -> None:
    body = chat_to_messages(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Rule one."}]},
                {"role": "system", "content": "Rule two."},
                {"role": "user", "content": "hi"},
            ],
            "tools": [OPENAI_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "max_tokens": 10,
        }
    ).body
    assert body["system"] == [
        {"type": "text", "text": "Rule one."},
        {"type": "text", "text": "Rule two."},
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


def test_parallel_flag_without_tools_dropped() -> None:
    body = chat_to_messages(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "parallel_tool_calls": False,
        }
    ).body
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", {"type": "none"}),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
    ],
)
def test_chat_tool_choice_words(choice: str, expected: dict[str, Any]) -> None:
    body = chat_to_messages(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": choice}
    ).body
    assert body["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_messages_tool_choice_types(choice: dict[str, Any], expected: object) -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [ANTHROPIC_TOOL],
            "tool_choice": choice,
        }
    )
    assert chat["tool_choice"] == expected


def test_json_schema_becomes_forced_tool() -> None:
    translated = chat_to_messages(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "weather?"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
            },
        }
    )
    assert translated.json_tool == "weather"
    assert translated.body["tools"] == [
        {
            "name": "weather",
            "input_schema": WEATHER_SCHEMA,
            "description": "Return the answer in this schema.",
        }
    ]
    assert translated.body["tool_choice"] == {"type": "tool", "name": "weather"}


def test_json_object_becomes_forced_tool() -> None:
    translated = chat_to_messages(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "weather?"}],
            "response_format": {"type": "json_object"},
        }
    )
    assert translated.json_tool == "json_object"
    assert translated.body["tools"][0]["input_schema"] == {"type": "object"}


def test_stream_options_kept_for_translator() -> None:
    translated = chat_to_messages(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert translated.body["stream"] is True
    assert "stream_options" not in translated.body
    assert translated.include_usage is True


def test_messages_stream_asks_for_usage() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_messages_to_chat_pdf_and_text_system_blocks() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "system": [
                {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Two."},
            ],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "title": "report.pdf",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0=",
                            },
                        },
                        {"type": "text", "text": "Summarize."},
                    ],
                }
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "One.\n\nTwo."},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "filename": "report.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                    },
                },
                {"type": "text", "text": "Summarize."},
            ],
        },
    ]


def test_chat_to_messages_pdf_file_part() -> None:
    body = chat_to_messages(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "filename": "report.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0=",
                            },
                        }
                    ],
                }
            ],
        }
    ).body
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "report.pdf",
        }
    ]


def test_tool_error_result_is_marked() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": True,
                            "content": [{"type": "text", "text": "city unknown"}],
                        }
                    ],
                }
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: city unknown"}
    ]


def test_thinking_blocks_dropped_for_openai() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "hello"},
                    ],
                },
            ],
        }
    )
    assert chat["messages"][1] == {"role": "assistant", "content": "hello"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"temperature": 1.5}, "temperature"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"response_format": {"type": "json_object"}, "tools": [OPENAI_TOOL]}, "response_format"),
    ],
)
def test_chat_to_messages_rejects(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        chat_to_messages({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert caught.value.status == 400
    assert caught.value.param == param
    assert f"'{param}'" in caught.value.message


def test_chat_to_messages_allows_neutral_values() -> None:
    body = chat_to_messages(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "n": 1,
            "presence_penalty": 0,
            "seed": 7,
            "store": False,
            "service_tier": "auto",
            "prompt_cache_key": "k",
        }
    ).body
    assert set(body) == {"model", "messages", "max_tokens"}


def test_chat_to_messages_rejects_late_system() -> None:
    with pytest.raises(RequestError) as caught:
        chat_to_messages(
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "system", "content": "late"},
                ],
            }
        )
    assert caught.value.param == "messages[1].role"


def test_chat_to_messages_rejects_bad_arguments() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ],
        },
    ]
    with pytest.raises(RequestError) as caught:
        chat_to_messages({"model": "m", "messages": messages})
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"container": "c"}, "container"),
    ],
)
def test_messages_to_chat_rejects(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        messages_to_chat(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                **extra,
            }
        )
    assert caught.value.status == 400
    assert caught.value.param == param


def test_translation_between_unknown_pair() -> None:
    with pytest.raises(RequestError) as caught:
        translation_between(
            "anthropic.messages", "gemini.generate", model="gemini/gemini-2.5-flash"
        )
    assert caught.value.status == 400
    assert caught.value.param == "model"
    assert "call /v1/chat/completions instead" in caught.value.message
