"""Cached bodies as event streams the official SDKs parse, and streams back to bodies."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson

from thrifty.cache.streams import assemble_stream, pieces, stream_events

CHAT_BODY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Rivers: the Danube, the Rhine and the Loire.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"river": "Danube"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}

MESSAGE_BODY: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants a list.", "signature": "sig"},
        {"type": "text", "text": "Fjords are long, narrow inlets."},
        {"type": "tool_use", "id": "toolu_1", "name": "map", "input": {"place": "Norway"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 15, "cache_read_input_tokens": 0},
}


def sse_client(events: list[bytes]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b"".join(events), headers={"content-type": "text/event-stream"}
        )

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_pieces_concatenate_to_text() -> None:
    text = "  one two three four five six seven eight nine ten\n eleven "
    assert "".join(pieces(text)) == text
    assert len(pieces(text)) == 2
    assert pieces("") == [""]


def test_openai_sdk_reads_cached_chat_stream() -> None:
    events = stream_events("chat.completions", CHAT_BODY, include_usage=True)
    client = openai.OpenAI(api_key="k", base_url="http://test/v1", http_client=sse_client(events))
    chunks = list(client.chat.completions.create(model="m", messages=[], stream=True))

    texts: dict[int, str] = {}
    calls = []
    finishes = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            calls += choice.delta.tool_calls or []
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts[0] == CHAT_BODY["choices"][0]["message"]["content"]
    assert calls[0].function is not None
    assert calls[0].function.arguments == '{"river": "Danube"}'
    assert finishes == {0: "stop", 1: "tool_calls"}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 21


def test_anthropic_sdk_reads_cached_message_stream() -> None:
    events = stream_events("messages", MESSAGE_BODY, include_usage=False)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=b"".join(events), headers={"content-type": "text/event-stream"}
        )

    # This anthropic release sends requests with httpx2, httpx's successor.
    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="k", base_url="http://test", http_client=http_client)
    with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[1].type == "text"
    assert final.content[1].text == "Fjords are long, narrow inlets."
    assert final.content[2].type == "tool_use"
    assert final.content[2].input == {"place": "Norway"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 15


def test_cached_streams_assemble_to_their_bodies() -> None:
    chat = stream_events("chat.completions", CHAT_BODY, include_usage=True)
    message = stream_events("messages", MESSAGE_BODY, include_usage=False)
    assembled_chat = assemble_stream("chat.completions", b"".join(chat))
    assembled_message = assemble_stream("messages", b"".join(message))
    assert assembled_chat is not None
    for got, expected in zip(assembled_chat["choices"], CHAT_BODY["choices"], strict=True):
        assert got["finish_reason"] == expected["finish_reason"]
        assert got["message"]["content"] == expected["message"]["content"]
        assert got["message"].get("tool_calls") == expected["message"].get("tool_calls")
    assert assembled_chat["usage"] == CHAT_BODY["usage"]
    assert assembled_message is not None
    assert assembled_message["content"] == MESSAGE_BODY["content"]
    assert assembled_message["stop_reason"] == "tool_use"


def test_cut_stream_does_not_assemble() -> None:
    events = stream_events("chat.completions", CHAT_BODY, include_usage=False)
    assert assemble_stream("chat.completions", b"".join(events[:-1])) is None
    message = stream_events("messages", MESSAGE_BODY, include_usage=False)
    assert assemble_stream("messages", b"".join(message[:-1])) is None


def test_sandbox_streams_assemble_like_buffered_answers(sandbox_url: str) -> None:
    requests = [
        (
            "/v1/chat/completions",
            "chat.completions",
            {
                "messages": [{"role": "user", "content": "Hi there"}],
                "model": "gpt-4o-mini",
                "max_tokens": 30,
                "stream_options": {"include_usage": True},
            },
        ),
        (
            "/v1/messages",
            "messages",
            {
                "messages": [{"role": "user", "content": "Hi there"}],
                "model": "claude-sonnet-4-5",
                "max_tokens": 30,
            },
        ),
        (
            "/v1/responses",
            "responses",
            {"input": "Hi there", "model": "gpt-4o-mini", "max_output_tokens": 30},
        ),
    ]
    for path, endpoint, body in requests:
        streamed = httpx.post(
            f"{sandbox_url}{path}",
            json={**body, "stream": True},
            headers={"authorization": "Bearer sk-test", "x-api-key": "sk-test"},
            timeout=30,
        )
        assembled = assemble_stream(endpoint, streamed.content)
        assert assembled is not None, endpoint
        replayed = assemble_stream(
            endpoint, b"".join(stream_events(endpoint, assembled, include_usage=True))
        )
        assert replayed is not None
        assert orjson.dumps(replayed, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            assembled, option=orjson.OPT_SORT_KEYS
        ), endpoint
        assert _text(endpoint, assembled)


def _text(endpoint: str, body: dict[str, Any]) -> str:
    if endpoint == "chat.completions":
        return str(body["choices"][0]["message"]["content"])
    if endpoint == "messages":
        return str(body["content"][0]["text"])
    return str(body["output"][-1]["content"][0]["text"])
