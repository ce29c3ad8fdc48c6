"""Microseconds per translation: request, whole response and stream, each direction.

Each case runs one translation of a fixed, realistic body (a five-message
conversation with a tool call and its result, two tools) in this process.
The figure is the fastest of several ``timeit`` rounds, because load from
other processes only ever slows a round down. The stream cases translate a
whole 40-delta text stream plus a tool call, and are reported per stream.

    .venv/bin/python bench/bench_translation.py --calls 5000 --rounds 7
"""

from __future__ import annotations

import argparse
import platform
import timeit
from collections.abc import Callable
from typing import Any

from thrifty.translation import (
    ChatToMessagesStream,
    MessagesToChatStream,
    chat_completion_to_message,
    chat_to_gemini,
    chat_to_messages,
    message_to_chat_completion,
    messages_to_chat,
)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CHAT_REQUEST: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "messages": [
        {"role": "system", "content": "You are a support agent. Be brief and exact."},
        {"role": "user", "content": "What is the weather in Oslo, and should I bring a coat?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees, rain"},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ],
    "max_tokens": 300,
    "temperature": 0.3,
    "tools": [TOOL, {**TOOL, "function": {**TOOL["function"], "name": "get_forecast"}}],
    "tool_choice": "auto",
    "user": "u-42",
}
MESSAGES_REQUEST = chat_to_messages(CHAT_REQUEST).body
USAGE = {
    "input_tokens": 320,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 1024,
    "output_tokens": 60,
}
MESSAGE: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "text", "text": "Tomorrow looks dry, 7 degrees. " * 4},
        {"type": "tool_use", "id": "toolu_1", "name": "get_forecast", "input": {"city": "Oslo"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": USAGE,
}
COMPLETION = message_to_chat_completion(MESSAGE)


def anthropic_stream() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    delta = {"type": "text_delta", "text": " word"}
    events += [{"type": "content_block_delta", "index": 0, "delta": delta}] * 40
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "get_forecast", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 60},
        },
        {"type": "message_stop"},
    ]
    return events


def openai_stream() -> list[dict[str, Any]]:
    envelope = {"id": "chatcmpl-1", "model": "gpt-4.1-mini", "object": "chat.completion.chunk"}
    chunks = [{**envelope, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [{**envelope, "choices": [{"index": 0, "delta": {"content": " word"}}]}] * 40
    call = {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    chunks.append({**envelope, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    arguments = {"index": 0, "function": {"arguments": '{"city": "Oslo"}'}}
    chunks.append({**envelope, "choices": [{"index": 0, "delta": {"tool_calls": [arguments]}}]})
    chunks.append(
        {**envelope, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    )
    usage = {"prompt_tokens": 1344, "completion_tokens": 60, "total_tokens": 1404}
    chunks.append({**envelope, "choices": [], "usage": usage})
    return chunks


ANTHROPIC_EVENTS = anthropic_stream()
OPENAI_EVENTS = openai_stream()


def run_stream(translator: MessagesToChatStream | ChatToMessagesStream, events: list[Any]) -> None:
    for event in events:
        translator.feed(event)
    translator.finish()


CASES: dict[str, Callable[[], object]] = {
    "request chat -> messages": lambda: chat_to_messages(CHAT_REQUEST),
    "request messages -> chat": lambda: messages_to_chat(MESSAGES_REQUEST),
    "request chat -> gemini": lambda: chat_to_gemini(CHAT_REQUEST),
    "response messages -> chat": lambda: message_to_chat_completion(MESSAGE),
    "response chat -> messages": lambda: chat_completion_to_message(COMPLETION),
    "stream messages -> chat (46 events)": lambda: run_stream(
        MessagesToChatStream(include_usage=True), ANTHROPIC_EVENTS
    ),
    "stream chat -> messages (45 chunks)": lambda: run_stream(
        ChatToMessagesStream(), OPENAI_EVENTS
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the fastest is reported")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}")
    print("| case | µs per call |")
    print("| --- | --- |")
    for name, case in CASES.items():
        best = min(timeit.repeat(case, number=args.calls, repeat=args.rounds))
        print(f"| {name} | {best / args.calls * 1e6:.1f} |")


if __name__ == "__main__":
    main()
