"""Whole (not streamed) responses translated between OpenAI chat and Anthropic messages.

The id and model are the provider's own, so a response can be matched to
the provider's logs. OpenAI's ``created`` has no Anthropic counterpart and
is the time of translation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.errors import TranslationError
from thrifty.translation.usage_shapes import anthropic_usage, openai_chat_usage
from thrifty.usage import usage_from_anthropic, usage_from_openai_chat

# Anthropic ``stop_reason`` -> OpenAI ``finish_reason``. ``pause_turn`` (a
# server tool paused a long turn) ends the reply where it is, so it is "stop".
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI ``finish_reason`` -> Anthropic ``stop_reason``. OpenAI does not say
# whether a stop sequence or the model ended the text, so "stop" is "end_turn".
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_to_chat_completion(
    message: Mapping[str, Any], json_tool: str | None = None
) -> dict[str, Any]:
    """Translate an Anthropic message into a ``chat.completion``.

    A ``tool_use`` block of ``json_tool`` (the forced tool of JSON mode) is
    returned as the message text, with finish reason "stop".
    """
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    stop_reason = message.get("stop_reason")
    for block in _objects(message.get("content")):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            texts.append(orjson.dumps(block.get("input", {})).decode())
            stop_reason = "end_turn" if stop_reason == "tool_use" else stop_reason
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(stop_reason),
            }
        ],
        "usage": openai_chat_usage(usage_from_anthropic(message)),
    }


def chat_completion_to_message(completion: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a ``chat.completion`` (its first choice) into an Anthropic message."""
    choices = list(_objects(completion.get("choices")))
    if not choices:
        raise TranslationError("the chat completion has no choices to translate")
    choice = choices[0]
    reply = choice.get("message")
    reply = reply if isinstance(reply, Mapping) else {}
    content: list[dict[str, Any]] = []
    text = reply.get("content") or reply.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    content.extend(_tool_use(call) for call in _objects(reply.get("tool_calls")))
    return {
        "id": completion.get("id"),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(usage_from_openai_chat(completion)),
    }


def finish_reason(stop: object) -> str | None:
    """Map an Anthropic ``stop_reason`` to an OpenAI ``finish_reason``."""
    if stop is None:
        return None
    return FINISH_REASONS.get(str(stop), "stop")


def stop_reason(finish: object) -> str | None:
    """Map an OpenAI ``finish_reason`` to an Anthropic ``stop_reason``."""
    if finish is None:
        return None
    return STOP_REASONS.get(str(finish), "end_turn")


def _tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": orjson.dumps(block.get("input", {})).decode(),
        },
    }


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": tool_input(function.get("arguments")),
    }


def tool_input(arguments: object) -> Any:
    """Parse a tool call's ``arguments``; raise TranslationError when they are not an object."""
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise TranslationError(
            f"the model's tool call arguments are not valid JSON ({exc}), so they cannot be "
            "sent as an Anthropic tool_use input; retry the request"
        ) from exc
    if not isinstance(parsed, dict):
        raise TranslationError(
            "the model's tool call arguments are not a JSON object, so they cannot be sent "
            "as an Anthropic tool_use input; retry the request"
        )
    return parsed


def _objects(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
