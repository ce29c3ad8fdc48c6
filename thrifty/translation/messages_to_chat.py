"""An Anthropic Messages request translated into an OpenAI Chat Completions request.

``system`` becomes a leading ``system`` message (OpenAI passes it to
reasoning models as the developer message), ``tool_use`` blocks become the
assistant's ``tool_calls``, and each ``tool_result`` block becomes a ``tool``
message placed before the rest of its user turn. ``max_tokens`` is sent as
``max_completion_tokens``, the parameter every current OpenAI model accepts.
A streamed request always sets ``stream_options.include_usage``, because the
Anthropic client expects usage in ``message_delta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.translation.checks import (
    as_list,
    as_object,
    as_text,
    invalid,
    reject_unknown,
    untranslatable,
)
from thrifty.translation.content import OPENAI, anthropic_block_to_part

# OpenAI takes at most four stop sequences.
MAX_STOP_SEQUENCES = 4

# Prepended to a tool result that Anthropic marks ``is_error``, because an
# OpenAI tool message has no error flag: the model reads it in the text.
TOOL_ERROR_PREFIX = "Error: "

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)


def messages_to_chat(messages: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a Messages request; raise RequestError on what OpenAI cannot take.

    Dropped without an error: ``service_tier`` (Anthropic's ``auto`` or
    ``standard_only``; OpenAI serves the default tier either way),
    ``cache_control`` marks (OpenAI caches prompts automatically) and earlier
    ``thinking`` blocks (an OpenAI model cannot read another model's reasoning).
    """
    reject_unknown(messages, _KNOWN, OPENAI)
    _reject_unsupported(messages)
    chat: dict[str, Any] = {"model": messages.get("model"), "messages": _conversation(messages)}
    max_tokens = messages.get("max_tokens")
    if max_tokens is not None:
        chat["max_completion_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if messages.get(key) is not None:
            chat[key] = messages[key]
    stops = messages.get("stop_sequences")
    if stops:
        chat["stop"] = _stops(stops)
    _add_tools(chat, messages)
    metadata = messages.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if messages.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _reject_unsupported(messages: Mapping[str, Any]) -> None:
    if messages.get("top_k") is not None:
        raise untranslatable("top_k", OPENAI, "remove it; top_p is the closest OpenAI control")
    thinking = messages.get("thinking")
    if thinking is not None and as_object(thinking, "thinking").get("type") != "disabled":
        raise untranslatable(
            "thinking",
            OPENAI,
            "extended thinking is Anthropic's; remove it (OpenAI reasoning models reason "
            "without it)",
        )


def _stops(stops: object) -> list[str]:
    items = [as_text(item, "stop_sequences") for item in as_list(stops, "stop_sequences")]
    if len(items) > MAX_STOP_SEQUENCES:
        raise invalid(
            "stop_sequences",
            f"has {len(items)} entries, above OpenAI's maximum of {MAX_STOP_SEQUENCES}",
            f"send at most {MAX_STOP_SEQUENCES}",
        )
    return items


def _conversation(messages: Mapping[str, Any]) -> list[dict[str, Any]]:
    chat: list[dict[str, Any]] = []
    system = messages.get("system")
    if system:
        chat.append({"role": "system", "content": _system_text(system)})
    for index, raw in enumerate(as_list(messages.get("messages"), "messages")):
        param = f"messages[{index}]"
        message = as_object(raw, param)
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            chat.extend(_user_messages(content, f"{param}.content"))
        elif role == "assistant":
            chat.append(_assistant_message(content, f"{param}.content"))
        else:
            raise invalid(f"{param}.role", f"is {role!r}", "use 'user' or 'assistant'")
    return chat


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for index, raw in enumerate(as_list(system, "system")):
        block = as_object(raw, f"system[{index}]")
        texts.append(as_text(block.get("text"), f"system[{index}].text"))
    return "\n\n".join(texts)


def _blocks(content: object, param: str) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [as_object(block, f"{param}[{i}]") for i, block in enumerate(as_list(content, param))]


def _user_messages(content: object, param: str) -> list[dict[str, Any]]:
    """Return the tool messages of a user turn's results, then its other content."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, param)):
        where = f"{param}[{index}]"
        if block.get("type") == "tool_result":
            results.append(_tool_message(block, where))
        else:
            parts.append(anthropic_block_to_part(block, where))
    if not parts:
        return results
    if all(part["type"] == "text" for part in parts) and len(parts) == 1:
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _tool_message(block: Mapping[str, Any], param: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts = []
        for index, raw in enumerate(as_list(content, f"{param}.content")):
            item = as_object(raw, f"{param}.content[{index}]")
            if item.get("type") != "text":
                raise untranslatable(
                    f"{param}.content[{index}].type",
                    OPENAI,
                    "an OpenAI tool message carries text only; describe the result in text",
                )
            texts.append(as_text(item.get("text"), f"{param}.content[{index}].text"))
        text = "\n\n".join(texts)
    if block.get("is_error") is True:
        text = TOOL_ERROR_PREFIX + text
    return {
        "role": "tool",
        "tool_call_id": as_text(block.get("tool_use_id"), f"{param}.tool_use_id"),
        "content": text,
    }


def _assistant_message(content: object, param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, param)):
        where = f"{param}[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(as_text(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif kind not in ("thinking", "redacted_thinking"):
            raise untranslatable(
                f"{where}.type", OPENAI, f"assistant blocks of type {kind!r} cannot be sent"
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: Mapping[str, Any], param: str) -> dict[str, Any]:
    arguments = as_object(block.get("input"), f"{param}.input")
    return {
        "id": as_text(block.get("id"), f"{param}.id"),
        "type": "function",
        "function": {
            "name": as_text(block.get("name"), f"{param}.name"),
            "arguments": orjson.dumps(arguments).decode(),
        },
    }


def _add_tools(chat: dict[str, Any], messages: Mapping[str, Any]) -> None:
    tools = messages.get("tools")
    if tools:
        chat["tools"] = [_tool(raw, f"tools[{i}]") for i, raw in enumerate(as_list(tools, "tools"))]
    choice = messages.get("tool_choice")
    if choice is None:
        return
    choice = as_object(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = as_text(choice.get("name"), "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise invalid("tool_choice.type", f"is {kind!r}", "use auto, any, tool or none")
    if choice.get("disable_parallel_tool_use") is True and tools:
        chat["parallel_tool_calls"] = False


def _tool(raw: object, param: str) -> dict[str, Any]:
    tool = as_object(raw, param)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise untranslatable(
            f"{param}.type",
            OPENAI,
            f"server tool {kind!r} runs at Anthropic only; remove it or describe a client tool",
        )
    function: dict[str, Any] = {
        "name": as_text(tool.get("name"), f"{param}.name"),
        "parameters": as_object(tool.get("input_schema"), f"{param}.input_schema"),
    }
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    return {"type": "function", "function": function}
