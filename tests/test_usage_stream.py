"""Stream usage trackers fed real event sequences, directly and through the official SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from thrifty.errors import ThriftyError
from thrifty.usage import (
    AnthropicStreamTracker,
    OpenAIChatStreamTracker,
    OpenAIResponsesStreamTracker,
    Usage,
    tracker_for,
)


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
        "object": "chat.completion.chunk",
        "created": 1738960860,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


CHAT_USAGE_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
    "object": "chat.completion.chunk",
    "created": 1738960860,
    "model": "gpt-4o-mini-2024-07-18",
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
    "choices": [],
    "usage": {
        "prompt_tokens": 1540,
        "completion_tokens": 9,
        "total_tokens": 1549,
        "prompt_tokens_details": {"cached_tokens": 1408, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

CHAT_STREAM: list[dict[str, Any]] = [
    chat_chunk({"role": "assistant", "content": "", "refusal": None}),
    chat_chunk({"content": "Hello"}),
    chat_chunk({"content": " there!"}),
    chat_chunk({}, finish_reason="stop"),
    CHAT_USAGE_CHUNK,
]

RESPONSE_IN_PROGRESS: dict[str, Any] = {
    "id": "resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b",
    "object": "response",
    "created_at": 1756315696,
    "status": "in_progress",
    "model": "gpt-5-2025-08-07",
    "output": [],
    "parallel_tool_calls": True,
    "service_tier": "auto",
    "tool_choice": "auto",
    "tools": [],
    "usage": None,
}

RESPONSES_STREAM: list[dict[str, Any]] = [
    {"type": "response.created", "sequence_number": 0, "response": RESPONSE_IN_PROGRESS},
    {"type": "response.in_progress", "sequence_number": 1, "response": RESPONSE_IN_PROGRESS},
    {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": "msg_68af40337e4c8193b4bc2a7f3a1e6a2b",
        "output_index": 1,
        "content_index": 0,
        "delta": "Ocean",
        "logprobs": [],
    },
    {
        "type": "response.output_text.delta",
        "sequence_number": 5,
        "item_id": "msg_68af40337e4c8193b4bc2a7f3a1e6a2b",
        "output_index": 1,
        "content_index": 0,
        "delta": " tides.",
        "logprobs": [],
    },
    {
        "type": "response.completed",
        "sequence_number": 9,
        "response": {
            **RESPONSE_IN_PROGRESS,
            "status": "completed",
            "service_tier": "flex",
            "usage": {
                "input_tokens": 36,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 87,
                "output_tokens_details": {"reasoning_tokens": 64},
                "total_tokens": 123,
            },
        },
    },
]

ANTHROPIC_STREAM: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01Vtk5hfD1WHLaMbPtVgVspf",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 2000,
                "cache_read_input_tokens": 0,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 0,
                    "ephemeral_1h_input_tokens": 2000,
                },
                "output_tokens": 1,
                "service_tier": "standard",
            },
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Two plus two."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "ping"},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "It is 4."},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 215},
    },
    {"type": "message_stop"},
]


def feed_all(tracker: Any, events: Iterable[Mapping[str, Any]]) -> None:
    for event in events:
        tracker.feed(event)


def test_chat_tracker_reads_final_usage_chunk() -> None:
    tracker = OpenAIChatStreamTracker()
    feed_all(tracker, CHAT_STREAM)

    assert tracker.result() == Usage(input_tokens=1540, output_tokens=9, cache_read_tokens=1408)
    assert tracker.final_usage_seen
    assert tracker.model == "gpt-4o-mini-2024-07-18"
    assert tracker.service_tier == "default"
    assert tracker.output_text == "Hello there!"
    assert tracker.output_text_chars == 12


def test_chat_tracker_cut_stream_has_no_usage() -> None:
    tracker = OpenAIChatStreamTracker()
    feed_all(tracker, CHAT_STREAM[:3])

    assert tracker.result() is None
    assert not tracker.final_usage_seen
    assert tracker.output_text_chars == len("Hello there!")


def test_chat_tracker_counts_tool_arguments() -> None:
    tracker = OpenAIChatStreamTracker()
    first_call = {
        "index": 0,
        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    feed_all(
        tracker,
        [
            chat_chunk({"role": "assistant", "content": None, "tool_calls": [first_call]}),
            chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        ],
    )

    assert tracker.output_text == '{"city":"Oslo"}'


def test_chat_tracker_skips_malformed_chunks() -> None:
    tracker = OpenAIChatStreamTracker()
    feed_all(
        tracker,
        [
            {"choices": "oops", "model": 7},
            {"choices": [None, {"delta": "text"}]},
            {"error": {"message": "upstream overloaded"}},
        ],
    )

    assert tracker.result() is None
    assert tracker.model is None
    assert tracker.output_text_chars == 0


def test_responses_tracker_reads_completed_event() -> None:
    tracker = OpenAIResponsesStreamTracker()
    feed_all(tracker, RESPONSES_STREAM)

    assert tracker.result() == Usage(input_tokens=36, output_tokens=87, reasoning_tokens=64)
    assert tracker.final_usage_seen
    assert tracker.model == "gpt-5-2025-08-07"
    assert tracker.service_tier == "flex"
    assert tracker.output_text == "Ocean tides."


def test_responses_tracker_incomplete_and_failed() -> None:
    for kind in ("response.incomplete", "response.failed"):
        final = {**RESPONSES_STREAM[-1], "type": kind}
        tracker = OpenAIResponsesStreamTracker()
        feed_all(tracker, [*RESPONSES_STREAM[:-1], final])

        assert tracker.result() == Usage(input_tokens=36, output_tokens=87, reasoning_tokens=64)


def test_responses_tracker_failed_without_usage() -> None:
    failed = {
        "type": "response.failed",
        "sequence_number": 3,
        "response": {**RESPONSE_IN_PROGRESS, "status": "failed"},
    }
    tracker = OpenAIResponsesStreamTracker()
    feed_all(tracker, [RESPONSES_STREAM[0], failed])

    assert tracker.result() is None
    assert tracker.service_tier == "auto"


def test_anthropic_tracker_merges_start_and_delta() -> None:
    tracker = AnthropicStreamTracker()
    feed_all(tracker, ANTHROPIC_STREAM)

    assert tracker.result() == Usage(
        input_tokens=2472,
        output_tokens=215,
        cache_write_tokens=2000,
        cache_write_1h_tokens=2000,
    )
    assert tracker.final_usage_seen
    assert tracker.model == "claude-sonnet-4-5-20250929"
    assert tracker.service_tier == "standard"
    assert tracker.output_text == "Two plus two.It is 4."


def test_anthropic_tracker_later_values_win() -> None:
    final_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 480,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 100,
            "output_tokens": 230,
            "server_tool_use": {"web_search_requests": 2},
        },
    }
    tracker = AnthropicStreamTracker()
    feed_all(tracker, [*ANTHROPIC_STREAM[:-2], final_delta])

    usage = tracker.result()

    assert usage is not None
    assert usage.input_tokens == 480 + 2000 + 100
    assert usage.cache_read_tokens == 100
    assert usage.output_tokens == 230
    assert usage.web_search_requests == 2


def test_anthropic_tracker_cut_after_start() -> None:
    tracker = AnthropicStreamTracker()
    feed_all(tracker, ANTHROPIC_STREAM[:3])

    usage = tracker.result()

    assert usage is not None
    assert usage.input_tokens == 2472
    assert usage.output_tokens == 1
    assert not tracker.final_usage_seen
    assert tracker.output_text == "Two plus two."


def test_anthropic_tracker_speed_from_usage() -> None:
    start = json.loads(json.dumps(ANTHROPIC_STREAM[0]))
    start["message"]["usage"]["speed"] = "fast"
    tracker = AnthropicStreamTracker()
    tracker.feed(start)

    assert tracker.speed == "fast"


@pytest.mark.parametrize(
    ("endpoint", "tracker_class"),
    [
        ("chat.completions", OpenAIChatStreamTracker),
        ("responses", OpenAIResponsesStreamTracker),
        ("messages", AnthropicStreamTracker),
    ],
)
def test_tracker_for_endpoint(endpoint: str, tracker_class: type) -> None:
    first = tracker_for(endpoint)
    second = tracker_for(endpoint)

    assert isinstance(first, tracker_class)
    assert first is not second


def test_tracker_for_unknown_endpoint() -> None:
    with pytest.raises(ThriftyError, match="'embeddings'"):
        tracker_for("embeddings")


def sse_body(events: Iterable[Mapping[str, Any]], *, named: bool, done: bool) -> bytes:
    lines: list[str] = []
    for event in events:
        if named:
            lines.append(f"event: {event['type']}")
        lines.append(f"data: {json.dumps(event)}")
        lines.append("")
    if done:
        lines += ["data: [DONE]", ""]
    return ("\n".join(lines) + "\n").encode()


def test_chat_tracker_on_sdk_stream() -> None:
    """Chunks the official client parsed and serialized track like the raw events."""
    body = sse_body(CHAT_STREAM, named=False, done=True)

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream_options"] == {"include_usage": True}
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://127.0.0.1:9/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        max_retries=0,
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    tracker = tracker_for("chat.completions")
    for chunk in stream:
        tracker.feed(chunk.model_dump(mode="json"))

    assert tracker.result() == Usage(input_tokens=1540, output_tokens=9, cache_read_tokens=1408)
    assert tracker.output_text == "Hello there!"


def test_anthropic_tracker_on_sdk_stream() -> None:
    """Events the official client parsed and serialized track like the raw events."""
    body = sse_body(ANTHROPIC_STREAM, named=True, done=False)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://127.0.0.1:9",
        # anthropic 2.x is built on httpx2, so its client takes httpx2's transport.
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    stream = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        stream=True,
    )
    tracker = tracker_for("messages")
    for event in stream:
        tracker.feed(event.model_dump(mode="json"))

    assert tracker.result() == Usage(
        input_tokens=2472, output_tokens=215, cache_write_tokens=2000, cache_write_1h_tokens=2000
    )
    assert tracker.model == "claude-sonnet-4-5-20250929"
    assert tracker.output_text == "Two plus two.It is 4."
