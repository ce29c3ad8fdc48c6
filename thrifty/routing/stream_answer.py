"""The answer of a whole streamed response, for the cascade checks.

Reads the JSON payloads of the stream's events in order: OpenAI
``chat.completion.chunk`` deltas, Responses API events (the
``response.completed`` event carries the whole response) and Anthropic
message events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from thrifty.routing.checks import Answer, answer_of


def answer_of_events(payloads: Iterable[Mapping[str, Any]]) -> Answer:
    """Assemble the answer of the first choice from a stream's event payloads."""
    texts: list[str] = []
    refusals: list[str] = []
    tools: set[object] = set()
    stop_reason: str | None = None
    for payload in payloads:
        kind = payload.get("type")
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response")
            if isinstance(response, Mapping):
                return answer_of(response)
        elif isinstance(payload.get("choices"), list):
            stop_reason = _chat_delta(payload, texts, refusals, tools) or stop_reason
        else:
            stop_reason = _anthropic_event(payload, texts, tools) or stop_reason
    return Answer(
        text="".join(texts),
        tool_calls=len(tools),
        refusal="".join(refusals) or None,
        stop_reason=stop_reason,
    )


def _chat_delta(
    payload: Mapping[str, Any], texts: list[str], refusals: list[str], tools: set[object]
) -> str | None:
    choice = next((c for c in payload["choices"] if _mapping(c).get("index", 0) == 0), None)
    if choice is None:
        return None
    delta = _mapping(_mapping(choice).get("delta"))
    if isinstance(delta.get("content"), str):
        texts.append(delta["content"])
    if isinstance(delta.get("refusal"), str):
        refusals.append(delta["refusal"])
    for call in delta.get("tool_calls") or []:
        tools.add(_mapping(call).get("index"))
    reason = _mapping(choice).get("finish_reason")
    return reason if isinstance(reason, str) else None


def _anthropic_event(
    payload: Mapping[str, Any], texts: list[str], tools: set[object]
) -> str | None:
    kind = payload.get("type")
    if kind == "content_block_start":
        block = _mapping(payload.get("content_block"))
        if block.get("type") == "tool_use":
            tools.add(payload.get("index"))
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])
    elif kind == "content_block_delta":
        delta = _mapping(payload.get("delta"))
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            texts.append(delta["text"])
    elif kind == "message_delta":
        reason = _mapping(payload.get("delta")).get("stop_reason")
        return reason if isinstance(reason, str) else None
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
