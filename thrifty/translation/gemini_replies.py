"""Gemini ``generateContent`` responses and streams translated into OpenAI chat completions.

Only the first candidate is translated, because a chat request may not set ``n`` above 1. Text
parts become the message content, ``functionCall`` parts tool calls; a
thought part (``"thought": true``, a summary of the model's thinking) is
left out, as a chat completion has no place for it. Gemini function calls
may carry no ``id``, so such a call gets ``call_<index>``. The usage is in
OpenAI's shape: Gemini's ``thoughtsTokenCount`` is outside
``candidatesTokenCount``, and both are in ``completion_tokens``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.translation.streams import OPENAI_DONE, openai_event
from thrifty.translation.usage_shapes import openai_chat_usage
from thrifty.usage import GeminiStreamTracker, usage_from_gemini

# Gemini ``finishReason`` -> OpenAI ``finish_reason``; any other reason
# (OTHER, MALFORMED_FUNCTION_CALL...) ends the reply as it is, so it is "stop".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def gemini_to_chat_completion(response: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a ``generateContent`` response into a ``chat.completion``."""
    candidate = _first_candidate(response)
    texts, calls = _parts(candidate, 0)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": response.get("responseId"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("modelVersion"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(candidate.get("finishReason"), bool(calls)),
            }
        ],
        "usage": openai_chat_usage(usage_from_gemini(response)),
    }


class GeminiToChatStream:
    """``streamGenerateContent`` chunks -> ``chat.completion.chunk`` events.

    The Gemini stream has no terminal event: its last chunk carries the
    ``finishReason``, after which ``finished`` is true and the gateway calls
    ``finish()``.
    """

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.tracker = GeminiStreamTracker()
        self.finished = False
        self._started = False
        self._calls = 0
        self._envelope: dict[str, Any] = {
            "id": None,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": None,
        }
        if include_usage:
            self._envelope["usage"] = None

    def feed(self, event: Mapping[str, Any]) -> list[bytes]:
        if "error" in event:
            return [openai_event({"error": _openai_error(event["error"])})]
        self.tracker.feed(event)
        self._envelope["id"] = self._envelope["id"] or event.get("responseId")
        self._envelope["model"] = self._envelope["model"] or event.get("modelVersion")
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": "", "refusal": None}))
        candidate = _first_candidate(event)
        first = self._calls
        texts, calls = _parts(candidate, first)
        self._calls += len(calls)
        if texts:
            out.append(self._chunk({"content": "".join(texts)}))
        if calls:
            indexed = [{"index": first + i, **call} for i, call in enumerate(calls)]
            out.append(self._chunk({"tool_calls": indexed}))
        reason = candidate.get("finishReason")
        if reason is not None:
            self.finished = True
            out.append(self._chunk({}, _finish_reason(reason, self._calls > 0)))
        return out

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


def _first_candidate(response: Mapping[str, Any]) -> Mapping[str, Any]:
    candidates = response.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        return candidates[0]
    return {}


def _parts(candidate: Mapping[str, Any], first_call: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Return a candidate's text pieces and its tool calls, numbered from ``first_call``."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            call_id = call.get("id") or f"call_{first_call + len(calls)}"
            arguments = orjson.dumps(call.get("args") or {}).decode()
            function = {"name": call.get("name"), "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
    return texts, calls


def _finish_reason(reason: object, called: bool) -> str | None:
    if reason is None:
        return None
    if called and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(str(reason), "stop")


def _openai_error(error: object) -> dict[str, Any]:
    error = error if isinstance(error, Mapping) else {}
    return {
        "message": str(error.get("message", "the upstream stream failed")),
        "type": str(error.get("status", "server_error")),
        "param": None,
        "code": None,
    }
