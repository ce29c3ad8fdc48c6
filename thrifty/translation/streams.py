"""Streamed responses translated event by event between OpenAI chat and Anthropic messages.

A translator is fed each upstream event's parsed JSON payload in order and
returns the client's server-sent events as bytes, ready to send. ``finish()``
is called once, at the upstream's terminal event (``message_stop`` or
``[DONE]``), and returns the client's closing events: the OpenAI usage chunk
(when the client asked for it) and ``[DONE]``, or Anthropic's
``message_delta`` with the usage and ``message_stop``.

Usage is merged with the trackers of ``thrifty.usage``, so the counts the
client reads are the ones the gateway meters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from thrifty.translation.responses import finish_reason, stop_reason
from thrifty.translation.usage_shapes import anthropic_usage, openai_chat_usage
from thrifty.usage import AnthropicStreamTracker, OpenAIChatStreamTracker

OPENAI_DONE = b"data: [DONE]\n\n"


class StreamTranslator(Protocol):
    """Turns one upstream stream into the client's stream.

    ``finished`` turns true with the upstream's last event when that stream
    has no terminal event of its own, as Gemini's has none. The other streams
    end with ``message_stop`` or ``[DONE]``, which the gateway recognizes.
    """

    finished: bool

    def feed(self, event: Mapping[str, Any]) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


def openai_event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def anthropic_event(payload: Mapping[str, Any]) -> bytes:
    name = str(payload["type"]).encode()
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesToChatStream:
    """Anthropic ``message_*`` and ``content_block_*`` events -> ``chat.completion.chunk`` events.

    Text deltas become ``content`` deltas, a ``tool_use`` block becomes one
    entry of ``tool_calls`` (its ``input_json_delta`` parts the ``arguments``),
    and the JSON-mode tool's input is streamed as ``content``.
    """

    finished = False

    def __init__(self, *, include_usage: bool, json_tool: str | None = None) -> None:
        self.include_usage = include_usage
        self.json_tool = json_tool
        self.tracker = AnthropicStreamTracker()
        self._envelope: dict[str, Any] = {
            "id": None,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": None,
        }
        if include_usage:
            self._envelope["usage"] = None
        self._tool_indexes: dict[int, int] = {}
        self._json_block: int | None = None

    def feed(self, event: Mapping[str, Any]) -> list[bytes]:
        kind = event.get("type")
        if kind in ("message_start", "message_delta", "content_block_delta"):
            self.tracker.feed(event)
        if kind == "message_start":
            return self._start(event.get("message"))
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "error":
            return [openai_event({"error": _openai_error(event.get("error"))})]
        return []

    def finish(self) -> list[bytes]:
        events: list[bytes] = []
        usage = self.tracker.result()
        if self.include_usage and usage is not None:
            chunk = {**self._envelope, "choices": [], "usage": openai_chat_usage(usage)}
            events.append(openai_event(chunk))
        events.append(OPENAI_DONE)
        return events

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return openai_event({**self._envelope, "choices": [choice]})

    def _start(self, message: object) -> list[bytes]:
        if isinstance(message, Mapping):
            self._envelope["id"] = message.get("id")
            self._envelope["model"] = message.get("model")
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def _block_start(self, event: Mapping[str, Any]) -> list[bytes]:
        block = event.get("content_block")
        index = event.get("index")
        if not isinstance(block, Mapping) or not isinstance(index, int):
            return []
        if block.get("type") != "tool_use":
            return []
        if self.json_tool is not None and block.get("name") == self.json_tool:
            self._json_block = index
            return []
        position = len(self._tool_indexes)
        self._tool_indexes[index] = position
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: Mapping[str, Any]) -> list[bytes]:
        delta = event.get("delta")
        index = event.get("index")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind != "input_json_delta":
            # Thinking and signature deltas have no place in a chat completion.
            return []
        partial = delta.get("partial_json", "")
        if index == self._json_block:
            return [self._chunk({"content": partial})]
        position = self._tool_indexes.get(index) if isinstance(index, int) else None
        if position is None or not partial:
            return []
        return [
            self._chunk({"tool_calls": [{"index": position, "function": {"arguments": partial}}]})
        ]

    def _message_delta(self, event: Mapping[str, Any]) -> list[bytes]:
        delta = event.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if stop == "tool_use" and self._json_block is not None and not self._tool_indexes:
            stop = "end_turn"
        return [self._chunk({}, finish_reason(stop) or "stop")]


class ChatToMessagesStream:
    """``chat.completion.chunk`` events -> Anthropic ``message_*`` and ``content_block_*`` events.

    The input counts arrive only in OpenAI's last chunk, so ``message_start``
    reports zero tokens and ``message_delta`` the real counts, which the
    Anthropic SDKs copy into the message's usage.
    """

    finished = False

    def __init__(self) -> None:
        self.tracker = OpenAIChatStreamTracker()
        self._started = False
        self._id: str | None = None
        self._model: str | None = None
        self._open: int | None = None
        self._open_kind: str | None = None
        self._next_index = 0
        self._tool_blocks: dict[int, int] = {}
        self._stop_reason: str | None = None

    def feed(self, event: Mapping[str, Any]) -> list[bytes]:
        if "error" in event:
            return [anthropic_event({"type": "error", "error": _anthropic_error(event["error"])})]
        self.tracker.feed(event)
        self._id = self._id or _text(event.get("id"))
        self._model = self._model or _text(event.get("model"))
        events = self._start()
        for choice in _objects(event.get("choices")):
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                events += self._delta(delta)
            if choice.get("finish_reason") is not None:
                events += self._close()
                self._stop_reason = stop_reason(choice["finish_reason"])
        return events

    def finish(self) -> list[bytes]:
        events = self._start() + self._close()
        usage = self.tracker.result()
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        counts = anthropic_usage(usage) if usage is not None else {"output_tokens": 0}
        counts.pop("cache_creation", None)
        events.append(anthropic_event({"type": "message_delta", "delta": delta, "usage": counts}))
        events.append(anthropic_event({"type": "message_stop"}))
        return events

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [anthropic_event({"type": "message_start", "message": message})]

    def _delta(self, delta: Mapping[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                events += self._open_block("text", {"type": "text", "text": ""})
                events.append(self._block_delta({"type": "text_delta", "text": text}))
        for call in _objects(delta.get("tool_calls")):
            events += self._tool_delta(call)
        return events

    def _tool_delta(self, call: Mapping[str, Any]) -> list[bytes]:
        position = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        events: list[bytes] = []
        if position not in self._tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": {},
            }
            events += self._open_block("tool_use", block, force=True)
            assert self._open is not None
            self._tool_blocks[position] = self._open
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and self._open == self._tool_blocks[position]:
            events.append(
                self._block_delta({"type": "input_json_delta", "partial_json": arguments})
            )
        return events

    def _open_block(self, kind: str, block: dict[str, Any], *, force: bool = False) -> list[bytes]:
        if self._open_kind == kind and not force:
            return []
        events = self._close()
        self._open, self._open_kind = self._next_index, kind
        self._next_index += 1
        start = {"type": "content_block_start", "index": self._open, "content_block": block}
        return [*events, anthropic_event(start)]

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        return anthropic_event({"type": "content_block_delta", "index": self._open, "delta": delta})

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [anthropic_event({"type": "content_block_stop", "index": index})]


def _openai_error(error: object) -> dict[str, Any]:
    error = error if isinstance(error, Mapping) else {}
    return {
        "message": str(error.get("message", "the upstream stream failed")),
        "type": str(error.get("type", "server_error")),
        "param": None,
        "code": None,
    }


def _anthropic_error(error: object) -> dict[str, Any]:
    error = error if isinstance(error, Mapping) else {}
    return {
        "type": "api_error",
        "message": str(error.get("message", "the upstream stream failed")),
    }


def _objects(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
