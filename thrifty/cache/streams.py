"""Converting between a whole response body and its server-sent event stream.

``stream_events`` turns a cached body into the events the provider would
have streamed for it, so a streaming client receives a cache hit in the
format its SDK parses: ``chat.completion.chunk`` objects and ``[DONE]`` for
OpenAI chat, the ``response.*`` events for the Responses API, and
``message_start`` to ``message_stop`` for Anthropic. ``assemble_stream``
does the reverse, so an answer that was streamed can be stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from thrifty.gateway.sse import EventSplitter

_PIECE = re.compile(r"\s*\S+(?:\s+\S+){0,7}\s*|\s+")


def stream_events(endpoint: str, body: Mapping[str, Any], *, include_usage: bool) -> list[bytes]:
    """Return the SSE events of ``body`` for ``endpoint``, ready to send."""
    if endpoint == "chat.completions":
        return list(_chat_events(body, include_usage))
    if endpoint == "messages":
        return list(_message_events(body))
    if endpoint == "responses":
        return list(_response_events(body))
    raise ValueError(f"endpoint {endpoint!r} does not stream")


def pieces(text: str) -> list[str]:
    """Split text into chunks of up to eight words whose concatenation is the text."""
    return _PIECE.findall(text) or [text]


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


# OpenAI chat completions


def _chat_events(body: Mapping[str, Any], include_usage: bool) -> Iterator[bytes]:
    base: dict[str, Any] = {
        key: body[key]
        for key in ("id", "created", "model", "service_tier", "system_fingerprint")
        if key in body
    }
    base["object"] = "chat.completion.chunk"
    if include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _data({**base, "choices": [choice]})

    choices = [choice for choice in body.get("choices") or [] if isinstance(choice, Mapping)]
    for position, choice in enumerate(choices):
        index = choice.get("index", position)
        message = choice.get("message") or {}
        yield chunk(index, {"role": message.get("role", "assistant"), "content": ""})
        content = message.get("content")
        if isinstance(content, str) and content:
            for piece in pieces(content):
                yield chunk(index, {"content": piece})
        if message.get("refusal"):
            yield chunk(index, {"refusal": message["refusal"]})
        for call_index, call in enumerate(message.get("tool_calls") or []):
            yield chunk(index, {"tool_calls": [{"index": call_index, **call}]})
        yield chunk(index, {}, choice.get("finish_reason") or "stop")
    if include_usage and body.get("usage") is not None:
        yield _data({**base, "choices": [], "usage": body["usage"]})
    yield b"data: [DONE]\n\n"


# Anthropic messages


def _message_events(body: Mapping[str, Any]) -> Iterator[bytes]:
    usage = dict(body.get("usage") or {})
    start = {
        **body,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, int(usage.get("output_tokens", 0)))},
    }
    yield _event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(body.get("content") or []):
        yield from _content_block(index, block)
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    yield _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    yield _event("message_stop", {"type": "message_stop"})


def _content_block(index: int, block: Mapping[str, Any]) -> Iterator[bytes]:
    kind = block.get("type")
    if kind == "text":
        opening: Mapping[str, Any] = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
    elif kind == "tool_use":
        opening = {**block, "input": {}}
        arguments = orjson.dumps(block.get("input") or {}).decode()
        deltas = [{"type": "input_json_delta", "partial_json": arguments}]
    elif kind == "thinking":
        opening = {"type": "thinking", "thinking": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": piece} for piece in pieces(block["thinking"])
        ]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        # Blocks without deltas (redacted thinking, server tool results) arrive whole.
        opening, deltas = block, []
    start = {"type": "content_block_start", "index": index, "content_block": opening}
    yield _event("content_block_start", start)
    for delta in deltas:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        yield _event("content_block_delta", payload)
    yield _event("content_block_stop", {"type": "content_block_stop", "index": index})


# OpenAI Responses API


def _response_events(body: Mapping[str, Any]) -> Iterator[bytes]:
    sequence = 0

    def event(name: str, payload: Mapping[str, Any]) -> bytes:
        nonlocal sequence
        encoded = _event(name, {"type": name, "sequence_number": sequence, **payload})
        sequence += 1
        return encoded

    pending = {**body, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", {"response": pending})
    yield event("response.in_progress", {"response": pending})
    for output_index, item in enumerate(body.get("output") or []):
        for name, payload in _output_item_events(output_index, item):
            yield event(name, payload)
    yield event("response.completed", {"response": body})


def _output_item_events(
    output_index: int, item: Mapping[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = item.get("type")
    where = {"item_id": item.get("id"), "output_index": output_index}
    if kind == "message":
        opening = {**item, "status": "in_progress", "content": []}
        yield "response.output_item.added", {"output_index": output_index, "item": opening}
        for content_index, part in enumerate(item.get("content") or []):
            yield from _content_part_events(where, content_index, part)
    elif kind == "function_call":
        opening = {**item, "status": "in_progress", "arguments": ""}
        yield "response.output_item.added", {"output_index": output_index, "item": opening}
        arguments = item.get("arguments", "")
        yield "response.function_call_arguments.delta", {**where, "delta": arguments}
        yield "response.function_call_arguments.done", {**where, "arguments": arguments}
    else:
        yield "response.output_item.added", {"output_index": output_index, "item": item}
    yield "response.output_item.done", {"output_index": output_index, "item": item}


def _content_part_events(
    where: dict[str, Any], content_index: int, part: Mapping[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    at = {**where, "content_index": content_index}
    if part.get("type") != "output_text":
        yield "response.content_part.added", {**at, "part": part}
        yield "response.content_part.done", {**at, "part": part}
        return
    text = part.get("text", "")
    yield "response.content_part.added", {**at, "part": {**part, "text": ""}}
    for piece in pieces(text):
        yield "response.output_text.delta", {**at, "delta": piece, "logprobs": []}
    yield "response.output_text.done", {**at, "text": text, "logprobs": []}
    yield "response.content_part.done", {**at, "part": part}


# From a stream back to a body


def assemble_stream(endpoint: str, raw: bytes) -> dict[str, Any] | None:
    """Rebuild the whole response body from a complete event stream, or None if it is cut."""
    payloads = list(_payloads(raw))
    if endpoint == "chat.completions":
        return _assemble_chat(payloads)
    if endpoint == "messages":
        return _assemble_message(payloads)
    if endpoint == "responses":
        return _assemble_response(payloads)
    return None


def _payloads(raw: bytes) -> Iterator[Any]:
    splitter = EventSplitter()
    for event in splitter.feed(raw):
        if not event.data:
            continue
        if event.data == b"[DONE]":
            yield "[DONE]"
            continue
        try:
            yield orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue


def _assemble_chat(payloads: list[Any]) -> dict[str, Any] | None:
    if "[DONE]" not in payloads:
        return None
    chunks = [payload for payload in payloads if isinstance(payload, Mapping)]
    if not chunks:
        return None
    body: dict[str, Any] = {
        key: chunks[0][key]
        for key in ("id", "created", "model", "service_tier", "system_fingerprint")
        if key in chunks[0]
    }
    body["object"] = "chat.completion"
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage") is not None:
            body["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            _add_chat_delta(choices, choice)
    if any(choice["finish_reason"] is None for choice in choices.values()):
        return None
    body["choices"] = [_chat_choice(choices[index]) for index in sorted(choices)]
    return body


def _add_chat_delta(choices: dict[int, dict[str, Any]], choice: Mapping[str, Any]) -> None:
    index = int(choice.get("index", 0))
    state = choices.setdefault(
        index,
        {
            "index": index,
            "role": "assistant",
            "content": "",
            "refusal": None,
            "tools": {},
            "finish_reason": None,
        },
    )
    delta = choice.get("delta") or {}
    state["role"] = delta.get("role") or state["role"]
    state["content"] += delta.get("content") or ""
    if delta.get("refusal"):
        state["refusal"] = (state["refusal"] or "") + delta["refusal"]
    for call in delta.get("tool_calls") or []:
        tool = state["tools"].setdefault(
            call.get("index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        tool["id"] = call.get("id") or tool["id"]
        tool["type"] = call.get("type") or tool["type"]
        function = call.get("function") or {}
        tool["function"]["name"] += function.get("name") or ""
        tool["function"]["arguments"] += function.get("arguments") or ""
    if choice.get("finish_reason"):
        state["finish_reason"] = choice["finish_reason"]


def _chat_choice(state: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": state["role"],
        "content": state["content"] or (None if state["tools"] else ""),
        "refusal": state["refusal"],
    }
    if state["tools"]:
        message["tool_calls"] = [state["tools"][index] for index in sorted(state["tools"])]
    return {
        "index": state["index"],
        "message": message,
        "logprobs": None,
        "finish_reason": state["finish_reason"],
    }


def _assemble_message(payloads: list[Any]) -> dict[str, Any] | None:
    events = [payload for payload in payloads if isinstance(payload, Mapping)]
    types = [event.get("type") for event in events]
    if "message_start" not in types or "message_stop" not in types:
        return None
    body: dict[str, Any] = dict(events[types.index("message_start")]["message"])
    usage = dict(body.get("usage") or {})
    blocks: dict[int, dict[str, Any]] = {}
    partial_json: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            _add_message_delta(blocks[event["index"]], event["delta"], partial_json, event["index"])
        elif kind == "message_delta":
            body.update(event.get("delta") or {})
            usage.update(event.get("usage") or {})
    for index, text in partial_json.items():
        blocks[index]["input"] = orjson.loads(text) if text else {}
    body["content"] = [blocks[index] for index in sorted(blocks)]
    body["usage"] = usage
    return body


def _add_message_delta(
    block: dict[str, Any], delta: Mapping[str, Any], partial_json: dict[int, str], index: int
) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        partial_json[index] = partial_json.get(index, "") + delta.get("partial_json", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")


def _assemble_response(payloads: list[Any]) -> dict[str, Any] | None:
    for payload in reversed(payloads):
        if isinstance(payload, Mapping) and payload.get("type") == "response.completed":
            response = payload.get("response")
            return dict(response) if isinstance(response, Mapping) else None
    return None
